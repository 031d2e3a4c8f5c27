"""The CUDA grid emulated on the CPU (`target="cuda-emulated"`): the kernels made for the GPU,
run by the CPU runtime, so that what the GPU will run is tested where there is no GPU.

Each kernel's launches (codegen/nvptx_launch.py: the same launch configuration, computed from
the dims at run time) become loops in the kernel's CPU function: blocks one after another, the
threads of a block as an inner loop at each step between barriers (codegen/nvptx_kernels.py
writes a launch in such steps), a block's shared memory as an array on the stack reused by each
block. The bodies are the GPU's own code (same grid-stride loops, index arithmetic and tree
sums); only the scalar math functions differ (the CPU's libm where the GPU calls libdevice).
Scans stay host-side loops over their body's kernels, as on the GPU. The module then goes
through the CPU's LLVM path (codegen/llvm_cpu.py's `build_module` with this kernel builder).
"""

from __future__ import annotations

from collections.abc import Callable

import llvmlite.binding as llvm
from llvmlite import ir

from dlg.compiler.codegen.llvm_cpu import Emitter, build_module
from dlg.compiler.codegen.nvptx import DeviceProgram, ptx_name
from dlg.compiler.codegen.nvptx_kernels import emit_launch
from dlg.compiler.codegen.nvptx_launch import Launch, plan_kernel
from dlg.compiler.codegen.parts import O1, Modules
from dlg.compiler.codegen.scalar import I64, llvm_type, memory_type
from dlg.compiler.kernel_ir import Kernel
from dlg.compiler.lower import Program
from dlg.ir.dtypes import DType


def build_emulated_module(program: Program, profile: bool = False, anomaly: bool = False
                          ) -> Modules:
    """The program's LLVM module for the host CPU, each kernel run as its CUDA launches (with
    the CPU's per-kernel profiling counters and anomaly checks when asked). Every part is
    optimised at O1: the emulation checks what the GPU computes, its speed matters little, and
    O3 on the unrolled tile code takes seconds."""
    modules = build_module(program, profile, anomaly, kernel_function=emulated_kernel)
    for part in modules.parts:
        part.level = O1
    return modules


def emulated_kernel(m: ir.Module, p: Program, kernel: Kernel, dims: list[str],
                    functions: dict[str, ir.Function]) -> ir.Function:
    """A kernel's CPU function (the signature of llvm_cpu's) running its launches in order."""
    buffers = list(dict.fromkeys(kernel.reads + kernel.writes))
    types = [memory_type(p.buffers[buf].dtype).as_pointer() for buf in buffers]
    fn = ir.Function(m, ir.FunctionType(ir.VoidType(), types + [I64.as_pointer(), I64]),
                     f"{p.name}.{kernel.name}")
    for arg, buf in zip(fn.args, buffers):
        arg.name = buf
        arg.add_attribute("noalias")
    *pointers, dim_ptr, seed = fn.args
    e = Emitter(m, fn, {buf: (ptr, p.buffers[buf].dtype) for buf, ptr in zip(buffers, pointers)},
                dims, dim_ptr, seed, functions)
    for step in plan_kernel(p, kernel):
        if isinstance(step, Launch):
            _launch(e, step, e.expr(step.blocks))
        else:
            e.stmt(step)  # a scan: the host calls its body once per step
    e.b.ret_void()
    return fn


def _launch(e: Emitter, launch: Launch, blocks: ir.Value) -> None:
    """The launch on a grid of `blocks` blocks, one block after another."""
    grid = EmulatedGrid(launch.threads, blocks)

    def block(k: ir.Value) -> None:
        grid.current = k
        emit_launch(e, grid, launch)
    e.loop("block", blocks, block)


class EmulatedGrid:
    """A grid run on one CPU thread: the caller loops over blocks (setting `current`), and
    each step between barriers loops over the threads."""

    def __init__(self, threads: int, blocks: ir.Value):
        self.threads = threads
        self.count = blocks
        self.current: ir.Value = I64(0)

    def block(self) -> ir.Value:
        return self.current

    def blocks(self) -> ir.Value:
        return self.count

    def each_thread(self, e: Emitter, body: Callable[[ir.Value], None]) -> None:
        e.loop("thread", I64(self.threads), body)

    def barrier(self, e: Emitter) -> None:
        """Nothing to do: the threads loop ran every thread up to here."""

    def shared(self, e: Emitter, name: str, dtype: DType, count: int) -> ir.Value:
        array = e.alloca_builder.alloca(ir.ArrayType(llvm_type(dtype), count), name=name)
        return e.b.gep(array, [I64(0), I64(0)])

    def private(self, e: Emitter, name: str, dtype: DType, count: int
                ) -> Callable[[ir.Value], ir.Value]:
        """Every thread's `count` elements side by side (they outlive each threads loop)."""
        array = e.alloca_builder.alloca(ir.ArrayType(llvm_type(dtype), count * self.threads),
                                        name=name)
        return lambda thread: e.b.gep(array, [I64(0), e.b.mul(thread, I64(count))])


def build_launch_module(device: DeviceProgram) -> ir.Module:
    """Each launch of a device program as a CPU function with its PTX kernel's parameters
    (buffer pointers, the dims, the seed) and then the grid's size: what a stand-in for the CUDA
    driver calls to run the device runtime's host side (runtime/cuda_device.py) without a GPU."""
    m = ir.Module(name=f"{device.name}.launches")
    m.triple = llvm.get_process_triple()
    for program in device.programs.values():
        for steps in device.steps[program.name]:
            for launch in steps:
                if isinstance(launch, Launch):
                    _launch_function(m, program, launch, device.dims)
    return m


def _launch_function(m: ir.Module, p: Program, launch: Launch, dims: list[str]) -> None:
    types = [memory_type(p.buffers[buf].dtype).as_pointer() for buf in launch.buffers]
    fn = ir.Function(m, ir.FunctionType(ir.VoidType(), types + [I64] * (len(dims) + 2)),
                     ptx_name(launch.name))
    pointers, values = fn.args[:len(types)], fn.args[len(types):]
    e = Emitter(m, fn, {buf: (ptr, p.buffers[buf].dtype)
                        for buf, ptr in zip(launch.buffers, pointers)},
                dims, None, values[-2], {}, dim_values=dict(zip(dims, values)))
    _launch(e, launch, values[-1])
    e.b.ret_void()
