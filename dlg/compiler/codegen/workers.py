"""A program's parts compiled at once, in forked worker processes.

LLVM's pipeline and code generation are most of a cold compile, and a program's parts
(codegen/parts.py) are independent modules; but llvmlite serialises every call into LLVM behind
one lock, so threads cannot overlap them. Forked children can: each inherits the parsed target
machine and LLVM's state, compiles one part's text and writes its object code back through a
pipe, while this process compiles the largest part itself. A fork costs a few milliseconds, so
only parts larger than `MIN_TEXT` go to workers; with one core, `DLG_NUM_THREADS=1`, other
Python threads running (one could hold a lock the child would wait on forever) or no `fork`, the
parts are compiled here, one after another. A worker that fails is not trusted: its part is
compiled again here, so results never depend on the workers.
"""

from __future__ import annotations

import os
import struct
import threading
import warnings
from collections.abc import Callable, Sequence

from dlg.compiler.codegen import threads

MIN_TEXT = 40_000  # characters of LLVM IR (~20 ms of LLVM): less is not worth a process
Compile = Callable[[str, int], bytes]  # (module text, level) -> object code


def workers() -> int:
    """Processes that may compile at once: the cores, capped by DLG_NUM_THREADS when set."""
    count = threads.cores()
    configured = os.environ.get("DLG_NUM_THREADS", "")
    return min(count, int(configured)) if configured.isdigit() and int(configured) > 0 else count


def compile_parts(parts: Sequence[tuple[str, int]], compile: Compile) -> list[bytes]:
    """Each (text, level) part's object code, in order: the largest here, as many others as
    there are spare cores in children (the largest first), the rest here."""
    order = sorted(range(len(parts)), key=lambda k: -len(parts[k][0]))
    spare = workers() - 1 if hasattr(os, "fork") and threading.active_count() == 1 else 0
    forked = [k for k in order[1:1 + spare] if len(parts[k][0]) >= MIN_TEXT]
    children = {k: _fork(compile, *parts[k]) for k in forked}
    out: list[bytes | None] = [None] * len(parts)
    for k in order:
        if k not in children:
            out[k] = compile(*parts[k])
    for k, child in children.items():
        out[k] = _collect(*child)
        if out[k] is None:
            out[k] = compile(*parts[k])
    return out  # type: ignore[return-value]


def _fork(compile: Compile, text: str, level: int) -> tuple[int, int]:
    """A child compiling one part; returns its pid and the pipe its object code comes through
    (a length, then the bytes)."""
    read, write = os.pipe()
    with warnings.catch_warnings():  # JAX's fork hook warns that its threads will not work in
        # the child; the child only runs LLVM on the part's text and writes to the pipe
        warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
        pid = os.fork()
    if pid == 0:  # the child: compile, write, leave without running this process's exit code
        status = 1
        try:
            os.close(read)
            code = compile(text, level)
            with os.fdopen(write, "wb") as out:
                out.write(struct.pack("<Q", len(code)) + code)
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    return pid, read


def _collect(pid: int, read: int) -> bytes | None:
    """A child's object code, or None when it failed or sent less than it announced."""
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or len(data) < 8:
        return None
    (size,) = struct.unpack_from("<Q", data)
    return data[8:] if len(data) == 8 + size else None
