"""Gradients of every reference model's training loss: against float64 finite differences, and
against torch.autograd with the same weights and batch."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.compiler.passes.autodiff import grad
from dlg.runtime.interp import Interpreter
from tests.compiler.gradcheck import check_gradients, to_f64
from benchmarks.peers import torch_model
from tests.test_models import ALL, MODELS


def batch_for(m: dlg.Model, graph, n: int, rng: np.random.Generator, f64: bool
              ) -> dict[str, np.ndarray]:
    """Random features and valid labels (class indices below the output width, or targets of
    the output's shape) for the training graph's inputs."""
    classes = next(iter(m.outputs.values())).shape[-1]
    out = {}
    for node in graph.inputs:
        t = node.types[0]
        shape = tuple(n if not isinstance(d, int) else d for d in t.shape)
        if t.dtype.is_float:
            out[node.name] = rng.random(shape) if node.name != "x" else rng.standard_normal(shape)
            out[node.name] = out[node.name].astype(np.float64 if f64 else t.dtype.np)
        else:
            out[node.name] = rng.integers(0, int(classes), shape).astype(t.dtype.np)
    return out


@pytest.mark.parametrize("name", ALL)
def test_model_gradients_match_finite_differences(name):
    m = dlg.load(MODELS / name)
    g = to_f64(m.train_graph)
    rng = np.random.default_rng(0)
    inputs = batch_for(m, g, 2, rng, f64=True)
    params = {k: v.astype(np.float64) for k, v in m.params.items()}
    # a small step: with tens of thousands of ReLU and max-pool kinks, a step of 1e-6 along a
    # random direction crosses some of them (errors ~1e-3); 1e-7 stays clear in float64
    check_gradients(g, inputs, params, wrt=m.trainable, loss="loss", rtol=1e-6, eps=1e-7)


TORCH_LOSS = {"mlp.dlg": "nll_loss"}


@pytest.mark.parametrize("name", ["mlp.dlg", "convnet.dlg", "cnn.dlg", "rnn.dlg", "gru.dlg",
                                  "lstm.dlg"])
def test_model_gradients_match_torch_autograd(name):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch_model(name.removesuffix(".dlg"))
    m = dlg.load(MODELS / name)
    m.load_state_dict(net.state_dict())
    inputs = batch_for(m, m.train_graph, 4, np.random.default_rng(1), f64=False)
    outs, _ = Interpreter().run(grad(m.train_graph, "loss"), inputs, m.params)
    loss_fn = getattr(torch.nn.functional, TORCH_LOSS.get(name, "cross_entropy"))
    loss = loss_fn(net(torch.from_numpy(inputs["x"])), torch.from_numpy(inputs["y"]))
    loss.backward()
    np.testing.assert_allclose(outs["loss"], loss.item(), rtol=1e-5)
    for k, p in net.named_parameters():
        scale = float(p.grad.abs().max())
        np.testing.assert_allclose(outs["grad." + k], p.grad.numpy(), rtol=1e-4,
                                   atol=1e-5 * scale, err_msg=k)
