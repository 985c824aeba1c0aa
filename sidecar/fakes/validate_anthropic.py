"""What the fake Anthropic refuses: the 400 invalid_request_errors of the real Messages API.

`check_messages(body)` raises `Invalid` for the first broken rule; the fake answers
``{"type":"error","error":{"type":"invalid_request_error","message"},"request_id"}``. Messages copy
the real API's wording (pydantic-style ``path: reason``) as closely as known. Sources are cited per
rule: formats.md §2.3 and pitfall numbers, or the public issue the text comes from.

Not enforced (the real API accepts it today, or the rule is unclear): an assistant first message,
unknown top-level fields other than the OpenAI/Gemini names below (new fields appear often), a
trailing assistant message with unanswered tool_use (it is a prefill).
"""

from __future__ import annotations

import re
from typing import Any

from .checks import Invalid, is_int, is_num

TOOL_ID_RE = re.compile(r"^[a-zA-Z0-9_-]+$")        # pitfall 1
TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
SERVER_TOOL_RE = re.compile(r"^[a-z_]+_\d{8}$")     # web_search_20250305, bash_20250124, ...
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
# Block fields the API knows; anything else is "Extra inputs are not permitted" (anthropics/claude-code
# #4378 "tool_use.text", langchain #31208 "tool_use.index"). Types not listed here are not checked.
BLOCK_FIELDS = {
    "text": {"type", "text", "cache_control", "citations"},
    "image": {"type", "source", "cache_control"},
    "document": {"type", "source", "title", "context", "citations", "cache_control"},
    "tool_use": {"type", "id", "name", "input", "cache_control", "caller"},
    "tool_result": {"type", "tool_use_id", "content", "is_error", "cache_control"},
    "thinking": {"type", "thinking", "signature"},
    "redacted_thinking": {"type", "data"},
}
KNOWN_BLOCKS = (*BLOCK_FIELDS, "search_result", "server_tool_use", "web_search_tool_result",
                "web_fetch_tool_result", "code_execution_tool_result", "bash_code_execution_tool_result",
                "text_editor_code_execution_tool_result", "mcp_tool_use", "mcp_tool_result", "container_upload",
                "tool_reference")
# OpenAI / Gemini parameters leaking into a Messages request: "<name>: Extra inputs are not permitted"
# (amrit110/oli #7 response_format; Aider-AI/aider #4404 reasoning_effort via extra_body).
FOREIGN = ("n", "stop", "frequency_penalty", "presence_penalty", "seed", "response_format", "reasoning_effort",
           "max_completion_tokens", "logprobs", "top_logprobs", "logit_bias", "user", "parallel_tool_calls",
           "stream_options", "tool_config", "generationConfig", "contents", "input", "instructions")
THINKING_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"


def extra(path: str) -> Invalid:
    return Invalid(f"{path}: Extra inputs are not permitted")


def claude_4x(model: str) -> bool:
    """Models that reject temperature + top_p together (pitfall 23): Opus/Sonnet 4 and later, any 4.5+."""
    m = re.search(r"(opus|sonnet|haiku)-(\d{1,2})(?!\d)(?:-(\d)(?!\d))?", model)  # not "sonnet-20241022"
    if not m:
        return False
    major, minor = int(m.group(2)), int(m.group(3) or 0)
    return major >= 5 or (major == 4 and (m.group(1) != "haiku" or minor >= 5))


