"""OpenAI Responses codec, inbound only (formats.md §2.2, §3, §4.2): a ``/v1/responses`` client's request to IR,
and the IR answer back as a ``response`` object or event stream (`StreamEncoder`, in `openai_responses_stream`).

A Responses client talking to an OpenAI provider is passed through untouched, so this codec only runs when the
target speaks another format; everything here is about what those targets can and cannot do:

- Server-side state (``previous_response_id``, ``conversation``, ``item_reference``, stored ``prompt``
  templates, ``file_id`` inputs, ``background``) exists only at OpenAI: refused with a 400 that says to send
  the full input instead.
- Hosted tools (web_search, file_search, computer use, code_interpreter, image_generation, local_shell, mcp,
  custom/freeform tools, …) run inside OpenAI; other providers cannot run them. Their types are listed in
  ``req.unsupported["tools"]`` (and a hosted ``tool_choice`` in ``unsupported["tool_choice"]``, replayed
  hosted-call items in ``unsupported["input"]``), all meaning-changing, so the outbound builder refuses them.
- Bookkeeping fields that only steer OpenAI's servers (``store``, ``include``, ``client_metadata``,
  ``prompt_cache_key``, ``service_tier``, ``truncation``, ``stream_options``) are ignored: Codex CLI sends
  them on every call and they change nothing in the answer.

Normalisation: Responses items are finer than turns (a reasoning item, a message item and function_call items
make one assistant turn), so adjacent items of the same role are merged into one IR message; system and
developer items are hoisted into ``req.system`` after ``instructions``, in order. A ``function_call``'s item
id (``fc_…``) is dropped: ``call_id`` is the pairing key and becomes the IR tool-call id.
"""

from __future__ import annotations

import base64
import time
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson

from .ir import (ChatRequest, ChatResponse, DocumentPart, ImagePart, Message, Part, Reasoning, ResponseFormat,
                 TextPart, ThinkingPart, Tool, ToolCallPart, ToolChoice, ToolResultPart, TranslationError)
from .openai_responses_stream import (SIG_PREFIX, STATUS, StreamEncoder, call_id, call_item, decode_signature,
                                      echo_fields, encode_signature, id_base, message_item, reasoning_item,
                                      response_obj)

__all__ = ["ACCEPTS_IMAGE_URLS", "SIG_PREFIX", "StreamEncoder", "parse_request", "render_response"]

ACCEPTS_IMAGE_URLS = True
"""Irrelevant for an inbound-only format (images are never sent *to* a Responses upstream by this codec)."""

# Parameters that need state only OpenAI keeps -> why the request can't be translated.
_STATEFUL = {
    "previous_response_id": "previous_response_id refers to a response stored at OpenAI; only OpenAI keeps "
                            "server-side conversation state. Send the full conversation in `input` instead.",
    "conversation": "conversation refers to a conversation stored at OpenAI; only OpenAI keeps server-side "
                    "conversation state. Send the full conversation in `input` instead.",
    "prompt": "prompt refers to a prompt template stored at OpenAI; other providers cannot resolve it. Send "
              "the prompt text in `instructions`/`input` instead.",
}

_TOOL_CHOICE_MODES = {"auto": "auto", "none": "none", "required": "required"}
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_DOC_TYPES = {"pdf": "application/pdf", "txt": "text/plain", "md": "text/markdown", "csv": "text/csv",
              "json": "application/json", "html": "text/html", "htm": "text/html", "xml": "application/xml"}
_LOGPROBS_INCLUDE = "message.output_text.logprobs"


_bad = TranslationError  # (param, message): a 400 in the client's format


# ---------------------------------------------------------------------------------------------- content


def _data_url(url: str, param: str) -> tuple[str, str]:
    """(media_type, base64 data) of a ``data:`` URL; percent-encoded (non-base64) payloads are re-encoded."""
    head, sep, data = url.partition(",")
    if not sep:
        raise _bad(param, "malformed data URL (no comma)")
    meta = head[5:].split(";")
    media = meta[0] or "text/plain"
    if "base64" not in meta[1:]:
        data = base64.b64encode(unquote_to_bytes(data)).decode("ascii")
    return media, data


