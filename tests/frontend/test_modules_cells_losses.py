"""RNNCell/GRUCell/LSTMCell, the margin and likelihood losses, and the smaller activations and
layers added with them, against torch: outputs and the gradients of inputs and weights (torch's
state_dict loaded into dlg's), odd sizes, every reduction, unbatched inputs; a traced and
compiled check for the cells and a few losses, from_torch of a cell, and one DlgError each."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import dlg
import dlg.nn as nn
from dlg.errors import DlgError
from tests.frontend.test_modules_torch import assert_close, check, f, pair

torch = pytest.importorskip("torch")
F, TF = nn.functional, torch.nn.functional
R = np.random.default_rng(7)


def leaves(arrays: list[np.ndarray], count: int | None = None) -> tuple[list[Any], list[Any]]:
    """The arrays as dlg and torch tensors; the float ones among the first `count` (all when
    None) require grad."""
    count = len(arrays) if count is None else count % len(arrays)
    grads = [a.dtype.kind == "f" and i < count for i, a in enumerate(arrays)]
    return ([dlg.tensor(a, requires_grad=g) for a, g in zip(arrays, grads)],
            [torch.tensor(a, requires_grad=g) for a, g in zip(arrays, grads)])


def backward_both(ours: Any, theirs: Any) -> None:
    """Backward from a random weighting of every output (a tensor or a tuple of them)."""
    ours = ours if isinstance(ours, tuple) else (ours,)
    theirs = theirs if isinstance(theirs, tuple) else (theirs,)
    total_a, total_t = 0, 0
    for a, t in zip(ours, theirs):
        assert_close(a, t, "output", 1e-5)
        w = R.standard_normal(tuple(t.shape)).astype(np.float32)
        total_a = total_a + (a * dlg.tensor(w)).sum()
        total_t = total_t + (t * torch.tensor(w)).sum()
    total_a.backward()
    total_t.backward()


def assert_grads(xa: list[Any], xt: list[Any], tol: float = 1e-4) -> None:
    for i, (a, t) in enumerate(zip(xa, xt)):
        if t.grad is not None:
            assert_close(a.grad, t.grad, f"input {i} gradient", tol)


# ---- recurrent cells -----------------------------------------------------------------------------
IN, H = 3, 5
CELLS = [
    *[(kind, dict(bias=bias)) for kind in ("RNNCell", "GRUCell", "LSTMCell")
      for bias in (True, False)],
    ("RNNCell", dict(nonlinearity="relu")),
]


def cell_inputs(kind: str, batch: tuple[int, ...], state: bool) -> tuple[list[np.ndarray], Any]:
    """x, and the state (h, or h and c) when asked for; how the state is passed."""
    x = f(*batch, IN)
    if not state:
        return [x], lambda xs: (xs[0],)
    if kind == "LSTMCell":
        return [x, f(*batch, H), f(*batch, H)], lambda xs: (xs[0], (xs[1], xs[2]))
    return [x, f(*batch, H)], lambda xs: (xs[0], xs[1])


@pytest.mark.parametrize("batch", [(4,), ()], ids=["batched", "unbatched"])
@pytest.mark.parametrize("state", [False, True], ids=["zero-state", "state"])
@pytest.mark.parametrize("kind, options", CELLS,
                         ids=[f"{k}-{'-'.join(f'{a}={b}' for a, b in o.items())}"
                              for k, o in CELLS])
def test_cell_matches_torch(kind, options, state, batch):
    ours, theirs = pair(lambda ns: getattr(ns, kind)(IN, H, **options))
    arrays, arguments = cell_inputs(kind, batch, state)
    xa, xt = leaves(arrays)
    backward_both(ours(*arguments(xa)), theirs(*arguments(xt)))
    assert_grads(xa, xt)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad, theirs_params[name].grad, f"{name} gradient", 1e-4)


def test_cells_initialise_as_torch():
    for kind, gates in (("RNNCell", 1), ("GRUCell", 3), ("LSTMCell", 4)):
        ours = getattr(nn, kind)(4, 6)
        shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
        assert shapes == {"weight_ih": (gates * 6, 4), "weight_hh": (gates * 6, 6),
                          "bias_ih": (gates * 6,), "bias_hh": (gates * 6,)}
        bound = 1 / np.sqrt(6)
        assert all(np.abs(v.numpy()).max() <= bound for v in ours.state_dict().values())


def test_cells_trace_compile_and_convert_from_torch():
    torch.manual_seed(0)
    theirs = torch.nn.LSTMCell(IN, H)
    model = dlg.from_torch(theirs, f(2, IN))
    assert list(model.params) == list(theirs.state_dict())
    x, h = f(3, IN), f(3, H)
    for got, want in zip(model(x), theirs(torch.tensor(x))):
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-5, atol=1e-6)
    ours, theirs = pair(lambda ns: ns.GRUCell(IN, H, bias=False))
    want = theirs(torch.tensor(x), torch.tensor(h)).detach().numpy()
    for run in (dlg.trace(ours, x, h), dlg.compile(ours, x, h)):
        np.testing.assert_allclose(run(x, h), want, rtol=1e-4, atol=1e-5)


def test_cell_errors():
    with pytest.raises(DlgError, match='nonlinearity must be "tanh" or "relu"'):
        nn.RNNCell(3, 4, nonlinearity="sigmoid")
    with pytest.raises(DlgError, match="Expected input to be 1D or 2D, got 3D"):
        nn.GRUCell(3, 4)(dlg.randn(2, 2, 3))
    with pytest.raises(DlgError, match=r"LSTMCell\(input_size=3\) got 2 features"):
        nn.LSTMCell(3, 4)(dlg.randn(2, 2))


# ---- losses -------------------------------------------------------------------------------------
def signs(*shape: int) -> np.ndarray:
    return np.float32(np.where(R.random(shape) > 0.5, 1.0, -1.0))


def labels(*shape: int, classes: int = 5) -> np.ndarray:
    return R.integers(0, classes, shape)


def label_lists(n: int, classes: int) -> np.ndarray:
    """multilabel_margin_loss targets: some class indices, then -1 and anything after it."""
    rows = R.integers(0, classes, (n, classes))
    rows[np.arange(n), R.integers(0, classes, n)] = -1
    rows[0] = np.arange(classes)  # every class a target: no pair, a zero loss
    return rows


LOSSES: list[tuple[str, Any, Any]] = [
    ("MarginRankingLoss", lambda ns, **kw: ns.MarginRankingLoss(margin=0.3, **kw),
     lambda: [f(7), f(7), signs(7)]),
    ("TripletMarginLoss", lambda ns, **kw: ns.TripletMarginLoss(**kw),
     lambda: [f(5, 3), f(5, 3), f(5, 3)]),
    ("TripletMarginLoss(p=1, swap, margin)",
     lambda ns, **kw: ns.TripletMarginLoss(margin=0.5, p=1.0, swap=True, **kw),
     lambda: [f(5, 3), f(5, 3), f(5, 3)]),
    ("TripletMarginWithDistanceLoss",
     lambda ns, **kw: ns.TripletMarginWithDistanceLoss(**kw), lambda: [f(5, 3), f(5, 3), f(5, 3)]),
    ("TripletMarginWithDistanceLoss(cosine, swap)",
     lambda ns, **kw: ns.TripletMarginWithDistanceLoss(
         distance_function=lambda a, b: 1 - ns.functional.cosine_similarity(a, b), swap=True,
         margin=0.4, **kw), lambda: [f(5, 3), f(5, 3), f(5, 3)]),
    ("CosineEmbeddingLoss", lambda ns, **kw: ns.CosineEmbeddingLoss(margin=0.2, **kw),
     lambda: [f(6, 4), f(6, 4), signs(6)]),
    ("GaussianNLLLoss", lambda ns, **kw: ns.GaussianNLLLoss(**kw),
     lambda: [f(4, 3), f(4, 3), np.float32(R.uniform(0.1, 2, (4, 3)))]),
    ("GaussianNLLLoss(full, var per sample)", lambda ns, **kw: ns.GaussianNLLLoss(full=True, **kw),
     lambda: [f(4, 3), f(4, 3), np.float32(R.uniform(0.1, 2, (4, 1)))]),
    ("MultiLabelSoftMarginLoss", lambda ns, **kw: ns.MultiLabelSoftMarginLoss(**kw),
     lambda: [f(4, 5), np.float32(R.random((4, 5)) > 0.5)]),
    ("MultiLabelSoftMarginLoss(weight)",
     lambda ns, **kw: ns.MultiLabelSoftMarginLoss(
         weight=ns_tensor(ns, [0.5, 1.0, 2.0, 1.5, 0.1]), **kw),
     lambda: [f(4, 5), np.float32(R.random((4, 5)) > 0.5)]),
    ("MultiMarginLoss", lambda ns, **kw: ns.MultiMarginLoss(**kw), lambda: [f(6, 5), labels(6)]),
    ("MultiMarginLoss(p=2, margin, weight)",
     lambda ns, **kw: ns.MultiMarginLoss(p=2, margin=0.6,
                                         weight=ns_tensor(ns, [0.5, 1.0, 2.0, 1.5, 0.1]), **kw),
     lambda: [f(6, 5), labels(6)]),
    ("MultiMarginLoss(unbatched)", lambda ns, **kw: ns.MultiMarginLoss(**kw),
     lambda: [f(5), labels()]),
    ("MultiLabelMarginLoss", lambda ns, **kw: ns.MultiLabelMarginLoss(**kw),
     lambda: [f(5, 4), label_lists(5, 4)]),
    ("MultiLabelMarginLoss(unbatched)", lambda ns, **kw: ns.MultiLabelMarginLoss(**kw),
     lambda: [f(4), label_lists(2, 4)[1]]),
    ("SoftMarginLoss", lambda ns, **kw: ns.SoftMarginLoss(**kw), lambda: [f(3, 5), signs(3, 5)]),
    ("HingeEmbeddingLoss", lambda ns, **kw: ns.HingeEmbeddingLoss(margin=0.5, **kw),
     lambda: [f(3, 5), signs(3, 5)]),
    ("PoissonNLLLoss", lambda ns, **kw: ns.PoissonNLLLoss(**kw),
     lambda: [f(3, 5), np.float32(R.poisson(2.0, (3, 5)))]),
    ("PoissonNLLLoss(rates, full)",
     lambda ns, **kw: ns.PoissonNLLLoss(log_input=False, full=True, **kw),
     lambda: [np.float32(R.uniform(0.1, 3, (3, 5))), np.float32(R.poisson(2.0, (3, 5)))]),
]


def ns_tensor(ns: Any, values: list[float]) -> Any:
    return (dlg if ns is nn else torch).tensor(np.float32(values))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name, make, inputs", LOSSES, ids=[c[0] for c in LOSSES])
def test_loss_matches_torch(name, make, inputs, reduction):
    ours, theirs = make(nn, reduction=reduction), make(torch.nn, reduction=reduction)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    arrays = inputs()
    # the inputs, not the target (torch's native losses refuse a target that requires grad)
    xa, xt = leaves(arrays, None if name.startswith(("Triplet", "Gaussian")) else -1)
    backward_both(ours(*xa), theirs(*xt))
    assert_grads(xa, xt)


@pytest.mark.parametrize("name", ["multi_margin_loss", "multilabel_margin_loss",
                                  "multilabel_soft_margin_loss", "soft_margin_loss"])
def test_loss_functions_are_torchs(name):
    x = f(4, 5)
    target = {"multi_margin_loss": labels(4), "multilabel_margin_loss": label_lists(4, 5),
              "multilabel_soft_margin_loss": np.float32(R.random((4, 5)) > 0.5),
              "soft_margin_loss": signs(4, 5)}[name]
    assert_close(getattr(F, name)(dlg.tensor(x), dlg.tensor(target)),
                 getattr(TF, name)(torch.tensor(x), torch.tensor(target)), name)


def test_losses_trace_and_compile():
    def losses(x, y, t):
        return (F.multi_margin_loss(x, t, p=2) + F.multilabel_soft_margin_loss(x, y)
                + F.margin_ranking_loss(x[:, 0], x[:, 1], y[:, 2] * 2 - 1))
    x, y, t = f(4, 5), np.float32(R.random((4, 5)) > 0.5), labels(4)
    want = losses(*map(dlg.tensor, (x, y, t))).numpy()
    traced = dlg.trace(losses, x, y, t)
    for run in (traced, dlg.compile(traced)):
        np.testing.assert_allclose(run(x, y, t), want, rtol=1e-5, atol=1e-6)


class TorchLosses(torch.nn.Module):
    """A torch module calling the new loss modules (with options and a weight buffer)."""

    def __init__(self):
        super().__init__()
        tnn = torch.nn
        self.multi = tnn.MultiMarginLoss(p=2, weight=torch.tensor([1.0, 2.0, 3.0, 0.5]))
        self.labels = tnn.MultiLabelSoftMarginLoss(reduction="sum")
        self.triplet = tnn.TripletMarginLoss(margin=0.5, swap=True)
        self.cosine = tnn.CosineEmbeddingLoss(margin=0.1)
        self.gaussian = tnn.GaussianNLLLoss(full=True)
        self.poisson = tnn.PoissonNLLLoss(log_input=False)

    def forward(self, x, t):
        return (self.multi(x, t) + self.labels(x, (x > 0).float())
                + self.triplet(x, x * 2, -x) + self.cosine(x, x + 1, torch.sign(x[:, 0]))
                + self.gaussian(x, x * 0.5, x.abs() + 0.1) + self.poisson(x.abs(), x.abs()))


def test_loss_modules_convert_from_torch():
    module = TorchLosses()
    x, t = torch.tensor(f(5, 4)), torch.tensor(labels(5, classes=4))
    model = dlg.from_torch(module, (x, t))
    assert list(model.params) == ["multi.weight"]
    np.testing.assert_allclose(model(x.numpy(), t.numpy()), module(x, t).item(), rtol=1e-5)


def test_loss_errors():
    with pytest.raises(DlgError, match="p must be 1 or 2"):
        F.multi_margin_loss(dlg.randn(2, 3), dlg.tensor([0, 1]), p=3)
    with pytest.raises(DlgError, match="target must hold class indices"):
        F.multilabel_margin_loss(dlg.randn(2, 3), dlg.randn(2, 3))
    with pytest.raises(DlgError, match="must be .N, C. or .C., with the target .N. or"):
        nn.MultiMarginLoss()(dlg.randn(2, 3), dlg.tensor([[0], [1]]))
    with pytest.raises(DlgError, match="expected margin to be greater than 0"):
        nn.TripletMarginWithDistanceLoss(margin=0.0)(*(dlg.randn(2, 3) for _ in range(3)))
    with pytest.raises(DlgError, match="reduction"):
        nn.MultiLabelSoftMarginLoss(reduction="avg")(dlg.randn(2, 3), dlg.randn(2, 3))


# ---- activations and layers ---------------------------------------------------------------------
LAYERS = [
    ("Threshold", lambda ns: ns.Threshold(0.1, 20.0), [f(3, 5)]),
    ("Softmax2d", lambda ns: ns.Softmax2d(), [f(2, 3, 4, 5)]),
    ("Softmax2d(unbatched)", lambda ns: ns.Softmax2d(), [f(3, 4, 5)]),
    ("Softmin(implicit dim)", lambda ns: ns.Softmin(), [f(3, 5)]),
    ("LocalResponseNorm(3, 3d)", lambda ns: ns.LocalResponseNorm(3), [f(2, 7, 5)]),
    ("LocalResponseNorm(4, 4d)", lambda ns: ns.LocalResponseNorm(4, alpha=0.3, beta=0.6, k=2.0),
     [f(2, 6, 3, 5)]),
    ("LocalResponseNorm(2, 5d)", lambda ns: ns.LocalResponseNorm(2, alpha=0.1), [f(1, 5, 2, 3, 2)]),
    ("LocalResponseNorm(size > channels)", lambda ns: ns.LocalResponseNorm(7), [f(2, 3, 4)]),
    ("ChannelShuffle", lambda ns: ns.ChannelShuffle(3), [f(2, 6, 3, 2)]),
    ("ChannelShuffle(3d)", lambda ns: ns.ChannelShuffle(2), [f(2, 4, 3)]),
]


@pytest.mark.parametrize("name, make, inputs", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_matches_torch(name, make, inputs):
    check(make, inputs, training=True)
    assert repr(make(nn)) == repr(make(torch.nn))


@pytest.mark.parametrize("name, kwargs", [
    ("softmin", {"dim": 0}), ("threshold", {"threshold": -0.5, "value": 3.0}),
    ("local_response_norm", {"size": 2}), ("channel_shuffle", {"groups": 2}),
])
def test_functions_match_torch(name, kwargs):
    xa, xt = leaves([f(2, 4, 3)])
    backward_both(getattr(F, name)(xa[0], **kwargs), getattr(TF, name)(xt[0], **kwargs))
    assert_grads(xa, xt)


@pytest.mark.parametrize("name, args", [
    ("relu", ()), ("elu", (0.5,)), ("leaky_relu", (0.2,)), ("hardtanh", (-0.5, 0.7)),
    ("selu", ()), ("celu", (1.5,)), ("threshold", (0.2, -4.0)), ("rrelu", (0.1, 0.3)),
])
def test_in_place_functions_write_their_input(name, args):
    x = f(3, 4) * 2
    ours, theirs = dlg.tensor(x), torch.tensor(x)
    assert getattr(F, f"{name}_")(ours, *args) is ours
    getattr(TF, f"{name}_")(theirs, *args)
    assert_close(ours, theirs, name)
    with pytest.raises(DlgError, match="leaf tensor that requires grad"):
        getattr(F, f"{name}_")(dlg.tensor(x, requires_grad=True), *args)
    traced = dlg.trace(lambda t: getattr(F, f"{name}_")(t * 1, *args), x)
    np.testing.assert_allclose(np.asarray(traced(x)), theirs.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, args", [
    ("relu", ()), ("relu6", ()), ("selu", ()), ("silu", ()), ("mish", ()), ("hardswish", ()),
    ("hardsigmoid", ()), ("elu", (0.5,)), ("celu", (1.5,)), ("leaky_relu", (0.2,)),
    ("hardtanh", (-0.5, 0.7)), ("rrelu", (0.1, 0.3, False)),
])
def test_activation_functions_take_torchs_inplace(name, args):
    """F.<activation>(x, ..., inplace=True), by keyword or in torch's position, writes into x
    (pix2pix's F.leaky_relu(x, 0.2, True), MobileNet's F.relu6(x, inplace=True)); gradients
    flow through a non-leaf written in place; False leaves x alone."""
    x = f(3, 4) * 4
    want = getattr(TF, name)(torch.tensor(x), *args)
    for call in (lambda t: getattr(F, name)(t, *args, inplace=True),
                 lambda t: getattr(F, name)(t, *args, True)):
        ours = dlg.tensor(x)
        assert call(ours) is ours
        assert_close(ours, want, name)
    ours = dlg.tensor(x)
    out = getattr(F, name)(ours, *args, inplace=False)
    assert out is not ours and np.array_equal(ours.numpy(), x)
    xa, xt = leaves([x])
    ya, yt = xa[0] * 1, xt[0] * 1
    getattr(F, name)(ya, *args, inplace=True)
    getattr(TF, name)(yt, *args, inplace=True)
    backward_both(ya, yt)
    assert_grads(xa, xt)
    traced = dlg.trace(lambda t: getattr(F, name)(t * 1, *args, inplace=True), x)
    np.testing.assert_allclose(np.asarray(traced(x)), want.numpy(), rtol=1e-5, atol=1e-6)


def test_gumbel_softmax_samples_the_softmax():
    logits = np.float32([[1.0, 0.0, -1.0, 0.5]] * 4000)
    dlg.manual_seed(3)
    soft = F.gumbel_softmax(dlg.tensor(logits), tau=0.5).numpy()
    dlg.manual_seed(3)
    np.testing.assert_array_equal(F.gumbel_softmax(dlg.tensor(logits), tau=0.5).numpy(), soft)
    np.testing.assert_allclose(soft.sum(-1), 1.0, rtol=1e-5)
    counts = np.bincount(soft.argmax(-1), minlength=4) / len(logits)
    want = np.exp(logits[0]) / np.exp(logits[0]).sum()
    np.testing.assert_allclose(counts, want, atol=0.03)


def test_gumbel_softmax_hard_is_one_hot_with_the_soft_gradient():
    x = dlg.tensor(f(5, 3), requires_grad=True)
    w = dlg.tensor(f(5, 3))
    dlg.manual_seed(1)
    hard = F.gumbel_softmax(x, tau=2.0, hard=True, dim=0)
    (hard * w).sum().backward()
    hard_grad = x.grad.numpy().copy()
    x.grad = None
    dlg.manual_seed(1)
    soft = F.gumbel_softmax(x, tau=2.0, dim=0)
    (soft * w).sum().backward()
    values = hard.detach().numpy()
    assert set(np.unique(values)) == {0.0, 1.0} and (values.sum(0) == 1).all()
    np.testing.assert_array_equal(values.argmax(0), soft.detach().numpy().argmax(0))
    np.testing.assert_allclose(hard_grad, x.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_lazy_linear_becomes_a_linear_at_its_first_call():
    lazy = nn.LazyLinear(4)
    assert repr(lazy) == repr(torch.nn.LazyLinear(4))
    placeholders = list(lazy.parameters())
    assert [type(p) for p in placeholders] == [nn.UninitializedParameter] * 2
    x = f(3, 7)
    y = lazy(dlg.tensor(x))
    assert type(lazy) is nn.Linear and lazy.in_features == 7
    assert [tuple(p.shape) for p in lazy.parameters()] == [(4, 7), (4,)]
    assert all(p is q and type(p) is nn.Parameter for p, q in zip(lazy.parameters(),
                                                                  placeholders))
    assert np.abs(lazy.weight.detach().numpy()).max() <= 1 / np.sqrt(7)
    theirs = torch.nn.Linear(7, 4)
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in lazy.state_dict().items()})
    assert_close(y, theirs(torch.tensor(x)), "output")
    no_bias = nn.LazyLinear(2, bias=False)
    no_bias(dlg.randn(5))
    assert list(no_bias.state_dict()) == ["weight"]


LAZY = [("LazyLinear", (3,), {}, (2, 5)), ("LazyConv2d", (3, 2), {}, (2, 4, 5, 5)),
        ("LazyConv1d", (2, 3), {"bias": False}, (2, 3, 6)),
        ("LazyConvTranspose2d", (3, 2), {}, (1, 2, 3, 3)), ("LazyBatchNorm1d", (), {}, (4, 3)),
        ("LazyBatchNorm2d", (), {"affine": False}, (2, 3, 2, 2)),
        ("LazyInstanceNorm1d", (), {}, (2, 3, 4)),
        ("LazyInstanceNorm2d", (), {"affine": False}, (2, 3, 2, 2))]


@pytest.mark.parametrize("name, args, kwargs, shape", LAZY, ids=[c[0] for c in LAZY])
def test_lazy_modules_hold_uninitialized_placeholders_as_torch(name, args, kwargs, shape):
    """Before the first call: torch's state_dict names and placeholder types, an error on use,
    a dtype kept; the call fills the same objects, so an optimizer made before it trains them.
    Lazy instance norms are affine and track running statistics by default (torch's)."""
    ours, theirs = (getattr(m.nn, name)(*args, **kwargs) for m in (dlg, torch))
    assert [(k, type(v).__name__) for k, v in ours.state_dict().items()] == \
        [(k, type(v).__name__) for k, v in theirs.state_dict().items()]
    held = list(ours.parameters())
    assert all(dlg.nn.parameter.is_lazy(p) and repr(p) == "<UninitializedParameter>"
               for p in held)
    if held:
        with pytest.raises(dlg.DlgValueError, match="dummy batch"):
            held[0] + 1
        with pytest.raises(dlg.DlgValueError, match="dummy batch"):
            _ = held[0].shape
    opt = dlg.optim.SGD(held, lr=0.5) if held else None
    ours.double()
    theirs.double()
    x = f(*shape).astype(np.float64)
    ours(dlg.tensor(x))
    theirs(torch.tensor(x))
    assert type(ours).__name__ == type(theirs).__name__ and repr(ours) == repr(theirs)
    assert [(k, v.numpy().shape, v.numpy().dtype) for k, v in ours.state_dict().items()] == \
        [(k, v.numpy().shape, v.numpy().dtype) for k, v in theirs.state_dict().items()]
    assert all(p is q and type(p) is nn.Parameter for p, q in zip(ours.parameters(), held))
    if opt is not None:
        before = [p.detach().numpy().copy() for p in held]
        ours(dlg.tensor(x)).sum().backward()
        opt.step()
        assert any((p.detach().numpy() != b).any() for p, b in zip(held, before))


def test_a_lazy_model_loads_a_state_dict_before_its_first_call():
    """d2l's file I/O chapter: a fresh lazy MLP takes the saved state (its placeholders sized by
    the loaded values, as torch's load hook does) and keeps it through its first call."""
    def make(ns):
        return ns.Sequential(ns.LazyLinear(8), ns.LazyBatchNorm1d(), ns.ReLU(), ns.LazyLinear(3))

    x = f(4, 5)
    theirs = make(torch.nn)
    theirs(torch.tensor(x))
    theirs.eval()
    ours = make(nn)
    assert ours.load_state_dict({k: dlg.tensor(v.numpy()) for k, v in
                                 theirs.state_dict().items()}) == ([], [])
    ours.eval()
    assert_close(ours(dlg.tensor(x)), theirs(torch.tensor(x)), "output")
    calls = []
    ours[0].register_load_state_dict_pre_hook(lambda *a: calls.append(a[2]))
    ours[0].register_load_state_dict_pre_hook(lambda *a: a[-1].append("refused"))
    with pytest.raises(dlg.DlgValueError, match="refused"):
        ours.load_state_dict(ours.state_dict())
    assert calls == ["0."]


def test_linear_without_inputs_as_torch():
    """Linear(0, n) (an adaptive softmax's tail at a small width): bias bound 0, output zeros."""
    ours, theirs = nn.Linear(0, 3), torch.nn.Linear(0, 3)
    assert_close(ours.bias, theirs.bias, "bias")
    assert_close(ours(dlg.ones(2, 0)), theirs(torch.ones(2, 0)), "output")


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
@pytest.mark.parametrize("options", [{"cutoffs": [3, 6]},
                                     {"cutoffs": [4], "head_bias": True, "div_value": 2.0}])
def test_adaptive_log_softmax_with_loss_as_torch(options):
    """Outputs, loss and gradients (torch's state_dict loaded), log_prob, predict, an unbatched
    row, compiled; torch's errors."""
    ours, theirs = pair(lambda ns: ns.AdaptiveLogSoftmaxWithLoss(8, 12, **options))
    assert repr(ours) == repr(theirs)
    x, target = f(9, 8), np.array([0, 1, 2, 5, 6, 9, 11, 3, 10])
    got = ours(dlg.tensor(x), dlg.tensor(target))
    want = theirs(torch.tensor(x), torch.tensor(target))
    assert_close(got.output, want.output, "output")
    got.loss.backward()
    want.loss.backward()
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        assert_close(p.grad, q.grad, name)
    assert_close(ours.log_prob(dlg.tensor(x)), theirs.log_prob(torch.tensor(x)), "log_prob")
    np.testing.assert_array_equal(ours.predict(dlg.tensor(x)).numpy(),
                                  theirs.predict(torch.tensor(x)).numpy())
    assert_close(ours(dlg.tensor(x[0]), dlg.tensor(target[0])).output,
                 theirs(torch.tensor(x[0]), torch.tensor(target[0])).output, "unbatched")
    assert_close(dlg.compile(ours)(dlg.tensor(x), dlg.tensor(target)).loss, want.loss,
                 "compiled")
    with pytest.raises(DlgError, match=r"Target values should be in \[0, 11\]"):
        ours(dlg.tensor(x[:1]), dlg.tensor([12]))
    with pytest.raises(DlgError, match="cutoffs should be a sequence of unique"):
        nn.AdaptiveLogSoftmaxWithLoss(8, 12, [6, 3])


def lazy_lenet(ns):
    """d2l.ai's LeNet with batch norm, built of lazy modules."""
    return ns.Sequential(ns.LazyConv2d(6, kernel_size=5, padding=2), ns.LazyBatchNorm2d(),
                         ns.Sigmoid(), ns.AvgPool2d(kernel_size=2, stride=2),
                         ns.LazyConv2d(4, kernel_size=3), ns.LazyBatchNorm2d(), ns.Sigmoid(),
                         ns.Flatten(), ns.LazyLinear(10), ns.LazyBatchNorm1d(), ns.Sigmoid(),
                         ns.LazyLinear(3))


def test_lazy_modules_become_their_modules_and_train_as_torch():
    """The dummy forward d2l makes turns each lazy module into its module (type, parameters,
    state_dict names as torch's); loaded with torch's draws, training steps agree."""
    ours, theirs = lazy_lenet(nn), lazy_lenet(torch.nn)
    assert all(nn.parameter.is_lazy(p) for p in ours.parameters())
    x = f(4, 1, 12, 12)
    ours(dlg.tensor(x))
    theirs(torch.tensor(x))
    assert [type(m).__name__ for m in ours] == [type(m).__name__ for m in theirs]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: dlg.tensor(v.detach().numpy()) for k, v in
                          theirs.state_dict().items()})
    opt_a = dlg.optim.SGD(ours.parameters(), lr=0.1)
    opt_t = torch.optim.SGD(theirs.parameters(), lr=0.1)
    for _ in range(2):
        for model, opt, lib in ((ours, opt_a, dlg), (theirs, opt_t, torch)):
            opt.zero_grad()
            model(lib.tensor(x)).square().mean().backward()
            opt.step()
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
        assert_close(a, b, name)
    unbatched = nn.LazyConv1d(3, 2)
    unbatched(dlg.ones(5, 7))
    assert unbatched.in_channels == 5
    for make in (lambda ns: ns.LazyConv2d(4, 3), lambda ns: ns.LazyBatchNorm1d(momentum=0.2),
                 lambda ns: ns.LazyConvTranspose1d(2, 3, stride=2, bias=False),
                 lambda ns: ns.LazyInstanceNorm2d()):
        assert repr(make(nn)) == repr(make(torch.nn))


