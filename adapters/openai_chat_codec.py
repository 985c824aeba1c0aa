"""OpenAI Chat Completions <-> IR: requests here; answers (``parse_response``, ``render_response``, the stream
decoder and encoder) live in `openai_chat_stream` and are re-exported, so this module has the whole codec shape.

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

import base64
import binascii
import hashlib
from typing import Any

import orjson

from .ir import (ADVISORY_PARAMS, ChatRequest, DocumentPart, ImagePart, Message, Part, Reasoning, ResponseFormat, TextPart,
                 ThinkingPart, Tool, ToolCallPart, ToolChoice, ToolResultPart, TranslationError)
from .openai_chat_stream import (FINISH_FROM_WIRE, FINISH_TO_WIRE, StreamDecoder, StreamEncoder,  # noqa: F401
                                 chat_id, finish_from_wire, parse_response, render_response, synth_call_id,
                                 usage_to_wire)

ACCEPTS_IMAGE_URLS = True
MAX_TOKENS_FIELD = "max_completion_tokens"
"""The length field sent upstream (``max_tokens`` for Mistral models). build_request is told the model, not the
provider: another provider that knows only ``max_tokens`` would need a preset flag and a rename in the proxy."""
MAX_STOP_SEQUENCES = 4

FORWARDED_PARAMS = frozenset({
    "logit_bias", "prediction", "web_search_options", "moderation", "store", "service_tier", "safety_identifier",
    "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options", "verbosity",
})
"""OpenAI chat parameters without an IR field whose effect needs nothing carried back: sent verbatim."""
REFUSED_PARAMS: dict[str, str] = {
    "logprobs": "log probabilities", "top_logprobs": "log probabilities", "audio": "audio output",
    "modalities": "audio output", "functions": "the deprecated functions API (use tools)",
    "function_call": "the deprecated functions API (use tool_choice)", "n": "more than one choice",
}
"""Parameters whose result the translated answer can't carry back to the client."""
MISTRAL_MODEL_PREFIXES = ("mistral-", "open-mistral", "codestral-", "open-codestral", "devstral-", "magistral-",
                          "ministral-", "pixtral-", "voxtral-", "labs-devstral", "labs-mistral")
_SERVICE_TIERS = frozenset({"auto", "default", "flex", "scale", "priority"})

_EFFORT_BY_BUDGET = ((1536, "low"), (3072, "medium"))
"""Reasoning budget -> ``reasoning_effort``: the inverse of LiteLLM's effort->budget defaults (low 1024,
medium 2048, high 4096) cut at the midpoints, ``high`` above; 0 -> ``none``; negative (Gemini's "dynamic")
-> not sent, the model's default."""

_IMAGE_MAGIC = (("iVBORw0KGgo", "image/png"), ("/9j/", "image/jpeg"), ("R0lGOD", "image/gif"), ("UklGR", "image/webp"))
_DOC_EXT = {"application/pdf": "pdf", "text/plain": "txt", "text/markdown": "md", "text/html": "html",
            "text/csv": "csv"}


# ============================================================================================ parse request


def _num(body: dict[str, Any], key: str, kinds: tuple[type, ...] = (int, float)) -> Any:
    v = body.get(key)
    if v is not None and type(v) not in kinds:
        raise TranslationError(key, f"{key} must be {'an integer' if kinds == (int,) else 'a number'}")
    return v


def _str(v: object) -> str | None:
    return v if type(v) is str and v else None


def _data_url(url: str, param: str) -> tuple[str, str]:
    """``data:<mime>;base64,<b64>`` -> (mime, b64)."""
    head, sep, data = url.partition(",")
    if not sep or not head.endswith(";base64"):
        raise TranslationError(param, "data URLs must be base64 (data:<mime>;base64,<data>)")
    return head[5:-7] or "application/octet-stream", data


def _texts(content: object, param: str) -> list[str]:
    """Text of a system/developer/tool message: a string or text parts (one entry per part)."""
    if content is None:
        return []
    if type(content) is str:
        return [content]
    if type(content) is not list:
        raise TranslationError(param, "content must be a string or a list of content parts")
    for j, part in enumerate(content):
        if type(part) is not dict or part.get("type") != "text" or type(part.get("text")) is not str:
            raise TranslationError(f"{param}[{j}]", "only text parts are allowed here")
    return [part["text"] for part in content]


