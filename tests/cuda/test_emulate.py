"""The CUDA grid emulated on the CPU (`target="cuda-emulated"`: the GPU's launches, index
arithmetic, block sums and barriers run as loops) against the NumPy interpreter: every model's
inference at several batch sizes, training steps, the three launch kinds, and edge sizes (1,
primes, more points than one grid holds).

Tolerances as tests/compiler/test_native.py's: the block sums add in another order."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import dlg
from dlg.compiler.codegen import nvptx_launch
from dlg.compiler.pipeline import CompileOptions
from dlg.ir import Builder, Graph, TensorType
from dlg.runtime.interp import Interpreter
from dlg.runtime.native import NativeGraph
from dlg.runtime.training import build_train_step
from tests.compiler.test_native import ATOL, RTOL, op_graph, random_batch
from tests.test_models import ALL, LARGE, MODELS
from tools.fuzz import graphs
from tools.fuzz.oracle import close, float64_run

EMULATED = CompileOptions(target="cuda-emulated")


@pytest.mark.parametrize("name", ALL)
def test_models_infer_like_the_interpreter_on_the_emulated_grid(name):
    m = dlg.load(MODELS / name)
    exe = dlg.compile(m, target="cuda-emulated")
    for n in (1, 3):
        x = random_batch(m, m.graph, n, n)
        np.testing.assert_allclose(exe(**x), m(**x), rtol=RTOL, atol=ATOL)


def check_training(name: str) -> None:
    m = dlg.load(MODELS / name)
    graph, state = build_train_step(m.train_graph, m.train_spec)
    ng = NativeGraph(graph, loss="loss", options=EMULATED)
    ours = {k: v.copy() for k, v in {**m.params, **state}.items()}
    ref = {k: v.copy() for k, v in ours.items()}
    for step in range(2):
        batch = random_batch(m, graph, 3, step)
        got = ng(batch, ours)
        want, updates = Interpreter().run(graph, batch, ref)
        ref.update(updates)
        np.testing.assert_allclose(got["loss"], want["loss"], rtol=RTOL, atol=ATOL)
    for k in ref:
        np.testing.assert_allclose(ours[k], ref[k], rtol=1e-3, atol=1e-4, err_msg=k)


def test_a_training_step_matches_the_interpreter_on_the_emulated_grid():
    check_training("mlp.dlg")


# resnet.dlg at full size and batch 3: two steps amplify rounding past these tolerances on the
# CPU backend too (momentum buffers 7e-3 off); tests/test_models_resnet_transformer.py has it small
@pytest.mark.cuda_full
@pytest.mark.parametrize("name", sorted(set(ALL) | LARGE - {"resnet.dlg"}))
def test_every_training_step_matches_the_interpreter_on_the_emulated_grid(name):
    check_training(name)


@pytest.mark.parametrize("name", ["scatter_add", "scatter", "cumsum", "argmax", "conv2d", "erf"])
def test_ops_of_every_launch_kind_match_the_interpreter(name):
    g, inputs = op_graph(name)
    expected, _ = Interpreter().run(g, inputs, {})
    got = NativeGraph(g, options=EMULATED)(inputs, {})
    for k, want in expected.items():
        np.testing.assert_allclose(got[k], want, rtol=RTOL, atol=ATOL, err_msg=k)


@pytest.fixture(scope="module")
def edge() -> tuple[Graph, NativeGraph]:
    """Per row of x [N, K]: its sum (a block sum when N is small), max, and x scaled by the
    whole tensor's mean; the dims N and K are symbolic."""
    g = Graph("edge")
    b = Builder(g)
    x = b.input("x", TensorType.parse("f32[N, K]"))
    g.set_output("rows", b.reduce_sum(x, axes=[1]))
    g.set_output("peak", b.reduce_max(x, axes=[1]))
    g.set_output("scaled", b.mul(x, b.reduce_mean(x, axes=[0, 1], keepdims=True)))
    return g, NativeGraph(g, options=EMULATED)


@pytest.mark.parametrize("shape", [(1, 1), (1, 13), (7, 1), (13, 311), (3, 100_003)])
def test_edge_sizes_match_the_interpreter(edge, shape):
    g, ng = edge
    x = {"x": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    expected, _ = Interpreter().run(g, x, {})
    got = ng(x, {})
    for k, want in expected.items():
        np.testing.assert_allclose(got[k], want, rtol=RTOL, atol=1e-4, err_msg=k)
    points = shape[0] * shape[1]  # (3, 100003): more points than MAX_BLOCKS blocks of threads
    assert points <= nvptx_launch.MAX_BLOCKS * nvptx_launch.THREADS or points > 300_000


@pytest.mark.cuda_full
@pytest.mark.parametrize("index", range(60))
def test_fuzz_graphs_match_the_interpreter_on_the_emulated_grid(index):
    """The graphs campaign's cases (tools/fuzz/graphs.py, with gradients half the time), judged
    by its oracle, on the emulated grid."""
    g, inputs = graphs.make(0, index)
    expected, _ = Interpreter().run(g, inputs, {})
    got = NativeGraph(g, options=EMULATED)(inputs, {})
    exact = functools.cache(lambda: float64_run(g, inputs, {}))
    for k, want in expected.items():
        close(f"{k}: emulated", got[k], want, lambda k=k: exact()[k])
