"""The CUDA target from the runtime's side: what a model's kernels become for the GPU (PTX and
launches, made anywhere: `dlgc compile --target cuda --emit ptx`), and the check that a GPU can
run them (pycuda, imported lazily, and a driver with a device).

Running on a GPU is not built yet: `require_gpu` tells a machine without pycuda or a GPU which
of the two is missing and how to get it; where both are present it says that the device
runtime is not there yet, and `target="cuda-emulated"` runs the same launches on the CPU.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dlg.compiler.codegen.nvptx import ARCH, DeviceProgram, ptx_name
from dlg.compiler.codegen.nvptx_launch import Launch
from dlg.compiler.pipeline import CompileOptions, compile_ptx
from dlg.compiler.kernel_ir import format_expr, format_stmt
from dlg.errors import DlgImportError, DlgValueError
from dlg.runtime.training import build_train_step

if TYPE_CHECKING:
    from dlg.runtime.model import Model

INSTALL = "pip install 'dlg[cuda]'"


def device_program(model: Model, train: bool = False, options: CompileOptions | None = None,
                   arch: str = ARCH) -> DeviceProgram:
    """The model's graph (or its whole training step) as CUDA launches and PTX for `arch`."""
    if not train:
        return compile_ptx(model.graph, options=options, arch=arch)
    if model.train_spec is None or model.train_graph is None:
        raise DlgValueError(f"model {model.name} has no train section")
    step, _ = build_train_step(model.train_graph, model.train_spec, options)
    return compile_ptx(step, model.train_spec.loss, options, arch)


def format_launches(device: DeviceProgram) -> str:
    """Each kernel's launches: kind, block size, grid size (an expression of the dims), and
    the statements each point runs (`dlgc compile --target cuda --emit kernels`)."""
    lines = [f"// {device.name} for {device.arch}, dims ({', '.join(device.dims)})"]
    for program, kernels in device.steps.items():
        lines.append(f"program {program}:")
        for steps in kernels:
            for s in steps:
                if not isinstance(s, Launch):
                    lines += format_stmt(s)
                    continue
                loops = ", ".join(f"{v} < {format_expr(n)}" for v, n in s.loops)
                guards = f" if finite({', '.join(s.guards)})" if s.guards else ""
                lines.append(f"  launch {ptx_name(s.name)}: {s.kind}, {s.threads} threads x "
                             f"{format_expr(s.blocks)} blocks over [{loops}]{guards}")
                lines += [x for b in s.body for x in format_stmt(b, 2)]
    return "\n".join(lines)


def require_gpu() -> Any:
    """pycuda's driver module, initialised, when pycuda, a driver and a GPU are all here; else
    a DlgError naming the one missing and how to get it."""
    try:
        driver = importlib.import_module("pycuda.driver")  # optional: the `cuda` extra
    except ImportError as e:
        if "libcuda" in str(e):
            raise DlgImportError("target 'cuda' needs the NVIDIA driver (libcuda.so.1 was not "
                                 "found): install the driver for your GPU, or use "
                                 "target='cuda-emulated' to run the GPU's kernels on the CPU"
                                 ) from None
        raise DlgImportError(f"target 'cuda' needs pycuda: {INSTALL} (and an NVIDIA driver), "
                             "or use target='cuda-emulated' to run the GPU's kernels on the CPU"
                             ) from None
    try:
        driver.init()
        count = driver.Device.count()
    except Exception as e:  # pycuda's errors are not builtins (LogicError, RuntimeError)
        raise DlgValueError(f"target 'cuda': the CUDA driver did not start ({e}); is there an "
                            "NVIDIA GPU and a working driver?") from None
    if count == 0:
        raise DlgValueError("target 'cuda': the CUDA driver sees no GPU")
    return driver
