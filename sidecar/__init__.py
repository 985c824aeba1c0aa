"""The running proxy: config, keys, routing, upstream client, aiohttp app, metering, store, CLI.

Nothing in this package imports the UI; the TUI talks to it only through the control API.
"""

__version__ = "0.1.0"
