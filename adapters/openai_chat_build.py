"""IR -> OpenAI Chat Completions requests: `build_request` and its helpers (messages, tools, reasoning effort,
parameters without an IR field, Mistral's dialect), with the outbound tables. `openai_chat_codec` re-exports
`build_request` and the public tables; the normalisations are documented in its module docstring.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from .ir import (ADVISORY_PARAMS, ChatRequest, DocumentPart, ImagePart, Message, Reasoning, ResponseFormat, TextPart,
                 ThinkingPart, Tool, ToolCallPart, ToolResultPart, TranslationError)

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
REASONING_MODEL_PREFIXES = ("o1", "o3", "o4", "gpt-5", "gpt-oss", "codex", "qwen3", "qwq", "grok-3-mini", "grok-4",
                            "deepseek-r", "magistral")
"""Model families that accept ``reasoning_effort``. Others (gpt-4o, llama, most compat models) answer 400
"Unrecognized request argument", and coding agents send an effort on every call."""


def _mentions_json(messages: list[dict[str, Any]]) -> bool:
    for m in messages:
        content = m.get("content")
        texts = [content] if isinstance(content, str) else [
            p.get("text", "") for p in content or [] if isinstance(p, dict)]
        if any("json" in t.lower() for t in texts if isinstance(t, str)):
            return True
    return False


def _takes_reasoning_effort(model: str) -> bool:
    return model.rsplit("/", 1)[-1].lower().startswith(REASONING_MODEL_PREFIXES)


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
    if _takes_reasoning_effort(model) and body.get("temperature") not in (None, 1, 1.0):
        # o-series and gpt-5 reasoning models refuse any temperature but 1; Anthropic/Gemini clients send one.
        warnings.append(f"temperature dropped: {model} accepts only the default")
        body.pop("temperature")
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
        if req.response_format.type == "json_object" and not _mentions_json(messages):
            # OpenAI refuses JSON mode unless a message says "json"; a Gemini client's JSON mime type doesn't.
            messages.insert(0, {"role": "system", "content": "Respond in JSON."})
    if req.reasoning is not None:
        if (effort := _effort(req.reasoning)) and _takes_reasoning_effort(model):
            body["reasoning_effort"] = effort
        elif effort:
            warnings.append(f"reasoning effort dropped: {model} is not known to take reasoning_effort")
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
    """Mistral's field names and id rule (see the `openai_chat_codec` module docstring)."""
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
