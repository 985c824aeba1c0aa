"""Terminal UI for llm-sidecar: attaches to a running sidecar over its control API.

`import tui` stays cheap (Textual loads only in `run`), so the CLI can offer `sidecar tui`
without paying for the UI in headless commands.
"""

from __future__ import annotations

import sys

__all__ = ["run"]


def run(url: str, keymap: dict[str, str] | None = None) -> int:
    """Run the TUI against the sidecar at `url` with the user's `keymap` (binding id → key); returns the
    process exit code.

    Refuses (exit 2) when stdout is not a terminal: Textual would otherwise write escape codes
    into a pipe or file and run until killed."""
    if not sys.stdout.isatty():
        print(
            "llm-sidecar tui: stdout is not a terminal; run it in an interactive terminal "
            "(use `sidecar serve` or the control API at /_sidecar/ for headless use).",
            file=sys.stderr,
        )
        return 2
    from tui.app import SidecarApp

    app = SidecarApp(url, keymap=keymap)
    app.run()
    return app.return_code or 0
