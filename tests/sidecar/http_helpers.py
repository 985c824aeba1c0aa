"""Small HTTP helpers the proxy-level tests share: a reply snapshot, one call, an SSE splitter and the error-shape
checks per client format (the body shape each SDK expects, never a traceback)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def request_id(self) -> str:
        return self.headers["x-sidecar-request-id"]

    @property
    def served_by(self) -> str | None:
        return self.headers.get("x-sidecar-served-by")


async def call(http: aiohttp.ClientSession, method: str, url: str, *, body: Any = None,
               data: bytes | None = None, headers: dict[str, str] | None = None) -> Reply:
    if body is not None:
        data = orjson.dumps(body)
    async with http.request(method, url, data=data, headers=headers or {}) as resp:
        return Reply(resp.status, resp.headers, await resp.read())


def sse_events(raw: bytes) -> list[tuple[str | None, bytes]]:
    """(event name, data) per server-sent event; a deliberately small parser, independent of adapters/sse.py."""
    out = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = None, []
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data.append(line[5:].lstrip())
        if data:
            out.append((name, b"\n".join(data)))
    return out


def assert_openai_error(reply: Reply, status: int) -> dict:
    assert reply.status == status, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    err = reply.json["error"]
    assert set(err) == {"message", "type", "param", "code"} and isinstance(err["message"], str) and err["type"]
    assert "Traceback" not in err["message"]
    return err


def assert_anthropic_error(reply: Reply, status: int) -> dict:
    assert reply.status == status, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    data = reply.json
    assert data["type"] == "error" and isinstance(data["error"]["message"], str) and data["error"]["type"]
    assert "Traceback" not in data["error"]["message"]
    return data["error"]


def assert_gemini_error(reply: Reply, status: int) -> dict:
    assert reply.status == status, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    err = reply.json["error"]
    assert err["code"] == status and isinstance(err["message"], str) and err["status"].isupper()
    assert "Traceback" not in err["message"]
    return err
