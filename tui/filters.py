"""The traffic filter language, after mitmproxy's flow filters: `~e & ~p openai`, `!~s | ~lat >2s`.

No textual import. `parse(text)` returns a callable `Filter` (row -> bool) or raises `FilterError`
with the 0-based position of the problem. Every filter class carries `code`, `arg` and `help`, so
the help screen is generated from `FILTERS` rather than written by hand.

Grammar (loosest binding first)::

    expr    := and ("|" and)*
    and     := unary ("&"? unary)*          juxtaposition is AND, as in mitmproxy
    unary   := "!" unary | "(" expr ")" | "~code" [arg] | word
    arg     := word | "quoted string"       (quote a regex that contains ( ) | & ! or spaces)

`! & | ( )` are operators wherever they appear outside quotes. Text arguments are
case-insensitive regular expressions (a plain name is a regex that matches itself); bare words
are case-insensitive substrings of the model, requested model, provider and path.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from tui.row import RequestRow

__all__ = ["FILTERS", "Filter", "FilterError", "help_entries", "parse"]

OPERATORS = "!&|()"


class FilterError(ValueError):
    """A filter expression that cannot be parsed; `pos` is the 0-based offset of the problem."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(f"{message} (at column {pos + 1})")
        self.message = message
        self.pos = pos


# -- tokens -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    """"op" (one of `! & | ( )`), "filter" (`~code`, value without the tilde) or "word"."""
    value: str
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in OPERATORS:
            tokens.append(Token("op", c, i))
            i += 1
        elif c in "\"'":
            end = text.find(c, i + 1)
            if end == -1:
                raise FilterError(f"unclosed {c} quote", i)
            tokens.append(Token("word", text[i + 1 : end], i))
            i = end + 1
        elif c == "~":
            j = i + 1
            while j < n and text[j].isalpha():
                j += 1
            if j == i + 1:
                raise FilterError("expected a filter name after ~, e.g. ~e or ~p", i)
            tokens.append(Token("filter", text[i + 1 : j].lower(), i))
            i = j
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in OPERATORS and text[j] not in "\"'":
                j += 1
            tokens.append(Token("word", text[i:j], i))
            i = j
    return tokens


# -- filters ----------------------------------------------------------------------------------


class Filter(ABC):
    """A predicate over `RequestRow`. `str(f)` is a canonical, fully bracketed form."""

    code: ClassVar[str] = ""
    arg: ClassVar[str] = ""
    """Name of the argument for help ("" when the filter takes none)."""
    help: ClassVar[str] = ""

    @abstractmethod
    def __call__(self, row: RequestRow) -> bool: ...


class _Flag(Filter):
    def __str__(self) -> str:
        return f"~{self.code}"


class FError(_Flag):
    code = "e"
    help = "errors: status >= 400, no response, or a stream that broke"

    def __call__(self, row: RequestRow) -> bool:
        return row.is_error


class FStream(_Flag):
    code = "s"
    help = "streamed requests"

    def __call__(self, row: RequestRow) -> bool:
        return row.stream


class FFailover(_Flag):
    code = "fo"
    help = "failed over: more than one upstream attempt"

    def __call__(self, row: RequestRow) -> bool:
        return len(row.attempts) > 1


class FPending(_Flag):
    code = "pending"
    help = "still in flight"

    def __call__(self, row: RequestRow) -> bool:
        return row.pending


class _Text(Filter):
    """Case-insensitive regex search over one or more text fields of the row."""

    arg = "regex"

    def __init__(self, pattern: str, pos: int) -> None:
        try:
            self.regex = re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise FilterError(f"~{self.code}: bad regular expression: {exc.msg}", pos) from None
        self.pattern = pattern

    @abstractmethod
    def fields(self, row: RequestRow) -> tuple[str | None, ...]:
        """The row's texts this filter searches."""

    def __call__(self, row: RequestRow) -> bool:
        return any(f and self.regex.search(f) for f in self.fields(row))

    def __str__(self) -> str:
        return f"~{self.code} {_quote(self.pattern)}"


class FProvider(_Text):
    code = "p"
    help = "provider that served (or is serving) the request"

    def fields(self, row: RequestRow) -> tuple[str | None, ...]:
        return (row.provider,)


class FModel(_Text):
    code = "m"
    help = "model sent upstream or the model the client asked for"

    def fields(self, row: RequestRow) -> tuple[str | None, ...]:
        return (row.model, row.requested_model)


class FInbound(_Text):
    code = "i"
    help = "inbound dialect: openai_chat, openai_responses, anthropic, gemini"

    def fields(self, row: RequestRow) -> tuple[str | None, ...]:
        return (row.inbound,)