def _image(part: dict[str, Any]) -> ImagePart:
    detail = part.get("detail")
    detail = detail if type(detail) is str else None
    url = part.get("image_url")
    if type(url) is str and url:
        if url.startswith("data:"):
            media, data = _data_url(url, "input")
            return ImagePart(data=data, media_type=media, detail=detail)
        return ImagePart(url=url, detail=detail)
    if part.get("file_id"):
        raise _bad("input", "input_image.file_id refers to a file stored at OpenAI, which other providers cannot "
                   "read; send the image as image_url (a URL or a data: URL) instead.")
    raise _bad("input", "input_image needs image_url")


def _file(part: dict[str, Any]) -> DocumentPart:
    name = part.get("filename")
    name = name if type(name) is str and name else None
    data, url = part.get("file_data"), part.get("file_url")
    if type(data) is str and data:
        if data.startswith("data:"):
            media, data = _data_url(data, "input")
            return DocumentPart(data=data, media_type=media, filename=name)
        ext = name.rsplit(".", 1)[-1].lower() if name and "." in name else "pdf"
        return DocumentPart(data=data, media_type=_DOC_TYPES.get(ext, "application/pdf"), filename=name)
    if type(url) is str and url:
        return DocumentPart(url=url, filename=name)
    if part.get("file_id"):
        raise _bad("input", "input_file.file_id refers to a file stored at OpenAI, which other providers cannot "
                   "read; send the file inline as file_data (a data: URL) or as file_url instead.")
    raise _bad("input", "input_file needs file_data or file_url")


def _content(content: object) -> list[Part]:
    """A message item's content: string or parts. Empty text is dropped (Anthropic rejects empty blocks)."""
    if type(content) is str:
        return [TextPart(content)] if content else []
    if content is None:
        return []
    if type(content) is not list:
        raise _bad("input", "message content must be a string or a list of content parts")
    parts: list[Part] = []
    for p in content:
        t = p.get("type") if type(p) is dict else None
        if t in ("input_text", "output_text", "text"):
            text = p.get("text")
            if type(text) is str and text:
                parts.append(TextPart(text))
        elif t == "refusal":
            text = p.get("refusal")
            if type(text) is str and text:
                parts.append(TextPart(text))
        elif t == "input_image":
            parts.append(_image(p))
        elif t == "input_file":
            parts.append(_file(p))
        else:
            raise _bad("input", f"content part type {t!r} cannot be translated for this provider")
    return parts


def _tool_output(output: object) -> list[TextPart | ImagePart]:
    if type(output) is str:
        return [TextPart(output)] if output else []
    if type(output) is not list:
        raise _bad("input", "function_call_output.output must be a string or a list of content parts")
    out: list[TextPart | ImagePart] = []
    for p in _content(output):
        if not isinstance(p, (TextPart, ImagePart)):
            raise _bad("input", "a file inside function_call_output cannot be sent to this provider as a tool "
                       "result; send it as text or an image")
        out.append(p)
    return out


def _arguments(args: object) -> str:
    """Arguments as JSON text; ``""`` (a zero-argument call) becomes ``{}`` (pitfall 17)."""
    if type(args) is str:
        return args if args.strip() else "{}"
    if type(args) is dict:  # rare: a client that sends an object instead of the JSON string
        return orjson.dumps(args).decode()
    return "{}"


def _texts(parts: object) -> list[str]:
    if type(parts) is not list:
        return []
    return [p["text"] for p in parts if type(p) is dict and type(p.get("text")) is str]


def _reasoning_part(item: dict[str, Any]) -> ThinkingPart | None:
    """Summary texts (or raw reasoning_text content) joined by blank lines; the signature only when it is a
    sidecar envelope: OpenAI's own ``encrypted_content`` can't be replayed to anyone else and is dropped."""
    texts = _texts(item.get("summary")) or _texts(item.get("content"))
    sig, redacted = decode_signature(item.get("encrypted_content"))
    text = "\n\n".join(t for t in texts if t)
    if not text and sig is None and redacted is None:
        return None
    return ThinkingPart(text=text, signature=sig, redacted=redacted)