def check_messages(body: dict[str, Any]) -> None:
    """Validate a POST /v1/messages body (formats.md §2.3)."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise Invalid("model: Field required")
    for key in FOREIGN:
        if key in body:
            raise extra(key)
    mt = body.get("max_tokens")  # formats.md §2.3: required, no default
    if mt is None:
        raise Invalid("max_tokens: Field required")
    if not is_int(mt):
        raise Invalid("max_tokens: Input should be a valid integer")
    if mt < 1:
        raise Invalid("max_tokens: Input should be greater than or equal to 1")
    msgs = body.get("messages")
    if msgs is None:
        raise Invalid("messages: Field required")
    if not isinstance(msgs, list):
        raise Invalid("messages: Input should be a valid list")
    if not msgs:
        raise Invalid("messages: at least one message is required")
    _system(body.get("system"))
    for i, m in enumerate(msgs):
        _message(i, m, last=i == len(msgs) - 1)
    _tool_pairing(msgs)
    _sampling(body)
    _tools(body)
    _thinking(body, msgs)


def _system(system: Any) -> None:
    """Top-level system: a string or text blocks (formats.md §2.3); blocks non-empty (pitfall 6)."""
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise Invalid("system: Input should be a valid string or list of text blocks")
    for j, b in enumerate(system):
        if not isinstance(b, dict) or b.get("type") != "text":
            raise Invalid(f"system.{j}.type: Input should be 'text'")
        _text(f"system.{j}", b, "system")


def _text(path: str, block: dict[str, Any], where: str = "messages") -> None:
    text = block.get("text")
    if not isinstance(text, str):
        raise Invalid(f"{path}.text: " + ("Field required" if text is None else "Input should be a valid string"))
    if not text:  # pitfall 6
        raise Invalid(f"{where}: text content blocks must be non-empty")
    if not text.strip():
        raise Invalid(f"{where}: text content blocks must contain non-whitespace text")


def _message(i: int, m: Any, *, last: bool) -> None:
    p = f"messages.{i}"
    if not isinstance(m, dict):
        raise Invalid(f"{p}: Input should be a valid dictionary")
    role = m.get("role")
    if role == "system":  # formats.md §2.3: no system role inside messages
        raise Invalid('messages: Unexpected role "system". The Messages API accepts a top-level `system` parameter, '
                      'not "system" as an input message role.')
    if role not in ("user", "assistant"):
        raise Invalid(f"{p}.role: Input should be 'user' or 'assistant'")
    for key in m:
        if key not in ("role", "content"):  # e.g. OpenAI's tool_calls / tool_call_id / name
            raise extra(f"{p}.{key}")
    content = m.get("content")
    if content is None:
        raise Invalid(f"{p}.content: Field required")
    if not isinstance(content, (str, list)):
        raise Invalid(f"{p}.content: Input should be a valid string or list of content blocks")
    if not content and not (last and role == "assistant"):
        raise Invalid(f"{p}: all messages must have non-empty content except for the optional final assistant message")
    if last and role == "assistant":  # a prefill may not end in whitespace
        tail = content if isinstance(content, str) else next(
            (b.get("text") for b in reversed(content) if isinstance(b, dict) and b.get("type") == "text"), None)
        if isinstance(tail, str) and tail != tail.rstrip():
            raise Invalid("messages: final assistant content cannot end with trailing whitespace")
    for j, b in enumerate(content if isinstance(content, list) else []):
        _block(f"{p}.content.{j}", b, role)


def _block(q: str, b: Any, role: str) -> None:
    if not isinstance(b, dict):
        raise Invalid(f"{q}: Input should be a valid dictionary")
    t = b.get("type")
    if t is None:
        raise Invalid(f"{q}.type: Field required")
    if t not in KNOWN_BLOCKS and not t.endswith(("_tool_result", "_tool_use")):
        raise Invalid(f"{q}: Input tag '{t}' found using 'type' does not match any of the expected tags: "
                      + ", ".join(f"'{k}'" for k in KNOWN_BLOCKS))
    for key in b:
        if t in BLOCK_FIELDS and key not in BLOCK_FIELDS[t]:
            raise extra(f"{q}.{t}.{key}")
    if t == "text":
        _text(q, b)
    elif t == "image":
        _source(f"{q}.image.source", b.get("source"), {"base64": IMAGE_TYPES, "url": None, "file": None})
    elif t == "document":
        _source(f"{q}.document.source", b.get("source"),
                {"base64": ("application/pdf",), "text": ("text/plain",), "url": None, "content": None, "file": None})
    elif t in ("tool_use", "thinking", "redacted_thinking") and role != "assistant":
        raise Invalid(f"{q}: `{t}` blocks can only be used in `assistant` messages")
    elif t == "tool_result" and role != "user":
        raise Invalid(f"{q}: `tool_result` blocks can only be used in `user` messages")
    if t == "tool_use":
        _tool_id(f"{q}.tool_use.id", b.get("id"))
        if not isinstance(b.get("name"), str):
            raise Invalid(f"{q}.tool_use.name: Field required")
        if not isinstance(b.get("input"), dict):  # pitfall 17: input is an object, never a string
            raise Invalid(f"{q}.tool_use.input: Input should be a valid dictionary")
    elif t == "tool_result":
        _tool_id(f"{q}.tool_result.tool_use_id", b.get("tool_use_id"))
        c = b.get("content")
        if c is not None and not isinstance(c, (str, list)):
            raise Invalid(f"{q}.tool_result.content: Input should be a valid string or list of content blocks")
        for k, sub in enumerate(c if isinstance(c, list) else []):
            kind = sub.get("type") if isinstance(sub, dict) else sub
            if kind not in ("text", "image", "document", "search_result"):
                raise Invalid(f"{q}.tool_result.content.{k}: Input tag '{kind}' found using 'type' does not match any "
                              "of the expected tags: 'text', 'image', 'document', 'search_result'")
            _block(f"{q}.tool_result.content.{k}", sub, role)
    elif t == "thinking":
        for key in ("thinking", "signature"):
            if not isinstance(b.get(key), str):
                raise Invalid(f"{q}.thinking.{key}: Field required")


def _tool_id(path: str, v: Any) -> None:
    if not isinstance(v, str):
        raise Invalid(f"{path}: Field required")
    if not TOOL_ID_RE.match(v):  # pitfall 1
        raise Invalid(f"{path}: String should match pattern '^[a-zA-Z0-9_-]+$'")


def _source(path: str, src: Any, kinds: dict[str, tuple[str, ...] | None]) -> None:
    """Image / document sources (formats.md §2.3; pitfall 18 for image media types)."""
    if not isinstance(src, dict):
        raise Invalid(f"{path}: Field required")
    kind = src.get("type")
    if kind not in kinds:
        raise Invalid(f"{path}: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
                      + ", ".join(f"'{k}'" for k in kinds))
    need = {"base64": ("media_type", "data"), "text": ("media_type", "data"), "url": ("url",),
            "file": ("file_id",), "content": ("content",)}[kind]
    for key in need:
        if src.get(key) is None:
            raise Invalid(f"{path}.{kind}.{key}: Field required")
    allowed = kinds[kind]
    if allowed and src["media_type"] not in allowed:
        raise Invalid(f"{path}.{kind}.media_type: Input should be " + " or ".join(f"'{a}'" for a in allowed))


def _tool_pairing(msgs: list[dict[str, Any]]) -> None:
    """Every tool_use of an assistant turn is answered by tool_result blocks at the START of the next
    user message, and every tool_result answers a tool_use of the message right before it
    (pitfall 5; texts as in Chainlit/chainlit #2662)."""
    prev_ids: list[str] = []
    for i, m in enumerate(msgs):
        blocks = [b for b in m["content"] if isinstance(b, dict)] if isinstance(m["content"], list) else []
        if m["role"] == "user":
            lead = 0
            while lead < len(blocks) and blocks[lead].get("type") == "tool_result":
                lead += 1
            for j, b in enumerate(blocks):
                if b.get("type") == "tool_result" and b["tool_use_id"] not in prev_ids:
                    raise Invalid(f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` "
                                  f"blocks: {b['tool_use_id']}. Each `tool_result` block must have a corresponding "
                                  "`tool_use` block in the previous message.")
            answered = {b["tool_use_id"] for b in blocks[:lead]}
            if lost := [t for t in prev_ids if t not in answered]:
                raise _unanswered(i - 1, lost)
            prev_ids = []
        else:
            if prev_ids:  # assistant right after an assistant tool_use turn
                raise _unanswered(i - 1, prev_ids)
            ids = [b["id"] for b in blocks if b.get("type") == "tool_use"]
            if len(set(ids)) != len(ids):
                raise Invalid(f"messages.{i}: `tool_use` ids must be unique")
            prev_ids = ids
        if i and m["role"] == msgs[i - 1]["role"]:  # pitfall 4 (historic / still on some hosts)
            raise Invalid(f'messages: roles must alternate between "user" and "assistant", but found multiple '
                          f'"{m["role"]}" roles in a row')


def _unanswered(i: int, ids: list[str]) -> Invalid:
    return Invalid(f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                   f"{', '.join(ids)}. Each `tool_use` block must have a corresponding `tool_result` block in the "
                   "next message.")


def _sampling(body: dict[str, Any]) -> None:
    for key, hi in (("temperature", 1), ("top_p", 1)):  # formats.md §2.3: temperature 0-1
        v = body.get(key)
        if v is None:
            continue
        if not is_num(v):
            raise Invalid(f"{key}: Input should be a valid number")
        if v < 0:
            raise Invalid(f"{key}: Input should be greater than or equal to 0")
        if v > hi:
            raise Invalid(f"{key}: Input should be less than or equal to {hi}")
    if body.get("top_k") is not None and (not is_int(body["top_k"]) or body["top_k"] < 0):
        raise Invalid("top_k: Input should be greater than or equal to 0")
    # pitfall 23 (BerriAI/litellm #15097)
    if body.get("temperature") is not None and body.get("top_p") is not None and claude_4x(body["model"]):
        raise Invalid("`temperature` and `top_p` cannot both be specified for this model. Please use only one.")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        raise Invalid("stop_sequences: Input should be a valid list of strings")


def _tools(body: dict[str, Any]) -> None:
    """Custom tools need a name and an input_schema of type object (formats.md §2.3)."""
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise Invalid("tools: Input should be a valid list")
    names: list[str] = []
    for i, t in enumerate(tools or []):
        p = f"tools.{i}"
        if not isinstance(t, dict):
            raise Invalid(f"{p}: Input should be a valid dictionary")
        kind = t.get("type", "custom")
        if kind not in ("custom", "mcp_toolset") and not SERVER_TOOL_RE.match(str(kind)):
            raise Invalid(f"{p}: Input tag '{kind}' found using 'type' does not match any of the expected tags")
        if kind != "custom":
            continue
        name = t.get("name")
        if not isinstance(name, str):
            raise Invalid(f"{p}.custom.name: Field required")
        if not TOOL_NAME_RE.match(name):
            raise Invalid(f"{p}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
        schema = t.get("input_schema")
        if schema is None:
            raise Invalid(f"{p}.custom.input_schema: Field required")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise Invalid(f"{p}.custom.input_schema.type: Input should be 'object'")
        names.append(name)
    if len(set(names)) != len(names):
        raise Invalid("tools: Tool names must be unique.")
    tc = body.get("tool_choice")
    if tc is None:
        return
    if not isinstance(tc, dict):  # OpenAI-style "auto" / "required" strings
        raise Invalid("tool_choice: Input should be a valid dictionary or object to extract fields from")
    kinds = ("auto", "any", "tool", "none")  # formats.md §2.3
    if tc.get("type") not in kinds:
        raise Invalid(f"tool_choice: Input tag '{tc.get('type')}' found using 'type' does not match any of the "
                      "expected tags: 'auto', 'any', 'tool', 'none'")
    if tc["type"] == "tool" and not isinstance(tc.get("name"), str):
        raise Invalid("tool_choice.tool.name: Field required")


def _thinking(body: dict[str, Any], msgs: list[dict[str, Any]]) -> None:
    """Extended thinking (formats.md §2.3, pitfalls 14 and 16)."""
    th = body.get("thinking")
    if th is None:
        return
    if not isinstance(th, dict) or th.get("type") not in ("enabled", "disabled", "adaptive"):
        kind = th.get("type") if isinstance(th, dict) else th
        raise Invalid(f"thinking: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
                      "'enabled', 'disabled', 'adaptive'")
    if th["type"] == "disabled":
        return
    if th["type"] == "enabled":
        budget = th.get("budget_tokens")
        if not is_int(budget):
            raise Invalid("thinking.enabled.budget_tokens: Field required")
        if budget < 1024:
            raise Invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        if body["max_tokens"] <= budget:
            raise Invalid("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
                          f"documentation at {THINKING_DOCS}#max-tokens-and-context-window-size")
    if body.get("temperature") not in (None, 1):
        raise Invalid(f"`temperature` may only be set to 1 when thinking is enabled. Please consult our "
                      f"documentation at {THINKING_DOCS}#feature-compatibility")
    if body.get("top_k") is not None:
        raise Invalid(f"`top_k` cannot be set when thinking is enabled. Please consult our documentation at "
                      f"{THINKING_DOCS}#feature-compatibility")
    if body.get("top_p") is not None and body["top_p"] < 0.95:
        raise Invalid(f"`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled. Please "
                      f"consult our documentation at {THINKING_DOCS}#feature-compatibility")
    tc = body.get("tool_choice")
    if isinstance(tc, dict) and tc.get("type") in ("any", "tool"):  # pitfall 16
        raise Invalid("Thinking may not be enabled when tool_choice forces tool use.")
    # pitfall 14: in a running tool loop (conversation ends with tool results), the assistant turn that
    # made the calls must start with its thinking block.
    last, prev = msgs[-1], msgs[-2] if len(msgs) > 1 else None
    ends_in_results = isinstance(last["content"], list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in last["content"])
    if ends_in_results and prev is not None and isinstance(prev["content"], list) and prev["content"]:
        first = prev["content"][0].get("type") if isinstance(prev["content"][0], dict) else None
        if first not in ("thinking", "redacted_thinking"):
            raise Invalid(f"messages.{len(msgs) - 2}.content.0.type: Expected `thinking` or `redacted_thinking`, but "
                          f"found `{first}`. When `thinking` is enabled, a final `assistant` message must start with a "
                          "thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We "
                          "recommend you include thinking blocks from previous turns. To avoid this requirement, "
                          "disable `thinking`. Please consult our documentation at " + THINKING_DOCS)
