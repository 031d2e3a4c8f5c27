"""The compiler pipeline: a literal list of named stages (STYLE §5), timed, each printable.

Graph stages (graph -> graph, `PIPELINE`): autodiff and apply_optimizer turn a training graph
into one optimisation step (they run only when compiling a training step, `ctx.train`), then
decompose, explicit_padding and simplify run on every graph. Then `fuse`, an analysis (it
chooses the values kept in memory; its result is a `Fusion`, not a graph), and code generation:
lower to kernels, their schedule for the host (register tiles), the LLVM module, LLVM's O3
pipeline for the host, the object file.

`CompileOptions.dump_after` names stages whose result is printed (`dlgc compile --dump-after
simplify`); with `verify` (`--verify`, `DLG_VERIFY=1`, always on in the tests) every graph stage's
result is checked by `dlg.ir.verify`, and a broken graph is reported with the stage that broke
it. Failures that are not user errors are tagged with the stage they happened in.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property, partial, wraps
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from dlg.compiler.codegen.llvm_cpu import (
    KernelTexts,
    build_module,
    emit,
    host_target,
    optimize,
    target_machine,
)
from dlg.compiler.codegen.cache import program_key
from dlg.compiler.codegen.emulate import build_emulated_module
from dlg.compiler.codegen.nvptx import ARCH, DeviceProgram, build_ptx
from dlg.compiler.codegen.parts import Modules, pack
from dlg.compiler.codegen.workers import compile_parts
from dlg.compiler.interpreted import refuse_interpreted
from dlg.compiler.kernel_ir import format_kernel
from dlg.compiler.lower import Program, lower
from dlg.compiler.optimizers import apply_optimizer
from dlg.compiler.passes.autodiff import GRAD_PREFIX, grad
from dlg.compiler.passes.fuse import Fusion, fuse
from dlg.compiler.passes.im2col import im2col
from dlg.compiler.passes.last_step import last_step
from dlg.compiler.passes.hoist import hoist
from dlg.compiler.passes.pad import explicit_padding
from dlg.compiler.passes.simplify import simplify
from dlg.compiler.passes.sink import sink
from dlg.compiler.passes.widen_half import widen_half
from dlg.compiler.merge_loops import merge_loops
from dlg.compiler.update_in_place import update_in_place
from dlg.compiler.schedule import schedule
from dlg.errors import DlgError, DlgValueError
from dlg.files import write_text
from dlg.ir.anomaly import is_anomaly_enabled
from dlg.ir.builder import Builder
from dlg.ir.decompose import decompose
from dlg.ir.graph import Graph
from dlg.ir.ops.opdef import Trait
from dlg.ir.printer import format_graph, format_marked
from dlg.ir.train_spec import OptimizerSpec
from dlg.ir.verify import IRVerifyError, verify


@dataclass(frozen=True)
class TrainTarget:
    """What makes a training graph one optimisation step: the scalar output to minimise and the
    optimizer that applies its gradients."""

    loss: str
    optimizer: OptimizerSpec


@dataclass
class CompileCtx:
    """One run of the graph stages: its options, the training target (None: the graph is
    compiled as it is), what the stages leave behind, and the stages run so far."""

    options: CompileOptions
    train: TrainTarget | None = None
    optimizer_state: dict[str, np.ndarray] = field(default_factory=dict)
    done: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Stage:
    """A graph stage: its name (for --dump-after, timings, verify failures) and its pass."""

    name: str
    run: Callable[[Graph, CompileCtx], Graph]
    training: bool = False  # makes a training step: skipped unless ctx.train is set
    forward: bool = False  # also runs in training_step, on the forward graph before autodiff


def _autodiff(g: Graph, ctx: CompileCtx) -> Graph:
    """+ `grad.<name>` outputs: d loss / d every trainable param the loss reads."""
    assert ctx.train is not None
    return grad(g, ctx.train.loss)


def _apply_optimizer(g: Graph, ctx: CompileCtx) -> Graph:
    """The gradients become updates of the params and of the optimizer's state (new `param`
    nodes, their starting values in `ctx.optimizer_state`); the `grad.` outputs go."""
    assert ctx.train is not None
    step = Graph(g.name, dict(g.nodes), list(g.outputs), list(g.updates), g.span)  # a copy
    grads = {name[len(GRAD_PREFIX):]: v for name, v in g.outputs if name.startswith(GRAD_PREFIX)}
    params = {n.name: n.out for n in g.params if n.name in grads}
    spec = ctx.train.optimizer
    state = apply_optimizer(Builder(step, spec.span), spec, params, grads)
    ctx.optimizer_state.update(state.initial)
    step.outputs = [(name, v) for name, v in g.outputs if not name.startswith(GRAD_PREFIX)]
    return step


def _sunk(g: Graph) -> Graph:
    """`g` with its scans' per-step sums after the loops, simplified again where that changed
    anything (the sums' bias and weight parts meet other gradients' equal sums: CSE)."""
    sunk = sink(g)
    return g if sunk is g else simplify(sunk)


PIPELINE: list[Stage] = [
    Stage("hoist", lambda g, ctx: hoist(g), forward=True),  # scans' input projections: one GEMM
    Stage("last_step", lambda g, ctx: last_step(g), forward=True),  # out[:, -1]: the final carry
    Stage("autodiff", _autodiff, training=True),
    Stage("apply_optimizer", _apply_optimizer, training=True),
    Stage("decompose", lambda g, ctx: decompose(g)),  # composites -> primitives
    Stage("widen_half", lambda g, ctx: widen_half(g)),  # f16 sums accumulate in f32
    Stage("explicit_padding", lambda g, ctx: explicit_padding(g)),  # conv padding -> pad
    Stage("im2col", lambda g, ctx: g if ctx.options.im2col is False else im2col(
        g, None if ctx.options.im2col else host_target().vector_bytes // 4)),  # conv -> GEMM
    Stage("simplify", lambda g, ctx: simplify(g)),  # identities, folding, CSE, dead code
    Stage("sink", lambda g, ctx: _sunk(g)),  # reverse scans' weight sums: one GEMM after
]
ANALYSES = ["fuse"]  # what is computed from the final graph without changing it
CODEGEN = ["lower", "schedule", "llvm", "optimize", "codegen"]
STAGES = [s.name for s in PIPELINE] + ANALYSES + CODEGEN


def verify_requested() -> bool:
    """`DLG_VERIFY=1` in the environment: verify after every graph stage."""
    return os.environ.get("DLG_VERIFY", "") == "1"


SUFFIXES = {"llvm": ".ll", "optimize": ".ll", "codegen": ".s"}  # other stages: dlg's IR text


def dump_file(stage: str) -> str:
    """A stage's file in a dump folder, numbered in pipeline order: `05_simplify.ir`."""
    return f"{STAGES.index(stage) + 1:02d}_{stage}{SUFFIXES.get(stage, '.ir')}"


