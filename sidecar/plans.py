"""How one attempt talks to its provider: the request to send and how the answer comes back.

Same format in and out is a pass-through plan (the client's bytes, only model and auth changed); anything else
is a translation plan through the IR. Both are pure decisions apart from fetching image URLs for providers that
only take inline images.
"""

from __future__ import annotations

import logging

import aiohttp
import orjson
from aiohttp import web

from adapters import passthrough
from adapters.ir import TranslationError
from sidecar import formats
from sidecar.exchange import Exchange
from sidecar.media import inline_image_urls
from sidecar.routing import Target
from sidecar.transforms import ModelRename, PassThroughStream, TranslatedStream, passthrough_body, translated_body
from sidecar.upstream import UpstreamPlan, chat_url

log = logging.getLogger("sidecar.proxy")


def passthrough_plan(request: web.Request, ex: Exchange, target: Target) -> UpstreamPlan:
    """Same format in and out: the client's bytes go up, the provider's bytes come back."""
    provider, fmt_module = target.provider, formats.module(ex.fmt)
    strip_usage = False
    if ex.fmt == "gemini":
        body = ex.body  # the model lives in the URL; the body goes as it came
    elif (ex.fmt == "openai_chat" and ex.record.stream and provider.stream_usage
          and not passthrough.wants_stream_usage(ex.parsed)):
        body, strip_usage = passthrough.with_stream_usage(ex.parsed, target.model), True
    else:
        body = passthrough.rewrite_model(ex.body, ex.parsed, target.model)
    api_version = "v1" if request.path.startswith("/v1/") else "v1beta"
    sse = not (ex.fmt == "gemini" and request.query.get("alt") != "sse")
    # The client sees the name it asked for (provider/model or an alias), not the provider's own.
    requested = ex.record.requested_model
    make_rename = (lambda: ModelRename(requested)) if requested != target.model else (lambda: None)
    return UpstreamPlan(
        url=chat_url(provider, ex.fmt, target.model, stream=ex.record.stream, api_version=api_version),
        params={k: v for k, v in request.query.items() if k != "key"} if ex.fmt == "gemini" else None,
        body=body,
        upstream_fmt=ex.fmt,
        body_transform=lambda data: passthrough_body(fmt_module, data, make_rename()),
        stream_transform=lambda: PassThroughStream(fmt_module, sse=sse, strip_usage=strip_usage,
                                                   rename=make_rename()),
    )

async def translation_plan(request: web.Request, ex: Exchange, target: Target,
                           session: aiohttp.ClientSession) -> UpstreamPlan:
    """Different formats: client request → IR → provider request; provider answer → IR → client format."""
    provider = target.provider
    upstream_fmt = formats.UPSTREAM_FORMAT[provider.adapter]
    if ex.fmt == "openai_responses" and provider.adapter == "openai" and not provider.responses_api:
        upstream_fmt = "openai_chat"
    client_codec, upstream_codec = formats.codec(ex.fmt), formats.codec(upstream_fmt)
    if ex.ir is None:
        try:
            ex.ir = client_codec.parse_request(
                ex.parsed, model=ex.record.requested_model if ex.fmt == "gemini" else None,
                stream=ex.record.stream,
            )
        except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
            # The codecs check the shapes they know; a value of a type nobody expected is still the
            # request's fault, so it is a 400 naming the format, never a 500.
            if isinstance(exc, TranslationError):
                raise
            raise TranslationError("", f"the request is not a valid {ex.fmt} request: a field has a value "
                                       f"of the wrong type ({type(exc).__name__})") from None
    if not upstream_codec.ACCEPTS_IMAGE_URLS and not ex.images_inlined:
        await inline_image_urls(ex.ir, session)
        ex.images_inlined = True
    try:
        body_obj, warnings = upstream_codec.build_request(ex.ir, target.model)
        if upstream_fmt == "openai_chat" and not provider.stream_usage:
            body_obj.pop("stream_options", None)  # a compat server that rejects the field it doesn't know
        body_bytes = orjson.dumps(body_obj)
    except TranslationError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, orjson.JSONEncodeError) as exc:
        log.warning("translating %s to %s failed on an unexpected value: %r", ex.fmt, upstream_fmt, exc)
        raise TranslationError("", f"the request cannot be translated for {provider.id}: a field has an "
                                   f"out-of-range or unexpected value ({type(exc).__name__})") from None
    client_model = ex.record.requested_model
    ir = ex.ir
    include_usage = ir.include_usage
    stream = ex.record.stream
    # The Responses codec echoes request settings (tools, instructions) in its response objects.
    echo = {"request": ir} if ex.fmt == "openai_responses" else {}
    return UpstreamPlan(
        url=chat_url(provider, upstream_fmt, target.model, stream=stream),
        params={"alt": "sse"} if upstream_fmt == "gemini" and stream else None,
        body=body_bytes,
        upstream_fmt=upstream_fmt,
        warnings=warnings,
        content_type="text/event-stream" if stream else "application/json",
        body_transform=lambda data: translated_body(upstream_codec, client_codec, data, client_model, **echo)[:2],
        stream_transform=lambda: TranslatedStream(
            upstream_codec.StreamDecoder(),
            client_codec.StreamEncoder(client_model, include_usage=include_usage, **echo),
        ),
    )
