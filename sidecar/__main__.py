"""``python -m sidecar`` — the same as the ``sidecar`` command."""

from sidecar.cli import main

raise SystemExit(main())
