"""dlg.nn.functional's neural-network functions against PyTorch's: values, input gradients
(torch.autograd.grad), options, the .dlg door where the function has one, and errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import dlg
import dlg.nn.functional as F
from dlg.errors import DlgError

torch = pytest.importorskip("torch")
TF = torch.nn.functional

R = np.random.default_rng(0)
X4 = R.normal(size=(2, 3, 5, 6)).astype(np.float32)
X3 = R.normal(size=(2, 3, 7)).astype(np.float32)
X2 = R.normal(size=(4, 3)).astype(np.float32)


def both(name: str, *values: Any, grad: tuple[int, ...] = (0,), **kwargs: Any):
    """`name` from dlg and from torch (arrays made tensors of each): outputs, and the gradients
    of a random projection of the (first) output w.r.t. the positional arrays at `grad`."""
    def lift(make, v, i=None):
        return make(v, requires_grad=i in grad) if isinstance(v, np.ndarray) else v
    xs_d = [lift(dlg.tensor, v, i) for i, v in enumerate(values)]
    xs_t = [lift(torch.tensor, v, i) for i, v in enumerate(values)]
    out_d = getattr(F, name)(*xs_d, **{k: lift(dlg.tensor, v) for k, v in kwargs.items()})
    out_t = getattr(TF, name)(*xs_t, **{k: lift(torch.tensor, v) for k, v in kwargs.items()})
    first_d = out_d[0] if isinstance(out_d, tuple) else out_d
    first_t = out_t[0] if isinstance(out_t, tuple) else out_t
    if not grad:
        return out_d, out_t, [], []
    weight = R.normal(size=tuple(first_t.shape)).astype(np.float32)
    (first_d * dlg.tensor(weight)).sum().backward()
    grads_t = torch.autograd.grad((first_t * torch.tensor(weight)).sum(),
                                  [xs_t[i] for i in grad])
    return (out_d, out_t, [xs_d[i].grad.numpy() for i in grad], [g.numpy() for g in grads_t])


def check(name: str, *values: Any, grad: tuple[int, ...] = (0,), rtol: float = 1e-5,
          **kwargs) -> None:
    out_d, out_t, grads_d, grads_t = both(name, *values, grad=grad, **kwargs)
    outs_d = out_d if isinstance(out_d, tuple) else (out_d,)
    outs_t = out_t if isinstance(out_t, tuple) else (out_t,)
    for d, t in zip(outs_d, outs_t):
        assert d.shape == tuple(t.shape)
        np.testing.assert_allclose(d.detach().numpy(), t.detach().numpy(), rtol=rtol, atol=1e-6)
    for d, t in zip(grads_d, grads_t):
        np.testing.assert_allclose(d, t, rtol=1e-4, atol=1e-5)


# ---- pad ----------------------------------------------------------------------------------------
PADS = [((1, 2), "constant", {}), ((1, 2, 0, -1), "constant", {"value": 2.5}),
        ((-1, -2, 1, 1, 1, 0), "constant", {}), ((2, 3, 1, 0), "reflect", {}),
        ((2, 3, 1, 1), "replicate", {}), ((-1, 2, 0, 0), "replicate", {}),
        ((5, 4, 4, 2), "circular", {}), ((1, -1, 0, 2), "circular", {}),
        ((2, 1, -1, 3), "reflect", {}), ((-7, 2, 0, 0), "replicate", {})]


@pytest.mark.parametrize("pad, mode, kwargs", PADS, ids=[f"{m}{p}" for p, m, _ in PADS])
def test_pad_matches_torch(pad, mode, kwargs):
    check("pad", X4, pad=pad, mode=mode, **kwargs)


def test_pad_reflect_1d_and_an_integer_tensor():
    check("pad", X3, pad=(3, 2), mode="reflect")
    ints = np.arange(12).reshape(3, 4)
    np.testing.assert_array_equal(F.pad(dlg.tensor(ints), (1, 1), value=-1).numpy(),
                                  TF.pad(torch.tensor(ints), (1, 1), value=-1).numpy())


def test_pad_in_dlg_takes_both_spellings():
    src = """model M {
        input x: f32[2, 3, 5, 6]
        output a = pad(x, (1, 2, 0, -1), value=2.5)
        output b = pad(x, ((0, 0), (0, 0), (1, 1), (2, 0)))
        output c = pad(x, (2, 3, 1, 1), mode="replicate")
    }"""
    a, b, c = dlg.loads(src, file="t.dlg")(x=X4)
    x = torch.tensor(X4)
    np.testing.assert_allclose(a, TF.pad(x, (1, 2, 0, -1), value=2.5).numpy())
    np.testing.assert_allclose(b, TF.pad(x, (2, 0, 1, 1)).numpy())
    np.testing.assert_allclose(c, TF.pad(x, (2, 3, 1, 1), mode="replicate").numpy())


PAD_ERRORS = [
    (lambda x: F.pad(x, (1, 2, 3)), "pads must come in pairs"),
    (lambda x: F.pad(x, (1,) * 10), "at most two per axis"),
    (lambda x: F.pad(x, (1.5, 2)), "pad must be a tuple of ints"),
    (lambda x: F.pad(x, ((1, 1), (2, 2))), r"2 \(before, after\) pairs for the 4 axes"),
    (lambda x: F.pad(x, (6, 0), mode="reflect"), "reflect padding of .* must be at most 5"),
    (lambda x: F.pad(x, (7, 0), mode="circular"), "circular padding of .* must be at most 6"),
    (lambda x: F.pad(x, (1, 1), mode="edge"), "mode must be 'constant', 'reflect'"),
    (lambda x: F.pad(x, (1, 1), mode="reflect", value=1.0), "takes no value"),
    (lambda x: F.pad(x, (-7, 0)), "slice"),
]


@pytest.mark.parametrize("make, message", PAD_ERRORS, ids=[e[1] for e in PAD_ERRORS])
def test_pad_errors(make, message):
    with pytest.raises(DlgError, match=message):
        make(dlg.tensor(X4))


# ---- normalisation ------------------------------------------------------------------------------
C3 = R.uniform(0.5, 1.5, 3).astype(np.float32)


@pytest.mark.parametrize("kwargs", [{}, {"weight": C3}, {"weight": C3, "bias": -C3},
                                    {"bias": C3, "eps": 0.1}],
                         ids=["plain", "weight", "affine", "bias-eps"])
def test_group_instance_and_layer_norm_match_torch(kwargs):
    check("group_norm", X4, 3, **kwargs)
    check("group_norm", X4, 1, eps=-1e-3)  # torch takes any eps
    check("instance_norm", X4, **kwargs)
    six = {k: np.resize(v, 6) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    check("layer_norm", X4, (6,), **six)


def test_group_norm_of_groups_of_channels():
    check("group_norm", R.normal(size=(2, 6, 4)).astype(np.float32), 3, weight=np.resize(C3, 6))


def test_batch_norm_eval_and_training_update_running_statistics_in_place():
    mean, var = R.normal(size=3).astype(np.float32), R.uniform(0.5, 2, 3).astype(np.float32)
    stats_d = [dlg.tensor(mean), dlg.tensor(var)]
    stats_t = [torch.tensor(mean), torch.tensor(var)]
    x_d, x_t = dlg.tensor(X4, requires_grad=True), torch.tensor(X4, requires_grad=True)
    for training in (False, True, True):
        y_d = F.batch_norm(x_d, *stats_d, dlg.tensor(C3), None, training=training,
                           momentum=0.3, eps=1e-3)
        y_t = TF.batch_norm(x_t, *stats_t, torch.tensor(C3), None, training=training,
                            momentum=0.3, eps=1e-3)
        np.testing.assert_allclose(y_d.detach().numpy(), y_t.detach().numpy(), rtol=1e-5,
                                   atol=1e-5)
        for d, t in zip(stats_d, stats_t):
            np.testing.assert_allclose(d.numpy(), t.numpy(), rtol=1e-5)
    y_d.sum().backward()
    (g,) = torch.autograd.grad((y_t * torch.arange(6.0)).sum() * 0 + y_t.sum(), x_t)
    np.testing.assert_allclose(x_d.grad.numpy(), g.numpy(), atol=1e-4)


def test_batch_norm_training_without_running_statistics():
    check("batch_norm", X3, None, None, grad=(0,), training=True)


@pytest.mark.parametrize("p, axis", [(2.0, 1), (1.0, -1), (3.0, 0)])
def test_normalize_matches_torch(p, axis):
    check("normalize", X4, grad=(0,), p=p, dim=axis)


def test_normalize_of_a_zero_vector_is_zero_with_zero_gradient():
    check("normalize", np.zeros((2, 3), np.float32), grad=(0,))


@pytest.mark.parametrize("shapes, axis", [(((4, 3), (4, 3)), 1), (((2, 3, 5), (3, 1)), 1),
                                          (((4, 3), (1, 3)), -1)])
def test_cosine_similarity_matches_torch(shapes, axis):
    a, b = (R.normal(size=s).astype(np.float32) for s in shapes)
    check("cosine_similarity", a, b, grad=(0, 1), dim=axis)


def test_pairwise_distance_matches_torch():
    check("pairwise_distance", X2, X2[::-1].copy(), grad=(0, 1))
    check("pairwise_distance", X2, X2[:1].copy(), grad=(0, 1), p=1.0, keepdim=True)


def test_norms_in_dlg():
    src = """model M {
        input x: f32[2, 3, 5, 6]
        input g: f32[3]
        output a = group_norm(x, 3, g, g)
        output b = normalize(x, dim=2)
        output c = cosine_similarity(x, x * x, dim=1)
        output d = batch_norm(x, g, g * 2.0, training=true)
    }"""
    a, b, c, d = dlg.loads(src, file="t.dlg")(x=X4, g=C3)
    x, g = torch.tensor(X4), torch.tensor(C3)
    np.testing.assert_allclose(a, TF.group_norm(x, 3, g, g).numpy(), atol=1e-5)
    np.testing.assert_allclose(b, TF.normalize(x, dim=2).numpy(), atol=1e-6)
    np.testing.assert_allclose(c, TF.cosine_similarity(x, x * x, dim=1).numpy(), atol=1e-6)
    np.testing.assert_allclose(d, TF.batch_norm(x, g.clone(), g * 2, training=True).numpy(),
                               atol=1e-5)


# ---- one_hot and embedding ----------------------------------------------------------------------
def test_one_hot_is_torchs():
    labels = np.array([[0, 3], [2, 1]])
    for kwargs in ({}, {"num_classes": 6}):
        got = F.one_hot(dlg.tensor(labels), **kwargs)
        want = TF.one_hot(torch.tensor(labels), **kwargs)
        assert got.dtype == dlg.int64
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    with pytest.raises(DlgError, match=r"class values must be in 0\.\.2"):
        F.one_hot(dlg.tensor(labels), 3)
    with pytest.raises(DlgError, match="cannot infer num_classes"):
        F.one_hot(dlg.tensor(np.zeros(0, np.int64)))


def test_embedding_padding_idx_and_max_norm():
    weight = R.normal(size=(5, 3)).astype(np.float32)
    idx = np.array([[0, 2, 4], [2, 2, 1]])
    check("embedding", idx, weight, grad=(1,), padding_idx=2)
    check("embedding", idx, weight, grad=(1,), padding_idx=-1)
    w_d, w_t = dlg.tensor(weight), torch.tensor(weight)
    out_d = F.embedding(dlg.tensor(idx), w_d, max_norm=1.0)
    out_t = TF.embedding(torch.tensor(idx), w_t, max_norm=1.0)
    np.testing.assert_allclose(out_d.numpy(), out_t.numpy(), rtol=1e-6)
    np.testing.assert_allclose(w_d.numpy(), w_t.numpy(), rtol=1e-6)  # renormalised in place
    with pytest.raises(DlgError, match="padding_idx must be within"):
        F.embedding(dlg.tensor(idx), w_d, padding_idx=5)


# ---- pooling ------------------------------------------------------------------------------------
MAX_POOLS = [("max_pool2d", X4, {"kernel_size": 2}),
             ("max_pool2d", X4, {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
             ("max_pool2d", X4, {"kernel_size": (2, 3), "stride": 1, "dilation": 2}),
             ("max_pool1d", X3, {"kernel_size": 3, "stride": 2, "padding": 1}),
             ("max_pool1d", X3[0], {"kernel_size": 2, "dilation": 3, "ceil_mode": True})]


@pytest.mark.parametrize("name, x, kwargs", MAX_POOLS, ids=[str(k) for _, _, k in MAX_POOLS])
def test_max_pool_returns_indices_as_torch(name, x, kwargs):
    check(name, x, return_indices=True, **kwargs)
    values, indices = getattr(F, name)(dlg.tensor(x), return_indices=True, **kwargs)
    assert indices.dtype == dlg.int64


def test_max_pool_indices_unpool_by_position():
    """Each index is the maximum's position in the flattened spatial input."""
    values, indices = F.max_pool2d(dlg.tensor(X4), 2, return_indices=True)
    flat = X4.reshape(2, 3, -1)
    picked = np.take_along_axis(flat, indices.numpy().reshape(2, 3, -1), axis=2)
    np.testing.assert_array_equal(picked, values.numpy().reshape(2, 3, -1))


