"""The on-disk cache of object code, so a second process pays no compile time.

The key is a hash of the unoptimised LLVM module (which encodes the optimised graph, the kernels
and every buffer), the host target (triple, CPU, features) and the dlg version. Entries are
written atomically and carry a hash of their bytes: a damaged entry is recompiled, never loaded
(loading corrupt object code could crash the process). `DLG_CACHE_DIR` sets the folder (default:
$XDG_CACHE_HOME/dlg or ~/.cache/dlg); `DLG_CACHE_DIR=off` disables it.

The small library modules every process loads (the thread pool, the GEMM library, the training
loop's driver) are cached the same way (`library`), so only the first process on a machine
compiles them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import llvmlite.binding as llvm
from llvmlite import ir

from dlg.errors import DlgValueError
from dlg.files import write_bytes

VERSION = "0.2.1"  # bump with any change to codegen that keeps the IR text the same


def cache_dir() -> Path | None:
    configured = os.environ.get("DLG_CACHE_DIR")
    if configured == "off":
        return None
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dlg"


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


def load(key: str) -> bytes | None:
    folder = cache_dir()
    if folder is None:
        return None
    try:
        data = (folder / f"{key}.o").read_bytes()
    except OSError:
        return None
    digest, _, code = data.partition(b"\n")
    return code if hashlib.sha256(code).hexdigest().encode() == digest else None


def store(key: str, code: bytes) -> None:
    folder = cache_dir()
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_bytes(folder / f"{key}.o", hashlib.sha256(code).hexdigest().encode() + b"\n" + code)
    except (OSError, DlgValueError):
        pass  # a read-only or full disk only costs the next process a compile


def library(module: ir.Module, recipe: str, compile: Callable[[str], bytes],
            machine: Callable[[], llvm.TargetMachine]) -> llvm.ExecutionEngine:
    """A library module loaded into an engine of its own (which must stay alive): its object code
    from the disk cache, or `compile`d from the module's text and stored. `recipe` names how
    `compile` optimises (it keys the cache with the text, so a new pass list is a new entry)."""
    text = str(module)
    key = cache_key(f"; {recipe}\n{text}")
    code = load(key)
    if code is None:
        code = compile(text)
        store(key, code)
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), machine())
    engine.add_object_file(llvm.ObjectFileRef.from_data(code))
    engine.finalize_object()
    return engine
