"""The standard layers of prelude.dlg against torch.nn: given the same weights (a torch
state_dict loaded into the dlg model) they compute the same outputs, in eval and in training
mode (batch-norm running statistics included); their parameters carry PyTorch's names in
PyTorch's order; and their default initialisers draw from PyTorch's distributions."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

import dlg

torch = pytest.importorskip("torch")
nn = torch.nn

TRAIN = "train M { loss = mean(y) optimizer = SGD(lr=0.1) }"


def literal(v: Any) -> str:
    """A Python attribute value as dlg source."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, tuple):
        return "(" + ", ".join(literal(e) for e in v) + (",)" if len(v) == 1 else ")")
    return repr(v)


def call(kind: str, *args: Any, **kwargs: Any) -> str:
    """`kind(args, kw=...)` in dlg syntax, mirroring the torch.nn constructor call."""
    parts = [literal(a) for a in args] + [f"{k}={literal(v)}" for k, v in kwargs.items()]
    return f"{kind}({', '.join(parts)})"


def one_layer(kind: str, in_type: str, *args: Any, train: bool = False, **kwargs: Any):
    """A dlg model `y = layer(x)` and the torch.nn module built from the same arguments."""
    src = (f"model M {{ input x: {in_type}  layer m = {call(kind, *args, **kwargs)}  "
           f"output y = m(x) }}")
    return dlg.loads(src + (TRAIN if train else "")), getattr(nn, kind)(*args, **kwargs)


def same_weights(m: dlg.Model, module) -> None:
    """Load the module's state_dict into `m`, whose layer is named `m`."""
    state = {f"m.{k}": v for k, v in module.state_dict().items()}
    assert list(m.params) == list(state), "parameter names and order follow PyTorch"
    m.load_state_dict(state)


