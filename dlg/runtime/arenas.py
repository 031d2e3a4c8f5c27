"""Arena memory for compiled calls: bounded whatever the mix of batch sizes, one arena per call
in flight.

A compiled graph's intermediates live in one block of memory (an arena) laid out per binding of
its symbolic dims. Keeping an arena per batch size grows without bound on a server that sees
every size; sharing one arena between concurrent callers would serialise them. So the memory
(`Arena`) is apart from the layouts: an arena is grown to the largest layout it has run (the
offsets are recomputed per binding, the memory is not), an idle arena waits in a free list
(`ArenaPool`), and a caller takes one for its call and gives it back, so there are as many arenas
as calls ever ran at once, each the size of the largest batch. Arena pages come from an
anonymous mmap: they are given back to the system when the arena is dropped, and pages a smaller
batch never touches cost nothing.
"""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np


class Arena:
    """The memory of one call at a time, with the calls' pointer tables filled for it (`plans`,
    by layout key; cleared when the memory moves)."""

    def __init__(self) -> None:
        self.memory: np.ndarray | None = None
        self.base = 0
        self.capacity = 0
        self.plans: dict[tuple[int, ...], Any] = {}

    def fit(self, nbytes: int) -> None:
        """At least `nbytes` (page-aligned); growing drops the old memory first and forgets the
        tables that pointed into it."""
        if nbytes <= self.capacity and self.memory is not None:
            return
        self.plans.clear()
        self.memory = None  # unmapped before the new pages are mapped
        size = -(-max(nbytes, 1) // mmap.PAGESIZE) * mmap.PAGESIZE
        self.memory = np.frombuffer(mmap.mmap(-1, size), np.uint8)
        self.base = self.memory.ctypes.data
        self.capacity = size


class ArenaPool:
    """Idle arenas; `take` one for a call (a new one when every arena is in use) and `give` it
    back. Both are single list operations, atomic under the GIL: no lock. `drain` forgets them
    all; an arena given back after a drain goes to the old list and is dropped with it."""

    def __init__(self) -> None:
        self.idle: list[Arena] = []

    def take(self) -> tuple[Arena, list[Arena]]:
        """An arena and the list to give it back to."""
        idle = self.idle
        try:
            return idle.pop(), idle
        except IndexError:
            return Arena(), idle

    def drain(self) -> None:
        self.idle = []

    def __len__(self) -> int:
        return len(self.idle)
