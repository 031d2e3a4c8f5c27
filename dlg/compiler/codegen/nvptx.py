"""Kernel IR -> PTX for NVIDIA GPUs, through llvmlite's NVPTX backend.

Each launch of a program (codegen/nvptx_launch.py; scan bodies' included) is a kernel entry
(`ptx_kernel` calling convention) taking a generic pointer per buffer, then each symbolic dim as
an i64 (one module serves every batch size), then the random seed. Thread and block indices
come from the NVVM special registers, barriers are `bar.sync 0`, a block's partial sums live in
`.shared` memory (address space 3). The scalar forms are the CPU's (codegen/scalar.py) except
for the math functions that NVPTX has no instruction for (log, sin, cos, pow, erf, log1p, tanh
and exp below float32): those are libdevice's `__nv_*`, linked from the CUDA toolkit and
inlined. The module is optimised by LLVM's O3 pipeline for the chosen `sm_*` and printed as PTX.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import llvmlite.binding as llvm
from llvmlite import ir

from dlg.compiler.codegen.llvm_cpu import Emitter
from dlg.compiler.codegen.nvptx_kernels import emit_launch
from dlg.compiler.codegen.nvptx_launch import Launch, Step, plan_kernel
from dlg.compiler.codegen.scalar import I64, Scalar, llvm_type, memory_type
from dlg.compiler.lower import Program
from dlg.errors import DlgValueError
from dlg.ir.dtypes import DType

TRIPLE = "nvptx64-nvidia-cuda"
ARCH = "sm_80"  # PTX 7.0: assembles for sm_80 (A100) and every later GPU (H100/H200: sm_90)
I32 = ir.IntType(32)
SHARED = 3  # NVPTX's address space of block-shared memory


class LibdeviceScalar(Scalar):
    """The CPU's scalar forms with math functions from libdevice (NVPTX has no libm, and
    llvm.log/llvm.exp/llvm.pow do not lower to instructions)."""

    FUNCTIONS = {"llvm.log": "log", "llvm.exp": "exp", "llvm.sin": "sin", "llvm.cos": "cos",
                 "llvm.pow": "pow"}

    def intrinsic(self, name: str, t: ir.Type, arity: int = 1) -> ir.Function:
        if name in self.FUNCTIONS:
            return self._libdevice(self.FUNCTIONS[name], t, arity)
        return super().intrinsic(name, t, arity)

    def libm(self, name: str, t: ir.Type) -> ir.Function:
        return self._libdevice(name, t, 1)

    def _libdevice(self, name: str, t: ir.Type, arity: int) -> ir.Function:
        symbol = f"__nv_{name}{'f' if isinstance(t, ir.FloatType) else ''}"
        if symbol not in self.m.globals:
            ir.Function(self.m, ir.FunctionType(t, [t] * arity), symbol)
        return self.m.globals[symbol]


class KernelEmitter(Emitter):
    scalar = LibdeviceScalar


class DeviceGrid:
    """The GPU itself: indices from the special registers, bar.sync, .shared arrays."""

    def __init__(self, m: ir.Module, b: ir.IRBuilder):
        self.m, self.b = m, b
        self._block = self._register(b, "ctaid.x")
        self._blocks = self._register(b, "nctaid.x")
        self._thread = self._register(b, "tid.x")

    def _register(self, b: ir.IRBuilder, name: str) -> ir.Value:
        symbol = f"llvm.nvvm.read.ptx.sreg.{name}"
        fn = self.m.globals.get(symbol) or ir.Function(self.m, ir.FunctionType(I32, []), symbol)
        return b.zext(b.call(fn, []), I64, name=name.replace(".", "_"))

    def block(self) -> ir.Value:
        return self._block

    def blocks(self) -> ir.Value:
        return self._blocks

    def each_thread(self, e: Emitter, body: Callable[[ir.Value], None]) -> None:
        e.scopes.append({})
        body(self._thread)
        e.scopes.pop()

    def barrier(self, e: Emitter) -> None:
        symbol = "llvm.nvvm.barrier0"
        fn = self.m.globals.get(symbol) or ir.Function(self.m, ir.FunctionType(ir.VoidType(), []),
                                                       symbol)
        e.b.call(fn, [])

    def shared(self, e: Emitter, name: str, dtype: DType, count: int) -> ir.Value:
        t = ir.ArrayType(llvm_type(dtype), count)
        g = ir.GlobalVariable(self.m, t, ptx_name(name), addrspace=SHARED)
        g.linkage = "internal"
        g.initializer = ir.Constant(t, ir.Undefined)
        g.align = 8
        return e.b.gep(g, [I64(0), I64(0)])

    def private(self, e: Emitter, name: str, dtype: DType, count: int
                ) -> Callable[[ir.Value], ir.Value]:
        array = e.alloca_builder.alloca(ir.ArrayType(llvm_type(dtype), count), name=name)
        first = e.b.gep(array, [I64(0), I64(0)])
        return lambda thread: first  # each thread has its own stack: promoted to registers


def ptx_name(name: str) -> str:
    """A name PTX accepts (letters, digits, `_`)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


