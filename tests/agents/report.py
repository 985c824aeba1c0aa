"""Summarise what one agent sent through the sidecar, for run_agents.sh.

Reads the tap's JSON-lines log (lines FROM..TO belong to this agent's run), then asks the sidecar's control
API for the record and stored bodies of every request the sidecar answered with an ``x-sidecar-request-id``:

- every HTTP request the agent made (method, path?query, status, served-by), including ones the sidecar
  does not record (model listings, count_tokens, HEAD probes) and outside hosts the tap refused;
- the headers it sent (credentials masked) — the API-family ones in full;
- per recorded request: inbound format, requested model, provider, status, error, attempts;
- per request body: top-level keys, tool count and kinds, system prompt size and notable fields.

and, from the upstream taps' log (lines UFROM..UTO), what the sidecar then sent each fake provider: URL,
forwarded headers and a summary of the translated body.

Usage: python tests/agents/report.py --log TAP.jsonl --from N --to M --sidecar http://127.0.0.1:P
         [--upstream-log UP.jsonl --ufrom N --uto M]
Not a test module.
"""

from __future__ import annotations

import argparse
import json
import urllib.request
from collections import Counter
from typing import Any

NOTABLE_HEADER_PREFIXES = ("anthropic-", "openai-", "x-stainless-", "x-goog-", "x-app", "originator", "session_id",
                           "conversation_id", "chatgpt-", "x-codex", "x-openai", "version", "x-client", "x-gemini")


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:  # loopback only: the sidecar's control API
        return json.loads(r.read())


def clip(text: str, n: int = 300) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= n else text[:n] + f"... ({len(text)} chars)"


