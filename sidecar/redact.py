"""Keeping the key out of what flows back: some providers echo request headers in bodies and streams.

A stream arrives in arbitrary pieces, so a key can straddle two reads. `StreamScrubber` holds back the
end of a chunk only when it could be the start of the key (rare: the chunk must end with a prefix of the
key), so ordinary chunks pass with no delay and a split key is still caught.
"""

from __future__ import annotations

REDACTED = b"[REDACTED]"


def scrub(data: bytes, secret: bytes | None) -> bytes:
    if secret and secret in data:
        return data.replace(secret, REDACTED)
    return data


def scrub_text(text: str | None, secret: bytes | None) -> str | None:
    if text is None or not secret:
        return text
    key = secret.decode("utf-8", "replace")
    return text.replace(key, REDACTED.decode()) if key in text else text


class StreamScrubber:
    def __init__(self, secret: bytes | None) -> None:
        self._secret = secret
        self._held = b""
        # A tail worth holding back is a proper prefix of the key, so its last byte is one of these. Chunks of
        # SSE end in a newline, which no key contains: one lookup per chunk instead of a scan of its end.
        self._prefix_ends = frozenset(secret[i:i + 1] for i in range(len(secret) - 1)) if secret else frozenset()

    def feed(self, chunk: bytes) -> bytes:
        secret = self._secret
        if not secret:
            return chunk
        data = self._held + chunk if self._held else chunk
        self._held = b""
        if data.find(secret) >= 0:  # not `in`: see adapters/sse.py on its cost
            data = data.replace(secret, REDACTED)
        if data[-1:] not in self._prefix_ends:
            return data
        # Hold back the longest tail that is a proper prefix of the key, if any.
        n = len(secret)
        start = max(0, len(data) - n + 1)
        first = secret[:1]
        pos = data.find(first, start)
        while pos != -1:
            tail = data[pos:]
            if secret.startswith(tail):
                self._held = tail
                return data[:pos]
            pos = data.find(first, pos + 1)
        return data

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return held
