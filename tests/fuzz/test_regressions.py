"""Findings of the fuzz campaigns (tools/fuzz, docs/fuzzing.md), each minimised to a fast case
with an independent oracle: the NumPy interpreter on the same graph."""

from __future__ import annotations

import numpy as np
import dlg

RTOL, ATOL = 1e-4, 1e-5


def assert_compiled_matches(source: str, **inputs: np.ndarray) -> None:
    m = dlg.loads(source)
    want, got = m(**inputs), dlg.compile(m)(**inputs)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_recurrent_forward_compiles_with_its_projection_hoisted():
    """parse campaign, every recurrent model: hoist read a projection's rows (a bias added to
    the hoisted matmul) from the wrong table (`rows.get(v, outer[v])` evaluates `outer[v]`
    first), so no RNN/GRU/LSTM compiled for inference: KeyError in pass 'hoist'."""
    source = """
    model M {
        input x: f32[N, 5, 3]
        layer rnn = RNN(3, 4)
        seq, h = rnn(x)
        output y = seq
    }
    """
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    assert_compiled_matches(source, x=x)
