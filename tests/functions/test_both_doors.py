"""The same call through both front doors (STYLE §10-12): a .dlg snippet and eager Python give
equal values, and for bad arguments the same DlgError text, located at the .dlg call and at the
Python line that made the call."""

from __future__ import annotations

import re

import numpy as np
import pytest

import dlg
import dlg.nn as nn
import dlg.nn.functional as F
from dlg.errors import DlgError
from dlg.functions.fold import fold
from dlg.ir.ops import REGISTRY

R = np.random.default_rng(0)
INPUTS = {"x": R.uniform(-1, 1, (2, 3)).astype(np.float32),
          "x4": R.uniform(-1, 1, (2, 3, 6, 6)).astype(np.float32),
          "w": R.uniform(-1, 1, (4, 3, 3, 3)).astype(np.float32),
          "g": np.ones(3, np.float32), "t": np.array([0, 2])}
TYPES = {"x": "f32[2, 3]", "x4": "f32[2, 3, 6, 6]", "w": "f32[4, 3, 3, 3]", "g": "f32[3]",
         "t": "i64[2]"}


def model_head(call: str) -> tuple[str, list[str]]:
    names = [n for n in INPUTS if n in re.findall(r"[A-Za-z_]\w*", call)]
    return "model M { " + " ".join(f"input {n}: {TYPES[n]}" for n in names) + " output y = ", names


def dlg_door(call: str) -> np.ndarray:
    """`call` as the output of a .dlg model over the inputs it names."""
    head, names = model_head(call)
    return dlg.loads(head + call + " }", file="t.dlg")(**{n: INPUTS[n] for n in names})


def python_door(fn):
    return fn(**{n: dlg.tensor(a) for n, a in INPUTS.items()})


# (the .dlg call, the same call in Python)
VALUES = [
    ("sum(x, axis=1)", lambda x, **_: dlg.sum(x, dim=1)),
    ("sum(x, axis=(0, 1), keepdims=true)", lambda x, **_: x.sum((0, 1), keepdim=True)),
    ("sum(x > 0)", lambda x, **_: (x > 0).sum()),
    ("mean(x, 0)", lambda x, **_: dlg.mean(x, 0)),
    ("max(x, axis=1)", lambda x, **_: x.max(1).values),
    ("argmax(x, axis=1)", lambda x, **_: x.argmax(dim=1)),
    ("logsumexp(x, axis=1)", lambda x, **_: dlg.logsumexp(x, 1)),
    ("softmax(x, axis=1)", lambda x, **_: F.softmax(x, dim=1)),
    ("log_softmax(x, 0)", lambda x, **_: x.log_softmax(0)),
    ("maximum(x, 0.5)", lambda x, **_: dlg.maximum(x, 0.5)),
    ("leaky_relu(x, negative_slope=0.2)", lambda x, **_: F.leaky_relu(x, 0.2)),
    ("gelu(x, approximate=\"tanh\")", lambda x, **_: F.gelu(x, approximate="tanh")),
    ("erf(x) + rsqrt(x * x + 1.0)", lambda x, **_: x.erf() + (x * x + 1.0).rsqrt()),
    ("where(x > 0, x, 0.0)", lambda x, **_: dlg.where(x > 0, x, 0.0)),
    ("cast(x, f64)", lambda x, **_: x.double()),
    ("reshape(x, 3, -1)", lambda x, **_: x.view(3, -1)),
    ("permute(x, 1, 0) @ x", lambda x, **_: x.permute(1, 0) @ x),
    ("transpose(x, 0, 1)", lambda x, **_: x.transpose(0, 1)),
    ("squeeze(unsqueeze(x, axis=0), 1)", lambda x, **_: x.unsqueeze(0).squeeze(1)),
    ("broadcast_to(unsqueeze(x, 0), 4, -1, 3)", lambda x, **_: x.unsqueeze(0).expand(4, -1, 3)),
    ("concat((x, x), axis=1)", lambda x, **_: dlg.cat([x, x], dim=1)),
    ("stack((x, x))", lambda x, **_: dlg.stack((x, x))),
    ("flatten(x4)", lambda x4, **_: nn.Flatten()(x4)),
    ("conv2d(x4, w, stride=2, padding=1)", lambda x4, w, **_: F.conv2d(x4, w, stride=2,
                                                                        padding=1)),
    ("conv2d(x4, w, padding=\"same\")", lambda x4, w, **_: F.conv2d(x4, w, padding="same")),
    ("max_pool2d(x4, 2, 1, 1, 2)", lambda x4, **_: F.max_pool2d(x4, 2, 1, 1, 2)),
    ("avg_pool2d(x4, 3, ceil_mode=true)", lambda x4, **_: F.avg_pool2d(x4, 3, ceil_mode=True)),
    ("layer_norm(x, 3, g, g)", lambda x, g, **_: F.layer_norm(x, 3, g, g)),
    ("cross_entropy(x, t, label_smoothing=0.1)",
     lambda x, t, **_: F.cross_entropy(x, t, label_smoothing=0.1)),
    ("dropout(x, 0.0)", lambda x, **_: F.dropout(x, 0.0)),
]


