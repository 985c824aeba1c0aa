"""Value-level shapes between Gemini and the IR: schemas, media blobs, and field spellings.

**Schemas** — JSON Schema ⇄ Gemini's OpenAPI-subset Schema (formats.md §2.4, pitfall 13).

Gemini's ``parameters`` / ``responseSchema`` take an OpenAPI 3.0 subset: upper-case ``type`` names,
``nullable`` instead of a ``"null"`` type, no ``$ref``/``$defs``, no ``additionalProperties``, string-only
enums and a few ``format`` values per type. Anything else is answered with a 400 ("Unknown name
\\"$defs\\""), so `clean_schema` rewrites standard JSON Schema into that subset: it inlines local
references, folds ``null`` alternatives into ``nullable`` and drops what the subset cannot say. Dropping a
keyword only ever *loosens* the schema (the model may produce more than the client's validator accepts),
never rejects valid arguments, which is the safe direction for tool parameters.

`openapi_to_json_schema` is the reverse, for Gemini clients whose ``responseSchema`` / ``parameters`` go to
other providers: lower-case types and ``nullable`` → ``[type, "null"]``.

**Media** — ``inlineData`` / ``fileData`` ⇄ `ImagePart` / `DocumentPart` (`media_in`, `media_out`).
Gemini fetches only ``gs://`` and Files-API URIs; any other URL must have been inlined by the proxy.

**Spellings** — Google's JSON parser takes camelCase and snake_case for every field, and python-genai
really sends a mix, so inbound fields are read with `field` (either spelling).

Everything here runs once per request (never per stream chunk) and builds new dicts; inputs are not
modified.
"""

from __future__ import annotations

from typing import Any

from .ir import DocumentPart, ImagePart, TranslationError

# Keywords of the OpenAPI subset that carry over unchanged (after their values are cleaned).
_KEEP = frozenset({
    "title", "description", "nullable", "maxItems", "minItems", "minProperties", "maxProperties",
    "minLength", "maxLength", "pattern", "minimum", "maximum", "default", "example", "propertyOrdering",
})
# Allowed ``format`` values per type; Gemini rejects the rest ("only 'enum' and 'date-time' are supported").
_FORMATS = {
    "STRING": frozenset({"enum", "date-time"}),
    "NUMBER": frozenset({"float", "double"}),
    "INTEGER": frozenset({"int32", "int64"}),
}
_TYPES = {"string", "number", "integer", "boolean", "array", "object", "null"}
_MAX_DEPTH = 48
"""Nesting limit while inlining ``$ref``s: a recursive schema cannot be inlined; at this depth its
recursive branch becomes a plain OBJECT (loosened, documented)."""

# snake_case spellings the python-genai SDK may leave in a schema it forwards (`any_of`, `max_items`...).
_SNAKE = {
    "any_of": "anyOf", "max_items": "maxItems", "min_items": "minItems", "max_length": "maxLength",
    "min_length": "minLength", "max_properties": "maxProperties", "min_properties": "minProperties",
    "property_ordering": "propertyOrdering", "additional_properties": "additionalProperties",
    "one_of": "oneOf", "all_of": "allOf",
}


def _norm_keys(schema: dict[str, Any]) -> dict[str, Any]:
    """camelCase keywords (never touches property *names*, which live one level further down)."""
    if not any(k in _SNAKE for k in schema):
        return schema
    return {_SNAKE.get(k, k): v for k, v in schema.items()}


# ---------------------------------------------------------------------------------------------- JSON → Gemini


def clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A standard JSON Schema rewritten into Gemini's OpenAPI subset (see module docstring)."""
    if not isinstance(schema, dict):
        return {}
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            defs.update(schema[key])
    return _clean(schema, defs, 0, ())


def _resolve(ref: str, defs: dict[str, Any], root_stack: tuple[str, ...]) -> tuple[dict[str, Any] | None, str]:
    name = ref.rsplit("/", 1)[-1]
    if not ref.startswith("#/") or name in root_stack:
        return None, name
    target = defs.get(name)
    return (target if isinstance(target, dict) else None), name


