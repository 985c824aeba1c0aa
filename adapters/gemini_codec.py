"""Gemini generateContent ⇄ IR (the codec shape of `adapters.codec`).

Requests live here; answers and streams in `adapters.gemini_stream` (re-exported), schemas in
`adapters.gemini_schema`. Inbound, Google's JSON parser accepts camelCase and snake_case for every field,
and the python-genai SDK really sends a mix (``inlineData: {"mime_type": …}``, ``thinkingConfig:
{"thinking_budget": …}``), so every field is read under both spellings. Outbound is camelCase.

Decisions worth knowing:

- Tool-call ids: a Gemini client may omit ``functionCall.id``. Such calls get ``call_<n>`` (n = position
  among the request's calls, so the same history always gets the same ids), and a ``functionResponse``
  without ``id`` answers the oldest unanswered call of the same name. Outbound, ``id`` is always sent on
  both sides (Gemini accepts and echoes it), so the id a client saw is the id that comes back.
- Tool results: ``functionResponse.response`` must be an object (pitfall 19): result text that is a JSON
  object is sent as that object, anything else as ``{"result": text}`` (``{"error": …}`` when
  ``is_error``); images of a result follow it as sibling ``inlineData`` parts (every model takes those;
  ``functionResponse.parts`` is Gemini 3 only). Inbound, the IR text is the JSON of ``response``.
- Reasoning effort → ``thinkingBudget`` by `EFFORT_BUDGET` (none 0, minimal 512, low 1024, medium 8192,
  high/xhigh/max 24576 — the largest budget every 2.5 model accepts; Gemini 3 still honours budgets).
  An explicit ``budget_tokens`` wins. Budget 0 on a "pro" model (which cannot stop thinking) becomes 128.
- Thought signatures: see `adapters.gemini_stream`. Gemini 3 rejects a current-turn function call whose
  signature the client dropped (OpenAI clients always do, pitfall 15); such a call gets Google's documented
  placeholder ``skip_thought_signature_validator`` instead of a 400.
- ``system`` entries are joined by blank lines into one ``systemInstruction`` part; consecutive same-role
  turns are merged and empty ones skipped (pitfalls 4, 7).
"""

from __future__ import annotations

from typing import Any

import orjson

from .gemini_schema import camel as _camel, field as _g, media_in as _media, media_out as _media_out
from .gemini_schema import openapi_to_json_schema, tool_parameters
from .gemini_stream import (  # noqa: F401  (re-exported: the codec module's public surface)
    FINISH_FROM_GEMINI, FINISH_TO_GEMINI, SKIP_SIGNATURE, StreamDecoder, StreamEncoder, args_object,
    gemini_model_parts, parse_response, parts_from_gemini, render_response,
)
from .ir import (ADVISORY_PARAMS, 
    ChatRequest, DocumentPart, ImagePart, Message, Part, Reasoning, ResponseFormat, TextPart, ThinkingPart,
    Tool, ToolCallPart, ToolChoice, ToolResultPart, TranslationError,
)

ACCEPTS_IMAGE_URLS = False
"""Gemini fetches only gs:// and Files-API URIs; the proxy inlines http(s) image URLs before building."""

EFFORT_BUDGET: dict[str, int] = {
    "none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576, "max": 24576,
}
MAX_STOP = 5
_NO_SIGNATURES = ("gemini-1", "gemini-2.0", "gemma", "learnlm")
"""Models from before thought signatures: they get no placeholder signature."""
_DETAIL_WARNING = "image detail dropped: Gemini has no per-image detail setting"

_ROLES = {"user": "user", "model": "assistant", "function": "user", None: "user", "": "user"}
_SERVER_TOOLS = {
    "googleSearch", "googleSearchRetrieval", "codeExecution", "urlContext", "fileSearch", "googleMaps",
    "computerUse", "enterpriseWebSearch", "retrieval", "mcpServers", "parallelAiSearch", "exaAiSearch",
}
REFUSED_PARAMS: dict[str, str] = {
    "logprobs": "log probabilities", "top_logprobs": "log probabilities", "audio": "audio output",
    "modalities": "non-text output", "n": "more than one choice",
}
"""Answer parts the translated answer can't carry back (e.g. ``n > 1``: only candidate 0 is read back)."""