def randn(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def torch_eval(module, *xs):
    with torch.no_grad():
        return module.eval()(*(torch.from_numpy(x) if isinstance(x, np.ndarray) else x
                               for x in xs))


def check_eval(kind: str, in_type: str, x: np.ndarray, *args: Any, rtol: float = 1e-5,
               atol: float = 1e-5, **kwargs: Any) -> None:
    torch.manual_seed(0)
    m, module = one_layer(kind, in_type, *args, **kwargs)
    same_weights(m, module)
    expected = torch_eval(module, x).numpy()
    got = m(x=x)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


# ---- Linear, convolution, pooling, flatten --------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
def test_linear(bias):
    check_eval("Linear", "f32[N, 7]", randn(3, 7), 7, 5, bias=bias)
    check_eval("Linear", "f32[N, T, 7]", randn(2, 4, 7), 7, 5, bias=bias)


CONV_GRID = [
    {"stride": s, "padding": p, "dilation": d, "groups": g, "bias": b}
    for s, p, d, g, b in itertools.product([1, 2], [0, 1, "same", "valid"], [1, 2], [1, 2],
                                           [True, False])
    if not (p == "same" and s != 1)  # PyTorch refuses padding="same" with strides
]


@pytest.mark.parametrize("kw", CONV_GRID, ids=str)
def test_conv1d(kw):
    check_eval("Conv1d", "f32[N, 4, 11]", randn(2, 4, 11), 4, 6, 3, **kw)


@pytest.mark.parametrize("kw", CONV_GRID, ids=str)
def test_conv2d(kw):
    check_eval("Conv2d", "f32[N, 4, 9, 8]", randn(2, 4, 9, 8), 4, 6, 3, **kw)


@pytest.mark.parametrize("kw", [
    {"kernel_size": (3, 2)},
    {"kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 0), "dilation": (1, 2)},
    {"kernel_size": (2, 3), "padding": "same", "dilation": (2, 1)},
    {"kernel_size": 4, "padding": "same"},  # even kernel: PyTorch pads more on the right
], ids=str)
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_conv2d_tuple_attributes(kw):
    check_eval("Conv2d", "f32[N, 2, 7, 8]", randn(2, 2, 7, 8), 2, 3, **kw)


POOL_GRID = [
    {"kernel_size": k, "stride": s, "padding": p, "ceil_mode": c}
    for k, s, p, c in itertools.product([2, 3], [None, 1, 2], [0, 1], [False, True])
]


@pytest.mark.parametrize("kw", POOL_GRID, ids=str)
@pytest.mark.parametrize("dilation", [1, 2])
def test_max_pool(kw, dilation):
    check_eval("MaxPool1d", "f32[N, 3, 10]", randn(2, 3, 10), **kw, dilation=dilation)
    check_eval("MaxPool2d", "f32[N, 3, 9, 10]", randn(2, 3, 9, 10), **kw, dilation=dilation)


@pytest.mark.parametrize("kw", POOL_GRID, ids=str)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool(kw, count_include_pad):
    check_eval("AvgPool1d", "f32[N, 3, 10]", randn(2, 3, 10), **kw,
               count_include_pad=count_include_pad)
    check_eval("AvgPool2d", "f32[N, 3, 9, 10]", randn(2, 3, 9, 10), **kw,
               count_include_pad=count_include_pad)


def test_pools_with_tuple_attributes():
    x = randn(2, 3, 9, 10)
    check_eval("MaxPool2d", "f32[N, 3, 9, 10]", x, (3, 2), stride=(2, 1), padding=(1, 0))
    check_eval("AvgPool2d", "f32[N, 3, 9, 10]", x, (2, 3), stride=(1, 2), padding=(0, 1),
               ceil_mode=True, count_include_pad=False)


@pytest.mark.parametrize("start_dim, end_dim", [(1, -1), (0, -1), (1, 2), (2, 3), (0, 0),
                                                (-3, -2)])
def test_flatten(start_dim, end_dim):
    check_eval("Flatten", "f32[N, 2, 3, 4]", randn(5, 2, 3, 4), start_dim, end_dim)


# ---- dropout and activations ----------------------------------------------------------------
def test_dropout_is_the_identity_in_eval_mode():
    check_eval("Dropout", "f32[N, 8]", randn(4, 8), 0.3, rtol=0, atol=0)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_in_training_mode(p):
    m, _ = one_layer("Dropout", "f32[N, 100]", p, train=True)
    x = np.abs(randn(40, 100)) + 1
    (out, _) = m.interpreter.run(m.train_graph, {"x": x}, m.params)
    y = out["y"]
    kept = y != 0
    # PyTorch's inverted dropout: zeros with probability p, the kept ones scaled by 1 / (1 - p)
    np.testing.assert_allclose(y[kept], x[kept] / (1 - p), rtol=1e-6)
    n = x.size
    assert abs((~kept).mean() - p) < 4 * np.sqrt(p * (1 - p) / n)
    (again, _) = m.interpreter.run(m.train_graph, {"x": x}, m.params)
    assert not np.array_equal(again["y"] != 0, kept), "a fresh mask each run"


@pytest.mark.parametrize("kind, args", [
    ("ReLU", ()), ("Sigmoid", ()), ("Tanh", ()), ("GELU", ()), ("GELU", ("tanh",)),
    ("Softmax", (1,)), ("Softmax", (-1,)), ("LogSoftmax", (1,)), ("LogSoftmax", (-1,)),
])
def test_activation_layers(kind, args):
    check_eval(kind, "f32[N, 4, 5]", 3 * randn(3, 4, 5), *args)


# ---- normalisation and embedding ------------------------------------------------------------
@pytest.mark.parametrize("shape, affine", [(6, True), (6, False), ((5, 6), True),
                                           ((5, 6), False), ((4, 5, 6), True)])
def test_layer_norm(shape, affine):
    torch.manual_seed(0)
    m, module = one_layer("LayerNorm", "f32[N, 4, 5, 6]", shape, elementwise_affine=affine)
    if affine:  # non-trivial affine weights
        with torch.no_grad():
            module.weight.normal_()
            module.bias.normal_()
    same_weights(m, module)
    x = 2 * randn(3, 4, 5, 6) + 1
    np.testing.assert_allclose(m(x=x), torch_eval(module, x).numpy(), rtol=1e-5, atol=1e-5)


def test_embedding():
    torch.manual_seed(0)
    m, module = one_layer("Embedding", "i64[N, 5]", 10, 3)
    same_weights(m, module)
    ids = np.random.default_rng(0).integers(0, 10, (4, 5))
    np.testing.assert_array_equal(m(x=ids), torch_eval(module, ids).numpy())


BATCH_NORMS = [("BatchNorm1d", (4, 3)), ("BatchNorm1d", (4, 3, 5)), ("BatchNorm2d", (4, 3, 5, 2))]


def batch_norm_pair(kind: str, shape: tuple[int, ...], **kwargs: Any):
    in_type = "f32[N, " + ", ".join(str(d) for d in shape[1:]) + "]"
    torch.manual_seed(0)
    m, module = one_layer(kind, in_type, shape[1], train=True, **kwargs)
    with torch.no_grad():  # away from the default init, so every term of the formula shows
        module.weight.normal_()
        module.bias.normal_()
        module.running_mean.normal_()
        module.running_var.uniform_(0.5, 2.0)
        module.num_batches_tracked.fill_(3)
    same_weights(m, module)
    return m, module


@pytest.mark.parametrize("kind, shape", BATCH_NORMS)
def test_batch_norm_eval(kind, shape):
    m, module = batch_norm_pair(kind, shape)
    x = 2 * randn(*shape) + 1
    np.testing.assert_allclose(m(x=x), torch_eval(module, x).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind, shape", BATCH_NORMS)
@pytest.mark.parametrize("kwargs", [{}, {"momentum": 0.3, "eps": 1e-3}], ids=str)
def test_batch_norm_train(kind, shape, kwargs):
    m, module = batch_norm_pair(kind, shape, **kwargs)
    x = 2 * randn(*shape) + 1
    out, updates = m.interpreter.run(m.train_graph, {"x": x}, m.params)
    module.train()
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out["y"], expected, rtol=1e-5, atol=1e-5)
    assert sorted(updates) == [f"m.{b}" for b in
                               ("num_batches_tracked", "running_mean", "running_var")]
    for name, buf in module.named_buffers():
        got, want = updates[f"m.{name}"], buf.numpy()
        assert got.dtype == want.dtype and got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)


# ---- recurrent layers -----------------------------------------------------------------------
RNN_CASES = [
    dict(kind=kind, num_layers=layers, batch_first=bf, bias=bias, initial=initial, **extra)
    for kind, extra in [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("GRU", {}),
                        ("LSTM", {})]
    for layers, bf, bias, initial in itertools.product([1, 2], [False, True], [True, False],
                                                       [False, True])
] + [
    dict(kind=kind, num_layers=2, batch_first=bf, bidirectional=True, initial=initial, **extra)
    for kind, extra in [("RNN", {"nonlinearity": "relu"}), ("GRU", {}), ("LSTM", {}),
                        ("LSTM", {"proj_size": 3})]
    for bf, initial in itertools.product([False, True], [False, True])
]


@pytest.mark.parametrize("case", RNN_CASES, ids=str)
def test_recurrent(case):
    case = dict(case)
    kind, initial = case.pop("kind"), case.pop("initial")
    layers, bf = case["num_layers"], case["batch_first"]
    IN, H, N, T = 3, 4, 2, 5
    states = layers * (2 if case.get("bidirectional") else 1)
    state_type = f"f32[{states}, N, {{}}]"
    inputs = ["input x: " + ("f32[N, T, 3]" if bf else "f32[T, N, 3]")]
    if initial:
        inputs.append(f"input h0: {state_type.format(case.get('proj_size') or H)}")
        state = "(h0, c0)" if kind == "LSTM" else "h0"
        if kind == "LSTM":
            inputs.append(f"input c0: {state_type.format(H)}")
        body = f"seq, hn = m(x, {state})"
    else:
        body = "seq, hn = m(x)"
    if kind == "LSTM":
        body = body.replace("seq, hn", "seq, (hn, cn)") + " output y, h, c = seq, hn, cn"
    else:
        body += " output y, h = seq, hn"
    src = (f"model M {{ {' '.join(inputs)}  layer m = {call(kind, IN, H, **case)}  {body} }}")
    m = dlg.loads(src)
    torch.manual_seed(0)
    module = getattr(nn, kind)(IN, H, **case)
    same_weights(m, module)

    x = randn(*((N, T, IN) if bf else (T, N, IN)))
    feed = {"x": x}
    torch_args: list[Any] = [torch.from_numpy(x)]
    if initial:
        feed["h0"] = randn(states, N, case.get("proj_size") or H, seed=1)
        if kind == "LSTM":
            feed["c0"] = randn(states, N, H, seed=2)
            torch_args.append((torch.from_numpy(feed["h0"]), torch.from_numpy(feed["c0"])))
        else:
            torch_args.append(torch.from_numpy(feed["h0"]))
    seq, final = torch_eval(module, *torch_args)
    expected = [seq] + (list(final) if kind == "LSTM" else [final])
    got = m(**feed)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == tuple(e.shape)
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-5, atol=1e-5)


