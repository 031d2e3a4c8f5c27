"""dlg.compile(module) and dlg.compile(function) without example inputs compile at the first
call, as torch.compile's do; the eager module (or torch, the same weights) is the oracle."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
import dlg.nn as nn


def net() -> nn.Module:
    dlg.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))


def test_a_module_compiles_at_its_first_call_and_serves_every_batch_size():
    model = net()
    fast = dlg.compile(model)
    assert fast.compiled == {}
    for n in (5, 1, 9):
        x = dlg.randn(n, 3)
        np.testing.assert_allclose(fast(x), model(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    assert len(fast.compiled) == 1  # the batch axis stayed symbolic: one compile


def test_a_new_feature_size_or_dtype_compiles_again_and_a_wrong_one_is_the_models_error():
    double = dlg.compile(lambda a: a * 2 + 1)
    np.testing.assert_array_equal(double(np.ones((2, 3), np.float32)), np.full((2, 3), 3))
    np.testing.assert_array_equal(double(np.ones((2, 5), np.float64)), np.full((2, 5), 3))
    assert len(double.compiled) == 2
    with pytest.raises(dlg.DlgShapeError, match="does not fit weight"):
        dlg.compile(net())(np.ones((2, 4), np.float32))


def test_a_function_with_example_inputs_compiles_now():
    exe = dlg.compile(lambda a, b: dlg.relu(a) * b, np.ones((2, 3), np.float32),
                      np.ones((2, 3), np.float32))
    assert isinstance(exe, dlg.Executable)
    x = np.array([[-1.0, 2.0, 0.5]], np.float32)
    np.testing.assert_allclose(exe(x, np.full_like(x, 3)), [[0.0, 6.0, 1.5]])


def test_a_tuple_argument_is_one_input_per_element_traced_and_compiled():
    dlg.manual_seed(1)
    cell = nn.LSTMCell(3, 4)
    x, h, c = dlg.randn(2, 3), dlg.randn(2, 4), dlg.randn(2, 4)
    want = [t.detach().numpy() for t in cell(x, (h, c))]
    traced = dlg.trace(cell, x, (h, c))
    assert [n.name for n in traced.graph.inputs] == ["input", "hx_0", "hx_1"]
    now = dlg.compile(cell, x, (h, c))(x.numpy(), h.numpy(), c.numpy())
    lazy = dlg.compile(cell)(x, (h, c))
    for got in (now, lazy):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


class Attend(nn.Module):
    """One decoder step of Bahdanau attention over encoder outputs [N, T, H], given the GRU's
    hidden state [1, N, H]: its batch is axis 1 (axis 0 of every input was N, and the state's
    1 met the outputs' N: 'shapes do not broadcast: [4, N, 16] vs [N, 5, 16]')."""

    def __init__(self):
        super().__init__()
        dlg.manual_seed(0)
        self.wa, self.ua, self.va = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 1)

    def forward(self, keys, hidden):
        query = hidden.permute(1, 0, 2)
        scores = self.va(dlg.tanh(self.wa(query) + self.ua(keys))).squeeze(2).unsqueeze(1)
        return dlg.bmm(dlg.softmax(scores, dim=-1), keys)


def test_an_rnn_state_batched_on_axis_1_compiles_and_serves_every_batch_size():
    model = Attend()
    fast = dlg.compile(model)
    for n in (3, 5, 3):
        keys, hidden = dlg.randn(n, 6, 4), dlg.randn(1, n, 4)
        np.testing.assert_allclose(fast(keys, hidden), model(keys, hidden).detach().numpy(),
                                   rtol=1e-5, atol=1e-6)
    assert len(fast.compiled) == 1
    traced = dlg.trace(model, dlg.randn(2, 6, 4), dlg.randn(1, 2, 4))
    assert [n.types[0].shape for n in traced.graph.inputs[:2]] == [
        (dlg.ir.shapes.Sym.named("N"), 6, 4), (1, dlg.ir.shapes.Sym.named("N"), 4)]


def test_an_input_without_the_batch_size_is_static():
    fast = dlg.compile(lambda x, table: x @ table)
    x, table = np.ones((5, 3), np.float32), np.ones((3, 2), np.float32)
    np.testing.assert_array_equal(fast(x, table), x @ table)
    np.testing.assert_array_equal(fast(x[:4], table), x[:4] @ table)
    assert len(fast.compiled) == 1  # the table was static, the batch symbolic