class FClient(_Text):
    code = "cl"
    help = "client name the request came from"

    def fields(self, row: RequestRow) -> tuple[str | None, ...]:
        return (row.client,)


class FCode(Filter):
    code = "c"
    arg = "code"
    help = "HTTP status: 429, or a class like 5xx"

    def __init__(self, text: str, pos: int) -> None:
        m = re.fullmatch(r"([1-5])(\d\d|xx)", text.lower())
        if not m:
            raise FilterError(f"~c expects a status like 429 or 5xx, not {text!r}", pos)
        self.text = text.lower()
        self.lo = int(m[1]) * 100 + (0 if m[2] == "xx" else int(m[2]))
        self.hi = self.lo + (99 if m[2] == "xx" else 0)

    def __call__(self, row: RequestRow) -> bool:
        return row.status is not None and not row.pending and self.lo <= row.status <= self.hi

    def __str__(self) -> str:
        return f"~c {self.text}"


_COMPARE = re.compile(r"(>=|<=|>|<|=)?\s*(.*)", re.DOTALL)
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b, "=": lambda a, b: a == b,
}  # fmt: skip


class _Compare(Filter):
    """`>2s`, `<=500ms`, `=0`; rows where the value is unknown (None) never match."""

    unit_help: ClassVar[str] = ""

    def __init__(self, text: str, pos: int) -> None:
        m = _COMPARE.fullmatch(text.strip())
        assert m is not None  # the pattern matches any string
        self.op = m[1] or "="
        self.text = text.strip()  # set first: error messages quote the whole argument
        self.limit = self.number(m[2], pos)

    @abstractmethod
    def number(self, text: str, pos: int) -> float:
        """The limit written in the filter, in this filter's unit (raises FilterError if malformed)."""

    @abstractmethod
    def value(self, row: RequestRow) -> float | None:
        """The row's value to compare, or None when unknown (never matches)."""

    def __call__(self, row: RequestRow) -> bool:
        v = self.value(row)
        return v is not None and _OPS[self.op](v, self.limit)

    def __str__(self) -> str:
        return f"~{self.code} {self.text}"


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m)", re.IGNORECASE)
_UNITS = {"ms": 1.0, "s": 1000.0, "m": 60_000.0}


class _Duration(_Compare):
    arg = ">2s"

    def number(self, text: str, pos: int) -> float:
        m = _DURATION.fullmatch(text.strip())
        if not m:
            raise FilterError(
                f"~{self.code} expects a comparison with a unit, like >2s or <500ms, not {self.text!r}", pos
            )
        return float(m[1]) * _UNITS[m[2].lower()]


class FLatency(_Duration):
    code = "lat"
    help = "total latency, e.g. ~lat >2s, ~lat <500ms (units ms, s, m)"

    def value(self, row: RequestRow) -> float | None:
        return None if row.pending else row.latency_ms


class FTtft(_Duration):
    code = "ttft"
    help = "time to first token, e.g. ~ttft >1s"

    def value(self, row: RequestRow) -> float | None:
        return None if row.pending else row.ttft_ms


class FCost(_Compare):
    code = "cost"
    arg = ">0.01"
    help = "cost in dollars, e.g. ~cost >0.01; unpriced requests never match"

    def number(self, text: str, pos: int) -> float:
        try:
            return float(text.strip().removeprefix("$"))
        except ValueError:
            raise FilterError(f"~cost expects a comparison like >0.01, not {self.text!r}", pos) from None

    def value(self, row: RequestRow) -> float | None:
        return None if row.pending else row.cost_usd


class FTokens(_Compare):
    code = "tok"
    arg = ">1000"
    help = "tokens in + out, e.g. ~tok >10000"

    def number(self, text: str, pos: int) -> float:
        t = text.strip().lower()
        scale = 1000.0 if t.endswith("k") else 1.0
        try:
            return float(t.removesuffix("k")) * scale
        except ValueError:
            raise FilterError(f"~tok expects a comparison like >1000 or >10k, not {self.text!r}", pos) from None

    def value(self, row: RequestRow) -> float | None:
        if row.pending or not row.has_usage:
            return None
        return float((row.input_tokens or 0) + (row.output_tokens or 0))


class FWord(Filter):
    """A bare word: case-insensitive substring of model, requested model, provider or path."""

    help = "bare text: substring of model, provider or path"

    def __init__(self, text: str) -> None:
        self.text = text
        self.needle = text.lower()

    def __call__(self, row: RequestRow) -> bool:
        for f in (row.model, row.requested_model, row.provider, row.path):
            if f and self.needle in f.lower():
                return True
        return False

    def __str__(self) -> str:
        return _quote(self.text)


