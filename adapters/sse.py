"""Server-sent events framing, bytes in / events out, plus cheap peeks into JSON payloads.

Why not a library: the maintained PyPI parsers are tied to a client or decode to ``str``.
``httpx-sse`` keeps its decoder in a private module (``httpx_sse._decoders``), works on text
lines and dispatches events that carry no data; the openai/anthropic SDK decoders are private
and wrap an httpx response; ``sseclient-py`` wraps ``requests``; ``assel`` (sans-io) decodes to
``str``, splits with a regex per chunk and keeps its UTF-8 decoder as a *class* attribute, shared
by every parser instance. The proxy forwards bytes and orjson parses bytes, so decoding to text
and back would be pure waste. Hence this small WHATWG-conformant parser (the parts that matter:
line endings, comments, ``data``/``event`` fields, dispatch on blank line; ``id``/``retry`` are
ignored because the sidecar never reconnects a stream).

Performance notes: a chunk without a line ending is only appended to a list (no rescan, no
quadratic concatenation of long lines); line splitting is ``bytes.split``; CR handling is a
``replace`` that runs only when the chunk has a CR in it. Hot paths test for bytes with ``find`` (see `feed`).
"""

from __future__ import annotations

from dataclasses import dataclass

_BOM = b"\xef\xbb\xbf"
_WS = b" \t\r\n"
_names: dict[bytes, str] = {}  # event-name cache: a stream repeats a handful of names


@dataclass(slots=True)
class SSEEvent:
    """One dispatched event: ``event`` is the ``event:`` field (None if absent or empty)."""

    event: str | None
    data: bytes


def _name(raw: bytes) -> str | None:
    name = _names.get(raw)
    if name is None:
        name = raw.decode("utf-8", "replace")
        if len(_names) < 512:
            _names[raw] = name
    return name or None


class SSEParser:
    """Incremental server-sent-events parser: feed arbitrary byte chunks (frames may split
    anywhere, even inside \\r\\n), get complete events."""

    __slots__ = ("_tail", "_cr", "_event", "_data", "_bom")

    def __init__(self) -> None:
        self._tail: list[bytes] = []  # pieces of the line still waiting for its ending
        self._cr = False  # the last chunk ended in \r: a \n opening the next one belongs to it
        self._event: str | None = None
        self._data: list[bytes] = []
        self._bom = True  # a UTF-8 BOM may open the stream (WHATWG says strip it)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk:
            return []
        if self._cr:
            self._cr = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
                if not chunk:
                    return []
        # find() rather than `in`: on Python 3.11 `bytes in bytes` first tries the operand as an int and builds
        # (then drops) a TypeError, several times the cost of the search itself.
        if chunk.find(b"\n") < 0 and chunk.find(b"\r") < 0:
            self._tail.append(chunk)
            return []
        if self._tail:
            self._tail.append(chunk)
            buf = b"".join(self._tail)
            self._tail.clear()
        else:
            buf = chunk
        if buf.find(b"\r") >= 0:
            self._cr = buf[-1] == 0x0D
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        rest = lines.pop()
        if rest:
            self._tail.append(rest)
        return self._lines(lines)

    @property
    def between_events(self) -> bool:
        """Nothing of an unfinished line or event is pending: the bytes fed so far ended exactly after an
        event (or a blank line). A relay that rewrites some events can then forward a chunk as it came when it
        started and ended that way and none of its events needs rewriting."""
        return not self._tail and not self._data and self._event is None and not self._cr

    def skip_whole(self, chunk: bytes) -> bool:
        """Account for ``chunk`` without parsing it, when that is exact: True if the parser is between events
        and the chunk ends with a blank line (so it holds whole events only and leaves the parser between events
        again); False, changing nothing, when the caller must `feed` it. For relays that forward a chunk they
        can tell, from its bytes alone, holds nothing they need."""
        if self._tail or self._data or self._event is not None or self._cr or not chunk.endswith(b"\n\n"):
            return False
        self._bom = False  # a BOM is only stripped at the very start of a stream
        return True

    def flush(self) -> list[SSEEvent]:
        """End of body: the last line and event count even without their terminators (a
        Gemini error or a truncated upstream often ends that way)."""
        out: list[SSEEvent] = []
        if self._tail:
            line = b"".join(self._tail)
            self._tail.clear()
            out = self._lines([line])
        self._cr = False
        if self._data:
            out.append(self._dispatch())
        self._event = None
        return out

    def _dispatch(self) -> SSEEvent:
        data = self._data
        ev = SSEEvent(self._event, data[0] if len(data) == 1 else b"\n".join(data))
        data.clear()
        return ev

    def _lines(self, lines: list[bytes]) -> list[SSEEvent]:
        if self._bom:
            self._bom = False
            if lines[0].startswith(_BOM):
                lines[0] = lines[0][3:]
        out: list[SSEEvent] = []
        data = self._data
        for line in lines:
            if not line:  # blank line: dispatch (only if some data line was seen)
                if data:
                    out.append(self._dispatch())
                self._event = None
            elif line.startswith(b"data: "):
                data.append(line[6:])
            elif line.startswith(b"event: "):  # every Anthropic event has one: skip the general field split
                self._event = _name(line[7:])
            elif line.startswith(b"data:"):
                data.append(line[5:])
            elif line[0] != 0x3A:  # not a ':' comment
                field, _, value = line.partition(b":")
                if value[:1] == b" ":
                    value = value[1:]
                if field == b"event":
                    self._event = _name(value)
                elif field == b"data":  # a bare `data` line: empty value
                    data.append(value)
        return out


def format_event(data: bytes, event: str | None = None) -> bytes:
    """Frame one event: ``event: x\\ndata: ...\\n\\n``; multi-line data becomes several data lines."""
    if b"\n" in data or b"\r" in data:
        lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        data = b"\ndata: ".join(lines)
    if event:
        return b"event: %b\ndata: %b\n\n" % (event.encode(), data)
    return b"data: %b\n\n" % data


def value_start(data: bytes, pos: int) -> int:
    """Index of the JSON value after a key that ends at ``pos`` (skips blanks, one ``:``,
    blanks), or -1 when no colon follows, i.e. the match was a string value, not a key."""
    n = len(data)
    while pos < n and data[pos] in _WS:
        pos += 1
    if pos >= n or data[pos] != 0x3A:
        return -1
    pos += 1
    while pos < n and data[pos] in _WS:
        pos += 1
    return pos if pos < n else -1


def has_value(data: bytes, key: bytes) -> bool:
    """True when the quoted JSON ``key`` (e.g. ``b'"usage"'``) occurs as a key with a non-null
    value anywhere in ``data``. A bytes scan, so the common ``"usage":null`` chunk costs no
    parse. It cannot see nesting: callers parse to confirm when it says True. Inside JSON
    strings quotes are escaped, so text content never looks like a key."""
    i = data.find(key)
    while i >= 0:
        j = value_start(data, i + len(key))
        if j >= 0 and not data.startswith(b"null", j):
            return True
        i = data.find(key, i + len(key))
    return False


def payload_type(data: bytes) -> str | None:
    """The ``type`` of a payload that opens with ``{"type":"…"`` (Anthropic and Responses
    payloads do), for servers that leave out the ``event:`` line. None otherwise."""
    if not data.startswith(b'{"type":'):
        return None
    i = value_start(data, 7)
    if i < 0 or data[i] != 0x22:
        return None
    j = data.find(b'"', i + 1)
    return _name(data[i + 1 : j]) if j > 0 else None
