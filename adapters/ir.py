"""The internal representation shared by every adapter.

Usage is normalised to one convention whatever the wire format said, so cost and totals can be
computed without knowing where the numbers came from:

- ``input``  counts *all* prompt tokens, cached ones included (OpenAI's convention; Anthropic's
  ``input_tokens`` excludes cache reads and writes, so its adapter adds them back);
- ``output`` counts all generated tokens, reasoning included (Gemini's ``candidatesTokenCount``
  excludes thoughts, so its adapter adds ``thoughtsTokenCount``);
- ``cache_read``, ``cache_write`` and ``reasoning`` are subsets of the above, never extra.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Usage:
    """Token counts of one upstream answer, in the normalised convention above."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0

    @property
    def total(self) -> int:
        return self.input + self.output

    def merge(self, other: "Usage") -> None:
        """Take the larger of each counter.

        Streams report usage piecewise and cumulatively (Anthropic sends input in message_start
        and a running output count in message_delta; Gemini repeats usageMetadata on chunks), so
        the largest value seen is the right one and repeated reports never double count.
        """
        self.input = max(self.input, other.input)
        self.output = max(self.output, other.output)
        self.cache_read = max(self.cache_read, other.cache_read)
        self.cache_write = max(self.cache_write, other.cache_write)
        self.reasoning = max(self.reasoning, other.reasoning)