def _user_part(part: object, param: str) -> Part | None:
    kind = part.get("type") if type(part) is dict else None
    if kind == "text":
        if type(text := part.get("text")) is not str:
            raise TranslationError(f"{param}.text", "text must be a string")
        return TextPart(text) if text else None
    if kind == "image_url":
        img = part.get("image_url")
        img = {"url": img} if type(img) is str else img  # some clients send the URL bare
        url = _str(img.get("url")) if type(img) is dict else None
        if url is None:
            raise TranslationError(f"{param}.image_url.url", "image_url.url is required")
        detail = _str(img.get("detail"))
        if url.startswith("data:"):
            mime, data = _data_url(url, f"{param}.image_url.url")
            return ImagePart(data=data, media_type=mime, detail=detail)
        return ImagePart(url=url, detail=detail)
    if kind == "file":
        f = part.get("file") if type(part.get("file")) is dict else {}
        if file_data := _str(f.get("file_data")):
            if not file_data.startswith("data:"):  # bare base64: OpenAI only takes PDFs this way
                return DocumentPart(data=file_data, filename=_str(f.get("filename")))
            mime, data = _data_url(file_data, f"{param}.file.file_data")
            return DocumentPart(data=data, media_type=mime, filename=_str(f.get("filename")))
        if f.get("file_id"):
            raise TranslationError(f"{param}.file.file_id", "file_id refers to a file stored at OpenAI, which "
                                   "other providers can't read; send the file inline as file_data")
        raise TranslationError(f"{param}.file", "file parts need file_data")
    if kind == "input_audio":
        raise TranslationError(param, "audio input (input_audio) can't be translated for this provider")
    raise TranslationError(f"{param}.type", f"unknown content part type {kind!r}")


def _user_parts(content: object, param: str) -> list[Part]:
    if content is None or type(content) is str:
        return [TextPart(content)] if content else []
    if type(content) is not list:
        raise TranslationError(param, "content must be a string or a list of content parts")
    return [p for j, part in enumerate(content) if (p := _user_part(part, f"{param}[{j}]")) is not None]


def _assistant_parts(msg: dict[str, Any], param: str, names: dict[str, str], turn: int) -> list[Part]:
    parts: list[Part] = []
    if thinking := _str(msg.get("reasoning_content")) or _str(msg.get("reasoning")):
        parts.append(ThinkingPart(thinking))
    content = msg.get("content")
    if type(content) is list:  # text and refusal parts
        for j, part in enumerate(content):
            text = part.get("text", part.get("refusal")) if type(part) is dict else None
            if type(text) is not str or part.get("type") not in ("text", "refusal"):
                raise TranslationError(f"{param}.content[{j}]", "assistant content parts must be text or refusal")
            if text:
                parts.append(TextPart(text))
    elif type(content) is str:
        if content:
            parts.append(TextPart(content))
    elif content is not None:
        raise TranslationError(f"{param}.content", "content must be a string, a list of parts, or null")
    if (refusal := _str(msg.get("refusal"))) and not any(type(p) is TextPart for p in parts):
        parts.append(TextPart(refusal))
    if msg.get("function_call"):
        raise TranslationError(f"{param}.function_call", "the deprecated function_call can't be translated")
    calls = msg.get("tool_calls") or []
    if type(calls) is not list:
        raise TranslationError(f"{param}.tool_calls", "tool_calls must be a list")
    for k, call in enumerate(calls):
        p = f"{param}.tool_calls[{k}]"
        if type(call) is not dict or call.get("type", "function") != "function":
            raise TranslationError(p, "only function tool calls can be translated")
        fn = call.get("function") if type(call.get("function")) is dict else {}
        if (name := _str(fn.get("name"))) is None:
            raise TranslationError(f"{p}.function.name", "tool calls need function.name")
        args = fn.get("arguments")
        args = orjson.dumps(args).decode() if type(args) is dict else args if _str(args) and args.strip() else "{}"
        cid = _str(call.get("id")) or synth_call_id(f"turn{turn}", k)
        names[cid] = name
        parts.append(ToolCallPart(cid, name, args))
    return parts


