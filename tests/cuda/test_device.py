"""On an NVIDIA GPU (marked `cuda`; skipped without pycuda, a driver or a device): every
model's inference on the device against the interpreter and against the emulated grid, which
runs the same launches on the CPU. Run on a GPU machine: `python -m pytest -m cuda tests/cuda`.
"""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.runtime.cuda import require_gpu
from tests.compiler.test_native import ATOL, RTOL, random_batch
from tests.test_models import ALL, MODELS

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module", autouse=True)
def gpu() -> None:
    try:
        require_gpu()
    except dlg.DlgError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("name", ALL)
def test_models_infer_on_the_gpu_like_the_interpreter_and_the_emulation(name):
    m = dlg.load(MODELS / name)
    gpu, emulated = dlg.compile(m, target="cuda"), dlg.compile(m, target="cuda-emulated")
    for n in (1, 5, 300):
        x = random_batch(m, m.graph, n, n)
        got = gpu(**x)
        np.testing.assert_allclose(got, m(**x), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(got, emulated(**x), rtol=RTOL, atol=ATOL)
