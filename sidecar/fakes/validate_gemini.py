"""What the fake Gemini refuses: the 400 INVALID_ARGUMENT answers of the real generateContent API.

`check_generate(body, model)` raises `Invalid` for the first broken rule; the fake answers
``{"error":{"code":400,"message","status":"INVALID_ARGUMENT","details":[BadRequest fieldViolations]}}``.
Two message styles, as Google's front end produces them: JSON-parse errors ("Invalid JSON payload
received. Unknown name ...", for fields the proto does not have, in camelCase or snake_case) and
request-validation errors ("* GenerateContentRequest.<path>: <reason>\\n"). Sources are cited per
rule: formats.md §2.4 and pitfall numbers.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from .checks import Invalid, both_cases, is_int, is_num

PROTO = "type.googleapis.com/google.ai.generativelanguage.v1beta."  # proto type names in parse errors

REQUEST_FIELDS = both_cases(  # GenerateContentRequest (REST reference; google-genai's _to_mldev converters)
    "model", "contents", "tools", "toolConfig", "safetySettings", "systemInstruction", "generationConfig",
    "cachedContent", "labels", "serviceTier", "store")
CONFIG_FIELDS = both_cases(  # GenerationConfig
    "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema", "_responseJsonSchema",
    "responseModalities", "candidateCount", "maxOutputTokens", "temperature", "topP", "topK", "seed",
    "presencePenalty", "frequencyPenalty", "responseLogprobs", "logprobs", "enableEnhancedCivicAnswers",
    "speechConfig", "thinkingConfig", "imageConfig", "mediaResolution", "audioTimestamp", "routingConfig",
    "modelSelectionConfig", "modelConfig", "audioTranscriptionConfig", "enableAffectiveDialog")
PART_FIELDS = both_cases(
    "text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode", "codeExecutionResult",
    "thought", "thoughtSignature", "videoMetadata", "partMetadata", "mediaResolution", "toolCall", "toolResponse")
PART_DATA = ("text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
             "codeExecutionResult", "toolCall", "toolResponse")
DECL_FIELDS = both_cases("name", "description", "parameters", "parametersJsonSchema", "response",
                         "responseJsonSchema", "behavior")
# The OpenAPI-subset Schema (REST reference "Schema"); no additionalProperties / $ref / $defs /
# $schema / const / oneOf ... (pitfall 13; google-genai itself refuses additionalProperties outside Vertex).
SCHEMA_FIELDS = both_cases(
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties", "required",
    "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf", "propertyOrdering",
    "default", "items", "minimum", "maximum")
SCHEMA_TYPES = ("TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL")
FN_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$")
MODES = ("MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED")


def g(d: dict[str, Any], name: str) -> Any:
    """Field `name` (camelCase) in either spelling."""
    return d.get(name, d.get(re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)))


def unknown(name: str, at: str | None) -> Invalid:
    where = f" at '{at}'" if at else ""
    return Invalid(f'Invalid JSON payload received. Unknown name "{name}"{where}: Cannot find field.',
                   param=f"{at}.{name}" if at else name)


def bad_value(at: str, proto: str, value: Any) -> Invalid:
    return Invalid(f"Invalid JSON payload received. Invalid value at '{at}' ({proto}), {value!r}", param=at)


def violation(path: str, reason: str) -> Invalid:
    return Invalid(f"* GenerateContentRequest.{path}: {reason}\n", param=path)


def _fields(d: dict[str, Any], allowed: frozenset[str], at: str | None) -> None:
    for key in d:
        if key not in allowed:
            raise unknown(key, at)


def check_generate(body: dict[str, Any], model: str) -> None:
    """Validate a models/{model}:generateContent body (formats.md §2.4)."""
    _fields(body, REQUEST_FIELDS, None)
    contents = g(body, "contents")
    if not contents:
        raise violation("contents", "contents is not specified")
    if not isinstance(contents, list):
        raise Invalid("Invalid JSON payload received. Unknown name \"contents\": Proto field is not repeating, "
                      "cannot start list.", param="contents")
    for i, c in enumerate(contents):
        _content(f"contents[{i}]", c, system=False)
    _turn_order(contents)
    _signatures(contents, model)
    sysi = g(body, "systemInstruction")
    if sysi is not None:
        if not isinstance(sysi, dict):  # a Content, not a bare string
            raise bad_value("system_instruction", PROTO + "Content", sysi)
        _content("system_instruction", sysi, system=True)
    _tools(body)
    _config(body, model)


def _content(at: str, c: Any, *, system: bool) -> None:
    if not isinstance(c, dict):
        raise bad_value(at, PROTO + "Content", c)
    _fields(c, both_cases("role", "parts"), at)
    role = c.get("role")
    if not system and role not in (None, "", "user", "model"):  # formats.md §2.4: user | model
        raise Invalid("Please use a valid role: user, model.", param=f"{at}.role")
    parts = c.get("parts")
    if not parts:  # pitfall 7
        raise violation(f"{at}.parts", "contents.parts must not be empty.")
    if not isinstance(parts, list):
        raise Invalid(f"Invalid JSON payload received. Unknown name \"parts\" at '{at}': Proto field is not "
                      "repeating, cannot start list.", param=f"{at}.parts")
    for j, p in enumerate(parts):
        _part(f"{at}.parts[{j}]", p)


def _part(at: str, p: Any) -> None:
    if not isinstance(p, dict):
        raise bad_value(at, PROTO + "Part", p)
    _fields(p, PART_FIELDS, at)  # e.g. OpenAI's {"type": "text", ...} parts
    # Part.data is a oneof: exactly one set; "" is the proto default, i.e. unset (widely reported).
    set_ = [k for k in PART_DATA if g(p, k) not in (None, "")]
    if not set_:
        raise violation(f"{at}.data", "required oneof field 'data' must have one initialized field")
    if len(set_) > 1:
        raise Invalid(f"Invalid JSON payload received. Oneof field 'data' is already set. Cannot set '{set_[1]}'",
                      param=at)
    if not isinstance(g(p, "text") or "", str):
        raise bad_value(f"{at}.text", "TYPE_STRING", g(p, "text"))
    if (blob := g(p, "inlineData")) is not None:
        _inline(f"{at}.inline_data", blob)
    if (fd := g(p, "fileData")) is not None:
        if not isinstance(fd, dict) or not g(fd, "fileUri"):
            raise violation(f"{at}.file_data.file_uri", "File URI cannot be empty.")
    for key, sub in (("functionCall", "args"), ("functionResponse", "response")):
        f = g(p, key)
        if f is None:
            continue
        path = f"{at}.{'function_call' if key == 'functionCall' else 'function_response'}"
        if not isinstance(f, dict) or not f.get("name"):  # functionResponse must name its function
            raise violation(f"{path}.name", "Name cannot be empty.")
        if f.get(sub) is not None and not isinstance(f[sub], dict):  # pitfall 19: a Struct, not a string
            raise bad_value(f"{path}.{sub}", "type.googleapis.com/google.protobuf.Struct", f[sub])


def _inline(at: str, blob: Any) -> None:
    """inlineData needs mimeType and base64 data (formats.md §2.4)."""
    if not isinstance(blob, dict) or not g(blob, "mimeType"):
        raise violation(f"{at}.mime_type", "Mime type cannot be empty.")
    data = blob.get("data")
    if not isinstance(data, str) or not data:
        raise violation(f"{at}.data", "Data cannot be empty.")
    try:
        base64.b64decode(data.replace("-", "+").replace("_", "/") + "=" * (-len(data) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise bad_value(f"{at}.data", "TYPE_BYTES", f"Base64 decoding failed for {data[:40]!r}") from None


def _kinds(c: dict[str, Any]) -> tuple[int, int]:
    parts = [p for p in c.get("parts") or [] if isinstance(p, dict)]
    return (sum(g(p, "functionCall") is not None for p in parts),
            sum(g(p, "functionResponse") is not None for p in parts))


def _turn_order(contents: list[dict[str, Any]]) -> None:
    """Function-calling turn order (formats.md §2.4 "Function responses go in a user-role content";
    real INVALID_ARGUMENT texts widely reported by langchain-google / litellm users)."""
    for i, c in enumerate(contents):
        calls, responses = _kinds(c)
        prev = contents[i - 1] if i else None
        if calls and (prev is None or (prev.get("role") or "user") != "user"):
            raise Invalid("Please ensure that function call turn comes immediately after a user turn or after a "
                          "function response turn.", param=f"contents[{i}]")
        if responses:
            prev_calls = _kinds(prev)[0] if prev is not None and prev.get("role") == "model" else 0
            if not prev_calls:
                raise Invalid("Please ensure that function response turn comes immediately after a function call "
                              "turn.", param=f"contents[{i}]")
            if responses != prev_calls:
                raise Invalid("Please ensure that the number of function response parts is equal to the number of "
                              "function call parts of the function call turn.", param=f"contents[{i}]")


def _signatures(contents: list[dict[str, Any]], model: str) -> None:
    """Gemini 3: in the current turn (since the last user text), the first functionCall part of each
    model step carries its thoughtSignature (pitfall 15; ai.google.dev thought-signatures docs)."""
    if not model.startswith("gemini-3"):
        return
    start = max((i for i, c in enumerate(contents) if (c.get("role") or "user") == "user" and _kinds(c)[1] == 0),
                default=0)
    for i in range(start, len(contents)):
        parts = [p for p in contents[i].get("parts") or [] if isinstance(p, dict)]
        first = next((p for p in parts if g(p, "functionCall") is not None), None)
        if first is not None and not g(first, "thoughtSignature"):
            raise Invalid("Function call is missing a thought_signature in functionCall parts. This is required for "
                          "tools to work correctly, and missing thought_signature may lead to degraded model "
                          f"performance. Additional data, function call `default_api:{g(first, 'functionCall')['name']}"
                          f"` , position {i + 1}. Please refer to "
                          "https://ai.google.dev/gemini-api/docs/thought-signatures for more details.",
                          param=f"contents[{i}]")


def _tools(body: dict[str, Any]) -> None:
    tools = g(body, "tools")
    for i, t in enumerate(tools if isinstance(tools, list) else []):
        at = f"tools[{i}]"
        if not isinstance(t, dict):
            raise bad_value(at, PROTO + "Tool", t)
        if "type" in t or "function" in t:  # an OpenAI-style tool
            raise unknown("type" if "type" in t else "function", at)
        for j, d in enumerate(g(t, "functionDeclarations") or []):
            _declaration(f"{at}.function_declarations[{j}]", d)
    fcc = g(g(body, "toolConfig") or {}, "functionCallingConfig") or {}
    mode = fcc.get("mode")
    if mode is not None and mode not in MODES:
        raise bad_value("tool_config.function_calling_config.mode",
                        PROTO + "FunctionCallingConfig.Mode", mode)
    # REST reference: allowedFunctionNames "should only be set when the Mode is ANY or VALIDATED"
    if g(fcc, "allowedFunctionNames") and mode not in ("ANY", "VALIDATED"):
        raise violation("tool_config.function_calling_config.allowed_function_names",
                        "allowed_function_names is only allowed when mode is ANY or VALIDATED.")


def _declaration(at: str, d: Any) -> None:
    if not isinstance(d, dict):
        raise bad_value(at, PROTO + "FunctionDeclaration", d)
    _fields(d, DECL_FIELDS, at)  # e.g. OpenAI's "strict"
    name = d.get("name")
    if not isinstance(name, str) or not FN_NAME_RE.match(name):
        raise violation(f"{at}.name", "Invalid function name. Must start with a letter or an underscore. Must be "
                        "alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:), or dashes (-), with a "
                        "maximum length of 64.")
    params, pjs = g(d, "parameters"), g(d, "parametersJsonSchema")
    if params is not None and pjs is not None:  # REST reference: mutually exclusive
        raise violation(f"{at}.parameters", "parameters and parameters_json_schema are mutually exclusive.")
    if params is not None:
        _schema(f"{at}.parameters", params)
        if str(params.get("type", "")).upper() != "OBJECT":  # pitfall 13: an OBJECT schema
            raise violation(f"{at}.parameters.type", "must be OBJECT.")


def _schema(at: str, s: Any) -> None:
    """The OpenAPI-subset Schema used by `parameters` and `responseSchema` (pitfall 13)."""
    if not isinstance(s, dict):
        raise bad_value(at, PROTO + "Schema", s)
    _fields(s, SCHEMA_FIELDS, at)
    t = s.get("type")
    if isinstance(t, list):  # JSON Schema's ["string", "null"]
        raise Invalid(f"Invalid JSON payload received. Unknown name \"type\" at '{at}': Proto field is not "
                      "repeating, cannot start list.", param=f"{at}.type")
    if t is not None and (not isinstance(t, str) or t.upper() not in SCHEMA_TYPES):
        raise bad_value(f"{at}.type", PROTO + "Type", t)
    for k, v in enumerate(s.get("enum") or []):
        if not isinstance(v, str):  # repeated string
            raise bad_value(f"{at}.enum[{k}]", "TYPE_STRING", v)
    props = s.get("properties")
    if props is not None and not isinstance(props, dict):
        raise bad_value(f"{at}.properties", "map", props)
    for k, (name, sub) in enumerate((props or {}).items()):
        _schema(f"{at}.properties[{k}].value", sub)
    if s.get("items") is not None:
        _schema(f"{at}.items", s["items"])
    for k, sub in enumerate(g(s, "anyOf") or []):
        _schema(f"{at}.any_of[{k}]", sub)


def _config(body: dict[str, Any], model: str) -> None:
    gc = g(body, "generationConfig")
    if gc is None:
        return
    if not isinstance(gc, dict):
        raise bad_value("generation_config", PROTO + "GenerationConfig", gc)
    _fields(gc, CONFIG_FIELDS, "generation_config")
    stops = g(gc, "stopSequences")
    if isinstance(stops, list) and len(stops) > 5:  # formats.md §2.4: up to 5
        raise violation("generation_config.stop_sequences", "the number of stop sequences must be at most 5.")
    temp = gc.get("temperature")
    if temp is not None and (not is_num(temp) or not 0 <= temp <= 2):  # formats.md §2.4: 0-2
        raise violation("generation_config.temperature", "temperature must be in the range [0.0, 2.0].")
    cc = g(gc, "candidateCount")
    if cc is not None and (not is_int(cc) or cc < 1):
        raise violation("generation_config.candidate_count", "candidate_count must be positive.")
    schema = g(gc, "responseSchema")
    if schema is not None:
        _schema("generation_config.response_schema", schema)
    # REST reference: a schema needs a compatible responseMimeType
    if (schema is not None or g(gc, "responseJsonSchema") is not None) and \
            g(gc, "responseMimeType") not in ("application/json", "text/x.enum"):
        raise violation("generation_config.response_mime_type", "response_mime_type must be set to application/json "
                        "or text/x.enum when a response schema is set.")
    tc = g(gc, "thinkingConfig") or {}
    budget = g(tc, "thinkingBudget")
    # Gemini thinking docs: 2.5 Pro cannot switch thinking off; its budget range is 128..32768 (or -1).
    if "2.5-pro" in model and is_int(budget) and budget != -1:
        if budget == 0:
            raise violation("generation_config.thinking_config.thinking_budget",
                            "Budget 0 is invalid. This model only works in thinking mode.")
        if not 128 <= budget <= 32768:
            raise violation("generation_config.thinking_config.thinking_budget",
                            f"The thinking budget {budget} is invalid. Please choose a value between 128 and 32768.")
