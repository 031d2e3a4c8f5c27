"""dlg.nn.functional's losses against PyTorch's (values, and input gradients through
torch.autograd.grad), their options (weight, ignore_index, label smoothing, probability targets,
K-dimensional inputs, beta/delta, log_target, batchmean), the .dlg door and the errors."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
import dlg.nn.functional as F
from dlg.errors import DlgError

torch = pytest.importorskip("torch")
TF = torch.nn.functional

R = np.random.default_rng(0)
LOGITS = R.normal(size=(5, 4)).astype(np.float32)
LOGITS_K = R.normal(size=(3, 4, 2, 3)).astype(np.float32)
LABELS = np.array([0, 3, -100, 1, 3])
LABELS_K = R.integers(0, 4, (3, 2, 3))
LABELS_K[0, 1, 2] = 2
WEIGHT = R.uniform(0.5, 2.0, 4).astype(np.float32)
PROBS = np.exp(LOGITS) / np.exp(LOGITS).sum(1, keepdims=True)
A = R.normal(size=(3, 4)).astype(np.float32)
B = R.normal(size=(3, 4)).astype(np.float32)
POS = R.uniform(0.1, 2.0, (3, 4)).astype(np.float32)
SIGNS = np.where(R.random((3, 4)) < 0.5, -1.0, 1.0).astype(np.float32)


def both(fn_name: str, *arrays: np.ndarray, grad: tuple[int, ...] = (0,), **kwargs):
    """The loss and the gradients of its sum w.r.t. the inputs at `grad`, from dlg and torch."""
    kw_d = {k: dlg.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    kw_t = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    xs_d = [dlg.tensor(a, requires_grad=i in grad) for i, a in enumerate(arrays)]
    xs_t = [torch.tensor(a, requires_grad=i in grad) for i, a in enumerate(arrays)]
    out_d = getattr(F, fn_name)(*xs_d, **kw_d)
    out_t = getattr(TF, fn_name)(*xs_t, **kw_t)
    out_d.sum().backward()
    grads_t = torch.autograd.grad(out_t.sum(), [xs_t[i] for i in grad])
    return ((out_d.detach().numpy(), [xs_d[i].grad.numpy() for i in grad]),
            (out_t.detach().numpy(), [g.numpy() for g in grads_t]))


CASES = [
    ("cross_entropy", (LOGITS, LABELS), {}),
    ("cross_entropy", (LOGITS, LABELS), {"weight": WEIGHT}),
    ("cross_entropy", (LOGITS, LABELS), {"weight": WEIGHT, "reduction": "sum"}),
    ("cross_entropy", (LOGITS, LABELS), {"weight": WEIGHT, "reduction": "none"}),
    ("cross_entropy", (LOGITS, np.abs(LABELS) % 4), {"ignore_index": 3}),
    ("cross_entropy", (LOGITS, LABELS), {"weight": WEIGHT, "label_smoothing": 0.2}),
    ("cross_entropy", (LOGITS, LABELS), {"label_smoothing": 0.3, "reduction": "none"}),
    ("cross_entropy", (LOGITS, PROBS), {}),
    ("cross_entropy", (LOGITS, PROBS), {"weight": WEIGHT, "label_smoothing": 0.1}),
    ("cross_entropy", (LOGITS_K, LABELS_K), {"weight": WEIGHT, "ignore_index": 2}),
    ("cross_entropy", (LOGITS[0], np.array(2)), {}),
    ("nll_loss", (LOGITS, LABELS), {}),
    ("nll_loss", (LOGITS, LABELS), {"weight": WEIGHT}),
    ("nll_loss", (LOGITS, LABELS), {"weight": WEIGHT, "reduction": "sum"}),
    ("nll_loss", (LOGITS_K, LABELS_K), {"ignore_index": 2, "reduction": "none"}),
    ("kl_div", (A, POS), {}),
    ("kl_div", (A, POS), {"reduction": "batchmean"}),
    ("kl_div", (A, B), {"reduction": "sum", "log_target": True}),
    ("kl_div", (A, B), {"reduction": "none", "log_target": True}),
    ("smooth_l1_loss", (A, B), {}),
    ("smooth_l1_loss", (A, B), {"beta": 0.4, "reduction": "sum"}),
    ("smooth_l1_loss", (A, B), {"beta": 0.0}),
    ("huber_loss", (A, B), {"delta": 0.6}),
    ("huber_loss", (A, B), {"reduction": "none"}),
    ("mse_loss", (A, B), {"reduction": "sum"}),
    ("l1_loss", (A, B), {}),
    ("soft_margin_loss", (A, SIGNS), {}),
    ("poisson_nll_loss", (A, POS), {}),
    ("poisson_nll_loss", (POS, 3 * POS), {"log_input": False, "full": True}),
    ("hinge_embedding_loss", (A, SIGNS), {"margin": 0.5}),
    ("margin_ranking_loss", (A, B, SIGNS), {"margin": 0.2}),
    ("binary_cross_entropy", (POS / 2.5, PROBS[:3]), {"weight": WEIGHT}),
    ("cosine_embedding_loss", (A, B, SIGNS[:, 0]), {"margin": 0.1}),
    ("cosine_embedding_loss", (A[0], B[0], SIGNS[0, :1].reshape(())), {"reduction": "none"}),
    ("triplet_margin_loss", (A, B, POS), {"margin": 0.5}),
    ("triplet_margin_loss", (A, B, POS), {"p": 1.0, "swap": True, "reduction": "sum"}),
    ("gaussian_nll_loss", (A, B, POS), {}),
    ("gaussian_nll_loss", (A, B, POS[:, 0]), {"full": True, "reduction": "none"}),
    ("gaussian_nll_loss", (A, B, POS[:, :1]), {"reduction": "sum"}),
    ("binary_cross_entropy_with_logits", (A, PROBS[:3]), {"pos_weight": WEIGHT}),
    ("binary_cross_entropy_with_logits", (A, PROBS[:3]), {"pos_weight": WEIGHT,
                                                           "weight": WEIGHT[:1],
                                                           "reduction": "none"}),
    ("binary_cross_entropy_with_logits", (A, PROBS[:3]), {"weight": WEIGHT,
                                                           "reduction": "sum"}),
]


# torch gives these targets no gradient
SIGN_TARGETS = {"soft_margin_loss", "hinge_embedding_loss", "cosine_embedding_loss"}


@pytest.mark.parametrize("name, arrays, kwargs", CASES,
                         ids=[f"{c[0]}-{'-'.join(c[2])}" for c in CASES])
def test_loss_matches_torch(name, arrays, kwargs):
    differentiable = tuple(i for i, a in enumerate(arrays) if a.dtype.kind == "f"
                           and not (i == len(arrays) - 1 and name in SIGN_TARGETS))
    (out, grads), (want, want_grads) = both(name, *arrays, grad=differentiable, **kwargs)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    for g, w in zip(grads, want_grads):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)


def test_all_targets_ignored_gives_nan_as_torch():
    labels = np.full(5, -100)
    assert np.isnan(F.cross_entropy(dlg.tensor(LOGITS), dlg.tensor(labels)).item())
    assert np.isnan(TF.cross_entropy(torch.tensor(LOGITS), torch.tensor(labels)).item())


def test_losses_in_a_dlg_model():
    """The same functions as .dlg builtins, with the same keywords."""
    src = """model M {
        input x: f32[5, 4]
        input t: i64[5]
        input w: f32[4]
        output ce = cross_entropy(x, t, w, label_smoothing=0.1)
        output nll = nll_loss(log_softmax(x, 1), t, ignore_index=3, reduction="sum")
        output kl = kl_div(log_softmax(x, 1), softmax(x * 2.0, 1), reduction="batchmean")
        output hub = huber_loss(x, x * 0.5, delta=0.3)
    }"""
    labels = np.abs(LABELS) % 4
    out = dlg.loads(src, file="t.dlg")(x=LOGITS, t=labels, w=WEIGHT)
    x, t, w = torch.tensor(LOGITS), torch.tensor(labels), torch.tensor(WEIGHT)
    want = {"ce": TF.cross_entropy(x, t, w, label_smoothing=0.1),
            "nll": TF.nll_loss(x.log_softmax(1), t, ignore_index=3, reduction="sum"),
            "kl": TF.kl_div(x.log_softmax(1), (x * 2).softmax(1), reduction="batchmean"),
            "hub": TF.huber_loss(x, x * 0.5, delta=0.3)}
    for got, (name, value) in zip(out, want.items()):
        np.testing.assert_allclose(got, value.numpy(), rtol=1e-5, err_msg=name)


def test_compiled_training_with_weighted_losses():
    """A .dlg train section over cross_entropy with class weights, an ignored label and label
    smoothing plus smooth_l1_loss compiles, and its first two steps' losses are PyTorch's."""
    src = """model M {
        param w: f32[4, 3] = zeros()
        input x: f32[N, 3]
        output logits = x @ T(w) + 0.5
    }
    train M {
        input y: i64[N]
        input c: f32[4]
        loss = smooth_l1_loss(logits, logits * 0.0, beta=0.5) +
               cross_entropy(logits, y, c, label_smoothing=0.1)
        optimizer = SGD(lr=0.1)
    }"""
    x = R.normal(size=(6, 3)).astype(np.float32)
    y = np.array([0, 1, -100, 3, 2, 1])  # -100: ignored, which the label check allows
    step = dlg.loads(src, file="t.dlg").train_step(compiled=True)
    losses = [step(x=x, y=y, c=WEIGHT)["loss"] for _ in range(2)]
    w = torch.zeros(4, 3, requires_grad=True)
    for i in range(2):
        logits = torch.tensor(x) @ w.T + 0.5
        want = (TF.smooth_l1_loss(logits, logits * 0, beta=0.5)
                + TF.cross_entropy(logits, torch.tensor(y), torch.tensor(WEIGHT),
                                   label_smoothing=0.1))
        np.testing.assert_allclose(losses[i], want.item(), rtol=1e-5)
        (g,) = torch.autograd.grad(want, w)
        w = (w - 0.1 * g).detach().requires_grad_()


ERRORS = [
    (lambda: F.cross_entropy(dlg.tensor(LOGITS), dlg.tensor(LABELS), reduction="avg"),
     "reduction must be 'mean', 'sum' or 'none'"),
    (lambda: F.kl_div(dlg.tensor(A), dlg.tensor(B), reduction="batch"),
     "reduction must be 'mean', 'sum', 'none' or 'batchmean'"),
    (lambda: F.cross_entropy(dlg.tensor(LOGITS), dlg.tensor(LABELS), dlg.tensor(WEIGHT[:3])),
     r"weight must be \[4\]"),
    (lambda: F.nll_loss(dlg.tensor(LOGITS), dlg.tensor(LABELS), ignore_index=1.5),
     "ignore_index must be an int"),
    (lambda: F.cross_entropy(dlg.tensor(LOGITS), dlg.tensor(PROBS), ignore_index=1),
     "ignore_index is not supported for probability targets"),
    (lambda: F.cross_entropy(dlg.tensor(LOGITS), dlg.tensor(LABELS), label_smoothing=1.5),
     r"label_smoothing must be in \[0, 1\]"),
    (lambda: F.huber_loss(dlg.tensor(A), dlg.tensor(B), delta=0), "delta must be positive"),
    (lambda: F.smooth_l1_loss(dlg.tensor(A), dlg.tensor(B), beta=-1.0), "beta must be"),
    (lambda: F.smooth_l1_loss(dlg.tensor(A), dlg.tensor(B[:2])), "shapes differ"),
    (lambda: F.nll_loss(dlg.tensor(A), 1), "nll_loss's target must be a tensor"),
    (lambda: F.cross_entropy(dlg.ones(2, 3), dlg.tensor([0, 5])),
     r"cross_entropy: target 5 is out of range for 3 classes"),
    (lambda: F.nll_loss(dlg.ones(2, 3), dlg.tensor([-4, 1])),
     r"nll_loss: target -4 is out of range for 3 classes"),
]


@pytest.mark.parametrize("make, message", ERRORS, ids=[e[1] for e in ERRORS])
def test_loss_errors(make, message):
    with pytest.raises(DlgError, match=message):
        make()


def test_ignored_targets_may_lie_outside_the_classes():
    logits, labels = dlg.tensor(LOGITS), np.where(np.arange(len(LABELS)) % 2, LABELS, -100)
    want = TF.cross_entropy(torch.tensor(LOGITS), torch.tensor(labels))
    np.testing.assert_allclose(F.cross_entropy(logits, dlg.tensor(labels)).item(), want.item(),
                               rtol=1e-5)


# ---- CTC ----------------------------------------------------------------------------------------
CTC_LOGITS = R.normal(size=(8, 3, 5)).astype(np.float32)  # [T, N, C]
CTC_TARGETS = np.array([[1, 1, 2, 4], [3, 0, 0, 0], [2, 4, 2, 2]])  # a repeat, an empty target
CTC = [({"input_lengths": (8, 5, 7), "target_lengths": (4, 0, 3)}, {}),
       ({"input_lengths": (8, 5, 7), "target_lengths": (4, 0, 3)}, {"reduction": "sum"}),
       ({"input_lengths": (8, 5, 7), "target_lengths": (4, 0, 3)}, {"reduction": "none"}),
       ({"input_lengths": (8, 8, 8), "target_lengths": (3, 1, 0)}, {"blank": 4}),
       ({"input_lengths": (8, 2, 7), "target_lengths": (4, 2, 3)}, {"zero_infinity": True}),
       ({"input_lengths": (8, 2, 7), "target_lengths": (4, 2, 3)},
        {"zero_infinity": True, "reduction": "none"})]


def _ctc(lib, logits, targets, lengths, concatenated=False, module=False, **kwargs):
    z = lib.tensor(logits, requires_grad=True)
    lp = lib.nn.functional.log_softmax(z, -1)
    tl = lengths["target_lengths"]
    if concatenated:
        targets = np.concatenate([row[:n] for row, n in zip(targets, tl)])
    ins = (lp, lib.tensor(targets), lib.tensor(lengths["input_lengths"]), lib.tensor(tl))
    loss = lib.nn.CTCLoss(**kwargs)(*ins) if module else lib.nn.functional.ctc_loss(
        *ins, **kwargs)
    (loss * lib.tensor(np.arange(1.0, 1.0 + loss.numel(), dtype=np.float32)).reshape(
        loss.shape)).sum().backward()
    return loss.detach().numpy(), z.grad.numpy()


@pytest.mark.parametrize("lengths, kwargs", CTC, ids=range(len(CTC)))
def test_ctc_loss_matches_torch(lengths, kwargs):
    """Values, and gradients through log_softmax (where torch's and the exact one agree), for
    padded and concatenated targets, a repeated label, an empty target, another blank, and
    too short an input with zero_infinity."""
    for concatenated, module in ((False, False), (True, True)):
        got = _ctc(dlg, CTC_LOGITS, CTC_TARGETS, lengths, concatenated, module, **kwargs)
        want = _ctc(torch, CTC_LOGITS, CTC_TARGETS, lengths, concatenated, module, **kwargs)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_ctc_loss_unbatched_and_impossible():
    lp = TF.log_softmax(torch.tensor(CTC_LOGITS[:, 0]), -1).numpy()
    for kwargs in ({}, {"reduction": "none"}):
        got = F.ctc_loss(dlg.tensor(lp), dlg.tensor(CTC_TARGETS[0]), dlg.tensor(8),
                         dlg.tensor(4), **kwargs)
        want = TF.ctc_loss(torch.tensor(lp), torch.tensor(CTC_TARGETS[0]), torch.tensor(8),
                           torch.tensor(4), **kwargs)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5)
        assert got.shape == tuple(want.shape)
    short = F.ctc_loss(dlg.tensor(lp), dlg.tensor(CTC_TARGETS[0]), 3, 4, reduction="none")
    assert np.isinf(short.item())  # 1, 1 needs a blank between: 5 frames at least


def test_ctc_loss_traced_and_compiled():
    tl = (4, 0, 3)

    def net(z, targets):
        return F.ctc_loss(F.log_softmax(z, -1), targets, (8, 5, 7), tl, reduction="sum")
    model = dlg.trace(net, CTC_LOGITS, CTC_TARGETS, dynamic={"z": {}})  # dim 0 is T: known
    want = TF.ctc_loss(TF.log_softmax(torch.tensor(CTC_LOGITS), -1), torch.tensor(CTC_TARGETS),
                       (8, 5, 7), tl, reduction="sum").numpy()
    for run in (model, dlg.compile(model)):
        np.testing.assert_allclose(run(CTC_LOGITS, CTC_TARGETS), want, rtol=1e-5)


@pytest.mark.parametrize("make, message", [
    (lambda lp: dlg.trace(lambda z, t, n: F.ctc_loss(z, t, (8, 8, 8), n), lp.numpy(),
                          np.int64([1, 2]), np.int64([1, 1, 0]), dynamic={"z": {}}),
     "give them as ints"),
    (lambda lp: F.ctc_loss(lp, dlg.tensor(CTC_TARGETS), (8, 8), (1, 1, 1)), "2 entries for 3"),
    (lambda lp: F.ctc_loss(lp, dlg.tensor(CTC_TARGETS), 8, (1, 1, 1), blank=5), "blank must"),
    (lambda lp: F.ctc_loss(lp, dlg.tensor([1, 2]), (8, 8, 8), (1, 2, 0)), "concatenated"),
    (lambda lp: F.ctc_loss(lp, dlg.tensor(CTC_TARGETS), (8, 8, 8), (1, 1, 1),
                           reduction="avg"), "reduction"),
], ids=["tensor-lengths-traced", "count", "blank", "total", "reduction"])
def test_ctc_loss_errors(make, message):
    with pytest.raises(DlgError, match=message):
        make(dlg.tensor(CTC_LOGITS))