def text_len(value: Any) -> int:
    """Characters of text in a string / list of blocks / Gemini content."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(text_len(v) for v in value)
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            return len(value["text"])
        if "parts" in value:
            return text_len(value["parts"])
        if "content" in value:
            return text_len(value["content"])
    return 0


def count_key(obj: Any, key: str) -> int:
    if isinstance(obj, dict):
        return (key in obj) + sum(count_key(v, key) for v in obj.values())
    if isinstance(obj, list):
        return sum(count_key(v, key) for v in obj)
    return 0


def summarise_body(inbound: str, body: dict[str, Any]) -> list[str]:
    out = [f"top-level keys: {sorted(body)}"]
    tools = body.get("tools") or []
    if inbound == "gemini":
        decls = [d for t in tools if isinstance(t, dict) for d in t.get("functionDeclarations", [])]
        other = [k for t in tools if isinstance(t, dict) for k in t if k != "functionDeclarations"]
        out.append(f"tools: {len(tools)} tool objects, {len(decls)} functionDeclarations"
                   + (f", other tool kinds: {other}" if other else ""))
        if decls:
            out.append(f"  names: {[d.get('name') for d in decls][:40]}")
            schema_keys = Counter(k for d in decls for k in d if k in ("parameters", "parametersJsonSchema",
                                                                     "response", "responseJsonSchema"))
            out.append(f"  schema fields: {dict(schema_keys)}")
        sysi = body.get("systemInstruction") or body.get("system_instruction")
        out.append(f"systemInstruction: {text_len(sysi)} chars")
        contents = body.get("contents") or []
        out.append(f"contents: {len(contents)} turns, roles {[c.get('role') for c in contents if isinstance(c, dict)]}")
        gc = body.get("generationConfig") or {}
        out.append(f"generationConfig: {json.dumps(gc)[:400]}")
        for k in ("toolConfig", "safetySettings", "cachedContent", "labels"):
            if k in body:
                out.append(f"{k}: {clip(json.dumps(body[k]), 200)}")
        return out
    kinds = Counter((t.get("type") or "untyped (client function)") if isinstance(t, dict) else "?" for t in tools)
    names = [t.get("name") or (t.get("function") or {}).get("name") or t.get("type") for t in tools
             if isinstance(t, dict)]
    out.append(f"tools: {len(tools)} {dict(kinds)}")
    if names:
        out.append(f"  names: {names[:60]}")
    if inbound == "anthropic":
        out.append(f"system: {text_len(body.get('system'))} chars"
                   f" ({len(body['system']) if isinstance(body.get('system'), list) else 'str'} blocks)")
        msgs = body.get("messages") or []
        out.append(f"messages: {len(msgs)}, roles {[m.get('role') for m in msgs]}, "
                   f"content block types {sorted({b.get('type') for m in msgs if isinstance(m.get('content'), list) for b in m['content']})}")
        out.append(f"cache_control markers: {count_key(body, 'cache_control')}")
        for k in ("model", "max_tokens", "stream", "thinking", "temperature", "metadata", "tool_choice",
                  "context_management", "output_config", "betas", "container", "mcp_servers", "effort"):
            if k in body:
                out.append(f"{k}: {clip(json.dumps(body[k]), 200)}")
    elif inbound == "openai_responses":
        out.append(f"instructions: {text_len(body.get('instructions'))} chars")
        inp = body.get("input")
        if isinstance(inp, list):
            out.append(f"input: {len(inp)} items, types {[i.get('type', 'message') + ('/' + i['role'] if i.get('role') else '') for i in inp if isinstance(i, dict)]}")
        else:
            out.append(f"input: {type(inp).__name__}")
        for k in ("model", "stream", "store", "include", "reasoning", "text", "tool_choice", "parallel_tool_calls",
                  "prompt_cache_key", "client_metadata", "metadata", "service_tier", "max_output_tokens",
                  "previous_response_id", "truncation", "user"):
            if k in body:
                out.append(f"{k}: {clip(json.dumps(body[k]), 200)}")
        hosted = [t for t in tools if isinstance(t, dict) and t.get("type") not in ("function", None)]
        for t in hosted:
            out.append(f"  non-function tool: {clip(json.dumps(t), 200)}")
    else:  # openai_chat
        msgs = body.get("messages") or []
        out.append(f"messages: {len(msgs)}, roles {[m.get('role') for m in msgs]}")
        sys_len = sum(text_len(m.get("content")) for m in msgs if m.get("role") in ("system", "developer"))
        out.append(f"system/developer text: {sys_len} chars")
        for k in ("model", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature",
                  "tool_choice", "reasoning_effort", "metadata", "store"):
            if k in body:
                out.append(f"{k}: {clip(json.dumps(body[k]), 200)}")
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--log", required=True)
    p.add_argument("--from", dest="start", type=int, required=True, help="first log line (0-based)")
    p.add_argument("--to", dest="end", type=int, required=True, help="one past the last log line")
    p.add_argument("--sidecar", required=True)
    p.add_argument("--bodies", type=int, default=3, help="distinct request shapes to summarise in full")
    p.add_argument("--upstream-log")
    p.add_argument("--ufrom", type=int, default=0)
    p.add_argument("--uto", type=int, default=0)
    args = p.parse_args()
    with open(args.log, encoding="utf-8") as f:
        entries = [json.loads(line) for line in f.readlines()[args.start:args.end]]

    print(f"  HTTP requests the agent made ({len(entries)}):")
    for e in entries:
        qs = "?" + "&".join(f"{k}={v}" for k, v in e.get("query", {}).items()) if e.get("query") else ""
        if e.get("blocked"):
            print(f"    BLOCKED outside host {e.get('host')} ({e['method']})")
            continue
        line = f"    {e['method']} {e['path']}{qs} -> {e.get('status')}"
        if e.get("x-sidecar-served-by"):
            line += f" served-by {e['x-sidecar-served-by']}"
        if e.get("x-sidecar-warning"):
            line += f" WARNING {e['x-sidecar-warning']!r}"
        if e.get("stream_error"):
            line += f" stream_error={e['stream_error']}"
        print(line)
        if e.get("response_head"):
            print(f"      response: {clip(e['response_head'], 1200)}")

    gen = [e for e in entries if not e.get("blocked") and e["method"] == "POST"]
    if gen:
        print("  headers of the first POST (credentials masked):")
        for k, v in gen[0]["headers"].items():
            print(f"    {k}: {clip(v, 200)}")
        seen: dict[str, set[str]] = {}
        for e in gen:
            for k, v in e["headers"].items():
                if k.lower().startswith(NOTABLE_HEADER_PREFIXES) or k.lower() == "user-agent":
                    seen.setdefault(k.lower(), set()).add(v)
        print("  API-family headers across all POSTs (distinct values):")
        for k, vs in sorted(seen.items()):
            print(f"    {k}: {sorted(vs)}")

    ids = [e["x-sidecar-request-id"] for e in entries if e.get("x-sidecar-request-id")]
    print(f"  sidecar records ({len(ids)}):")
    shapes: set[tuple] = set()
    for rid in ids:
        try:
            rec = get(f"{args.sidecar}/_sidecar/requests/{rid}")
        except Exception as exc:  # noqa: BLE001 - a report line, not a failure
            print(f"    {rid}: control API error {exc}")
            continue
        print(f"    {rid} inbound={rec['inbound']} path={rec.get('path')} requested={rec['requested_model']} "
              f"-> {rec.get('provider')}/{rec.get('model')} stream={rec['stream']} status={rec['status']} "
              f"in={rec.get('input_tokens')} out={rec.get('output_tokens')} error={rec.get('error')!r}")
        for a in rec.get("attempts") or []:
            if a.get("error"):
                print(f"      attempt {a['provider']}/{a['model']} status={a['status']} error={a['error']!r}")
        if rec.get("status") and rec["status"] >= 400 and rec.get("response_body"):
            print(f"      response_body: {clip(rec['response_body'], 1500)}")
        try:
            body = json.loads(rec.get("request_body") or "null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            if rec.get("bodies_truncated"):
                print("      (request body truncated by the store's body cap)")
            continue
        shape = (rec["inbound"], rec["requested_model"], len(body.get("tools") or []), bool(body.get("stream")),
                 rec["status"])
        if shape in shapes or len(shapes) >= args.bodies:
            print(f"      body: same shape as above ({len(body.get('tools') or [])} tools, {len(json.dumps(body))} bytes)")
            continue
        shapes.add(shape)
        print(f"      body ({len(json.dumps(body))} bytes):")
        for line in summarise_body(rec["inbound"], body):
            print(f"        {line}")

    if args.upstream_log:
        upstream(args)


def upstream_format(provider: str, path: str) -> str:
    if provider == "openai":
        return "openai_responses" if path.endswith("/responses") else "openai_chat"
    return provider


def upstream(args: argparse.Namespace) -> None:
    with open(args.upstream_log, encoding="utf-8") as f:
        entries = [json.loads(line) for line in f.readlines()[args.ufrom:args.uto]]
    print(f"  what the sidecar sent upstream ({len(entries)} requests):")
    shapes: set[tuple] = set()
    for e in entries:
        qs = "?" + "&".join(f"{k}={v}" for k, v in e.get("query", {}).items()) if e.get("query") else ""
        print(f"    -> fake {e['tap']}: {e['method']} {e['path']}{qs} -> {e.get('status')}")
        if e.get("response_head"):
            print(f"      response: {clip(e['response_head'], 1200)}")
        auth = [k for k in e["headers"] if k.lower() in ("authorization", "x-api-key", "x-goog-api-key")]
        rest = {k: clip(v, 80) for k, v in e["headers"].items()
                if k.lower() not in ("authorization", "x-api-key", "x-goog-api-key", "host", "content-length")}
        print(f"      headers: auth via {auth}; forwarded: {json.dumps(rest)}")
        try:
            body = json.loads(e.get("body") or "null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            continue
        fmt = upstream_format(e["tap"], e["path"])
        shape = (e["tap"], e["path"], len(body.get("tools") or []), bool(body.get("stream")))
        if shape in shapes:
            print(f"      body: same shape as above ({len(body.get('tools') or [])} tools)")
            continue
        shapes.add(shape)
        print(f"      translated body ({fmt}, {len(e['body'])} bytes):")
        for line in summarise_body(fmt, body):
            print(f"        {line}")


if __name__ == "__main__":
    main()
