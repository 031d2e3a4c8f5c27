"""The device runtime's host side (runtime/cuda_device.py: buffers, copies, kernel arguments,
grid sizes, scans with their carries and seeds, parameters written back) without a GPU: a
stand-in for pycuda's driver whose memory is host memory and whose kernels are the launches
compiled for the CPU on the emulated grid (codegen/emulate.py's `build_launch_module`)."""

from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
import numpy as np
import pytest

import dlg
from dlg.compiler.codegen.emulate import build_launch_module
from dlg.compiler.codegen.llvm_cpu import new_target_machine, optimize
from dlg.compiler.codegen.parts import O1
from dlg.runtime.cuda_device import DeviceGraph
from dlg.runtime.interp import Interpreter
from dlg.runtime.training import build_train_step
from tests.compiler.test_native import ATOL, RTOL, random_batch
from tests.test_models import MODELS


class EmulatedDriver:
    """pycuda.driver's calls that DeviceGraph makes, on host memory and CPU launches."""

    def __init__(self) -> None:
        self.kept: list[np.ndarray] = []
        self.engine = None
        self.launches = 0

    def module_from_buffer(self, ptx: bytes) -> EmulatedDriver:
        return self

    def load(self, device) -> None:  # the launches of the program DeviceGraph compiled
        text = str(build_launch_module(device))
        self.engine = llvm.create_mcjit_compiler(optimize(text, O1), new_target_machine())
        self.engine.finalize_object()

    def get_function(self, name: str):
        def launch(*args, block, grid) -> None:
            address = self.engine.get_function_address(name)
            proto = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p if isinstance(a, np.uintp)
                                             else ctypes.c_int64 for a in args], ctypes.c_int64)
            proto(address)(*[int(a) for a in args], grid[0])
            self.launches += 1
        return launch

    def mem_alloc(self, size: int) -> int:
        self.kept.append(np.zeros(size, np.uint8))
        return self.kept[-1].ctypes.data

    def memcpy_htod(self, dst: int, src: np.ndarray) -> None:
        ctypes.memmove(dst, src.ctypes.data, src.nbytes)

    def memcpy_dtoh(self, dst: np.ndarray, src: int) -> None:
        ctypes.memmove(dst.ctypes.data, src, dst.nbytes)

    def memcpy_dtod(self, dst: int, src: int, size: int) -> None:
        ctypes.memmove(dst, src, size)


def device_graph(graph, loss=None) -> tuple[DeviceGraph, EmulatedDriver]:
    driver = EmulatedDriver()
    dg = DeviceGraph(graph, loss, driver=driver)
    driver.load(dg.device)
    return dg, driver


@pytest.mark.parametrize("name", ["lstm.dlg", pytest.param("mlp.dlg",
                                                          marks=pytest.mark.cuda_full)])
def test_the_device_runtime_infers_like_the_interpreter_on_the_emulated_grid(name):
    m = dlg.load(MODELS / name)
    dg, driver = device_graph(m.graph)
    for n in (1, 5):
        x = random_batch(m, m.graph, n, n)
        (got,) = dg.run(tuple(x[k] for k in dg.input_names),
                        tuple(m.params[k] for k in dg.param_names))
        np.testing.assert_allclose(got, m(**x), rtol=RTOL, atol=ATOL)
    assert driver.launches > 0


@pytest.mark.cuda_full
def test_the_device_runtime_updates_parameters_like_the_interpreter():
    m = dlg.load(MODELS / "rnn.dlg")
    graph, state = build_train_step(m.train_graph, m.train_spec)
    dg, _ = device_graph(graph, "loss")
    ours = {k: v.copy() for k, v in {**m.params, **state}.items()}
    ref = {k: v.copy() for k, v in ours.items()}
    batch = random_batch(m, graph, 3, 0)
    dg.run(tuple(batch[k] for k in dg.input_names), tuple(ours[k] for k in dg.param_names))
    _, updates = Interpreter().run(graph, batch, ref)
    for k, want in updates.items():
        np.testing.assert_allclose(ours[k], want, rtol=1e-3, atol=1e-4, err_msg=k)