def _parse_messages(messages: list[Any], req: ChatRequest) -> None:
    names: dict[str, str] = {}  # tool call id -> name, to fill ToolResultPart.name
    prev = None  # wire role of the previous non-system message
    out = req.messages
    for i, msg in enumerate(messages):
        param = f"messages[{i}]"
        role = msg.get("role") if type(msg) is dict else None
        if role in ("system", "developer"):
            req.system.extend(t for t in _texts(msg.get("content"), f"{param}.content") if t)
            continue
        if role == "user":
            parts = _user_parts(msg.get("content"), f"{param}.content")
            if prev == "tool":
                out[-1].parts.extend(parts)
            else:
                out.append(Message("user", parts))
        elif role == "assistant":
            out.append(Message("assistant", _assistant_parts(msg, param, names, i)))
        elif role == "tool":
            if (cid := _str(msg.get("tool_call_id"))) is None:
                raise TranslationError(f"{param}.tool_call_id", "tool messages need tool_call_id")
            texts = _texts(msg.get("content"), f"{param}.content")
            result = ToolResultPart(cid, [TextPart(t) for t in texts if t], name=names.get(cid))
            if prev == "tool":
                out[-1].parts.append(result)
            else:
                out.append(Message("user", [result]))
        elif role == "function":
            raise TranslationError(f"{param}.role", "the deprecated 'function' role can't be translated")
        else:
            raise TranslationError(f"{param}.role", f"unknown role {role!r}")
        prev = role


def _parse_tools(body: dict[str, Any], req: ChatRequest) -> None:
    tools = body.get("tools") or []
    if type(tools) is not list:
        raise TranslationError("tools", "tools must be a list")
    for k, t in enumerate(tools):
        if type(t) is not dict or t.get("type", "function") != "function":
            raise TranslationError(f"tools[{k}]", "only function tools can be translated (not custom tools)")
        fn = t.get("function") if type(t.get("function")) is dict else {}
        if (name := _str(fn.get("name"))) is None:
            raise TranslationError(f"tools[{k}].function.name", "tools need function.name")
        params, strict = fn.get("parameters"), fn.get("strict")
        req.tools.append(Tool(name, _str(fn.get("description")),
                              params if type(params) is dict else {"type": "object", "properties": {}},
                              strict if type(strict) is bool else None))
    choice = body.get("tool_choice")
    kind = choice.get("type") if type(choice) is dict else None
    if choice is None:
        return
    if choice in ("auto", "none", "required"):
        req.tool_choice = ToolChoice(choice)
    elif kind == "function":
        fn = choice.get("function")
        if (name := _str(fn.get("name") if type(fn) is dict else None)) is None:
            raise TranslationError("tool_choice.function.name", "tool_choice needs function.name")
        req.tool_choice = ToolChoice("tool", name)
    elif kind == "allowed_tools":
        # Allowing only some tools is the same as sending only those (history may still mention the others).
        allowed = choice.get("allowed_tools") if type(choice.get("allowed_tools")) is dict else {}
        mode = allowed.get("mode", "auto")
        if mode not in ("auto", "required") or type(allowed.get("tools")) is not list:
            raise TranslationError("tool_choice.allowed_tools", "allowed_tools needs mode auto|required and tools")
        keep = {f.get("name") if type(f := t.get("function")) is dict else t.get("name")
                for t in allowed["tools"] if type(t) is dict}
        req.tools = [t for t in req.tools if t.name in keep]
        req.tool_choice = ToolChoice(mode)
    else:
        raise TranslationError("tool_choice", f"tool_choice {choice!r} can't be translated for this provider")


def _parse_response_format(rf: object) -> ResponseFormat | None:
    kind = rf.get("type") if type(rf) is dict else None
    if rf is None:
        return None
    if kind in ("text", "json_object"):
        return ResponseFormat(kind)
    if kind != "json_schema":
        raise TranslationError("response_format.type", f"unknown response_format {kind!r}")
    js = rf.get("json_schema")
    if type(js) is not dict or type(js.get("schema", {})) is not dict:
        raise TranslationError("response_format.json_schema", "json_schema needs a schema object")
    strict = js.get("strict")
    return ResponseFormat("json_schema", js.get("schema") or {}, _str(js.get("name")),
                          strict if type(strict) is bool else None)


