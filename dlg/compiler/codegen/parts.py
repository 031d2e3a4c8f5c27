"""A program's LLVM IR as modules optimised at different levels.

LLVM's pipeline and code generation take most of a cold compile, and they cost the most where
they buy the least: a small loop with constant trip counts is unrolled and vectorised into pages
of code that run for a microsecond. So kernels go into parts by optimisation level: `O3` for
everything whose speed matters, `O2` (vectorised, not unrolled) for plain loops doing a few
constant iterations per unit of the batch (a [N, 10] loss), `O1` (no unrolling, no
vectorisation) for the entries and for kernels whose whole work is known to be small
(`llvm_cpu.kernel_level`), and `TIDY` for code already written as it should run: register tiles
(explicit vectors, fma, unrolled rows) need registers for their stack slots and tidy loops, not
O3's search for vectors and unrolling, which costs most of a tile's compile time and bought
nothing measurable at run time (CifarCNN's O3 pipeline 0.39 -> 0.17 s; a transformer's training
step 9.6 -> 4.3 s of CPU time, its step as fast). Parts call each other
by name (kernels have external linkage). Their object files travel as one blob
(`pack`/`unpack`), so the disk cache, artifacts and the JIT see one `bytes`.

The parts compile in parallel in worker processes (codegen/workers.py).
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field

import llvmlite.binding as llvm
from llvmlite import ir

from dlg.errors import DlgValueError

O3 = 3  # LLVM's full pipeline: unrolling, vectorisation
O2 = 2  # vectorised, unrolled less: for plain loops (elementwise, reductions) of unknown size
O1 = 1  # scalar simplification only: for code whose run time is negligible
TIDY = 0  # TIDY_PASSES only: for code written as it should run (register tiles, the GEMM library)
TIDY_PASSES = ("always_inliner", "sroa", "instruction_combine", "simplify_cfg", "loop_rotate",
               "loop_strength_reduce")
MAGIC = b"DLGOBJS1"


def level_name(level: int) -> str:
    return "tidy" if level == TIDY else f"O{level}"


@dataclass
class Part:
    """One module and the level its pipeline runs at."""

    module: ir.Module
    level: int

    @functools.cached_property
    def text(self) -> str:
        """The module's text, made once (llvmlite prints a large module slowly)."""
        return str(self.module)


@dataclass
class Modules:
    """A program's parts; the first holds the entry. Its text (all parts, each headed by its
    level) is made once: it keys the disk cache and is what `--emit llvm` prints."""

    name: str
    parts: list[Part] = field(default_factory=list)

    @functools.cached_property
    def text(self) -> str:
        return "\n".join(f"; ---- part {k}: {level_name(p.level)} ----\n{p.text}"
                         for k, p in enumerate(self.parts))

    def __str__(self) -> str:
        return self.text


O3_PARTS = 2  # O3 code, most of the work, split so that two workers share it (fixed: the
# module text keys the disk cache and artifacts, so it must not depend on this machine's cores)


class Allocator:
    """Hands out the module a kernel is emitted into: one per level, O3 in `O3_PARTS` (a kernel
    goes to the one with the least code so far); the O1 one, first, also holds the entries."""

    def __init__(self, name: str, triple: str):
        self.modules = Modules(name)
        for k, level in enumerate((O1, O2, TIDY) + (O3,) * O3_PARTS):
            m = ir.Module(name=f"{name}.{k}.{level_name(level)}")
            m.triple = triple
            self.modules.parts.append(Part(m, level))
        self.main = self.modules.parts[0].module

    def module(self, level: int) -> ir.Module:
        return min((p.module for p in self.modules.parts if p.level == level), key=_instructions)

    def done(self) -> Modules:
        """The parts that received code (the O3 part of a graph of small kernels is empty)."""
        self.modules.parts = [p for p in self.modules.parts
                              if p.module is self.main or p.module.functions]
        return self.modules


def tidy(mod: llvm.ModuleRef, tm: llvm.TargetMachine) -> None:
    """`mod` through TIDY_PASSES, in place."""
    passes = llvm.create_new_module_pass_manager()
    for name in TIDY_PASSES:
        getattr(passes, f"add_{name}_pass")()
    passes.run(mod, llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options()))


def _instructions(m: ir.Module) -> int:
    return sum(len(b.instructions) for f in m.functions for b in f.blocks)


def declared(m: ir.Module, fn: ir.Function) -> ir.Function:
    """`fn` as `m` can call it: itself, or a declaration of its name when it lives elsewhere."""
    if fn.module is m:
        return fn
    if fn.name in m.globals:
        return m.globals[fn.name]
    return ir.Function(m, fn.function_type, fn.name)


class Linker(dict):
    """The functions a kernel in `m` may call by name (scan bodies), declared in `m` on use."""

    def __init__(self, m: ir.Module, functions: dict[str, ir.Function]):
        super().__init__()
        self.m, self.functions = m, functions

    def __missing__(self, name: str) -> ir.Function:
        return declared(self.m, self.functions[name])


def pack(objects: list[bytes]) -> bytes:
    """Object files as one blob: MAGIC, the count, then each length and its bytes."""
    out = [MAGIC, struct.pack("<I", len(objects))]
    for code in objects:
        out += [struct.pack("<Q", len(code)), code]
    return b"".join(out)


def unpack(blob: bytes) -> list[bytes]:
    """The object files of a `pack`ed blob; a damaged blob is an error, never loaded."""
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 4:
        raise DlgValueError("the object code is not a dlg object blob (made by another dlg "
                            "version?); recompile")
    (count,) = struct.unpack_from("<I", blob, len(MAGIC))
    at, objects = len(MAGIC) + 4, []
    for _ in range(count):
        if at + 8 > len(blob):
            raise DlgValueError("the object code is truncated; recompile")
        (size,) = struct.unpack_from("<Q", blob, at)
        objects.append(blob[at + 8:at + 8 + size])
        at += 8 + size
        if at > len(blob):
            raise DlgValueError("the object code is truncated; recompile")
    if at != len(blob):
        raise DlgValueError("the object code has trailing bytes; recompile")
    return objects
