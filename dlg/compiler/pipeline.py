"""The compiler pipeline: a literal list of named stages (STYLE §5), timed, each printable.

Graph passes (graph -> graph): decompose, explicit_padding, simplify. Then fusion and lowering
to kernels, their schedule for the host (register tiles), the LLVM module, LLVM's O3 pipeline
for the host. `CompileOptions.dump_after` names stages whose result is printed (`dlgc compile
--dump-after simplify`); failures that are not user errors are tagged with the stage they
happened in.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO

from llvmlite import ir

from dlg.compiler.codegen.llvm_cpu import build_module, host_target, optimize, target_machine
from dlg.compiler.kernel_ir import format_kernel
from dlg.compiler.lower import Program, lower
from dlg.compiler.passes.pad import explicit_padding
from dlg.compiler.passes.simplify import simplify
from dlg.compiler.schedule import schedule
from dlg.errors import DlgError, DlgValueError
from dlg.ir.decompose import decompose
from dlg.ir.graph import Graph
from dlg.ir.printer import format_graph

GRAPH_PASSES: list[tuple[str, Callable[[Graph], Graph]]] = [
    ("decompose", decompose),
    ("explicit_padding", explicit_padding),
    ("simplify", simplify),
]
STAGES = [name for name, _ in GRAPH_PASSES] + ["lower", "schedule", "llvm", "optimize", "codegen"]


@dataclass
class CompileOptions:
    dump_after: tuple[str, ...] = ()
    profile: bool = False  # count cycles per kernel (`native.profile_kernels`)
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    seconds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [s for s in self.dump_after if s not in STAGES and s != "all"]
        if unknown:
            raise DlgValueError(f"unknown pass {unknown[0]!r} for --dump-after (passes: "
                                f"{', '.join(STAGES)}, or all)")

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        except DlgError:
            raise
        except Exception as e:  # a compiler bug: say where it happened
            raise RuntimeError(f"internal compiler error in pass {name!r}: {e} (inspect the "
                               f"input with --dump-after {STAGES[max(STAGES.index(name) - 1, 0)]})"
                               ) from e
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def dump(self, name: str, text: Callable[[], str]) -> None:
        if name in self.dump_after or "all" in self.dump_after:
            print(f"// ---- after {name} ----\n{text()}", file=self.out)


@dataclass
class Compiled:
    graph: Graph  # after the graph passes
    program: Program
    module: ir.Module


def optimize_graph(g: Graph, options: CompileOptions) -> Graph:
    for name, run in GRAPH_PASSES:
        with options.stage(name):
            g = run(g)
        options.dump(name, lambda g=g: format_graph(g))
    return g


def compile_graph(g: Graph, loss: str | None = None,
                  options: CompileOptions | None = None) -> Compiled:
    """Graph -> LLVM module (not yet optimised: `object_code` does that, or a cache hit skips
    it), through every stage before."""
    options = options or CompileOptions()
    g = optimize_graph(g, options)
    with options.stage("lower"):
        program = lower(g, g.name, loss=loss)
    options.dump("lower", lambda: format_program(program))
    with options.stage("schedule"):
        program = schedule(program, host_target())
    options.dump("schedule", lambda: format_program(program))
    with options.stage("llvm"):
        module = build_module(program, profile=options.profile)
    options.dump("llvm", lambda: str(module))
    return Compiled(g, program, module)


def object_code(module: ir.Module, options: CompileOptions) -> bytes:
    """LLVM's O3 pipeline for the host, then machine code as an object file."""
    with options.stage("optimize"):
        optimized = optimize(module)
    options.dump("optimize", lambda: str(optimized))
    with options.stage("codegen"):
        return target_machine().emit_object(optimized)


def format_program(p: Program) -> str:
    parts = [format_kernel(k) for k in p.kernels]
    for body in p.bodies:
        parts.append(f"// scan body {body.name}\n{format_program(body)}")
    return "\n".join(parts)


def assembly(module: ir.Module) -> str:
    """The optimised module as the host's assembly (`dlgc compile --emit asm`)."""
    return target_machine().emit_assembly(optimize(module))