UNPOOLS = [(1, X3, {"kernel_size": 2}, {}),
           (1, X3, {"kernel_size": 3, "stride": 2, "padding": 1}, {}),
           (1, X3[0], {"kernel_size": 2}, {"output_size": (7,)}),
           (2, X4, {"kernel_size": 2}, {"output_size": (5, 6)}),
           (2, X4, {"kernel_size": 2}, {"output_size": (2, 3, 5, 6)}),
           (2, X4, {"kernel_size": (2, 3), "stride": 1}, {}),  # overlapping windows
           (2, X4[:1, :1, :2, :2], {"kernel_size": 2}, {}),
           (2, X4[0], {"kernel_size": 3, "stride": 2, "padding": 1}, {"output_size": (5, 6)}),
           (3, X4[:, :, :4, :4, None] * np.ones(4, np.float32), {"kernel_size": 2}, {})]


@pytest.mark.parametrize("nd, x, pool, unpool", UNPOOLS, ids=range(len(UNPOOLS)))
def test_max_unpool_inverts_max_pool_as_torch(nd, x, pool, unpool):
    """max_unpool of max_pool's values at its indices, in eager functions and modules: values,
    and gradients to the pooled input (through both) and to the values unpooled."""
    outs, grads = [], []
    for lib in (dlg, torch):
        fn = lib.nn.functional
        t = lib.tensor(x, requires_grad=True)
        values, indices = getattr(fn, f"max_pool{nd}d")(t, return_indices=True, **pool)
        v = lib.tensor(values.detach().numpy(), requires_grad=True)
        y = getattr(fn, f"max_unpool{nd}d")(values, indices, **pool, **unpool)
        module = getattr(lib.nn, f"MaxUnpool{nd}d")(**pool)
        z = module(v, indices, **unpool)
        w = lib.tensor(np.cos(np.arange(y.numel())).reshape(tuple(y.shape)).astype(np.float32))
        ((y + z) * w).sum().backward()
        outs.append((y.detach().numpy(), z.detach().numpy()))
        grads.append((t.grad.numpy(), v.grad.numpy()))
        assert repr(module) == repr(getattr(torch.nn, f"MaxUnpool{nd}d")(**pool))
    for got, want in zip((*outs[0], *grads[0]), (*outs[1], *grads[1])):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_max_unpool_traced_and_compiled():
    def net(x):
        values, indices = F.max_pool2d(x, 2, return_indices=True)
        return F.max_unpool2d(values * 2, indices, 2, output_size=x.shape[-2:])
    model = dlg.trace(net, X4)
    values, indices = TF.max_pool2d(torch.tensor(X4), 2, return_indices=True)
    want = TF.max_unpool2d(values * 2, indices, 2, output_size=(5, 6)).numpy()
    for run in (model, dlg.compile(model)):
        np.testing.assert_allclose(run(X4), want, rtol=1e-6)


