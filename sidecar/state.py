"""What the running app holds, under one typed aiohttp AppKey."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web

from sidecar.config import Config
from sidecar.events import EventBus
from sidecar.keys import KeyCache
from sidecar.store import RequestStore
from sidecar.util import utc_now_iso


@dataclass(slots=True)
class SidecarState:
    config: Config
    keys: KeyCache
    bus: EventBus
    store: RequestStore | None
    listen_url: str = ""
    started_at: str = field(default_factory=utc_now_iso)
    started_monotonic: float = field(default_factory=time.monotonic)
    proxy: object | None = None
    """The `Proxy`, created once the event loop runs (it owns the upstream session)."""
    catalog: object | None = None


STATE = web.AppKey("sidecar_state", SidecarState)