def _dict(v: Any) -> dict:
    return v if type(v) is dict else {}


def _num(v: Any, kind: type) -> Any:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return kind(v)


# ---------------------------------------------------------------------------------------------- parse


def parse_request(body: dict[str, Any], *, model: str | None = None, stream: bool | None = None) -> ChatRequest:
    """A generateContent / streamGenerateContent body (model and stream come from the URL)."""
    if type(body) is not dict:
        raise TranslationError("contents", "request body must be a JSON object")
    name = model or body.get("model") or ""
    req = ChatRequest(model=name.removeprefix("models/") if isinstance(name, str) else "", stream=bool(stream))
    req.system = _system(_g(body, "systemInstruction"))
    req.messages = _contents(_g(body, "contents"))
    _generation(_dict(_g(body, "generationConfig")), req)
    _tools(_g(body, "tools"), _dict(_g(_dict(_g(body, "toolConfig")), "functionCallingConfig")), req)
    labels = _g(body, "labels")
    if type(labels) is dict and labels:
        req.metadata = {str(k): str(v) for k, v in labels.items()}
    for key in ("safetySettings", "cachedContent"):  # advisory / meaning-changing; unknown fields: ignored
        if value := _g(body, key):
            req.unsupported[key] = value
    return req


def _system(si: Any) -> list[str]:
    if isinstance(si, str):
        return [si] if si else []
    out = []
    for p in _g(si, "parts") or []:
        text = _g(p, "text")
        if isinstance(text, str):
            if text:
                out.append(text)
        elif type(p) is dict and p:
            raise TranslationError("systemInstruction", "only text parts can be translated in systemInstruction")
    return out


def _contents(contents: Any) -> list[Message]:
    if contents is None:
        return []
    if isinstance(contents, str):
        contents = [{"role": "user", "parts": [{"text": contents}]}]
    if type(contents) is dict:
        contents = [contents]
    if type(contents) is not list:
        raise TranslationError("contents", "contents must be a list of {role, parts}")
    counter = 0
    pending: dict[str, list[str]] = {}  # function name → ids of calls not answered yet, oldest first

    def on_call(fc: dict) -> ToolCallPart:
        nonlocal counter
        cid = _g(fc, "id")
        cid = cid if isinstance(cid, str) and cid else f"call_{counter}"
        counter += 1
        name = str(_g(fc, "name") or "")
        pending.setdefault(name, []).append(cid)
        args = _g(fc, "args")
        return ToolCallPart(cid, name, orjson.dumps(args if type(args) is dict else {}).decode())

    def other(p: dict) -> list[Part]:
        nonlocal counter
        fr = _g(p, "functionResponse")
        if type(fr) is dict:
            name = str(_g(fr, "name") or "")
            queue = pending.get(name) or []
            cid = _g(fr, "id")
            if isinstance(cid, str) and cid:
                if cid in queue:
                    queue.remove(cid)
            elif queue:
                cid = queue.pop(0)
            else:
                cid = f"call_{counter}"
                counter += 1
            response = _g(fr, "response")
            response = response if type(response) is dict else {}
            content: list[TextPart | ImagePart] = [TextPart(orjson.dumps(response).decode())]
            for sub in _g(fr, "parts") or []:
                media = _media(sub)
                if isinstance(media, ImagePart):
                    content.append(media)
            is_error = len(response) == 1 and "error" in response
            return [ToolResultPart(cid, content, name=name or None, is_error=is_error)]
        media = _media(p)
        return [media] if media is not None else []

    out: list[Message] = []
    for c in contents:
        if type(c) is not dict:
            raise TranslationError("contents", "each content must be an object with role and parts")
        role = _g(c, "role")
        if role not in _ROLES:
            raise TranslationError("contents", f"unknown content role {role!r} (expected user or model)")
        parts = parts_from_gemini(_g(c, "parts"), on_call, other)
        if parts:
            out.append(Message(_ROLES[role], parts))  # type: ignore[arg-type]
    return out