def test_a_lazy_model_compiles_before_its_first_call():
    """dlg.compile of a model whose lazy modules have not run: traced again once they have made
    their parameters and buffers, so it trains as the eager model does."""
    x = dlg.tensor(f(4, 1, 12, 12))
    compiled_model, eager = lazy_lenet(nn), lazy_lenet(nn)
    compiled = dlg.compile(compiled_model)
    for model in (compiled, eager):
        dlg.manual_seed(0)  # the first call draws the parameters
        model(x).square().mean().backward()
    assert len(compiled.compiled) == 1
    for (name, a), b in zip(compiled_model.named_parameters(), eager.parameters()):
        assert_close(a.grad, torch.tensor(b.grad.numpy()), name)
    for (name, a), b in zip(compiled_model.state_dict().items(), eager.state_dict().values()):
        assert_close(a, torch.tensor(b.numpy()), name)


def test_layers_trace_compile_and_convert_from_torch():
    make = lambda ns: ns.Sequential(ns.Conv2d(4, 6, 1), ns.ChannelShuffle(3),  # noqa: E731
                                    ns.LocalResponseNorm(3), ns.Threshold(0.0, -1.0),
                                    ns.Softmax2d())
    ours, theirs = pair(make)
    x = f(2, 4, 3, 3)
    want = theirs(torch.tensor(x)).detach().numpy()
    traced = dlg.trace(ours, x)
    for run in (traced, dlg.compile(traced), dlg.from_torch(theirs, x)):
        np.testing.assert_allclose(run(x), want, rtol=1e-4, atol=1e-6)