@pytest.mark.parametrize("kwargs", [{"divisor_override": 3},
                                    {"padding": 1, "ceil_mode": True, "divisor_override": 2},
                                    {"padding": 1, "count_include_pad": False}])
def test_avg_pool_options(kwargs):
    check("avg_pool2d", X4, kernel_size=3, stride=2, **kwargs)


def test_pool_options_take_one_tuples_for_every_dim():
    check("avg_pool2d", X4, kernel_size=(3,), stride=(2,), padding=(1,))
    check("max_pool2d", X4, kernel_size=(2,), padding=(1,))
    check("max_pool2d", X4, kernel_size=(2, 3), stride=())  # empty: the kernel size


@pytest.mark.parametrize("name, x, weight, kwargs", [
    ("conv2d", X4[0], R.normal(size=(4, 3, 2, 3)).astype(np.float32), {"padding": 1}),
    ("conv2d", X4[1], R.normal(size=(6, 1, 3, 3)).astype(np.float32), {"groups": 3,
                                                                      "stride": 2}),
    ("conv1d", X3[0], R.normal(size=(2, 3, 3)).astype(np.float32), {"dilation": 2}),
], ids=["conv2d", "conv2d_groups", "conv1d"])
def test_convolutions_of_an_unbatched_input(name, x, weight, kwargs):
    """[C, ...] without the batch dim, as torch takes it: input and weight gradients too."""
    check(name, x, weight, grad=(0, 1), **kwargs)
    check(name, x, weight, R.normal(size=weight.shape[:1]).astype(np.float32), grad=(0, 2),
          **kwargs)


