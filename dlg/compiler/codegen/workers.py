"""A program's parts compiled at once, in forked worker processes.

LLVM's pipeline and code generation are most of a cold compile, and a program's parts
(codegen/parts.py) are independent modules; but llvmlite serialises every call into LLVM behind
one lock, so threads cannot overlap them. Forked children can: each inherits the parsed target
machine and LLVM's state, compiles its share of the parts and writes their object code back
through a pipe, while this process compiles a share itself. The shares are balanced by each
part's estimated cost, its text's length times its level's cost per character (`COST`, measured:
O3 code costs ten times TIDY code a character, so the largest text, the register tiles, is not
the longest compile; split by text, ResNet-18's training step gave a child 0.2 s of O1 code and
kept 3.5 s here). A fork costs a few milliseconds, so a share under `MIN_COST` is compiled here;
with one core, `DLG_NUM_THREADS=1`, other Python threads running (one could hold a lock the
child would wait on forever) or no `fork`, everything is compiled here. A worker that fails is
not trusted: its parts are compiled again here, so results never depend on the workers.
"""

from __future__ import annotations

import os
import struct
import threading
import warnings
from collections.abc import Callable, Sequence

from dlg.compiler.codegen import threads
from dlg.compiler.codegen.parts import O1, O2, O3, TIDY

COST = {TIDY: 0.3, O1: 0.4, O2: 2.0, O3: 3.6}  # microseconds of LLVM a character of text, by
# level (ResNet-18's training step, one core: optimize and codegen per part over its length)
MIN_COST = 20_000  # microseconds (~20 ms of LLVM): less is not worth a process
Compile = Callable[[str, int], bytes]  # (module text, level) -> object code


def workers() -> int:
    """Processes that may compile at once: the cores, capped by DLG_NUM_THREADS when set."""
    count = threads.cores()
    configured = os.environ.get("DLG_NUM_THREADS", "")
    return min(count, int(configured)) if configured.isdigit() and int(configured) > 0 else count


def compile_parts(parts: Sequence[tuple[str, int]], compile: Compile) -> list[bytes]:
    """Each (text, level) part's object code, in order: the shares (`shares`) after the first
    in children, the first and any share too small for a process here."""
    n = workers() if hasattr(os, "fork") and threading.active_count() == 1 else 1
    groups = shares(parts, n)
    children = {i: _fork(compile, [parts[k] for k in group]) for i, group in enumerate(groups)
                if i and sum(_cost(parts[k]) for k in group) >= MIN_COST}
    out: list[bytes | None] = [None] * len(parts)
    for i, group in enumerate(groups):
        if i not in children:
            for k in group:
                out[k] = compile(*parts[k])
    for i, child in children.items():
        codes = _collect(*child, len(groups[i]))
        for j, k in enumerate(groups[i]):
            out[k] = codes[j] if codes is not None else compile(*parts[k])
    return out  # type: ignore[return-value]


def shares(parts: Sequence[tuple[str, int]], n: int) -> list[list[int]]:
    """The parts' indices in `n` groups of about equal estimated cost (the costliest first, each
    to the group with the least so far)."""
    groups: list[list[int]] = [[] for _ in range(n)]
    loads = [0.0] * n
    for k in sorted(range(len(parts)), key=lambda k: -_cost(parts[k])):
        least = loads.index(min(loads))
        groups[least].append(k)
        loads[least] += _cost(parts[k])
    return groups


def _cost(part: tuple[str, int]) -> float:
    text, level = part
    return len(text) * COST.get(level, COST[O3])


def _fork(compile: Compile, parts: list[tuple[str, int]]) -> tuple[int, int]:
    """A child compiling `parts` in order; returns its pid and the pipe their object code comes
    through (each a length, then its bytes)."""
    read, write = os.pipe()
    with warnings.catch_warnings():  # JAX's fork hook warns that its threads will not work in
        # the child; the child only runs LLVM on the parts' text and writes to the pipe
        warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
        pid = os.fork()
    if pid == 0:  # the child: compile, write, leave without running this process's exit code
        status = 1
        try:
            os.close(read)
            codes = [compile(text, level) for text, level in parts]
            with os.fdopen(write, "wb") as out:
                out.write(b"".join(struct.pack("<Q", len(code)) + code for code in codes))
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    return pid, read


def _collect(pid: int, read: int, count: int) -> list[bytes] | None:
    """A child's `count` object codes, or None when it failed or sent other than it announced."""
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        return None
    codes, at = [], 0
    for _ in range(count):
        if at + 8 > len(data):
            return None
        (size,) = struct.unpack_from("<Q", data, at)
        if at + 8 + size > len(data):
            return None
        codes.append(data[at + 8:at + 8 + size])
        at += 8 + size
    return codes if at == len(data) else None
