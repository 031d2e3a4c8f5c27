"""Half-precision sums accumulate in f32 (passes/widen_half.py), as the interpreter (NumPy) and
PyTorch do: compiled f16 reductions, matmuls, convolutions and pools against the interpreter and
the float64 sum, over terms long enough that an f16 accumulator would stall."""

from __future__ import annotations

import numpy as np
import pytest

import dlg

SOURCES = {
    "sum": "model M { input a: f16[4, 4096]  output y = sum(a, axis=1) }",
    "mean": "model M { input a: f16[4, 4096]  output y = mean(a, axis=1) }",
    "matmul": "model M { input a: f16[4, 4096]  input b: f16[4096, 3]  output y = matmul(a, b) }",
    "conv": "model M { input a: f16[1, 256, 6, 6]  input b: f16[2, 256, 3, 3]\n"
            "          output y = conv2d(a, b) }",
    "softmax": "model M { input a: f16[2, 4096]  output y = softmax(a, axis=1) * 4096.0 }",
}


@pytest.mark.parametrize("name", SOURCES)
def test_compiled_half_sums_match_the_interpreter(name):
    model = dlg.loads(SOURCES[name])
    rng = np.random.default_rng(0)
    inputs = {k: rng.uniform(0, 1, [int(d) for d in t.shape]).astype(np.float16)
              for k, t in model.inputs.items()}
    want = model(**inputs)
    got = dlg.compile(model)(**inputs)
    assert got.dtype == np.float16
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=2 ** -10)