def parse_request(body: dict[str, Any], *, model: str | None = None, stream: bool | None = None) -> ChatRequest:
    """A client's ``/chat/completions`` body -> IR. Raises `TranslationError` (400) on malformed input or on
    content that has no IR form (audio input, stored file ids, custom tools, the deprecated functions API)."""
    if type(body) is not dict:
        raise TranslationError("body", "the request body must be a JSON object")
    if (name := _str(model) or _str(body.get("model"))) is None:
        raise TranslationError("model", "model is required")
    messages = body.get("messages")
    if type(messages) is not list or not messages:
        raise TranslationError("messages", "messages must be a non-empty list")
    req = ChatRequest(model=name)
    _parse_messages(messages, req)
    _parse_tools(body, req)
    if type(ptc := body.get("parallel_tool_calls")) is bool:
        req.parallel_tool_calls = ptc
    req.response_format = _parse_response_format(body.get("response_format"))
    req.max_tokens = _num(body, "max_completion_tokens", (int,))
    if req.max_tokens is None:
        req.max_tokens = _num(body, "max_tokens", (int,))
    req.temperature, req.top_p = _num(body, "temperature"), _num(body, "top_p")
    req.top_k = _num(body, "top_k", (int,))  # vLLM / OpenRouter / Together extension
    req.presence_penalty, req.frequency_penalty = _num(body, "presence_penalty"), _num(body, "frequency_penalty")
    req.seed, req.n = _num(body, "seed", (int,)), _num(body, "n", (int,))
    stop = body.get("stop")
    if type(stop) is str or (type(stop) is list and all(type(s) is str for s in stop)):
        req.stop = [s for s in ([stop] if type(stop) is str else stop) if s]
    elif stop is not None:
        raise TranslationError("stop", "stop must be a string or a list of strings")
    effort, extra = body.get("reasoning_effort"), body.get("reasoning")  # OpenRouter: {"effort", "max_tokens"}
    if type(effort) is str or type(extra) is dict:
        extra = extra if type(extra) is dict else {}
        budget = extra.get("max_tokens")
        req.reasoning = Reasoning(_str(effort) or _str(extra.get("effort")), budget if type(budget) is int else None)
    req.stream = stream if stream is not None else body.get("stream") is True
    opts = body.get("stream_options")
    req.include_usage = req.stream and type(opts) is dict and opts.get("include_usage") is True
    req.user = _str(body.get("user")) or _str(body.get("safety_identifier"))
    if type(meta := body.get("metadata")) is dict and meta:
        req.metadata = {str(k): v if type(v) is str else orjson.dumps(v).decode() for k, v in meta.items()}
    _record_unsupported(body, req)
    return req


def _record_unsupported(body: dict[str, Any], req: ChatRequest) -> None:
    """Keep parameters without an IR field, only when they ask for something (a ``false``/default value
    changes nothing, and recording it would make other providers refuse the request for no reason)."""
    u = req.unsupported
    for key in ("logit_bias", "audio", "prediction", "web_search_options", "moderation", "functions",
                "function_call", "service_tier", "safety_identifier", "prompt_cache_key", "prompt_cache_retention",
                "prompt_cache_options", "verbosity", "top_logprobs"):
        if body.get(key):
            u[key] = body[key]
    for key in ("store", "logprobs"):  # false is chat's default
        if body.get(key) is True:
            u[key] = True
    if type(mods := body.get("modalities")) is list and any(m != "text" for m in mods):
        u["modalities"] = mods
    if req.n is not None and req.n > 1:
        u["n"] = req.n


# ============================================================================================ build request


def _image(img: ImagePart) -> dict[str, Any]:
    if img.data is not None:
        data = img.data
        mime = img.media_type or next((m for magic, m in _IMAGE_MAGIC if data.startswith(magic)), "image/png")
        url = f"data:{mime};base64,{data}"
    elif not (url := img.url or ""):
        raise TranslationError("messages", "an image has neither URL nor data")
    return {"type": "image_url", "image_url": {"url": url, "detail": img.detail} if img.detail else {"url": url}}