class _Turns:
    """Builds the IR turn list, merging adjacent items of one role."""

    __slots__ = ("messages", "system", "calls", "unsupported")

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.system: list[str] = []
        self.calls: dict[str, str] = {}  # call_id -> name, to name tool results (Gemini needs it)
        self.unsupported: list[str] = []

    def add(self, role: str, parts: list[Part]) -> None:
        if not parts:
            return
        msgs = self.messages
        if msgs and msgs[-1].role == role:
            msgs[-1].parts.extend(parts)
        else:
            msgs.append(Message(role=role, parts=parts))  # type: ignore[arg-type]

    def item(self, item: object) -> None:
        if type(item) is not dict:
            raise _bad("input", "input items must be objects")
        t = item.get("type")
        if t == "message" or (t is None and "role" in item):
            role = item.get("role")
            role = _ROLES.get(role) if type(role) is str else None
            if role is None:
                raise _bad("input", f"unknown message role {item.get('role')!r}")
            parts = _content(item.get("content"))
            if role == "system":
                if any(not isinstance(p, TextPart) for p in parts):
                    raise _bad("input", "system/developer messages can only hold text for this provider")
                text = "\n\n".join(p.text for p in parts)  # type: ignore[union-attr]
                if text:
                    self.system.append(text)
            else:
                self.add(role, parts)
        elif t == "function_call":
            cid = item.get("call_id") or item.get("id")
            name = item.get("name")
            if type(cid) is not str or not cid or type(name) is not str or not name:
                raise _bad("input", "function_call items need call_id and name")
            self.calls[cid] = name
            self.add("assistant", [ToolCallPart(id=cid, name=name, arguments=_arguments(item.get("arguments")))])
        elif t == "function_call_output":
            cid = item.get("call_id")
            if type(cid) is not str or not cid:
                raise _bad("input", "function_call_output items need call_id")
            name = self.calls.get(cid) or item.get("name")
            part = ToolResultPart(tool_call_id=cid, content=_tool_output(item.get("output")),
                                  name=name if type(name) is str else None)
            self.add("user", [part])
        elif t == "reasoning":
            thinking = _reasoning_part(item)
            if thinking is not None:
                self.add("assistant", [thinking])
        elif t == "item_reference":
            raise _bad("input", "item_reference points at an item stored at OpenAI; only OpenAI keeps server-side "
                       "state. Send the full item in `input` instead.")
        elif type(t) is str:
            if t not in self.unsupported:  # a hosted tool's call or output (web_search_call, local_shell_call…)
                self.unsupported.append(t)
        else:
            raise _bad("input", "input item without type or role")


# ---------------------------------------------------------------------------------------------- options


def _tools(raw: object, req: ChatRequest) -> None:
    if raw is None:
        return
    if type(raw) is not list:
        raise _bad("tools", "tools must be a list")
    hosted: list[str] = []
    for t in _flatten_namespaces(raw):
        if type(t) is not dict:
            raise _bad("tools", "each tool must be an object")
        kind = t.get("type")
        if kind == "function":
            name = t.get("name")
            if type(name) is not str or not name:
                raise _bad("tools", "function tools need a name")
            params = t.get("parameters")
            desc = t.get("description")
            strict = t.get("strict")
            req.tools.append(Tool(
                name=name, description=desc if type(desc) is str else None,
                parameters=params if type(params) is dict else {"type": "object", "properties": {}},
                strict=strict if type(strict) is bool else None))
        else:
            kind = kind if type(kind) is str else "unknown"
            if kind not in hosted:
                hosted.append(kind)
    if hosted:
        req.unsupported["tools"] = hosted


