"""A compiled graph on an NVIDIA GPU through pycuda (`target="cuda"`): the PTX of
codegen/nvptx.py loaded as one module, its launches run in order from the host with grid sizes
evaluated from the inputs' dims, scans as host loops over their body's launches (pointers
offset per step, carries swapped as the CPU entry does).

Written without a GPU: the launch sequence is the one the emulated grid runs and the tests
check, but this module itself has run only up to its import guard (`runtime/cuda.py`'s
`require_gpu`); `python -m pytest -m cuda tests/cuda` is its check on a GPU machine. Simple
first: every buffer of a dims binding is a device allocation kept between calls; inputs and
parameters are copied in at each call, outputs and updated parameters copied back.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from dlg.compiler.codegen.nvptx import ptx_name
from dlg.compiler.codegen.nvptx_launch import Launch, evaluate
from dlg.compiler.kernel_ir import CallScan
from dlg.compiler.pipeline import CompileOptions, compile_ptx
from dlg.errors import DlgValueError
from dlg.ir.graph import Graph
from dlg.ir.shapes import evaluate_shape
from dlg.ir.types import TensorType
from dlg.runtime.cuda import require_gpu
from dlg.runtime.interp import check_input

SEED_STEP = 6364136223846793005  # a scan step's seed: seed * this + step + 1 (as the CPU's)


class DeviceGraph:
    """`run(args, params)` as NativeGraph's: inputs in declaration order, parameters by the
    program's order; returns the outputs in order and writes updated parameters back."""

    def __init__(self, graph: Graph, loss: str | None = None,
                 options: CompileOptions | None = None, driver: Any = None):
        """`driver` stands in for pycuda.driver (a test runs the host side on the emulated
        grid); by default pycuda's, with a context on the first device."""
        if driver is None:
            driver = require_gpu()
            importlib.import_module("pycuda.autoinit")
        self.driver = driver
        self.options = options or CompileOptions()
        self.device = compile_ptx(graph, loss, self.options)
        self.program = self.device.program
        module = self.driver.module_from_buffer(self.device.ptx.encode())
        self.functions = {x.name: module.get_function(ptx_name(x.name))
                          for x in self.device.launches()}
        p = self.program
        self.input_types = [(name, buf, TensorType(p.buffers[buf].dtype, p.buffers[buf].shape))
                            for name, buf in p.inputs]
        self.input_names = [name for name, _ in p.inputs]
        self.param_names = [name for name, _ in p.params]
        written = {b for k in p.kernels for b in k.writes}
        self.updated = [(i, buf) for i, (_, buf) in enumerate(p.params) if buf in written]
        self.memory: dict[tuple[int, ...], dict[str, Any]] = {}
        self.seed = int(np.random.default_rng().integers(2**62))

    @property
    def seconds(self) -> dict[str, float]:
        return self.options.seconds

    def release(self) -> None:
        """Free the device memory kept between calls."""
        self.memory.clear()

    def run(self, args: tuple[Any, ...], params: tuple[Any, ...],
            out: Any = None) -> tuple[np.ndarray, ...]:
        if out is not None:
            raise DlgValueError("target 'cuda' does not write into out= arrays yet")
        p = self.program
        env: dict[str, int] = {}
        arrays = [check_input(name, t, value, env)
                  for (name, _, t), value in zip(self.input_types, args)]
        buffers = self._buffers(env)
        for (_, buf), array in zip(p.inputs + p.params, arrays + list(params)):
            if array is None:
                raise DlgValueError(f"no value for {buf}")
            self.driver.memcpy_htod(buffers[buf], np.ascontiguousarray(array))
        self.seed += 1
        self._run(p.name, {b: int(ptr) for b, ptr in buffers.items()}, env, self.seed)
        for i, buf in self.updated:
            self.driver.memcpy_dtoh(params[i], buffers[buf])
        outputs = []
        for _, buf in p.outputs:
            b = p.buffers[buf]
            host = np.empty(evaluate_shape(b.shape, env), b.dtype.np)
            self.driver.memcpy_dtoh(host, buffers[buf])
            outputs.append(host)
        return tuple(outputs)

    def _buffers(self, env: Mapping[str, int]) -> dict[str, Any]:
        """Every buffer of every program at this binding (scan bodies' temporaries are the
        parent's), constants copied in once."""
        key = tuple(env.get(d, 0) for d in self.device.dims)
        if key not in self.memory:
            memory = {}
            for name, b in self.program.buffers.items():
                size = int(np.prod(evaluate_shape(b.shape, env), dtype=np.int64))
                memory[name] = self.driver.mem_alloc(max(size * b.dtype.np.itemsize, 1))
                if b.kind == "constant":
                    value = np.ascontiguousarray(b.value, dtype=b.dtype.np)
                    self.driver.memcpy_htod(memory[name], value)
            self.memory[key] = memory
        return self.memory[key]

    def _run(self, program: str, pointers: dict[str, int], env: Mapping[str, int],
             seed: int) -> None:
        dims = [np.int64(env.get(d, 0)) for d in self.device.dims]
        for kernel in self.device.steps[program]:
            for step in kernel:
                if isinstance(step, CallScan):
                    self._scan(program, step, pointers, env, seed)
                    continue
                assert isinstance(step, Launch)
                args = [np.uintp(pointers[b]) for b in step.buffers] + dims + [np.int64(seed)]
                self.functions[step.name](*args, block=(step.threads, 1, 1),
                                          grid=(evaluate(step.blocks, env), 1, 1))

    def _scan(self, program: str, s: CallScan, pointers: dict[str, int],
              env: Mapping[str, int], seed: int) -> None:
        """The body's launches once per step, as llvm_cpu's `call_scan`: sequence slots offset
        by the step, each carry's two buffers trading roles after a step, the final state
        copied once when it ends in the other buffer."""
        p, body = self.device.programs[program], self.device.programs[s.function]
        carries = [[pointers[state], pointers[nxt]] for state, nxt, _ in s.carry_copies]
        role = {state: (k, 0) for k, (state, _, _) in enumerate(s.carry_copies)}
        role |= {nxt: (k, 1) for k, (_, nxt, _) in enumerate(s.carry_copies)}
        steps = evaluate(s.steps, env)
        for t in range(steps):
            at = steps - 1 - t if s.reverse else t
            table = {}
            for buf, slot in zip(body.order, s.slots):
                if slot.elements is None and slot.buffer in role:
                    k, which = role[slot.buffer]
                    table[buf] = carries[k][which]
                    continue
                offset = 0 if slot.elements is None else at * evaluate(slot.elements, env)
                itemsize = p.buffers[slot.buffer].dtype.np.itemsize
                table[buf] = pointers[slot.buffer] + offset * itemsize
            step_seed = (seed * SEED_STEP + at + 1 + 2**63) % 2**64 - 2**63
            self._run(s.function, table, env, step_seed)
            for pair in carries:
                pair.reverse()
        for (state, _, count), (now, _) in zip(s.carry_copies, carries):
            if now != pointers[state]:
                size = evaluate(count, env) * p.buffers[state].dtype.np.itemsize
                self.driver.memcpy_dtod(pointers[state], now, size)