@dataclass
class CompileOptions:
    """What to print or write while compiling (dumps, verification, profiling counters) and,
    after it, the seconds each stage took (`seconds`, `format_seconds`)."""

    dump_after: tuple[str, ...] = ()
    dump_dir: Path | None = None  # dumps go to files here (all stages unless dump_after names some)
    verify: bool = field(default_factory=verify_requested)
    profile: bool = False  # count cycles per kernel (`native.profile_kernels`)
    anomaly: bool = field(default_factory=is_anomaly_enabled)  # check kernels for new NaNs/Infs
    cold: bool = False  # compile to machine code even when the disk cache has it (--time-passes)
    im2col: bool | None = None  # convs as GEMMs (passes/im2col.py): None where faster, True all
    target: str = "cpu"  # or "cuda-emulated": the CUDA launches run on the CPU (codegen/emulate)
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    seconds: dict[str, float] = field(default_factory=dict)
    last_stage: str | None = field(default=None, init=False)  # where to look if the next fails

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
            hint = (f"inspect its input with --dump-after {self.last_stage}" if self.last_stage
                    else "it failed on the graph given to the compiler")
            raise RuntimeError(f"internal compiler error in pass {name!r}: {e} ({hint})") from e
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
        self.last_stage = name

    def dumps(self, name: str) -> bool:
        return (name in self.dump_after or "all" in self.dump_after
                or (self.dump_dir is not None and not self.dump_after))

    @property
    def dumps_object_code(self) -> bool:
        """Optimize and codegen must run, not the disk cache: a dump of them is asked for, or
        their times (`cold`)."""
        return self.cold or self.dumps("optimize") or self.dumps("codegen")

    def dump(self, name: str, text: Callable[[], str]) -> None:
        if not self.dumps(name):
            return
        if self.dump_dir is None:
            print(f"// ---- after {name} ----\n{text()}", file=self.out)
            return
        self.dump_dir.mkdir(parents=True, exist_ok=True)
        write_text(self.dump_dir / dump_file(name), text() + "\n")