@pytest.mark.parametrize("call, fn", VALUES, ids=[v[0] for v in VALUES])
def test_same_call_same_value(call, fn):
    got = dlg_door(call)
    want = python_door(fn)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-6, atol=1e-6)


# (the .dlg call, the same call in Python, the message both give)
ERRORS = [
    ('conv2d(x4, w, stride="x")', lambda x4, w, **_: F.conv2d(x4, w, stride="x"),
     "stride must be an int or a tuple of 2 ints, got str 'x'"),
    ('conv2d(x4, w, padding="full")', lambda x4, w, **_: F.conv2d(x4, w, padding="full"),
     "padding must be 'same' or 'valid', got str 'full'"),
    ("conv2d(x4, w, groups=0)", lambda x4, w, **_: F.conv2d(x4, w, groups=0),
     "groups must be a positive int, got int 0"),
    ("conv2d(x4, w, dilation=(1, 2, 3))", lambda x4, w, **_: F.conv2d(x4, w, dilation=(1, 2, 3)),
     "dilation must be an int or a tuple of 2 ints, got a tuple of 3"),
    ("max_pool2d(x4, (2, 2, 2))", lambda x4, **_: F.max_pool2d(x4, (2, 2, 2)),
     "kernel_size must be an int or a tuple of 2 ints, got a tuple of 3"),
    ("softmax(x, axs=1)", lambda x, **_: F.softmax(x, axs=1),
     "softmax() has no argument 'axs'; did you mean 'axis'?"),
    ("sigmoid(x, x)", lambda x, **_: dlg.sigmoid(x, x),
     "sigmoid(): too many positional arguments"),
    ("exp()", lambda **_: dlg.exp(), "exp(): missing argument: 'x'"),
    ("sum(x, axis=1.5)", lambda x, **_: x.sum(1.5),
     "sum: axis must be an int or a tuple of ints, got float 1.5"),
    ('leaky_relu(x, negative_slope="a")', lambda x, **_: F.leaky_relu(x, negative_slope="a"),
     "leaky_relu: negative_slope must be a number, got str 'a'"),
    ('gelu(x, approximate="fast")', lambda x, **_: F.gelu(x, approximate="fast"),
     "gelu: approximate must be 'none' or 'tanh', got str 'fast'"),
    ("cast(x, 3)", lambda x, **_: dlg.cast(x, 3),
     "cast: dtype must be a dtype such as f32, got int 3"),
    ('cross_entropy(x, t, reduction="avg")',
     lambda x, t, **_: F.cross_entropy(x, t, reduction="avg"),
     "cross_entropy: reduction must be 'mean', 'sum' or 'none', got str 'avg'"),
    ("dropout(x, p=1.5)", lambda x, **_: F.dropout(x, p=1.5),
     "dropout: probability p must be a number in [0, 1], got float 1.5"),
    ("reshape(x, 4, -1)", lambda x, **_: x.reshape(4, -1),
     r"reshape: cannot reshape f32[2,3] to [4, -1]: 6 elements do not divide by 4"),
    ("transpose(x, 0, 5)", lambda x, **_: x.transpose(0, 5),
     "transpose: axis 5 is out of range for f32[2,3]"),
    ("chunk(x, 0, axis=1)", lambda x, **_: x.chunk(0, dim=1),
     "chunk: chunks must be a positive int, got int 0"),
    ("layer_norm(x, 2, g)", lambda x, g, **_: F.layer_norm(x, 2, g),
     "layer_norm: input f32[2,3] does not end with normalized_shape [2]"),
    ("concat(x, axis=0)", lambda x, **_: dlg.cat(x, 0),
     "concat takes a tuple of tensors, e.g. concat((a, b), axis=0)"),
    ("matmul(x, x)", lambda x, **_: dlg.matmul(x, x),
     "matmul: inner dims differ: f32[2,3] @ f32[2,3]"),
    ("exp(x, 1)", lambda x, **_: x.exp(1), "exp(): too many positional arguments"),
]


