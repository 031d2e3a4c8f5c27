"""torch's `RemovableHandle`: what registering a hook returns; `remove()` (or leaving its `with`
block) unregisters the hook."""

from __future__ import annotations

import itertools
from typing import Any

_ids = itertools.count()


class RemovableHandle:
    """Holds the table a hook was put in and the hook's key there."""

    def __init__(self, hooks: dict[int, Any]):
        self.hooks_dict_ref = hooks
        self.id = next(_ids)

    def remove(self) -> None:
        self.hooks_dict_ref.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def add_hook(hooks: dict[int, Any], hook: Any, prepend: bool = False) -> RemovableHandle:
    """Put `hook` in `hooks` (an insertion-ordered dict, first or last) under a new handle."""
    handle = RemovableHandle(hooks)
    hooks[handle.id] = hook
    if prepend:
        for key in [k for k in hooks if k != handle.id]:
            hooks[key] = hooks.pop(key)
    return handle
