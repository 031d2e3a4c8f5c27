"""The on-disk cache of object code, so a second process pays no compile time.

A graph's key (`program_key`) is a hash of its scheduled program (every kernel, buffer and
constant: what the LLVM module is made from), how the module is built (target, profiling and
anomaly checks), the code that builds and optimises it (this package's source, llvmlite's and
LLVM's versions), the host target (triple, CPU, features) and the dlg version. So a hit skips
making the LLVM module too, which cost more than the rest of a warm compile (building and
printing it: MNIST Net's forward and backward 0.53 s, its program's key 12 ms). Entries are
written atomically and carry a hash of their bytes: a damaged entry is recompiled, never loaded
(loading corrupt object code could crash the process); the folder is dlg/disk_cache.py's.

The small library modules every process loads (the thread pool, the GEMM library, the training
loop's driver) are cached the same way (`library`, keyed by their name, parameters and the
codegen source), so only the first process on a machine compiles them.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import llvmlite
import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

from dlg.disk_cache import load, store

if TYPE_CHECKING:
    from dlg.compiler.kernel_ir import Kernel
    from dlg.compiler.lower import Program

VERSION = "0.3.0"  # bump with any change to what a cached entry holds


def host() -> dict[str, str]:
    """What object code is built for: it runs only where these match."""
    return {"triple": llvm.get_default_triple(), "cpu": llvm.get_host_cpu_name(),
            "features": llvm.get_host_cpu_features().flatten()}


def cache_key(llvm_ir: str) -> str:
    h = hashlib.sha256()
    for part in (VERSION, *host().values(), llvm_ir):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def program_key(program: Program, build: str, texts: Callable[[Program, Kernel], str]) -> str:
    """The key of the object code `build` (how the module is made) makes of `program`, its
    kernels read through `texts` (`llvm_cpu.KernelTexts`: each kernel's structure)."""
    return cache_key(f"{build}\n{_builder_source()}\n{program_text(program, texts)}")


def program_text(p: Program, texts: Callable[[Program, Kernel], str]) -> str:
    """Everything a program's module is made from, as text (constants by their bytes' hash;
    each kernel by its name, its buffers' names and `texts`: their dtypes, shapes and body)."""
    lines = [f"program {p.name} inputs {p.inputs!r} params {p.params!r} outputs {p.outputs!r}"]
    for name, b in p.buffers.items():
        value = None if b.value is None else (np.asarray(b.value).dtype.str, np.shape(b.value),
                                              hashlib.sha256(np.ascontiguousarray(
                                                  b.value).tobytes()).hexdigest())
        lines.append(f"buffer {name} {b.dtype!r} {b.shape!r} {b.kind} {value}")
    for k in p.kernels:
        buffers = list(dict.fromkeys(k.reads + k.writes))
        lines.append(f"kernel {k.name} {buffers!r}\n{texts(p, k)}")
    return "\n".join(lines + [program_text(body, texts) for body in p.bodies])


@functools.cache
def _builder_source() -> str:
    """What turns a program into machine code: this package's source, the kernel IR it reads,
    llvmlite's and LLVM's versions. A change to any of them is a new key."""
    h = hashlib.sha256(f"{llvmlite.__version__} {llvm.llvm_version_info}".encode())
    here = Path(__file__).parent
    for path in sorted(here.glob("*.py")) + [here.parent / "kernel_ir.py"]:
        h.update(path.read_bytes())
    return h.hexdigest()


def library(name: str, make: Callable[[], ir.Module], recipe: str,
            compile: Callable[[str], bytes], machine: Callable[[], llvm.TargetMachine]
            ) -> llvm.ExecutionEngine:
    """A library module loaded into an engine of its own (which must stay alive): its object code
    from the disk cache, or `compile`d from the text of the module `make` builds, and stored.
    The key is `name` (which names whatever `make` depends on beyond this package's source: the
    GEMM's blocking) and `recipe` (how `compile` optimises), so a hit builds no module (making
    and printing the GEMM library's took 0.09 s of every process's first compiled call)."""
    key = cache_key(f"; {recipe}\n; {name}\n{_builder_source()}")
    code = load(key)
    if code is None:
        code = compile(str(make()))
        store(key, code)
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), machine())
    engine.add_object_file(llvm.ObjectFileRef.from_data(code))
    engine.finalize_object()
    return engine