def _flatten_namespaces(tools: list[object]) -> list[object]:
    """Codex groups function tools as ``{"type": "namespace", "name", "tools": [...]}``; the functions inside are
    ordinary function tools, offered under their own names."""
    flat: list[object] = []
    for t in tools:
        if type(t) is dict and t.get("type") == "namespace" and type(t.get("tools")) is list:
            flat.extend(t["tools"])
        else:
            flat.append(t)
    return flat


def _tool_choice(raw: object, req: ChatRequest) -> None:
    if raw is None:
        return
    if type(raw) is str:
        mode = _TOOL_CHOICE_MODES.get(raw)
        if mode is None:
            raise _bad("tool_choice", f"unknown tool_choice {raw!r}")
        req.tool_choice = ToolChoice(mode=mode)  # type: ignore[arg-type]
        return
    if type(raw) is not dict:
        raise _bad("tool_choice", "tool_choice must be a string or an object")
    kind = raw.get("type")
    if kind == "function":
        name = raw.get("name")
        if type(name) is not str or not name:
            raise _bad("tool_choice", "tool_choice of type function needs a name")
        req.tool_choice = ToolChoice(mode="tool", name=name)
    elif kind == "allowed_tools":
        # Same meaning as offering only those tools: filter the list, keep the mode.
        mode = raw.get("mode", "auto")
        mode = _TOOL_CHOICE_MODES.get(mode) if type(mode) is str else None
        if mode is None or mode == "none":
            raise _bad("tool_choice", "allowed_tools mode must be auto or required")
        tools = raw.get("tools")
        allowed = [t.get("name") for t in tools if type(t) is dict and t.get("type") == "function"] \
            if type(tools) is list else []
        req.tools = [t for t in req.tools if t.name in allowed]
        req.tool_choice = ToolChoice(mode=mode)  # type: ignore[arg-type]
    else:
        req.unsupported["tool_choice"] = raw  # a hosted/custom tool: cannot be forced elsewhere


def _text(raw: object, req: ChatRequest) -> None:
    if type(raw) is not dict:
        return
    fmt = raw.get("format")
    if type(fmt) is dict:
        kind = fmt.get("type")
        if kind == "json_schema":
            schema = fmt.get("schema")
            if type(schema) is not dict:
                raise _bad("text.format", "json_schema format needs a schema object")
            name, strict = fmt.get("name"), fmt.get("strict")
            req.response_format = ResponseFormat(type="json_schema", schema=schema,
                                                 name=name if type(name) is str else None,
                                                 strict=strict if type(strict) is bool else None)
        elif kind in ("json_object", "text"):
            req.response_format = ResponseFormat(type=kind)
        elif kind is not None:
            raise _bad("text.format", f"unknown text.format type {kind!r}")
    if raw.get("verbosity") is not None:
        req.unsupported["verbosity"] = raw["verbosity"]  # advisory: a style hint only OpenAI models take


def _reasoning(raw: object) -> Reasoning | None:
    if type(raw) is not dict:
        return None
    effort = raw.get("effort")
    summary = raw.get("summary") or raw.get("generate_summary")
    if effort is None and summary is None:
        return None
    return Reasoning(effort=effort if type(effort) is str else None, include_thoughts=True if summary else None)