def _document(doc: DocumentPart) -> dict[str, Any]:
    if doc.data is None:
        raise TranslationError("messages", "OpenAI chat can't take a document by URL, only inline file data")
    if doc.media_type.startswith("text/"):  # file parts take PDFs; plain text travels losslessly as text
        try:
            return {"type": "text", "text": base64.b64decode(doc.data, validate=True).decode("utf-8")}
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise TranslationError("messages", f"text document is not valid base64 UTF-8: {exc}") from None
    filename = doc.filename or f"document.{_DOC_EXT.get(doc.media_type, 'pdf')}"
    return {"type": "file", "file": {"filename": filename, "file_data": f"data:{doc.media_type};base64,{doc.data}"}}


def _tool_message(res: ToolResultPart, warn: set[str]) -> dict[str, Any]:
    texts = []
    for p in res.content:
        if type(p) is TextPart:
            texts.append(p.text)
        else:
            texts.append("[image omitted: OpenAI chat tool results carry text only]")
            warn.add("images in tool results were replaced by a text note (OpenAI chat tool results are text only)")
    if res.is_error:
        warn.add("tool results' is_error flag was dropped (OpenAI chat has no such field)")
    return {"role": "tool", "tool_call_id": res.tool_call_id, "content": "\n".join(texts)}


def _user_messages(msg: Message, warn: set[str]) -> list[dict[str, Any]]:
    out, content = [], []
    for p in msg.parts:
        t = type(p)
        if t is ToolResultPart:
            out.append(_tool_message(p, warn))
        elif t is TextPart:
            if p.text:
                content.append({"type": "text", "text": p.text})
        elif t is ImagePart:
            content.append(_image(p))
        elif t is DocumentPart:
            content.append(_document(p))
        elif t is ThinkingPart:
            warn.add("reasoning in user turns was dropped")
        else:
            raise TranslationError("messages", "a user turn can't contain a tool call")
    if content or not out:
        if len(content) <= 1 and all(c["type"] == "text" for c in content):
            out.append({"role": "user", "content": content[0]["text"] if content else ""})
        else:
            out.append({"role": "user", "content": content})
    return out


def _assistant_message(msg: Message, warn: set[str]) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for p in msg.parts:
        t = type(p)
        if t is TextPart:
            texts.append(p.text)
        elif t is ToolCallPart:
            args = p.arguments if p.arguments and p.arguments.strip() else "{}"
            calls.append({"id": p.id, "type": "function", "function": {"name": p.name, "arguments": args}})
        elif t is ThinkingPart:
            warn.add("earlier reasoning was dropped (OpenAI chat takes no reasoning input)")
        else:
            raise TranslationError("messages", f"OpenAI chat assistant messages hold only text and tool calls, "
                                   f"not {t.__name__}")
    out: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or (None if calls else "")}
    if calls:
        out["tool_calls"] = calls
    return out


def _effort(r: Reasoning) -> str | None:
    b = r.budget_tokens
    if r.effort or b is None or b < 0:
        return r.effort or None
    return "none" if b == 0 else next((effort for bound, effort in _EFFORT_BY_BUDGET if b < bound), "high")


def _response_format(rf: ResponseFormat) -> dict[str, Any]:
    if rf.type != "json_schema":
        return {"type": rf.type}
    name = "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in (rf.name or ""))[:64]
    js: dict[str, Any] = {"name": name or "response", "schema": rf.schema or {"type": "object"}}
    if rf.strict is not None:
        js["strict"] = rf.strict
    return {"type": "json_schema", "json_schema": js}


def _tool(t: Tool) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": t.name}
    if t.description:
        fn["description"] = t.description
    fn["parameters"] = t.parameters
    if t.strict is not None:
        fn["strict"] = t.strict
    return {"type": "function", "function": fn}


def _tool_options(req: ChatRequest, body: dict[str, Any]) -> None:
    if req.tools:
        body["tools"] = [_tool(t) for t in req.tools]
        if req.parallel_tool_calls is not None:  # OpenAI rejects it without tools
            body["parallel_tool_calls"] = req.parallel_tool_calls
    tc = req.tool_choice
    if tc is None or (not req.tools and tc.mode in ("auto", "none")):  # OpenAI rejects tool_choice without tools
        return
    if not req.tools:
        raise TranslationError("tool_choice", "tool_choice forces a tool call but no tools were given")
    if tc.mode != "tool":
        body["tool_choice"] = tc.mode
    elif tc.name:
        body["tool_choice"] = {"type": "function", "function": {"name": tc.name}}
    else:
        raise TranslationError("tool_choice", "a forced tool choice needs a tool name")