ADAPTIVE = [("adaptive_avg_pool2d", X4, (2, 4)), ("adaptive_avg_pool2d", X4, (1, 1)),
            ("adaptive_avg_pool2d", X4, (None, 4)), ("adaptive_avg_pool2d", X4[0], 3),
            ("adaptive_avg_pool1d", X3, 3), ("adaptive_avg_pool1d", X3, 7),
            ("adaptive_max_pool2d", X4, (3, 4)), ("adaptive_max_pool2d", X4, 1),
            ("adaptive_max_pool1d", X3, 4)]


@pytest.mark.parametrize("name, x, size", ADAPTIVE, ids=[f"{n}-{s}" for n, _, s in ADAPTIVE])
def test_adaptive_pools_match_torch(name, x, size):
    check(name, x, size)
    if "max" in name:
        check(name, x, size, return_indices=True)


@pytest.mark.parametrize("kwargs", [{"kernel_size": 2}, {"kernel_size": (2, 3), "stride": 2},
                                    {"kernel_size": 3, "padding": 2, "dilation": 2}])
def test_unfold_and_fold_match_torch(kwargs):
    check("unfold", X4, **kwargs)
    cols = TF.unfold(torch.tensor(X4), **kwargs).numpy()
    check("fold", cols, output_size=(5, 6), **kwargs)