def run_stages(g: Graph, ctx: CompileCtx, stages: list[Stage] = PIPELINE) -> Graph:
    """`g` through `stages` in order, each result verified (when asked) and dumped (when
    asked); a training stage runs only when `ctx.train` says which step to make."""
    _check(g, ctx, "input")
    for stage in stages:
        if stage.training and ctx.train is None:
            continue
        with ctx.options.stage(stage.name):
            g = stage.run(g, ctx)
        ctx.done.append(stage.name)
        _check(g, ctx, stage.name)
        ctx.options.dump(stage.name, partial(format_graph, g))
    return g


def training_step(g: Graph, train: TrainTarget, options: CompileOptions
                  ) -> tuple[Graph, dict[str, np.ndarray]]:
    """A training graph through the training stages: the step graph (what the interpreter runs
    and artifacts keep; compiling it runs the other stages) and the optimizer's initial state."""
    ctx = CompileCtx(options, train)
    step = run_stages(g, ctx, [s for s in PIPELINE if s.training or s.forward])
    return step, ctx.optimizer_state


def _check(g: Graph, ctx: CompileCtx, name: str) -> None:
    """Verify `g` when asked; a broken graph names the stage that made it (FX's lint)."""
    if not ctx.options.verify:
        return
    try:
        verify(g)
    except IRVerifyError as e:
        if name == "input":
            raise IRVerifyError(f"the graph given to the compiler is broken (a bug in what "
                                f"built it):\n{e}") from None
        raise IRVerifyError(f"stage {name!r} broke the graph (stages run: "
                            f"{', '.join(ctx.done)}):\n{e}") from None


@dataclass
class Compiled:
    graph: Graph  # after the graph stages
    fusion: Fusion
    program: Program
    key: str  # the disk cache's key for the program's object code (`cache.program_key`)
    build: Callable[[], Modules]  # makes `module`: only a cache miss (or a user) needs it

    @cached_property
    def module(self) -> Modules:
        """The LLVM module, in parts, each optimised at its own level."""
        return self.build()


def collector_paused(fn: Callable) -> Callable:
    """`fn` with Python's cyclic garbage collector off while it runs: a compile allocates
    hundreds of thousands of small objects (IR nodes, llvmlite instructions) and keeps most, so
    the collector's passes over the whole heap find little, and with torch imported (a bigger
    heap) they were 15-30 % of a compile (CNN's training step, one core: 0.99-1.18 -> 0.83-0.87
    s; LSTM's 0.92-1.08 -> 0.73-0.76 s). The compile's cycles are collected on the next pass
    after it."""
    @wraps(fn)
    def paused(*args, **kwargs):
        if not gc.isenabled():
            return fn(*args, **kwargs)
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.enable()
    return paused


@collector_paused
def compile_graph(g: Graph, loss: str | None = None,
                  options: CompileOptions | None = None) -> Compiled:
    """Graph -> LLVM module (not yet optimised: `object_code` does that, or a cache hit skips
    it), through every stage before. A training step is compiled from its step graph
    (`training_step`)."""
    options = options or CompileOptions()
    g, fusion, program = _lowered(g, loss, options)
    texts = KernelTexts()
    if options.target == "cuda-emulated":  # the GPU's kernels: no CPU schedule
        make = build_emulated_module
    else:
        make = partial(build_module, texts=texts)
        with options.stage("schedule"):
            program = update_in_place(merge_loops(schedule(program, host_target())))
        options.dump("schedule", lambda: format_program(program))

    @collector_paused
    def build() -> Modules:
        with options.stage("llvm"):
            module = make(program, options.profile, options.anomaly)
        options.dump("llvm", lambda: str(module))
        return module
    key = program_key(program, f"{options.target} profile={options.profile} "
                               f"anomaly={options.anomaly}", texts)
    if options.dumps("llvm"):  # asked for whether or not the disk cache has the code
        module = build()
        return Compiled(g, fusion, program, key, lambda: module)
    return Compiled(g, fusion, program, key, build)


