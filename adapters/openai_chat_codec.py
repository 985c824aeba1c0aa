"""OpenAI Chat Completions <-> IR: requests are parsed in `openai_chat_parse` and built in `openai_chat_build`;
answers (``parse_response``, ``render_response``, the stream decoder and encoder) live in `openai_chat_stream`.
All are re-exported here, so this module has the whole codec shape.

Inbound, clients send chat requests; outbound, this is the body for OpenAI and every OpenAI-compatible
provider (Azure, Groq, Mistral, DeepSeek, OpenRouter, Together, xAI, Ollama, vLLM). Normalisations, chosen so
that build_request -> parse_request is stable:

- Every ``system``/``developer`` message goes to ``req.system`` in order, one entry per text part — also one in
  the middle of the conversation: single-slot formats can't place it there, and hoisting keeps an instruction
  an instruction rather than demoting it to user text (pitfall 8). Outbound, each entry is one ``system``
  message at the top (not ``developer``: OpenAI maps it for reasoning models, compat providers may not know it).
- Consecutive ``tool`` messages fold into ONE user turn of `ToolResultPart`s, and a ``user`` message right after
  them joins that turn behind the results (Anthropic wants all results first in one user message, pitfall 5).
  A result's ``name`` is recovered from the assistant call with the same id. Outbound, results become one
  ``tool`` message each, before the turn's other content; images in them become a text note (warning).
- Empty text is dropped (pitfall 6); assistant text parts are joined into one ``content`` string, ``null`` when
  the turn only calls tools; empty tool arguments become ``"{}"`` (pitfall 17).
- Compat providers' reasoning text (``reasoning_content``, ``reasoning``) parses into a `ThinkingPart`; OpenAI
  chat has no reasoning input, so outbound it is dropped with a warning (DeepSeek's thinking mode with tools
  would want it back, pitfall 25 — that needs a per-provider policy build_request can't see).
- ``max_tokens`` goes out as ``max_completion_tokens``: reasoning models reject ``max_tokens`` (pitfall 22)
  and OpenAI, Azure, Groq, DeepSeek, OpenRouter, xAI, vLLM and Together take the new name. Streams always ask
  for ``stream_options.include_usage`` (the proxy meters tokens, pitfall 10).
- Mistral's API forbids unknown fields (422 ``extra_forbidden``): for its models (`MISTRAL_MODEL_PREFIXES`,
  bare names as its API uses them) the body says ``max_tokens`` and ``random_seed``, has no
  ``stream_options`` (Mistral streams usage anyway), ``user`` or ``metadata`` (warning), and tool-call ids
  are mapped to the 9 alphanumerics Mistral demands (pitfall 2) — deterministically, so history replays
  consistently and no state is needed (ids Mistral minted already comply and pass unchanged).
- ``response_format.json_schema.description`` has no IR field and is not carried.

Parameters without an IR field go to ``req.unsupported`` under their OpenAI name, only when set to something
that matters. Outbound, `FORWARDED_PARAMS` are sent verbatim, `REFUSED_PARAMS` (answer parts the IR can't
bring back) raise `TranslationError`, `ADVISORY_PARAMS` are dropped with a warning, and any other name is
refused: parsers record only what changes the answer.
"""

from __future__ import annotations

from .openai_chat_build import (  # noqa: F401  (re-exported: the codec module's public surface)
    FORWARDED_PARAMS, MAX_STOP_SEQUENCES, MAX_TOKENS_FIELD, MISTRAL_MODEL_PREFIXES, REFUSED_PARAMS, build_request,
)
from .openai_chat_parse import parse_request  # noqa: F401
from .openai_chat_stream import (FINISH_FROM_WIRE, FINISH_TO_WIRE, StreamDecoder, StreamEncoder,  # noqa: F401
                                 chat_id, finish_from_wire, parse_response, render_response, synth_call_id,
                                 usage_to_wire)

ACCEPTS_IMAGE_URLS = True
