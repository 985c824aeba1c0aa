"""`python -m tui --url http://127.0.0.1:8787`: attach the TUI to a running sidecar."""

from __future__ import annotations

import argparse

from tui import run

DEFAULT_URL = "http://127.0.0.1:8787"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tui", description=__doc__)
    parser.add_argument("--url", default=DEFAULT_URL, help=f"sidecar base URL (default {DEFAULT_URL})")
    args = parser.parse_args(argv)
    return run(args.url)


if __name__ == "__main__":
    raise SystemExit(main())
