"""The user's keymap (``[tui] keymap`` in the config: binding id → key) checked against the bindings that exist.

Textual's `App.set_keymap` silently ignores an id no binding carries, so a typo (``app.spnd``) would leave the
user wondering why nothing changed. `split_keymap` separates the usable entries from the ones to report; the
app applies the first and shows the second once as a warning toast, never a crash.

Every `Binding` with an ``id`` on any screen or widget class that has been imported counts as known; the app
module imports all of its screens, so by the time `SidecarApp` runs they are all there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from textual.binding import Binding
from textual.dom import DOMNode

__all__ = ["known_binding_ids", "split_keymap"]


def _classes(root: type) -> Iterator[type]:
    seen: set[type] = set()
    stack = [root]
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        yield cls
        stack.extend(cls.__subclasses__())


def known_binding_ids() -> set[str]:
    """Ids of every `Binding` declared by an imported Textual class (ours and Textual's own)."""
    ids: set[str] = set()
    for cls in _classes(DOMNode):
        for b in cls.__dict__.get("BINDINGS", ()):
            if isinstance(b, Binding) and b.id:
                ids.add(b.id)
    return ids


def split_keymap(keymap: Mapping[str, object] | None) -> tuple[dict[str, str], list[str]]:
    """(entries to apply, problems to report). A problem names the id and what is wrong with it."""
    if not keymap:
        return {}, []
    known = known_binding_ids()
    good: dict[str, str] = {}
    problems: list[str] = []
    for binding_id, keys in keymap.items():
        if binding_id not in known:
            problems.append(f"{binding_id} (no such binding)")
        elif not isinstance(keys, str) or not keys.strip() or any(not k.strip() for k in keys.split(",")):
            problems.append(f"{binding_id} (keys must be a string such as \"S\" or \"ctrl+s,S\")")
        else:
            good[binding_id] = ",".join(k.strip() for k in keys.split(","))
    return good, problems
