"""The request pipeline: inbound request → route → key → upstream → relay → record.

Same format in and out is a pass-through: the body goes upstream as the client sent it (only the model
name and auth change), and the answer comes back byte for byte — streams chunk by chunk as they
arrive — while usage is read on the way. Failover to the next target is allowed only until the first
byte of an answer has reached the client; after that a failure ends the stream with an error event in
the client's own format.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from adapters.ir import TranslationError
from sidecar import estimate, formats, limits, logsink
from sidecar.budgets import BudgetBook, reservation
from sidecar.config import Config
from sidecar.events import EventBus
from sidecar.exchange import Exchange, Failure
from sidecar.header_log import header_record
from sidecar.health import HealthBook
from sidecar.keys import KeyCache, KeyStoreError
from sidecar.pricing import PriceBook
from sidecar.records import Attempt, RequestRecord
from sidecar.redact import scrub, scrub_text
from sidecar.plans import passthrough_plan, translation_plan
from sidecar.relay import relay_body, relay_stream
from sidecar.routing import RouteError, Router, Target
from sidecar.store import RequestStore
from sidecar.strategy import order_targets
from sidecar.upstream import forward_headers, response_headers
from sidecar.util import new_request_id, utc_now_iso

log = logging.getLogger("sidecar.proxy")

FAILOVER_STATUSES = frozenset({401, 403, 408, 409, 429})
"""Statuses below 500 that say "this provider, not this request"; every 5xx (incl. 529) fails over too."""


def should_fail_over(status: int) -> bool:
    return status >= 500 or status in FAILOVER_STATUSES


class Proxy:
    def __init__(
        self,
        config: Config,
        *,
        keys: KeyCache,
        bus: EventBus,
        store: RequestStore | None,
        prices: PriceBook,
        session: aiohttp.ClientSession,
        health: HealthBook | None = None,
    ) -> None:
        self.config = config
        self.router = Router(config)
        self.keys = keys
        self.bus = bus
        self.store = store
        self.prices = prices
        self.session = session
        self.health = health or HealthBook()
        self.paused = False
        """The emergency brake (`sidecar pause`): lives in this process only, so a restart resumes."""
        self.budgets = BudgetBook(config.budgets, store)
        self._counters: dict[str, estimate.CountingStream] = {}
        """Per request id: the stream relayed to the client, counted in case usage must be estimated."""

    async def handle(
        self, request: web.Request, fmt: str, *, path_model: str | None = None, path_stream: bool = False
    ) -> web.StreamResponse:
        """Serve one generation request arriving in format ``fmt``; always answers in that format."""
        record = RequestRecord(
            id=new_request_id(), ts=utc_now_iso(), inbound=fmt, requested_model=path_model or "",
            client=client_label(request), path=request.path,
        )
        ex = Exchange(record, time.perf_counter(), fmt, request_headers=request.headers)
        try:
            return await self._serve(request, ex, path_model, path_stream)
        except asyncio.CancelledError:
            record.error = record.error or "client disconnected"
            raise
        except Exception as exc:  # the last line of defence: the client gets its own format, never a traceback
            log.exception("request %s failed inside the sidecar", record.id)
            record.error = f"internal sidecar error ({type(exc).__name__})"
            if ex.prepared is not None:
                return ex.prepared
            return self._error(ex, 500, "internal sidecar error; the sidecar's log has the details")
        finally:
            self._finish(ex)

    async def _serve(
        self, request: web.Request, ex: Exchange, path_model: str | None, path_stream: bool
    ) -> web.StreamResponse:
        rec = ex.record
        try:
            ex.body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._error(ex, 413, limits.body_too_large(self.config.limits))
        try:
            parsed = orjson.loads(ex.body)
        except orjson.JSONDecodeError as exc:
            return self._error(ex, 400, f"request body is not valid JSON: {exc}")
        if not isinstance(parsed, dict):
            return self._error(ex, 400, "request body must be a JSON object")
        ex.parsed = parsed
        model = path_model if path_model is not None else parsed.get("model")
        if not isinstance(model, str) or not model:
            return self._error(ex, 400, "the request must name a model (the `model` field)")
        if not model.isprintable():
            return self._error(ex, 400, "the model name contains control characters")
        rec.requested_model = model
        rec.stream = path_stream if ex.fmt == "gemini" else parsed.get("stream") is True
        if (too_many := limits.check_counts(ex.fmt, parsed, self.config.limits)) is not None:
            return self._error(ex, 413, too_many)
        self.bus.publish("request_started", {
            "id": rec.id, "ts": rec.ts, "inbound": rec.inbound, "requested_model": model,
            "stream": rec.stream, "client": rec.client, "path": rec.path,
        })
        if self.paused:
            return self._refuse(ex, 503, "the sidecar is paused: `sidecar resume` to continue")
        try:
            targets = self.router.resolve(model)
        except RouteError as exc:
            return self._error(ex, exc.status, exc.message)
        alias = self.router.aliases.get(model)
        if alias is not None:
            targets = order_targets(targets, alias, health=self.health, prices=self.prices,
                                    input_bytes=len(ex.body), max_tokens=_max_tokens(parsed))
        failure: Failure | None = None
        skipped: list[str] = []
        if self.config.budgets.any:
            targets, blocked = await self._budget_gate(ex, targets, skipped)
            if blocked is not None:
                return blocked
        for i, target in enumerate(targets):
            why = self.health.unavailable(target.provider.id)
            if why is not None:
                skipped.append(why)  # cooling down or breaker open: later requests respect it
                continue
            if failure is not None and (prev := rec.attempts[-1]):  # the last target failed, this one takes over
                log.warning("%s %s → %s: request %s (%s)", prev.provider, prev.status or "failed", target.provider.id,
                            rec.id, prev.error, extra={"notice": "failover", "provider": prev.provider})
            # "Last" means no later target may still be tried, so its error is relayed as the provider sent it.
            is_last = i + 1 == len(targets) or not any(self.health.may_try(t.provider.id) for t in targets[i + 1:])
            try:
                outcome = await self._attempt(request, ex, target, is_last=is_last)
            except asyncio.CancelledError:
                self.health.release_probe(target.provider.id)  # a probe abandoned by its client must not lock it
                raise
            if not isinstance(outcome, Failure):
                return outcome
            failure = outcome
            if not outcome.retryable:
                break
        if failure is None:
            wait = self.health.retry_after([t.provider.id for t in targets])
            response = self._error(ex, 503, "no target is available right now: " + "; ".join(skipped))
            if wait is not None:
                response.headers["Retry-After"] = str(max(1, round(wait)))
            return response
        if len(rec.attempts) > 1:
            chain = "; ".join(f"{a.provider}/{a.model}: {a.error}" for a in rec.attempts)
            return self._error(ex, failure.status, f"all {len(rec.attempts)} targets failed: {chain}")
        return self._error(ex, failure.status, failure.message)

    async def _attempt(
        self, request: web.Request, ex: Exchange, target: Target, *, is_last: bool
    ) -> web.StreamResponse | Failure:
        provider, rec = target.provider, ex.record
        attempt = Attempt(provider.id, target.model)
        rec.attempts.append(attempt)
        rec.provider, rec.model = provider.id, target.model
        t0 = time.perf_counter()

        def fail(status: int, message: str, *, upstream: int | None = None, provider_fault: bool = True,
                 headers: Any = None, body: bytes = b"") -> Failure:
            """This target produced no answer. ``status`` is for the client; ``upstream`` is what the provider
            itself said (None when it said nothing: refused connection, timeout, no key). Only provider faults
            count towards its cool-down and breaker; a missing key or an untranslatable request do not."""
            attempt.status = upstream
            attempt.error = message
            attempt.duration_ms = round((time.perf_counter() - t0) * 1000, 2)
            if provider_fault:
                log.warning("%s", scrub_text(message, ex.secret),
                            extra={"notice": "upstream_error", "provider": provider.id})
                self.health.failure(provider.id, status=upstream, duration_ms=attempt.duration_ms,
                                    headers=headers, body=body)
            else:
                self.health.release_probe(provider.id)
            self._publish_attempt(ex, attempt)
            return Failure(status, message)

        key: str | None = None
        if provider.needs_key:
            try:
                key = self.keys.fresh(provider.id)
                if key is None:
                    key = await self.keys.get(provider.id)
            except KeyStoreError as exc:
                log.warning("%s", exc, extra={"notice": "keyring", "provider": provider.id})
                return fail(503, str(exc), provider_fault=False)
            if not key:
                log.warning("no key for provider %s: requests to it fail until `sidecar keys set %s`", provider.id,
                            provider.id, extra={"notice": "missing_key", "provider": provider.id})
                return fail(401, provider_fault=False, message=f"no key for provider '{provider.id}': store one with "
                                 f"`printf %s \"$KEY\" | sidecar keys set {provider.id}`")
        ex.secret = key.encode() if key else None
        try:
            if formats.can_pass_through(ex.fmt, provider):
                plan = passthrough_plan(request, ex, target)
            else:
                plan = await translation_plan(request, ex, target, self.session)
        except TranslationError as exc:
            # Another target may be able to express it; if none can, the client gets this 400.
            return fail(exc.status, f"{exc.message} (parameter: {exc.param})" if exc.param else exc.message,
                        provider_fault=False)
        headers = forward_headers(request.headers, provider, key, same_format=plan.upstream_fmt == ex.fmt)
        if plan.warnings:
            ex.warnings.extend(plan.warnings)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeouts.first_byte
        try:
            async with asyncio.timeout_at(deadline):
                resp = await self.session.post(plan.url, data=plan.body, headers=headers, params=plan.params)
        except TimeoutError:
            return fail(504, f"{provider.id} sent no response within {self.config.timeouts.first_byte:g}s")
        except (aiohttp.ClientError, OSError) as exc:
            return fail(502, f"cannot reach {provider.id} at {provider.base_url}: {_describe(exc)}")
        ex.upstream_headers = resp.headers  # a reference; turned into a log entry only when bodies are stored
        try:
            if resp.status >= 400:
                return await self._upstream_error(ex, resp, attempt, t0, deadline, is_last, fail, plan.upstream_fmt)
            if rec.stream:
                counter = self._counters[rec.id] = estimate.CountingStream(plan.stream_transform(), ex.fmt)
                outcome = await relay_stream(self, request, ex, resp, deadline, counter,  # type: ignore[arg-type]
                                             content_type=plan.content_type)
            else:
                outcome = await relay_body(self, request, ex, resp, deadline, plan.body_transform,
                                           content_type=plan.content_type)
            if isinstance(outcome, Failure):
                return fail(outcome.status, outcome.message, upstream=resp.status)
            attempt.status = resp.status
            attempt.error = rec.error
            attempt.duration_ms = round((time.perf_counter() - t0) * 1000, 2)
            if rec.error and rec.error != "client disconnected":  # the stream broke after it had started
                log.warning("%s: %s", provider.id, scrub_text(rec.error, ex.secret),
                            extra={"notice": "upstream_error", "provider": provider.id})
                self.health.failure(provider.id, status=None, duration_ms=attempt.duration_ms)
            elif rec.error:
                self.health.release_probe(provider.id)
            else:
                self.health.success(provider.id, target.model, duration_ms=attempt.duration_ms, ttft_ms=rec.ttft_ms,
                                    headers=resp.headers, status=resp.status)
            self._publish_attempt(ex, attempt)
            return outcome
        finally:
            resp.release()

    async def _upstream_error(
        self, ex: Exchange, resp: aiohttp.ClientResponse, attempt: Attempt, t0: float,
        deadline: float, is_last: bool, fail: Any, upstream_fmt: str,
    ) -> web.StreamResponse | Failure:
        provider = attempt.provider
        try:
            async with asyncio.timeout_at(deadline):
                data = await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError):
            data = b""
        data = self.scrub(ex, data)
        message = formats.module(upstream_fmt).error_message(data) or f"HTTP {resp.status}"
        message = f"{provider} answered {resp.status}: {message}"
        if resp.status in (401, 403):
            self.keys.invalidate(provider)  # the key may have been replaced since it was cached
            log.warning("%s rejected its key (HTTP %s); check it with `sidecar keys list`", provider, resp.status)
        if should_fail_over(resp.status) and not is_last and resp.headers.get("x-should-retry") != "false":
            return fail(resp.status, message, upstream=resp.status, headers=resp.headers, body=data)
        duration_ms = round((time.perf_counter() - t0) * 1000, 2)
        if should_fail_over(resp.status):
            log.warning("%s", message, extra={"notice": "upstream_error", "provider": provider})
            self.health.failure(provider, status=resp.status, duration_ms=duration_ms, headers=resp.headers, body=data)
        else:
            self.health.alive(provider, headers=resp.headers, status=resp.status)  # the request's own fault
        if upstream_fmt != ex.fmt:  # translated: the provider's error, re-said in the client's own shape
            status = formats.translate_error_status(resp.status, upstream_fmt, ex.fmt)
            attempt.status, attempt.error = resp.status, message
            attempt.duration_ms = round((time.perf_counter() - t0) * 1000, 2)
            self._publish_attempt(ex, attempt)
            return self._error(ex, status, message, upstream_headers=resp.headers)
        # Same format in and out: relay the provider's own error faithfully, status and body.
        ex.record.status = resp.status
        ex.record.error = message
        ex.response_body = data
        attempt.status, attempt.error = resp.status, message
        attempt.duration_ms = round((time.perf_counter() - t0) * 1000, 2)
        self._publish_attempt(ex, attempt)
        headers = response_headers(resp.headers)
        headers.update(self.sidecar_headers(ex))
        return web.Response(status=resp.status, body=data, headers=headers,
                            content_type=resp.content_type or "application/json")

    def scrub(self, ex: Exchange, data: bytes) -> bytes:
        """Remove the request's key from text going back to the client or into the store.

        Some providers echo request headers in error bodies; the key must not travel back that way.
        """
        return scrub(data, ex.secret)

    def sidecar_headers(self, ex: Exchange) -> dict[str, str]:
        rec = ex.record
        headers = {"x-sidecar-request-id": rec.id}
        if rec.provider:
            headers["x-sidecar-served-by"] = f"{rec.provider}/{rec.model}"
        if ex.warnings:
            headers["x-sidecar-warning"] = "; ".join(ex.warnings)[:2000]
        return headers

    def _error(self, ex: Exchange, status: int, message: str,
               upstream_headers: Any = None) -> web.Response:
        rec = ex.record
        rec.status = status
        rec.error = rec.error or message
        body = formats.module(ex.fmt).error_body(status, message)
        ex.response_body = body
        headers = response_headers(upstream_headers) if upstream_headers is not None else {}
        headers.pop("Content-Type", None)
        headers.update(self.sidecar_headers(ex))
        return web.Response(status=status, body=body, content_type="application/json", headers=headers)

    def _refuse(self, ex: Exchange, status: int, message: str, retry_after: int | None = None) -> web.Response:
        """A refusal by the sidecar itself (paused, over budget): no upstream was contacted, and SDKs are
        told not to retry at once (``x-should-retry: false``, honoured by the OpenAI and Anthropic SDKs)."""
        response = self._error(ex, status, message)
        response.headers["x-should-retry"] = "false"
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    async def _budget_gate(self, ex: Exchange, targets: list[Target],
                           skipped: list[str]) -> tuple[list[Target], web.Response | None]:
        """Apply ``[budgets]`` before any upstream is contacted (see sidecar/budgets.py for the rules).

        Block mode drops targets whose provider budget is spent (failover to the others), refuses with a 429
        when none is left or a global/client budget is spent, and otherwise holds a reservation until
        `_finish`. Warn mode lets everything through with an ``x-sidecar-warning``."""
        rec, book = ex.record, self.budgets
        if self.config.budgets.mode == "warn":
            over = await book.warnings([t.provider.id for t in targets[:1]], rec.client)
            if over is not None:
                ex.warnings.append(over.message())
                log.warning("request %s over budget (warn mode): %s", rec.id, over.message())
            return targets, None
        verdict = None
        allowed = []
        for t in targets:
            v = book.exhausted([t.provider.id], rec.client)
            if v is not None and v.scope.startswith("provider "):
                skipped.append(v.message())
                verdict = verdict or v
            else:
                allowed.append(t)
        if allowed:
            first = allowed[0]
            reserve = reservation(self.prices, first.provider.id, first.model,
                                  estimate.request_chars(ex.parsed), _max_tokens(ex.parsed))
            verdict = await book.admit(rec.id, [first.provider.id], rec.client, reserve)
        if verdict is None:
            return allowed, None
        log.warning("request %s blocked: %s", rec.id, verdict.message())
        return [], self._refuse(ex, 429, verdict.message(), verdict.retry_after())

    def _estimate(self, ex: Exchange) -> None:
        """Usage for an answer that reached the client without a (complete) usage report; see estimate.py."""
        rec = ex.record
        counter = self._counters.pop(rec.id, None)
        if ex.prepared is None or rec.provider is None or rec.status is None or rec.status >= 400:
            return  # no answer reached the client: nothing was generated for it
        cut = rec.stream and rec.error is not None
        if ex.usage is not None and not cut:
            return
        if rec.stream:
            partial = ex.usage or (counter.usage if counter is not None else None)
            out_chars = counter.relayed_chars() if counter is not None else 0
        else:
            partial, out_chars = ex.usage, estimate.body_output_chars(ex.fmt, ex.response_body)
        ex.usage = estimate.estimate(partial, estimate.request_chars(ex.parsed), out_chars)
        rec.usage_source = "estimated"

    def _publish_attempt(self, ex: Exchange, attempt: Attempt) -> None:
        attempt.error = scrub_text(attempt.error, ex.secret)
        self.bus.publish("attempt", {"request_id": ex.record.id, "provider": attempt.provider, "model": attempt.model,
                                     "status": attempt.status, "error": attempt.error,
                                     "duration_ms": attempt.duration_ms})

    def _finish(self, ex: Exchange) -> None:
        """Price, publish and store the record. Cheap and non-blocking: the store only enqueues."""
        rec = ex.record
        rec.latency_ms = ex.elapsed_ms()
        self._estimate(ex)
        if ex.usage is not None:
            u = ex.usage
            rec.input_tokens, rec.output_tokens = u.input, u.output
            rec.cache_read_tokens, rec.cache_write_tokens, rec.reasoning_tokens = u.cache_read, u.cache_write, u.reasoning
            rec.usage_source = rec.usage_source or "reported"
            if rec.provider and rec.model:
                rec.cost_usd, rec.cost_breakdown = self.prices.cost_breakdown(rec.provider, rec.model, u)
        rec.error = scrub_text(rec.error, ex.secret)
        for attempt in rec.attempts:
            attempt.error = scrub_text(attempt.error, ex.secret)
        if rec.status is None and ex.prepared is None:
            rec.status = 499  # the client went away before any answer: nginx's "client closed request"
        self.budgets.finished(rec.id, rec.ts, rec.provider, rec.client, rec.cost_usd)
        data = rec.to_dict()
        self.bus.publish("request_finished", data)
        if self.store is not None:
            store_bodies = self.config.store_bodies
            self.store.add(
                rec, data=data,
                request_body=self.scrub(ex, ex.body) if store_bodies and ex.body else None,
                response_body=self.scrub(ex, ex.response_body) if store_bodies and ex.response_body else None,
                headers=partial(header_record, ex.request_headers, ex.upstream_headers, ex.secret)
                if store_bodies else None,
            )
        logsink.request_line(
            "%s %s %s → %s/%s %s %.0fms in=%s out=%s cost=%s%s", (rec.id, rec.inbound, rec.requested_model,
            rec.provider, rec.model, rec.status, rec.latency_ms, rec.input_tokens, rec.output_tokens,
            "?" if rec.cost_usd is None else f"${rec.cost_usd:.6f}", f" error={rec.error}" if rec.error else ""),
        )


def _max_tokens(parsed: dict[str, Any]) -> int | None:
    """The output cap the request asks for, in whichever field its format uses (for cost-based routing)."""
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = parsed.get(key)
        if isinstance(value, int):
            return value
    config = parsed.get("generationConfig") or parsed.get("generation_config")
    if isinstance(config, dict):
        value = config.get("maxOutputTokens") or config.get("max_output_tokens")
        return value if isinstance(value, int) else None
    return None


def client_label(request: web.Request) -> str | None:
    """Who is calling: the name of the client token it presented (authoritative), else an explicit
    ``X-Sidecar-Client`` label, else the SDK's user agent."""
    from sidecar.access import client_of  # sidecar.access sets it; imported here to keep proxy's imports flat

    token_client = client_of(request)
    if token_client:
        return str(token_client)
    label = request.headers.get("x-sidecar-client") or request.headers.get("user-agent")
    return label[:80] if label else None


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:300]
