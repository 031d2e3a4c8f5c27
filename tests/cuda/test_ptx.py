"""Every model's kernels lower to PTX that ptxas accepts for sm_80 (A100) and sm_90 (H100/H200):
no GPU needed, only the CUDA toolkit's ptxas (skipped where it is absent). Inference of every
model here; training steps, and the large models, with -m cuda_full."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import dlg
from dlg.compiler.codegen.nvptx import ptx_name
from dlg.runtime.cuda import device_program
from tests.test_models import ALL, LARGE, MODELS

PTXAS = shutil.which("ptxas")
needs_ptxas = pytest.mark.skipif(PTXAS is None, reason="ptxas (CUDA toolkit) not on PATH")


def assemble(ptx: str, folder: Path, archs: tuple[str, ...] = ("sm_80", "sm_90")) -> None:
    """ptxas on the PTX for each arch at once (one process each, side by side)."""
    source = folder / "kernels.ptx"
    source.write_text(ptx)
    runs = {arch: subprocess.Popen([PTXAS, f"-arch={arch}", str(source), "-o",
                                    str(folder / f"{arch}.cubin")], stderr=subprocess.PIPE,
                                   text=True) for arch in archs}
    for arch, run in runs.items():
        _, err = run.communicate()
        assert run.returncode == 0, f"ptxas -arch={arch}: {err[:2000]}"


def check(m: dlg.Model, folder: Path, train: bool = False) -> None:
    device = device_program(m, train=train)
    for launch in device.launches():  # every launch is an entry point of the module
        assert f".entry {ptx_name(launch.name)}(" in device.ptx
    assert "__nv_" not in device.ptx, "libdevice's functions are linked and inlined"
    assemble(device.ptx, folder)


@needs_ptxas
@pytest.mark.parametrize("name", ALL)
def test_every_model_lowers_to_ptx_that_ptxas_accepts(name, tmp_path):
    check(dlg.load(MODELS / name), tmp_path)


@needs_ptxas
@pytest.mark.cuda_full
@pytest.mark.parametrize("name", sorted(ALL + list(LARGE)))
def test_every_training_step_lowers_to_ptx_that_ptxas_accepts(name, tmp_path):
    check(dlg.load(MODELS / name), tmp_path, train=True)


@needs_ptxas
@pytest.mark.cuda_full
@pytest.mark.parametrize("name", sorted(LARGE))
def test_large_models_lower_to_ptx_that_ptxas_accepts(name, tmp_path):
    check(dlg.load(MODELS / name), tmp_path)


def test_the_arch_sets_the_ptx_target():
    device = device_program(dlg.load(MODELS / "linear_regression.dlg"), arch="sm_90")
    assert ".target sm_90" in device.ptx and ".version 7.8" in device.ptx