def _num(body: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    v = body.get(key)
    if v is None:
        return None
    if type(v) is bool or not isinstance(v, kind):
        raise _bad(key, f"{key} must be a number" if kind is not int else f"{key} must be an integer")
    return v


# ---------------------------------------------------------------------------------------------- request


def parse_request(body: dict[str, Any], *, model: str | None = None, stream: bool | None = None) -> ChatRequest:
    """A ``POST /v1/responses`` body as an IR request. Raises TranslationError (400) for state only OpenAI has
    and for malformed input; hosted tools are recorded in ``unsupported`` for the builder to refuse."""
    if type(body) is not dict:
        raise _bad("body", "the request body must be a JSON object")
    for key, why in _STATEFUL.items():
        if body.get(key):
            raise _bad(key, why)
    if body.get("background"):
        raise _bad("background", "background responses are polled from OpenAI's servers later; other providers "
                   "answer only in the request itself. Drop background or set it to false.")
    model = model or body.get("model")
    if type(model) is not str or not model:
        raise _bad("model", "model is required")

    turns = _Turns()
    instructions = body.get("instructions")
    if type(instructions) is str and instructions:
        turns.system.append(instructions)
    elif instructions is not None and type(instructions) is not str:
        raise _bad("instructions", "instructions must be a string")
    raw = body.get("input")
    if type(raw) is str:
        turns.add("user", [TextPart(raw)] if raw else [])
    elif type(raw) is list:
        for item in raw:
            turns.item(item)
    elif raw is not None:
        raise _bad("input", "input must be a string or a list of items")
    if not turns.messages:
        raise _bad("input", "input is empty: send at least one user message")

    req = ChatRequest(model=model, messages=turns.messages, system=turns.system)
    if turns.unsupported:
        req.unsupported["input"] = turns.unsupported
    _tools(body.get("tools"), req)
    _tool_choice(body.get("tool_choice"), req)
    ptc = body.get("parallel_tool_calls")
    req.parallel_tool_calls = ptc if type(ptc) is bool else None
    _text(body.get("text"), req)
    req.reasoning = _reasoning(body.get("reasoning"))
    req.max_tokens = _num(body, "max_output_tokens", int)
    req.temperature = _num(body, "temperature", (int, float))
    req.top_p = _num(body, "top_p", (int, float))
    if body.get("top_logprobs") is not None:
        req.unsupported["top_logprobs"] = body["top_logprobs"]
    include = body.get("include")
    if type(include) is list and _LOGPROBS_INCLUDE in include:
        req.unsupported["logprobs"] = True
    if body.get("max_tool_calls") is not None:
        req.unsupported["max_tool_calls"] = body["max_tool_calls"]
    user = body.get("user") or body.get("safety_identifier")
    req.user = user if type(user) is str else None
    md = body.get("metadata")
    if type(md) is dict and md:
        req.metadata = {str(k): str(v) for k, v in md.items()}
    req.stream = bool(body.get("stream")) if stream is None else stream
    return req


# ---------------------------------------------------------------------------------------------- response


def render_response(resp: ChatResponse, model: str, *, request: ChatRequest | None = None) -> dict[str, Any]:
    """The IR answer as a Responses ``response`` object: reasoning, message and function_call items in the
    order the model produced them (a run of text is one message item). ``request``, when the caller has it,
    fills the echoed parameters (tools, tool_choice, text.format, …) instead of the API's defaults."""
    base = id_base(resp.id)
    status, reason = STATUS.get(resp.finish, ("completed", None))
    output: list[dict[str, Any]] = []
    text: list[str] | None = None  # the open text run
    n_calls = 0

    def flush() -> None:
        nonlocal text
        if text is not None:
            output.append(message_item(f"msg_{base}{len(output):04d}", "".join(text), "completed"))
            text = None

    for part in resp.parts:
        if isinstance(part, TextPart):
            if text is None:
                text = []
            text.append(part.text)
        elif isinstance(part, ThinkingPart):
            flush()
            output.append(reasoning_item(f"rs_{base}{len(output):04d}", part.text if part.text else None,
                                         encode_signature(part.signature, part.redacted), "completed"))
        elif isinstance(part, ToolCallPart):
            flush()
            cid = part.id or call_id(base, n_calls)
            args = part.arguments if part.arguments.strip() else "{}"
            output.append(call_item(f"fc_{base}{len(output):04d}", cid, part.name, args, "completed"))
            n_calls += 1
        # images, documents or tool results never come back in an answer: nothing to render
    flush()
    if status == "incomplete" and output:
        output[-1]["status"] = "incomplete"
    error = {"code": "server_error", "message": "the upstream model stopped with an error"} if status == "failed" else None
    created = resp.created if resp.created is not None else int(time.time())
    return response_obj("resp_" + base, created, model, status, output, resp.usage, echo_fields(request),
                        reason=reason, error=error)