def test_functions_are_dlg_builtins_too():
    """The .dlg door runs the same functions (dlg.functions) as dlg.nn.functional."""
    model = dlg.loads("model M { input x: f32[N, 4, 3]  input t: i64[N]\n"
                      "  output y = local_response_norm(x, 3) + softmin(x, 1) + channel_shuffle("
                      "threshold(x, 0.1, 2.0), 2)\n"
                      "  output loss = multi_margin_loss(x[:, :, 0], t, p=2)\n}")
    x, t = f(2, 4, 3), labels(2, classes=4)
    y, loss = model(x=x, t=t)
    xa = dlg.tensor(x)
    want = (F.local_response_norm(xa, 3) + F.softmin(xa, 1)
            + F.channel_shuffle(F.threshold(xa, 0.1, 2.0), 2))
    np.testing.assert_allclose(y, want.numpy(), rtol=1e-6)
    np.testing.assert_allclose(loss, TF.multi_margin_loss(torch.tensor(x[:, :, 0]),
                                                          torch.tensor(t), p=2).numpy(),
                               rtol=1e-6)


def test_layer_errors():
    with pytest.raises(DlgError, match="Softmax2d: expected input to be 3D or 4D, got 2D"):
        nn.Softmax2d()(dlg.randn(2, 3))
    with pytest.raises(DlgError, match="got 5 channels and 2 groups"):
        nn.ChannelShuffle(2)(dlg.randn(1, 5, 3))
    with pytest.raises(DlgError, match="expected 3D or higher dimensionality input"):
        nn.LocalResponseNorm(2)(dlg.randn(2, 3))
    with pytest.raises(DlgError, match="threshold: value must be a number"):
        F.threshold(dlg.randn(2), 0.5, "x")