class FNot(Filter):
    def __init__(self, inner: Filter) -> None:
        self.inner = inner

    def __call__(self, row: RequestRow) -> bool:
        return not self.inner(row)

    def __str__(self) -> str:
        return f"!{self.inner}"


class FAnd(Filter):
    def __init__(self, parts: list[Filter]) -> None:
        self.parts = parts

    def __call__(self, row: RequestRow) -> bool:
        return all(p(row) for p in self.parts)

    def __str__(self) -> str:
        return "(" + " & ".join(map(str, self.parts)) + ")"


class FOr(Filter):
    def __init__(self, parts: list[Filter]) -> None:
        self.parts = parts

    def __call__(self, row: RequestRow) -> bool:
        return any(p(row) for p in self.parts)

    def __str__(self) -> str:
        return "(" + " | ".join(map(str, self.parts)) + ")"


FILTERS: tuple[type[Filter], ...] = (
    FError, FStream, FFailover, FPending, FProvider, FModel, FCode, FLatency, FTtft, FCost,
    FTokens, FInbound, FClient,
)  # fmt: skip
"""Every `~code` filter, in the order help lists them."""
_BY_CODE = {f.code: f for f in FILTERS}


def _quote(text: str) -> str:
    if text and not any(c.isspace() or c in OPERATORS or c in "\"'~" for c in text):
        return text
    return '"' + text + '"' if '"' not in text else "'" + text + "'"


def help_entries() -> list[tuple[str, str]]:
    """(syntax, explanation) pairs: every filter class, then bare words and the operators."""
    out = [(f"~{f.code} {f.arg}".rstrip(), f.help) for f in FILTERS]
    out += [
        ("word", FWord.help),
        ("!", "not"),
        ("a & b, a b", "and (juxtaposition also means and)"),
        ("a | b", "or (binds looser than and)"),
        ("( )", "grouping; quote arguments that contain ( ) | & ! or spaces"),
    ]
    return out


# -- parser -----------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def end_pos(self) -> int:
        return len(self.text)

    def parse(self) -> Filter:
        f = self.expr()
        tok = self.peek()
        if tok is not None:  # only a stray ")" can stop expr() early
            raise FilterError(f"unexpected {tok.value!r}", tok.pos)
        return f

    def expr(self) -> Filter:
        parts = [self.conj()]
        while (tok := self.peek()) is not None and tok.kind == "op" and tok.value == "|":
            self.take()
            parts.append(self.conj())
        return parts[0] if len(parts) == 1 else FOr(parts)

    def conj(self) -> Filter:
        parts = [self.unary()]
        while (tok := self.peek()) is not None:
            if tok.kind == "op" and tok.value == "&":
                self.take()
            elif tok.kind == "op" and tok.value in "|)":
                break
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else FAnd(parts)

    def unary(self) -> Filter:
        tok = self.peek()
        if tok is None:
            raise FilterError("expression ends too early", self.end_pos())
        self.take()
        if tok.kind == "op":
            if tok.value == "!":
                return FNot(self.unary())
            if tok.value == "(":
                inner = self.expr()
                close = self.peek()
                if close is None or close.value != ")" or close.kind != "op":
                    raise FilterError("missing )", close.pos if close else self.end_pos())
                self.take()
                return inner
            raise FilterError(f"unexpected {tok.value!r}", tok.pos)
        if tok.kind == "word":
            return FWord(tok.value)
        return self.filter(tok)

    def filter(self, tok: Token) -> Filter:
        cls = _BY_CODE.get(tok.value)
        if cls is None:
            known = " ".join(f"~{c}" for c in _BY_CODE)
            raise FilterError(f"unknown filter ~{tok.value} (known: {known})", tok.pos)
        if not cls.arg:
            return cls()
        arg = self.peek()
        if arg is None or arg.kind != "word":
            where = arg.pos if arg is not None else self.end_pos()
            raise FilterError(f"~{cls.code} needs an argument, e.g. ~{cls.code} {cls.arg}", where)
        self.take()
        text = arg.value
        if issubclass(cls, _Compare) and text in _OPS and (nxt := self.peek()) and nxt.kind == "word":
            text += self.take().value  # `~lat > 2s` reads like `~lat >2s`
        return cls(text, arg.pos)  # type: ignore[call-arg]


def parse(text: str) -> Filter | None:
    """The filter for `text`; None for an empty (or all-blank) expression, which matches all."""
    if not text.strip():
        return None
    return _Parser(text).parse()
