"""Fetching image URLs for providers that only take inline images (Gemini fetches no arbitrary URLs).

Bounded on every side: a size cap, a total timeout per image, a cap on how many images one request may make
the sidecar fetch, and only http(s) URLs. Fetching happens once per request, before the first attempt that
needs it, and the inlined request is reused by later attempts.
"""

from __future__ import annotations

import asyncio
import base64

import aiohttp

from adapters.ir import ChatRequest, ImagePart, ToolResultPart, TranslationError

MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGES = 32
FETCH_TIMEOUT = aiohttp.ClientTimeout(total=15, sock_connect=5)


def _url_images(req: ChatRequest) -> list[ImagePart]:
    found = []
    for message in req.messages:
        for part in message.parts:
            parts = part.content if isinstance(part, ToolResultPart) else [part]
            for p in parts:
                if isinstance(p, ImagePart) and p.url and not p.data and p.url.startswith(("http://", "https://")):
                    found.append(p)
    return found


async def inline_image_urls(req: ChatRequest, session: aiohttp.ClientSession) -> None:
    """Replace every http(s) image URL in ``req`` by its bytes. Raises `TranslationError` (400) on failure."""
    images = _url_images(req)
    if not images:
        return
    if len(images) > MAX_IMAGES:
        raise TranslationError("image_url", f"{len(images)} image URLs to fetch; the limit is {MAX_IMAGES}")
    await asyncio.gather(*(_fetch(session, image) for image in images))


async def _fetch(session: aiohttp.ClientSession, image: ImagePart) -> None:
    url = image.url or ""
    try:
        async with session.get(url, timeout=FETCH_TIMEOUT) as resp:
            if resp.status != 200:
                raise TranslationError("image_url", f"fetching image {url[:200]} failed: HTTP {resp.status}")
            if (resp.content_length or 0) > MAX_IMAGE_BYTES:
                raise TranslationError("image_url", f"image {url[:200]} is larger than {MAX_IMAGE_BYTES >> 20} MiB")
            data = bytearray()
            async for chunk in resp.content.iter_chunked(256 * 1024):
                data += chunk
                if len(data) > MAX_IMAGE_BYTES:
                    raise TranslationError("image_url", f"image {url[:200]} is larger than {MAX_IMAGE_BYTES >> 20} MiB")
            media_type = resp.content_type if resp.content_type.startswith("image/") else None
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise TranslationError("image_url", f"fetching image {url[:200]} failed: {type(exc).__name__}") from None
    image.data = base64.b64encode(bytes(data)).decode()
    image.media_type = image.media_type or media_type or _sniff(bytes(data[:16]))
    image.url = None


def _sniff(head: bytes) -> str:
    if head.startswith(b"\x89PNG"):
        return "image/png"
    if head.startswith(b"GIF8"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return "image/jpeg"