def _generation(gc: dict, req: ChatRequest) -> None:
    req.temperature = _num(_g(gc, "temperature"), float)
    req.top_p = _num(_g(gc, "topP"), float)
    req.top_k = _num(_g(gc, "topK"), int)
    req.n = _num(_g(gc, "candidateCount"), int)
    req.max_tokens = _num(_g(gc, "maxOutputTokens"), int)
    req.presence_penalty = _num(_g(gc, "presencePenalty"), float)
    req.frequency_penalty = _num(_g(gc, "frequencyPenalty"), float)
    req.seed = _num(_g(gc, "seed"), int)
    stop = _g(gc, "stopSequences")
    req.stop = [stop] if isinstance(stop, str) else [s for s in stop or [] if isinstance(s, str)]
    mime = _g(gc, "responseMimeType")
    js = _g(gc, "responseJsonSchema")
    oas = _g(gc, "responseSchema")
    if mime == "text/x.enum":
        raise TranslationError("responseMimeType", "text/x.enum output cannot be translated for this provider")
    if type(js) is dict:
        req.response_format = ResponseFormat("json_schema", js)
    elif type(oas) is dict:
        req.response_format = ResponseFormat("json_schema", openapi_to_json_schema(oas))
    elif mime == "application/json":
        req.response_format = ResponseFormat("json_object")
    tc = _g(gc, "thinkingConfig")
    if type(tc) is dict:
        r = Reasoning()
        budget = _num(_g(tc, "thinkingBudget"), int)
        if budget == 0:
            r.effort = "none"
        elif budget is not None and budget > 0:
            r.budget_tokens = budget
        level = _g(tc, "thinkingLevel")
        if isinstance(level, str) and level.lower() in EFFORT_BUDGET:
            r.effort = level.lower()
        inc = _g(tc, "includeThoughts")
        r.include_thoughts = inc if isinstance(inc, bool) else None
        if r.effort or r.budget_tokens is not None or r.include_thoughts is not None:
            req.reasoning = r
    if _g(gc, "responseLogprobs"):
        req.unsupported["logprobs"] = True
    if _g(gc, "logprobs"):
        req.unsupported["top_logprobs"] = _g(gc, "logprobs")
    modalities = _g(gc, "responseModalities")
    if type(modalities) is list and any(str(m).upper() != "TEXT" for m in modalities):
        req.unsupported["modalities"] = modalities
    if speech := _g(gc, "speechConfig"):
        req.unsupported["audio"] = speech
    level = _g(gc, "mediaResolution")  # the request-wide image resolution: the IR says it per image
    detail = {"MEDIA_RESOLUTION_LOW": "low", "MEDIA_RESOLUTION_HIGH": "high"}.get(str(level).upper())
    if detail:
        for m in req.messages:
            for p in m.parts:
                for image in p.content if type(p) is ToolResultPart else (p,):
                    if type(image) is ImagePart and image.detail is None:
                        image.detail = detail


def _tools(tools: Any, fcc: dict, req: ChatRequest) -> None:
    for t in tools or []:
        if type(t) is not dict:
            continue
        for key, value in t.items():
            ckey = _camel(key)
            if ckey == "functionDeclarations":
                for fd in value or []:
                    req.tools.append(_declaration(_dict(fd)))
            elif value is not None:
                req.unsupported[ckey] = value  # server tools (googleSearch, codeExecution, urlContext …)
    mode = str(_g(fcc, "mode") or "").upper()
    names = [n for n in _g(fcc, "allowedFunctionNames") or [] if isinstance(n, str)]
    if mode == "ANY" and len(names) == 1:
        req.tool_choice = ToolChoice("tool", names[0])
        return
    if names and mode in ("ANY", "VALIDATED"):  # a subset of tools: the IR says it by offering only those
        req.tools = [t for t in req.tools if t.name in names]
    choice = {"AUTO": "auto", "VALIDATED": "auto", "ANY": "required", "NONE": "none"}.get(mode)
    if choice:
        req.tool_choice = ToolChoice(choice)  # type: ignore[arg-type]