@pytest.mark.parametrize("call, fn, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_same_bad_call_same_error(call, fn, message):
    with pytest.raises(DlgError) as from_dlg:
        dlg_door(call)
    with pytest.raises(DlgError) as from_python:
        python_door(fn)
    assert from_dlg.value.message == from_python.value.message == message
    assert type(from_dlg.value) is type(from_python.value)
    span = from_dlg.value.span
    assert (span.file, span.line, span.col) == ("t.dlg", 1, len(model_head(call)[0]) + 1)
    span = from_python.value.span
    assert (span.file, span.line) == (__file__, fn.__code__.co_firstlineno)


def test_modules_check_their_options_as_the_prelude_layers_do():
    with pytest.raises(DlgError) as from_dlg:
        dlg.loads('model M { input x4: f32[2, 3, 6, 6] layer c = Conv2d(3, 4, 3, stride="x") '
                  "output y = c(x4) }", file="t.dlg")
    with pytest.raises(DlgError) as from_python:
        nn.Conv2d(3, 4, 3, stride="x")
    assert from_dlg.value.message == from_python.value.message == (
        "stride must be an int or a tuple of 2 ints, got str 'x'")
    assert from_python.value.span.file == __file__
    with pytest.raises(DlgError, match="kernel_size must be an int or a tuple of 2 ints"):
        nn.MaxPool2d((2, 2, 2))


# ---- static numbers fold through the op's reference ---------------------------------------
@pytest.mark.parametrize("op, value", [("sigmoid", -1000.0), ("exp", 1000.0), ("log", -1.0),
                                       ("sqrt", 2), ("tanh", 0.5), ("abs", -3), ("erf", 0.5),
                                       ("floor", 2.5), ("neg", 4)])
def test_static_numbers_are_the_ops_reference(op, value):
    """The folded number is OpDef.ref on a float64 (ints: int64, or float64 where the op takes
    only floats) scalar; in a .dlg file it is the value the model computes with."""
    ref = REGISTRY[op].ref
    with np.errstate(all="ignore"):
        arg = np.float64(value) if isinstance(value, float) or op in ("sqrt", "erf", "tanh") \
            else np.int64(value)
        want = ref(np.asarray(arg)).item()
    got = fold(REGISTRY[op], [value], {})
    assert type(got) is type(want)
    np.testing.assert_equal(got, want)
    m = dlg.loads(f"model M {{ input x: f32[1] output y = x * 0.0 + full((1,), {op}({value})) }}")
    np.testing.assert_equal(m(x=np.ones(1, np.float32)), np.float32(want))


def test_static_ints_stay_ints_and_composites_fold():
    m = dlg.loads("model M { input x: f32[N] output y = full((abs(-3), maximum(1, 2)), "
                  "leaky_relu(-2.0, negative_slope=0.5)) }")
    np.testing.assert_equal(m(x=np.ones(1, np.float32)), np.full((3, 2), -1.0, np.float32))
