"""Widgets of the TUI; they draw what screens hand them and never talk to the sidecar."""