def _declaration(fd: dict) -> Tool:
    js = _g(fd, "parametersJsonSchema")
    oas = _g(fd, "parameters")
    if type(js) is dict:
        params = js
    elif type(oas) is dict:
        params = openapi_to_json_schema(oas)
    else:
        params = {"type": "object", "properties": {}}
    desc = _g(fd, "description")
    return Tool(str(_g(fd, "name") or ""), desc if isinstance(desc, str) else None, params)


# ---------------------------------------------------------------------------------------------- build


def build_request(req: ChatRequest, model: str) -> tuple[dict[str, Any], list[str]]:
    """The generateContent body for ``req`` (the model goes in the URL) and the warnings."""
    warnings: list[str] = []
    body: dict[str, Any] = {"contents": _build_contents(req, model, warnings)}
    system = "\n\n".join(s for s in req.system if s)
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    gc = _build_generation(req, model, warnings)
    if gc:
        body["generationConfig"] = gc
    tools: list[dict[str, Any]] = []
    if req.tools:
        decls = []
        for t in req.tools:
            d: dict[str, Any] = {"name": t.name}
            if t.description:
                d["description"] = t.description
            params = tool_parameters(t.parameters)
            if params is not None:
                d["parameters"] = params
            decls.append(d)
        tools.append({"functionDeclarations": decls})
        if any(t.strict for t in req.tools):
            warnings.append("strict tool schemas dropped: Gemini has no strict mode")
    for key, value in req.unsupported.items():
        if value is None or value is False:
            continue
        if key in _SERVER_TOOLS:
            tools.append({key: value})
        elif key in ("safetySettings", "cachedContent"):
            body[key] = value
        elif key == "mediaResolution":
            body.setdefault("generationConfig", {})[key] = value
        elif key in ADVISORY_PARAMS:
            warnings.append(f"{key} dropped: Gemini has no equivalent")
        elif key in REFUSED_PARAMS:
            raise TranslationError(key, f"{key}: {REFUSED_PARAMS[key]} can't be returned through the sidecar's "
                                        "translation to Gemini")
        else:
            raise TranslationError(key, f"{key} has no equivalent in Gemini generateContent")
    if tools:
        body["tools"] = tools
    tc = req.tool_choice
    if tc is not None and req.tools:
        fcc: dict[str, Any] = {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY", "tool": "ANY"}[tc.mode]}
        if tc.mode == "tool":
            if not tc.name:
                raise TranslationError("tool_choice", "a forced tool choice needs a tool name")
            fcc["allowedFunctionNames"] = [tc.name]
        body["toolConfig"] = {"functionCallingConfig": fcc}
    if req.parallel_tool_calls is False:
        warnings.append("parallel_tool_calls=false dropped: Gemini has no switch for parallel calls")
    if req.user:
        warnings.append("user dropped: Gemini has no end-user field")
    if req.metadata:
        warnings.append("metadata dropped: Gemini has no metadata field")
    return body, warnings


def _build_generation(req: ChatRequest, model: str, warnings: list[str]) -> dict[str, Any]:
    gc: dict[str, Any] = {}
    for key, value in (("temperature", req.temperature), ("topP", req.top_p), ("topK", req.top_k),
                       ("candidateCount", req.n), ("maxOutputTokens", req.max_tokens),
                       ("presencePenalty", req.presence_penalty), ("frequencyPenalty", req.frequency_penalty),
                       ("seed", req.seed)):
        if value is not None:
            gc[key] = value
    if req.stop:
        gc["stopSequences"] = req.stop[:MAX_STOP]
        if len(req.stop) > MAX_STOP:
            warnings.append(f"stop truncated to its first {MAX_STOP} sequences (Gemini's limit)")
    rf = req.response_format
    if rf is not None and rf.type != "text":
        gc["responseMimeType"] = "application/json"
        if rf.type == "json_schema" and rf.schema is not None:
            gc["responseJsonSchema"] = rf.schema
    r = req.reasoning
    if r is not None:
        tc: dict[str, Any] = {}
        budget = r.budget_tokens if r.budget_tokens is not None else EFFORT_BUDGET.get(r.effort or "")
        if r.effort and r.budget_tokens is None and budget is None:
            warnings.append(f"reasoning effort {r.effort!r} unknown; Gemini's default thinking applies")
        if budget == 0 and "-pro" in model.lower():
            budget = 128
            warnings.append(f"{model} cannot turn thinking off; the minimum budget (128) was used")
        if budget is not None:
            tc["thinkingBudget"] = budget
        if r.include_thoughts is not None:
            if r.include_thoughts and budget == 0:
                warnings.append("include_thoughts dropped: thinking is off")
            else:
                tc["includeThoughts"] = r.include_thoughts
        if tc:
            gc["thinkingConfig"] = tc
    return gc


def _build_contents(req: ChatRequest, model: str, warnings: list[str]) -> list[dict[str, Any]]:
    names = {p.id: p.name for m in req.messages for p in m.parts if type(p) is ToolCallPart}
    contents: list[dict[str, Any]] = []
    for m in req.messages:
        if m.role == "assistant":
            role = "model"
            parts = gemini_model_parts(m.parts, warnings, other=lambda p: _out_part(p, names, warnings))
        else:
            role = "user"
            parts = []
            for p in m.parts:
                if type(p) is ToolResultPart:
                    parts.extend(_result(p, names))
                elif type(p) is ThinkingPart:
                    continue  # reasoning in a user turn: no meaning to Gemini
                else:
                    d = _out_part(p, names, warnings)
                    if d is not None:
                        parts.append(d)
        if not parts:
            continue  # Gemini rejects empty parts (pitfall 7); merging below keeps roles alternating
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    if not contents:
        raise TranslationError("messages", "Gemini needs at least one non-empty message")
    if not model.startswith(_NO_SIGNATURES):
        _placeholder_signatures(contents)
    return contents


def _placeholder_signatures(contents: list[dict[str, Any]]) -> None:
    """Gemini 3 validates the signature of the first functionCall of every model step in the current turn
    (since the last user message that is not only function responses)."""
    for c in reversed(contents):
        parts = c["parts"]
        if c["role"] == "user":
            if any("text" in p for p in parts) or not any("functionResponse" in p for p in parts):
                return
            continue
        if any("thoughtSignature" in p for p in parts):
            continue
        for p in parts:
            if "functionCall" in p:
                p["thoughtSignature"] = SKIP_SIGNATURE
                break


def _out_part(p: Any, names: dict[str, str], warnings: list[str]) -> dict[str, Any] | None:
    kind = type(p)
    if kind is TextPart:
        return {"text": p.text} if p.text else None
    if kind is ImagePart or kind is DocumentPart:
        if kind is ImagePart and p.detail in ("low", "high") and _DETAIL_WARNING not in warnings:
            warnings.append(_DETAIL_WARNING)
        return _media_out(p)
    if kind is ToolCallPart:
        return {"functionCall": {"id": p.id, "name": p.name, "args": args_object(p.arguments)}}
    if kind is ToolResultPart:  # misplaced in an assistant turn: still the function response
        return _result(p, names)[0]
    return None


def _result(p: ToolResultPart, names: dict[str, str]) -> list[dict[str, Any]]:
    name = p.name or names.get(p.tool_call_id)
    if not name:
        raise TranslationError("tool_call_id", f"tool result {p.tool_call_id!r} answers no tool call in the "
                                               "conversation; Gemini needs the function's name")
    text = "\n".join(c.text for c in p.content if type(c) is TextPart)
    value: Any = None
    if text.lstrip().startswith("{"):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            value = None
    if type(value) is not dict:
        value = {"error" if p.is_error else "result": text}
    elif p.is_error and "error" not in value:
        value = {"error": value}
    out: list[dict[str, Any]] = [{"functionResponse": {"id": p.tool_call_id, "name": name, "response": value}}]
    out.extend(_media_out(c) for c in p.content if type(c) is ImagePart)
    return out
