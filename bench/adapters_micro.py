"""Microbenchmarks of the translation layer alone: no sockets, no event loop, one process (plain timeit).

Per request: a client request parsed into the IR and built for each other provider format; a provider's answer
parsed and rendered for each other client format; the pass-through path (model rewrite and usage read).
Per chunk: one streamed upstream event through the decoder and the client's encoder, as the relay does it
(with the key scrubber and the usage estimator's counter in front, like `sidecar/relay.py`).

    .venv/bin/python bench/adapters_micro.py [--repeat 5]

Prints the best of ``--repeat`` runs in microseconds. These figures are the floor of the sidecar's own work
per request and per chunk; `bench/run.py` measures everything around them.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from fake_upstream import anthropic_body, anthropic_stream, openai_body, openai_stream  # noqa: E402

from adapters import passthrough  # noqa: E402
from sidecar import estimate, formats  # noqa: E402
from sidecar.redact import StreamScrubber  # noqa: E402
from sidecar.transforms import PassThroughStream, TranslatedStream  # noqa: E402

MODEL = "bench-model"
MESSAGES = [{"role": "user", "content": "Say hello in one short sentence, please."}]
REQUESTS: dict[str, dict[str, Any]] = {
    "openai_chat": {"model": MODEL, "messages": [{"role": "system", "content": "Be brief."}, *MESSAGES],
                    "max_tokens": 64, "temperature": 0.2},
    "openai_responses": {"model": MODEL, "instructions": "Be brief.", "input": MESSAGES, "max_output_tokens": 64},
    "anthropic": {"model": MODEL, "system": "Be brief.", "messages": MESSAGES, "max_tokens": 64},
    "gemini": {"systemInstruction": {"parts": [{"text": "Be brief."}]},
               "contents": [{"role": "user", "parts": [{"text": MESSAGES[0]["content"]}]}],
               "generationConfig": {"maxOutputTokens": 64}},
}
GEMINI_BODY = {"candidates": [{"content": {"role": "model", "parts": [{"text": "tok " * 10}]}, "finishReason": "STOP",
                               "index": 0}],
               "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 10, "totalTokenCount": 22},
               "modelVersion": MODEL}
RESPONSES = {"openai_chat": openai_body(MODEL, 10), "anthropic": anthropic_body(MODEL, 10), "gemini": GEMINI_BODY}
UPSTREAMS = ("openai_chat", "anthropic", "gemini")
CLIENTS = ("openai_chat", "openai_responses", "anthropic", "gemini")


def gemini_stream(chunks: int) -> list[bytes]:
    def event(obj: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(obj) + b"\r\n\r\n"
    delta = event({"candidates": [{"content": {"role": "model", "parts": [{"text": "tok "}]}, "index": 0}],
                   "modelVersion": MODEL})
    last = event({**GEMINI_BODY, "candidates": [{"content": {"role": "model", "parts": [{"text": "tok "}]},
                                                 "finishReason": "STOP", "index": 0}]})
    return [delta] * (chunks - 1) + [last]


def streams(chunks: int) -> dict[str, list[bytes]]:
    return {"openai_chat": openai_stream(MODEL, chunks), "anthropic": anthropic_stream(MODEL, chunks),
            "gemini": gemini_stream(chunks)}


def best_us(fn: Any, number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def per_request(repeat: int) -> list[tuple[str, str, float, float]]:
    """(client, upstream, request µs, response µs) for every pair; same format = pass-through."""
    rows = []
    for client in CLIENTS:
        parsed = REQUESTS[client]
        body = orjson.dumps(parsed)
        for upstream in UPSTREAMS:
            if client == upstream:
                fmt = formats.module(client)
                answer = orjson.dumps(RESPONSES[upstream])
                req = best_us(lambda: passthrough.rewrite_model(body, orjson.loads(body), "other-model"), 2000, repeat)
                resp = best_us(lambda: fmt.usage_from_response(orjson.loads(answer)), 2000, repeat)
            else:
                client_codec, upstream_codec = formats.codec(client), formats.codec(upstream)
                model = MODEL if client == "gemini" else None

                def request() -> None:
                    ir = client_codec.parse_request(orjson.loads(body), model=model, stream=False)
                    orjson.dumps(upstream_codec.build_request(ir, MODEL)[0])

                answer = orjson.dumps(RESPONSES[upstream])

                def response() -> None:
                    parsed_answer = upstream_codec.parse_response(orjson.loads(answer))
                    orjson.dumps(client_codec.render_response(parsed_answer, MODEL))

                req = best_us(request, 1000, repeat)
                resp = best_us(response, 1000, repeat)
            rows.append((client, upstream, req, resp))
    return rows


def per_chunk(repeat: int, chunks: int = 2000) -> list[tuple[str, str, float]]:
    """(client, upstream, µs per chunk) for every pair, the chunk being one upstream write of one text delta."""
    rows = []
    all_streams = streams(chunks)
    for client in CLIENTS:
        for upstream in UPSTREAMS:
            writes = all_streams[upstream]
            if client == upstream:
                fmt = formats.module(client)

                def transform() -> Any:
                    return PassThroughStream(fmt, sse=True, strip_usage=False, rename=None)
            else:
                client_codec, upstream_codec = formats.codec(client), formats.codec(upstream)

                def transform() -> Any:
                    return TranslatedStream(upstream_codec.StreamDecoder(), client_codec.StreamEncoder(MODEL))

            def run() -> None:
                counter = estimate.CountingStream(transform(), client)
                scrubber = StreamScrubber(b"sk-bench-secret-key-0123456789")
                for chunk in writes:
                    counter.feed(scrubber.feed(chunk))

            rows.append((client, upstream, best_us(run, 1, repeat) / chunks))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5, help="runs per figure; the best is shown")
    args = ap.parse_args(argv)
    print("per request (µs): client → provider, request built / answer rendered; same format = pass-through\n")
    print("| client | provider | request | answer |")
    print("| --- | --- | --- | --- |")
    for client, upstream, req, resp in per_request(args.repeat):
        print(f"| {client} | {upstream}{' (pass-through)' if client == upstream else ''} | {req:.1f} | {resp:.1f} |")
    print("\nper streamed chunk (µs, one text delta; scrubber and usage counter included)\n")
    print("| client | provider | per chunk |")
    print("| --- | --- | --- |")
    for client, upstream, us in per_chunk(args.repeat):
        print(f"| {client} | {upstream}{' (pass-through)' if client == upstream else ''} | {us:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