def _lowered(g: Graph, loss: str | None, options: CompileOptions
             ) -> tuple[Graph, Fusion, Program]:
    """The graph stages, fusion and lowering: what every target shares."""
    refuse_interpreted(g)
    g = run_stages(g, CompileCtx(options))
    with options.stage("fuse"):
        fusion = fuse(g)
    options.dump("fuse", lambda: format_fusion(g, fusion))
    with options.stage("lower"):
        program = lower(g, g.name, loss=loss, fusion=fusion)
    options.dump("lower", lambda: format_program(program))
    return g, fusion, program


@collector_paused
def compile_ptx(g: Graph, loss: str | None = None, options: CompileOptions | None = None,
                arch: str = ARCH) -> DeviceProgram:
    """Graph -> the CUDA launches of its kernels and their PTX for `arch` (no GPU needed)."""
    options = options or CompileOptions()
    g, _, program = _lowered(g, loss, options)
    with options.stage("llvm"):
        return build_ptx(program, arch)


def object_code(modules: Modules, options: CompileOptions) -> bytes:
    """Each part through LLVM's pipeline at its level for the host, then machine code: one
    object file per part, packed as one blob. The parts compile at once in worker processes
    (codegen/workers.py) unless the two stages' dumps or separate times are asked for."""
    if not options.dumps_object_code:
        with options.stage("optimize"):  # and codegen, overlapped
            return pack(compile_parts([(p.text, p.level) for p in modules.parts], emit))
    with options.stage("optimize"):
        optimized = [optimize(part.text, part.level) for part in modules.parts]
    options.dump("optimize", lambda: "\n".join(map(str, optimized)))
    with options.stage("codegen"):
        objects = [target_machine().emit_object(m) for m in optimized]
    options.dump("codegen", lambda: "\n".join(map(target_machine().emit_assembly, optimized)))
    return pack(objects)


def format_seconds(seconds: dict[str, float]) -> str:
    """`--time-passes`: one row per stage in pipeline order (then any others, such as the
    runtime's `load`), seconds and share of the total."""
    order = [s for s in STAGES if s in seconds] + [s for s in seconds if s not in STAGES]
    total = sum(seconds.values()) or 1.0
    rows = [f"{'stage':<18} {'seconds':>9} {'share':>6}"]
    rows += [f"{s:<18} {seconds[s]:9.4f} {100 * seconds[s] / total:5.1f}%" for s in order]
    rows.append(f"{'total':<18} {sum(seconds.values()):9.4f} {100.0:5.1f}%")
    return "\n".join(rows)


def format_fusion(g: Graph, fusion: Fusion) -> str:
    """The graph's computed nodes, those whose values are kept in memory (a kernel each) marked
    `store`; the others are computed inside the kernels that read them."""
    computed = [n for n in g if Trait.BUFFER not in n.op.traits]
    stored = {n.id: "store" for n in computed if any(v in fusion.materialized for v in n.outs)}
    return (f"fusion of {g.name}: {len(stored)} of {len(computed)} computed nodes stored\n"
            + format_marked(g, stored, [n.id for n in computed]))


def format_program(p: Program) -> str:
    parts = [format_kernel(k) for k in p.kernels]
    for body in p.bodies:
        parts.append(f"// scan body {body.name}\n{format_program(body)}")
    return "\n".join(parts)


def assembly(modules: Modules) -> str:
    """The optimised parts as the host's assembly (`dlgc compile --emit asm`)."""
    return "\n".join(target_machine().emit_assembly(optimize(part.text, part.level))
                     for part in modules.parts)