def _clean(schema: Any, defs: dict[str, Any], depth: int, stack: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return {"type": "OBJECT"} if depth > _MAX_DEPTH else {}
    schema = _norm_keys(schema)
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target, name = _resolve(ref, defs, stack)
        if target is None:  # recursive or unresolvable: the subset cannot say it; keep a loose object
            out = {"type": "OBJECT"}
            if isinstance(schema.get("description"), str):
                out["description"] = schema["description"]
            return out
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return _clean(merged, defs, depth + 1, stack + (name,))

    # Alternatives: null members become ``nullable``; one remaining member is merged in.
    nullable = schema.get("nullable") is True
    alts = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(alts, list):
        rest = [a for a in alts if not (isinstance(a, dict) and a.get("type") == "null")]
        nullable = nullable or len(rest) < len(alts)
        base = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
        if len(rest) == 1 and isinstance(rest[0], dict):
            out = _clean({**rest[0], **base}, defs, depth + 1, stack)
        else:
            out = _clean(base, defs, depth + 1, stack) if base else {}
            out["anyOf"] = [_clean(a, defs, depth + 1, stack) for a in rest]
        if nullable:
            out["nullable"] = True
        return out
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and all_of:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in all_of:
            part = _deref(part, defs)
            if not isinstance(part, dict):
                continue
            props = {**(merged.get("properties") or {}), **(part.get("properties") or {})}
            req = list(dict.fromkeys([*(merged.get("required") or []), *(part.get("required") or [])]))
            merged = {**part, **merged}
            if props:
                merged["properties"] = props
            if req:
                merged["required"] = req
        return _clean(merged, defs, depth + 1, stack)

    out: dict[str, Any] = {}
    typ = schema.get("type")
    if isinstance(typ, list):
        names = [t for t in typ if isinstance(t, str)]
        nullable = nullable or "null" in names
        names = [t for t in names if t != "null"]
        if len(names) > 1:  # ["string", "number"] → anyOf of single-type schemas
            base = {k: v for k, v in schema.items() if k != "type"}
            out = {"anyOf": [_clean({**base, "type": t}, defs, depth + 1, stack) for t in names]}
            if nullable:
                out["nullable"] = True
            return out
        typ = names[0] if names else None
    if isinstance(typ, str) and typ.lower() in _TYPES and typ.lower() != "null":
        typ = typ.upper()
    elif "properties" in schema:
        typ = "OBJECT"
    elif "items" in schema:
        typ = "ARRAY"
    else:
        typ = None
    if typ:
        out["type"] = typ

    for key, value in schema.items():
        if key in _KEEP:
            out[key] = value
    if nullable or schema.get("type") == "null":
        out["nullable"] = True
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS.get(typ or "", ()):
        out["format"] = fmt
    enum = schema.get("enum")
    if "const" in schema and enum is None:
        enum = [schema["const"]]
    if isinstance(enum, list) and enum and all(isinstance(e, str) for e in enum):
        out["enum"] = enum  # Gemini enums are strings only; non-string enums are dropped (loosened)
        if typ is None:
            out["type"] = "STRING"
    props = schema.get("properties")
    if isinstance(props, dict):
        cleaned = {str(k): _clean(v, defs, depth + 1, stack) for k, v in props.items()}
        if cleaned:  # an OBJECT with empty properties is rejected ("should be non-empty")
            out["properties"] = cleaned
        req = schema.get("required")
        if isinstance(req, list):
            req = [r for r in req if r in cleaned]
            if req:
                out["required"] = req
        if isinstance(out.get("propertyOrdering"), list):
            out["propertyOrdering"] = [p for p in out["propertyOrdering"] if p in cleaned]
    items = schema.get("items")
    if isinstance(items, dict):
        out["items"] = _clean(items, defs, depth + 1, stack)
    elif isinstance(items, list) and items:  # tuple form: the subset has one item schema
        out["items"] = _clean(items[0], defs, depth + 1, stack)
    return out


def _deref(schema: Any, defs: dict[str, Any]) -> Any:
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        target, _ = _resolve(schema["$ref"], defs, ())
        if target is not None:
            return {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def tool_parameters(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """``functionDeclarations[].parameters``: the cleaned schema, always an OBJECT (a non-object schema is
    wrapped as the single required property ``value``), or None when it declares no properties at all
    (Gemini rejects an OBJECT with empty ``properties``; a declaration without parameters is valid)."""
    cleaned = clean_schema(schema or {})
    if cleaned.get("type") not in (None, "OBJECT") or "anyOf" in cleaned:
        cleaned = {"type": "OBJECT", "properties": {"value": cleaned}, "required": ["value"]}
    if not cleaned.get("properties"):
        return None
    cleaned["type"] = "OBJECT"
    return cleaned


# ---------------------------------------------------------------------------------------------- Gemini → JSON


def openapi_to_json_schema(schema: Any) -> Any:
    """A Gemini OpenAPI-subset schema as standard JSON Schema: lower-case types, ``nullable`` →
    ``[type, "null"]`` (or an added ``{"type": "null"}`` alternative), ``propertyOrdering`` and
    ``example`` dropped. Accepts the SDK's snake_case keywords."""
    if not isinstance(schema, dict):
        return schema
    schema = _norm_keys(schema)
    out: dict[str, Any] = {}
    nullable = schema.get("nullable") is True
    for key, value in schema.items():
        if key in ("nullable", "propertyOrdering", "example"):
            continue
        if key == "type" and isinstance(value, str):
            t = value.lower()
            if t != "type_unspecified":
                out["type"] = t
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {k: openapi_to_json_schema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = openapi_to_json_schema(value)
        elif key in ("anyOf", "oneOf", "allOf") and isinstance(value, list):
            out[key] = [openapi_to_json_schema(v) for v in value]
        elif key == "format" and value == "enum":
            continue  # OpenAPI's enum marker; JSON Schema says it with `enum` alone
        else:
            out[key] = value
    if nullable:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        elif "anyOf" in out:
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
    return out


# ---------------------------------------------------------------------------------------------- spellings

_snake_cache: dict[str, str] = {}


def _snake(key: str) -> str:
    s = _snake_cache.get(key)
    if s is None:
        s = "".join("_" + c.lower() if c.isupper() else c for c in key)
        _snake_cache[key] = s
    return s


def camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def field(d: Any, key: str) -> Any:
    """``d[key]`` under its camelCase or snake_case spelling (None when ``d`` is not a dict)."""
    if type(d) is not dict:
        return None
    v = d.get(key)
    return d.get(_snake(key)) if v is None else v


# ---------------------------------------------------------------------------------------------- media


_DETAIL = {"MEDIA_RESOLUTION_LOW": "low", "MEDIA_RESOLUTION_HIGH": "high", "MEDIA_RESOLUTION_ULTRA_HIGH": "high"}


def media_in(p: Any) -> ImagePart | DocumentPart | None:
    """inlineData / fileData → image or document; other media (audio, video) has no IR form. A part's
    ``mediaResolution`` (Gemini 3) becomes the image's ``detail``."""
    blob = field(p, "inlineData")
    fd = field(p, "fileData")
    if type(blob) is dict:
        data = field(blob, "data") or ""
        if "-" in data or "_" in data:  # the SDK sends URL-safe base64; the IR (and Anthropic) want standard
            data = data.replace("-", "+").replace("_", "/")
        out = _typed(str(field(blob, "mimeType") or ""), data=data, filename=field(blob, "displayName"))
    elif type(fd) is dict:
        out = _typed(str(field(fd, "mimeType") or ""), url=str(field(fd, "fileUri") or ""),
                     filename=field(fd, "displayName"))
    else:
        return None  # code-execution history, metadata-only parts: nothing the IR can carry
    if type(out) is ImagePart:
        level = field(field(p, "mediaResolution"), "level")
        out.detail = _DETAIL.get(str(level).upper()) if level else None
    return out


def _typed(mime: str, *, data: str | None = None, url: str | None = None,
           filename: Any = None) -> ImagePart | DocumentPart:
    if mime.startswith("image/"):
        return ImagePart(url=url, data=data, media_type=mime)
    if mime == "application/pdf" or mime.startswith("text/"):
        return DocumentPart(url=url, data=data, media_type=mime, filename=filename if isinstance(filename, str) else None)
    raise TranslationError("contents", f"{mime or 'untyped'} media cannot be translated for this provider "
                                       "(images, PDF and text files can)")


def media_out(p: ImagePart | DocumentPart) -> dict[str, Any]:
    """An image or document as an ``inlineData`` / ``fileData`` part; raises for URLs Gemini cannot fetch."""
    is_image = type(p) is ImagePart
    if p.data:
        mime = p.media_type or (_sniff(p.data) if is_image else "application/pdf")
        return {"inlineData": {"mimeType": mime, "data": p.data}}
    url = p.url or ""
    if url.startswith("data:") and ";base64," in url:
        head, _, data = url.partition(";base64,")
        return {"inlineData": {"mimeType": head[5:] or p.media_type or "image/jpeg", "data": data}}
    if url.startswith("gs://") or "generativelanguage.googleapis.com/" in url:
        mime = p.media_type or (_guess(url) if is_image else "application/pdf")
        return {"fileData": {"mimeType": mime, "fileUri": url}}
    param = "image_url" if is_image else "file"
    raise TranslationError(param, f"Gemini cannot fetch {url[:200]!r}: the {'image' if is_image else 'file'} "
                                  "must be fetched and sent inline (base64)")


def _sniff(b64: str) -> str:
    for prefix, mime in (("iVBOR", "image/png"), ("/9j/", "image/jpeg"), ("R0lG", "image/gif"), ("UklGR", "image/webp")):
        if b64.startswith(prefix):
            return mime
    return "image/jpeg"


def _guess(url: str) -> str:
    ext = url.rsplit(".", 1)[-1].lower()
    return {"png": "image/png", "gif": "image/gif", "webp": "image/webp", "heic": "image/heic"}.get(ext, "image/jpeg")