def test_pools_in_dlg():
    src = """model M {
        input x: f32[2, 3, 5, 6]
        output a = adaptive_avg_pool2d(x, (2, 4))
        output b = unfold(x, 2, stride=2)
        output c = avg_pool2d(x, 2, divisor_override=3)
    }"""
    a, b, c = dlg.loads(src, file="t.dlg")(x=X4)
    x = torch.tensor(X4)
    np.testing.assert_allclose(a, TF.adaptive_avg_pool2d(x, (2, 4)).numpy(), atol=1e-6)
    np.testing.assert_allclose(b, TF.unfold(x, 2, stride=2).numpy())
    np.testing.assert_allclose(c, TF.avg_pool2d(x, 2, divisor_override=3).numpy(), atol=1e-6)


POOL_ERRORS = [
    (lambda x: F.adaptive_avg_pool2d(x, (2, 0)), "output_size must be a positive int"),
    (lambda x: F.adaptive_max_pool1d(x, 2), r"input must be \[N, C, L\]"),
    (lambda x: F.max_pool2d(x, 2, return_indices=1), "return_indices must be a bool"),
    (lambda x: F.avg_pool2d(x, 2, divisor_override=0), "divisor_override must be a positive"),
    (lambda x: F.fold(x, (5, 6), 2), r"fold: input must be \[N, C \* 4, 20\]"),
    (lambda x: F.max_unpool2d(x, x, 2), "indices must be integers"),
    (lambda x: F.max_unpool2d(x, dlg.zeros(2, 3, 5, 6, dtype=dlg.int64), 2, output_size=(12, 12)),
     r"dim 0 must be between 8 and 12"),
    (lambda x: F.max_unpool2d(x, dlg.zeros(2, 3, 5, 6, dtype=dlg.int64), 2, output_size=3),
     "output_size must be 2 ints"),
]


@pytest.mark.parametrize("make, message", POOL_ERRORS, ids=[e[1] for e in POOL_ERRORS])
def test_pool_errors(make, message):
    with pytest.raises(DlgError, match=message):
        make(dlg.tensor(X4))


# ---- channel dropout and interpolate ------------------------------------------------------------
@pytest.mark.parametrize("name, shape, kept", [("dropout1d", (4, 6, 5), (4, 6, 1)),
                                               ("dropout1d", (6, 5), (6, 1)),
                                               ("dropout2d", (4, 6, 3, 5), (4, 6, 1, 1)),
                                               ("dropout2d", (4, 6, 5), (4, 6, 1)),
                                               ("dropout3d", (2, 6, 2, 3, 5), (2, 6, 1, 1, 1)),
                                               ("dropout3d", (6, 2, 3, 5), (6, 1, 1, 1))])
def test_channel_dropout_zeroes_whole_channels(name, shape, kept):
    x = np.ones(shape, np.float32)
    dlg.manual_seed(0)
    y = getattr(F, name)(dlg.tensor(x), p=0.5).numpy()
    per_channel = y.reshape(kept[:len(kept) - sum(k == 1 for k in kept)] + (-1,))
    assert set(np.unique(per_channel)) <= {0.0, 2.0}
    assert (per_channel.min(-1) == per_channel.max(-1)).all(), "a channel is kept or dropped"
    assert 0 < (per_channel == 0).mean() < 1
    np.testing.assert_array_equal(getattr(F, name)(dlg.tensor(x), 0.5, False).numpy(), x)
    with torch.no_grad():  # torch's reading of the same shape: same mask shape
        t = getattr(TF, name)(torch.ones(shape), 0.5)
    assert (t.reshape(per_channel.shape).amin(-1) == t.reshape(per_channel.shape).amax(-1)).all()


