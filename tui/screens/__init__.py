"""Screens of the TUI: traffic (default), request detail, help."""