@dataclass
class DeviceProgram:
    """A program's launches for the GPU: per program (the main one and each scan body, by
    name) its kernels' steps in order, the symbolic dims every kernel takes, and the PTX."""

    name: str
    arch: str
    dims: list[str]
    program: Program
    steps: dict[str, list[list[Step]]] = field(default_factory=dict)
    programs: dict[str, Program] = field(default_factory=dict)  # by name, scan bodies too
    llvm_ir: str = ""
    ptx: str = ""

    def launches(self) -> list[Launch]:
        return [s for program in self.steps.values() for kernel in program for s in kernel
                if isinstance(s, Launch)]


def build_ptx(program: Program, arch: str = ARCH) -> DeviceProgram:
    """The program's launches and one PTX module holding them all."""
    m = ir.Module(name=program.name)
    m.triple = TRIPLE
    device = DeviceProgram(program.name, arch, program.dims, program)

    def add(p: Program) -> None:
        for body in p.bodies:
            add(body)
        device.programs[p.name] = p
        device.steps[p.name] = []
        for kernel in p.kernels:
            steps = plan_kernel(p, kernel)
            device.steps[p.name].append(steps)
            for s in steps:
                if isinstance(s, Launch):
                    _kernel(m, p, s, program.dims)
    add(program)
    device.llvm_ir = str(m)
    device.ptx = emit_ptx(device.llvm_ir, {ptx_name(x.name) for x in device.launches()}, arch)
    return device


def _kernel(m: ir.Module, p: Program, launch: Launch, dims: list[str]) -> None:
    types = [memory_type(p.buffers[buf].dtype).as_pointer() for buf in launch.buffers]
    fn = ir.Function(m, ir.FunctionType(ir.VoidType(), types + [I64] * (len(dims) + 1)),
                     ptx_name(launch.name))
    fn.calling_convention = "ptx_kernel"
    for arg, buf in zip(fn.args, launch.buffers):
        arg.name = buf
        arg.add_attribute("noalias")
    for arg, dim in zip(fn.args[len(types):], dims):
        arg.name = dim
    pointers, seed = fn.args[:len(types)], fn.args[-1]
    buffers = {buf: (ptr, p.buffers[buf].dtype) for buf, ptr in zip(launch.buffers, pointers)}
    e = KernelEmitter(m, fn, buffers, dims, None, seed, {},
                      dim_values=dict(zip(dims, fn.args[len(types):])))
    emit_launch(e, DeviceGrid(m, e.b), launch)
    e.b.ret_void()


@functools.cache
def _target_machine(arch: str) -> llvm.TargetMachine:
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    return llvm.Target.from_triple(TRIPLE).create_target_machine(cpu=arch, features="", opt=3)


def emit_ptx(text: str, kernels: set[str], arch: str = ARCH) -> str:
    """LLVM IR text -> PTX: libdevice linked in when a `__nv_` function is called, everything
    but the kernels made internal (so libdevice's functions are inlined and dropped), O3."""
    tm = _target_machine(arch)
    mod = llvm.parse_assembly(text)
    mod.data_layout = str(tm.target_data)
    if any(f.name.startswith("__nv_") for f in mod.functions if f.is_declaration):
        library = llvm.parse_bitcode(libdevice_path().read_bytes())
        library.triple = TRIPLE
        library.data_layout = mod.data_layout
        mod.link_in(library)
    for f in mod.functions:
        if not f.is_declaration and f.name not in kernels:
            f.linkage = llvm.Linkage.internal
    mod.verify()
    pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=3))
    pb.getModulePassManager().run(mod, pb)
    return tm.emit_assembly(mod)


def toolkit_roots() -> list[Path]:
    """Where the CUDA toolkit may be: $CUDA_HOME, $CUDA_PATH, the folder above the real ptxas
    (a `ptxas` on PATH may be a script that execs the toolkit's: its target counts), and
    /usr/local/cuda."""
    roots = [Path(os.environ[v]) for v in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(v)]
    ptxas = shutil.which("ptxas")
    if ptxas:
        real = Path(ptxas).resolve()
        roots.append(real.parent.parent)
        head = real.read_bytes()[:4096]
        if head.startswith(b"#!"):
            roots += [Path(p).parent.parent for p in
                      re.findall(r"(/\S+/bin/ptxas)\b", head.decode(errors="replace"))]
    return roots + [Path("/usr/local/cuda")]


def libdevice_path() -> Path:
    for root in toolkit_roots():
        path = root / "nvvm" / "libdevice" / "libdevice.10.bc"
        if path.is_file():
            return path
    raise DlgValueError("the CUDA target needs libdevice (nvvm/libdevice/libdevice.10.bc, part "
                        "of the CUDA toolkit) for exp/log/tanh and friends: install the toolkit "
                        "and set CUDA_HOME to its folder")