def test_dropout_takes_torchs_inplace_argument():
    x = dlg.tensor(X2)
    np.testing.assert_array_equal(F.dropout(x, 0.2, False, False).numpy(), X2)


INTERPOLATE = [(X4, {"scale_factor": 2}), (X4, {"size": (7, 4)}), (X3, {"scale_factor": 1.5}),
               (X3, {"size": 3}), (X4, {"size": (7, 4), "mode": "nearest-exact"}),
               (X3, {"scale_factor": 1.7, "mode": "linear"}),
               (X3, {"size": 11, "mode": "linear", "align_corners": True}),
               (X4, {"size": (3, 9), "mode": "bilinear"}),
               (X4, {"scale_factor": 2, "mode": "bilinear", "align_corners": True}),
               (X4, {"size": (8, 4), "mode": "bicubic"}),
               (X4, {"scale_factor": (1.5, 0.5), "mode": "bicubic", "align_corners": True}),
               (X4[:, :, None], {"size": (3, 6, 4), "mode": "trilinear"}),
               (X4, {"size": (3, 4), "mode": "area"}),
               (X4, {"scale_factor": 1.5, "mode": "bilinear", "recompute_scale_factor": True})]


@pytest.mark.parametrize("x, kwargs", INTERPOLATE, ids=[str(k) for _, k in INTERPOLATE])
def test_interpolate_matches_torch(x, kwargs):
    check("interpolate", np.ascontiguousarray(x), **kwargs)


INTERPOLATE_ERRORS = [
    ({"scale_factor": 2, "mode": "bilinear", "antialias": True}, "antialias is not supported"),
    ({"scale_factor": 2, "mode": "linear"}, "mode 'linear' needs"),
    ({"scale_factor": 2, "align_corners": True}, "align_corners is only for"),
    ({"scale_factor": 2, "mode": "cubic"}, "mode must be 'nearest'"),
    ({}, "give either size or scale_factor"),
]


@pytest.mark.parametrize("kwargs, message", INTERPOLATE_ERRORS,
                         ids=[m for _, m in INTERPOLATE_ERRORS])
def test_interpolate_errors(kwargs, message):
    with pytest.raises(DlgError, match=message):
        F.interpolate(dlg.tensor(X4), **kwargs)


@pytest.mark.parametrize("name", ["avg_pool1d", "max_pool1d"])
def test_pool_gradients_of_an_empty_batch(name):
    """OpInfo's empty-batch sample: the backward of a pool over no samples is empty."""
    check(name, np.zeros((0, 3, 9), np.float32), 6, stride=3, padding=2)


@pytest.mark.parametrize("name", ["alpha_dropout", "feature_alpha_dropout"])
def test_alpha_dropouts_keep_selu_statistics(name):
    """Kept elements are a * x + b, dropped ones a * -alpha + b (torch's constants); the mean
    and variance of a standard normal input survive; identity unless training."""
    x = R.normal(size=(200, 50, 4)).astype(np.float32)
    np.testing.assert_array_equal(getattr(F, name)(dlg.tensor(x), 0.3).numpy(), x)
    dlg.manual_seed(0)
    y = getattr(F, name)(dlg.tensor(x), 0.3, training=True).numpy()
    alpha, p = 1.7580993408473766, 0.3
    a = (p * alpha ** 2 + 1) ** -0.5 / (1 - p) ** 0.5
    b = alpha * a * p
    kept = np.isclose(y, a * x + b, atol=1e-6)
    assert (kept | np.isclose(y, -alpha * a + b, atol=1e-6)).all()
    assert abs(kept.mean() - 0.7) < 0.05
    if name == "feature_alpha_dropout":
        assert (kept.min(-1) == kept.max(-1)).all(), "whole channels"
    assert abs(y.mean()) < 0.05 and abs(y.std() - 1) < 0.05
    with torch.no_grad():
        t = getattr(TF, name)(torch.tensor(x), 0.3, training=True).numpy()
    assert abs(t.mean()) < 0.05 and abs(t.std() - 1) < 0.05
