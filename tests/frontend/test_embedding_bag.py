"""nn.EmbeddingBag and F.embedding_bag against torch: every mode with offsets (include_last_offset,
empty bags) and with 2-d input, padding_idx, per_sample_weights; values and gradients (weight and
per-sample weights), the module's options and repr, traced and compiled gradients, and torch's
refusals as DlgErrors."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
import dlg.nn.functional as F
from dlg.compiler.passes.autodiff import grad
from dlg.errors import DlgError
from dlg.runtime.native import NativeGraph

torch = pytest.importorskip("torch")
TF = torch.nn.functional
R = np.random.default_rng(0)
WEIGHT = R.standard_normal((10, 4)).astype(np.float32)
FLAT = np.array([1, 2, 4, 5, 4, 3, 2, 9, 2, 2])
OFFSETS = np.array([0, 4, 4, 6, 8])  # bag 1 is empty; [8:] holds only padding when it is 2
GRID = np.array([[1, 2, 4], [5, 2, 3], [2, 2, 2], [9, 0, 9]])


def compare(make_args, mode, padding_idx=None, include_last_offset=False, weighted=False):
    """embedding_bag's value and gradients (weight, per_sample_weights) on dlg and torch."""
    results = []
    for lib, fn in ((dlg, F.embedding_bag), (torch, TF.embedding_bag)):
        indices, offsets = make_args(lib)
        w = lib.tensor(WEIGHT, requires_grad=True)
        scales = np.linspace(0.5, 1.5, int(np.prod(indices.shape)), dtype=np.float32)
        psw = lib.tensor(scales.reshape(indices.shape), requires_grad=True) if weighted else None
        out = fn(indices, w, offsets, mode=mode, per_sample_weights=psw,
                 include_last_offset=include_last_offset, padding_idx=padding_idx)
        seed = np.linspace(-1, 1, int(np.prod(out.shape)), dtype=np.float32).reshape(out.shape)
        (out * lib.tensor(seed)).sum().backward()
        results.append([out.detach().numpy(), w.grad.numpy()]
                       + ([psw.grad.numpy()] if weighted else []))
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("padding_idx", [None, 2])
@pytest.mark.parametrize("include_last_offset", [False, True])
def test_offsets_form(mode, padding_idx, include_last_offset):
    flat, offsets = (FLAT[:8], OFFSETS) if include_last_offset else (FLAT, OFFSETS[:-1])
    compare(lambda lib: (lib.tensor(flat), lib.tensor(offsets)), mode, padding_idx,
            include_last_offset)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("padding_idx", [None, 2])
def test_two_dimensional_form(mode, padding_idx):
    compare(lambda lib: (lib.tensor(GRID), None), mode, padding_idx)


@pytest.mark.parametrize("padding_idx", [None, 2])
def test_per_sample_weights(padding_idx):
    compare(lambda lib: (lib.tensor(FLAT), lib.tensor(OFFSETS[:-1])), "sum", padding_idx,
            weighted=True)
    compare(lambda lib: (lib.tensor(GRID), None), "sum", padding_idx, weighted=True)


def test_module_matches_torch():
    ours = dlg.nn.EmbeddingBag(10, 4, mode="max", padding_idx=2)
    theirs = torch.nn.EmbeddingBag(10, 4, mode="max", padding_idx=2)
    assert repr(ours) == repr(theirs)
    assert not ours.weight.detach().numpy()[2].any()  # the padding row starts at zero, as torch's
    ours.load_state_dict({"weight": theirs.weight.detach().numpy()})
    np.testing.assert_allclose(ours(dlg.tensor(FLAT), dlg.tensor(OFFSETS[:-1])).detach().numpy(),
                               theirs(torch.tensor(FLAT), torch.tensor(OFFSETS[:-1]))
                               .detach().numpy(), rtol=1e-6)
    pre = dlg.nn.EmbeddingBag.from_pretrained(dlg.tensor(WEIGHT), mode="sum")
    want = torch.nn.EmbeddingBag.from_pretrained(torch.tensor(WEIGHT), mode="sum")
    assert not pre.weight.requires_grad and repr(pre) == repr(want)
    np.testing.assert_allclose(pre(dlg.tensor(GRID)).numpy(),
                               want(torch.tensor(GRID)).numpy(), rtol=1e-6)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_traced_and_compiled_gradients(mode):
    """A bag model traced at one batch, its loss's gradient compiled and run at another."""
    class BagLoss(dlg.nn.Module):
        def __init__(self):
            super().__init__()
            self.bag = dlg.nn.EmbeddingBag(10, 4, mode=mode, padding_idx=0)

        def forward(self, idx):
            return self.bag(idx).tanh().sum()
    net = BagLoss()
    net.bag.load_state_dict({"weight": WEIGHT})
    model = dlg.trace(net, GRID[:2])
    gg = grad(model.graph, "output", wrt=["bag.weight"])
    got = NativeGraph(gg)({"idx": GRID}, {"bag.weight": WEIGHT})
    ref = torch.nn.EmbeddingBag(10, 4, mode=mode, padding_idx=0)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(WEIGHT))
    want = ref(torch.tensor(GRID)).tanh().sum()
    want.backward()
    np.testing.assert_allclose(got["output"], want.item(), rtol=1e-5)
    np.testing.assert_allclose(got["grad.bag.weight"], ref.weight.grad.numpy(), rtol=1e-5,
                               atol=1e-6)


def test_traced_offsets_form_compiles():
    model = dlg.trace(lambda idx, off: F.embedding_bag(idx, dlg.tensor(WEIGHT), off, mode="mean"),
                      FLAT[:8], OFFSETS[:-1])
    want = TF.embedding_bag(torch.tensor(FLAT), torch.tensor(WEIGHT), torch.tensor(OFFSETS[:-1]),
                            mode="mean")
    np.testing.assert_allclose(dlg.compile(model)(idx=FLAT, off=OFFSETS[:-1]), want.numpy(),
                               rtol=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda w: F.embedding_bag(dlg.tensor(FLAT), w, dlg.tensor(OFFSETS), mode="mean",
                               per_sample_weights=dlg.ones(10)),
     "per_sample_weights is only supported for mode='sum'"),
    (lambda w: F.embedding_bag(dlg.tensor(GRID), w, dlg.tensor([0, 1])),
     "with a 2-d input .* offsets must be None"),
    (lambda w: F.embedding_bag(dlg.tensor(FLAT), w), "a 1-d input needs offsets"),
    (lambda w: F.embedding_bag(dlg.tensor(FLAT), w, dlg.tensor([1, 4])),
     r"offsets must start at 0 .* got \[1, 4\]"),
    (lambda w: F.embedding_bag(dlg.tensor(FLAT), w, dlg.tensor([0, 11])),
     "nor pass the input's length 10"),
    (lambda w: F.embedding_bag(dlg.tensor(FLAT), w, dlg.tensor(OFFSETS),
                               include_last_offset=True),
     "the last offset ends the last bag: it must be the input's length 10"),
    (lambda w: F.embedding_bag(dlg.tensor(GRID), w, mode="median"), "mode must be"),
    (lambda w: F.embedding_bag(dlg.tensor(GRID), w, mode="sum",
                               per_sample_weights=dlg.ones(3)),
     r"per_sample_weights \[3\] must have the input's shape \[4, 3\]"),
    (lambda w: F.embedding_bag(dlg.tensor(GRID), w, padding_idx=10), "padding_idx must be"),
])
def test_errors(call, message):
    with pytest.raises(DlgError, match=message):
        call(dlg.tensor(WEIGHT))