# ---- default initialisation -----------------------------------------------------------------
def stats(a: np.ndarray) -> np.ndarray:
    return np.array([a.mean(), a.std(), a.min(), a.max()], dtype=np.float64)


@pytest.mark.parametrize("kind, in_type, args", [
    ("Linear", "f32[N, 300]", (300, 200)),
    ("Linear", "f32[N, 1000]", (1000, 60)),
    ("Conv2d", "f32[N, 16, 8, 8]", (16, 64, 5)),
    ("Conv2d", "f32[N, 32, 8, 8]", (32, 32, 3, 1, 0, 1, 4)),  # grouped: fan_in is per group
    ("LSTM", "f32[T, N, 50]", (50, 80, 2)),
    ("Embedding", "i64[N]", (300, 64)),
    ("BatchNorm2d", "f32[N, 16, 4, 4]", (16,)),
    ("BatchNorm1d", "f32[N, 16]", (16,)),
])
def test_default_initialisation_matches_pytorch(kind, in_type, args):
    src = f"model M {{ input x: {in_type}  layer m = {call(kind, *args)}  output y = m(x) }}"
    if kind == "LSTM":
        src = src.replace("output y = m(x)", "seq, state = m(x) output y = seq")
    m = dlg.loads(src, seed=0)
    torch.manual_seed(0)
    state = {f"m.{k}": v for k, v in getattr(nn, kind)(*args).state_dict().items()}
    assert list(m.params) == list(state)
    for name, want in state.items():
        got, want = m.params[name], want.numpy()
        assert got.dtype == want.dtype and got.shape == want.shape, name
        if want.dtype == np.int64 or np.all(want == want.flat[0]):  # constant inits are exact
            np.testing.assert_array_equal(got, want, err_msg=name)
            continue
        g, w = stats(got), stats(want)
        spread, n = w[1], want.size
        # mean and std within 5 standard errors of the difference of two draws; the extremes
        # within half a std (a uniform's extremes sit near its bounds)
        assert abs(g[0] - w[0]) < 5 * np.sqrt(2 / n) * spread, name
        assert abs(g[1] - w[1]) < 5 * np.sqrt(1 / n) * spread, name
        np.testing.assert_allclose(g[2:], w[2:], atol=0.5 * spread, err_msg=name)
    random = [k for k in m.params if np.unique(m.params[k]).size > 1]
    different = dlg.loads(src, seed=1)
    assert all(not np.array_equal(different.params[k], m.params[k]) for k in random), \
        "the seed picks the draw"


def test_loaded_weights_are_copies():
    m, module = one_layer("Linear", "f32[N, 3]", 3, 2)
    same_weights(m, module)
    before = m.params["m.weight"].copy()
    with torch.no_grad():
        module.weight.zero_()
    np.testing.assert_array_equal(m.params["m.weight"], before)
