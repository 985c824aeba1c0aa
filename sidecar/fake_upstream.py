"""Fake upstream LLM providers on localhost, for the test suite and `sidecar demo`.

The implementation lives in `sidecar.fakes` (shared machinery plus one module per provider);
this module is the stable import path and the command line::

    python -m sidecar.fake_upstream --kind openai --port 9001 [--key K]

which serves one fake until Ctrl-C, so a user can point `sidecar serve` at it. See
`sidecar.fakes` for the reply text, tool-call trigger and usage formulas.
"""

from __future__ import annotations

import argparse
import asyncio

from sidecar.fakes import (BASE_PROMPT_TOKENS, CACHE_WRITE_TOKENS, CACHED_TOKENS, KINDS, THOUGHTS_TOKENS,
                           TOOL_ARGS, TOOL_CALL_OUTPUT_TOKENS, FakeUpstream, ReceivedRequest)

__all__ = ["FakeUpstream", "ReceivedRequest", "KINDS", "BASE_PROMPT_TOKENS", "CACHED_TOKENS",
           "CACHE_WRITE_TOKENS", "THOUGHTS_TOKENS", "TOOL_CALL_OUTPUT_TOKENS", "TOOL_ARGS", "main"]


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeUpstream(args.kind, name=args.name, expect_key=args.key, chunk_delay=args.chunk_delay)
    base = await fake.start(args.host, args.port)
    print(f"fake {args.kind} upstream at {base} (key: {'required' if args.key else 'any'}); "
          "Ctrl-C to stop", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.close()


def main(argv: list[str] | None = None) -> None:
    """Serve one fake upstream until Ctrl-C."""
    p = argparse.ArgumentParser(prog="python -m sidecar.fake_upstream", description=main.__doc__)
    p.add_argument("--kind", choices=KINDS, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on start)")
    p.add_argument("--key", help="require this API key (otherwise any key is accepted)")
    p.add_argument("--name", help="name used in replies (default: the kind)")
    p.add_argument("--chunk-delay", type=float, default=0.05, help="seconds between stream chunks")
    args = p.parse_args(argv)
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