def _unsupported(req: ChatRequest, body: dict[str, Any], warnings: list[str]) -> None:
    for key, value in req.unsupported.items():
        if key in REFUSED_PARAMS:
            raise TranslationError(key, f"{key}: {REFUSED_PARAMS[key]} can't be returned through the sidecar's "
                                   "translation to this OpenAI-compatible provider")
        if key in FORWARDED_PARAMS and not (key == "service_tier" and value not in _SERVICE_TIERS):
            body[key] = value
        elif key in ADVISORY_PARAMS:
            warnings.append(f"{key} was dropped (not available in OpenAI chat)")
        else:
            raise TranslationError(key, f"{key} has no equivalent in OpenAI Chat Completions")


def build_request(req: ChatRequest, model: str) -> tuple[dict[str, Any], list[str]]:
    """IR -> an OpenAI ``/chat/completions`` body, plus warnings for advisory options that were dropped."""
    warnings: list[str] = []
    warn: set[str] = set()  # per-part warnings, said once
    messages: list[dict[str, Any]] = [{"role": "system", "content": s} for s in req.system if s]
    for msg in req.messages:
        if msg.role == "user":
            messages.extend(_user_messages(msg, warn))
        else:
            messages.append(_assistant_message(msg, warn))
    body: dict[str, Any] = {"model": model, "messages": messages}
    if req.max_tokens is not None:
        body[MAX_TOKENS_FIELD] = req.max_tokens
    for key in ("temperature", "top_p", "presence_penalty", "frequency_penalty", "seed"):
        if (v := getattr(req, key)) is not None:
            body[key] = v
    if req.n is not None and req.n > 1:
        raise TranslationError("n", "n > 1 (several choices) can't be returned through the sidecar's translation")
    if len(req.stop) > MAX_STOP_SEQUENCES:
        raise TranslationError("stop", f"OpenAI chat accepts at most {MAX_STOP_SEQUENCES} stop sequences, "
                               f"this request has {len(req.stop)}")
    if req.stop:
        body["stop"] = list(req.stop)
    if req.top_k is not None:
        warnings.append("top_k was dropped (OpenAI chat has no top_k)")
    _tool_options(req, body)
    if req.response_format is not None:
        body["response_format"] = _response_format(req.response_format)
    if req.reasoning is not None:
        if effort := _effort(req.reasoning):
            body["reasoning_effort"] = effort
        if req.reasoning.include_thoughts:
            warnings.append("include_thoughts was dropped (OpenAI chat has no switch for reasoning text)")
    if req.user:
        body["user"] = req.user
    if req.metadata:
        body["metadata"] = dict(req.metadata)
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    _unsupported(req, body, warnings)
    if body.get("safety_identifier") == body.get("user"):
        body.pop("user", None)  # parse_request filled `user` from it; don't send the deprecated twin
    if model.startswith(MISTRAL_MODEL_PREFIXES):
        _mistral(body, warn)
    warnings.extend(sorted(warn))
    return body, warnings


def _mistral_id(cid: str) -> str:
    return cid if len(cid) == 9 and cid.isascii() and cid.isalnum() else hashlib.sha256(cid.encode()).hexdigest()[:9]


def _mistral(body: dict[str, Any], warn: set[str]) -> None:
    """Mistral's field names and id rule (see the module docstring)."""
    if MAX_TOKENS_FIELD in body:
        body["max_tokens"] = body.pop(MAX_TOKENS_FIELD)
    if "seed" in body:
        body["random_seed"] = body.pop("seed")
    body.pop("stream_options", None)
    for key in ("user", "metadata"):
        if body.pop(key, None) is not None:
            warn.add(f"{key} was dropped (Mistral rejects it)")
    for m in body["messages"]:
        if "tool_call_id" in m:
            m["tool_call_id"] = _mistral_id(m["tool_call_id"])
        for call in m.get("tool_calls", ()):
            call["id"] = _mistral_id(call["id"])
