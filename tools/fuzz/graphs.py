"""Campaign (b): random valid graphs (NNSmith-style: a DAG grown one op at a time from values
already made, each op's attributes drawn to fit its input's shape), compiled vs the NumPy
interpreter, forward and, for half of them, the gradient of a weighted sum wrt every input.

Families: unary (including positive-domain ops over `x*x + 0.5`), broadcasting binary ops,
reductions, movement (reshape, transpose, slice, pad, concat, broadcast, unsqueeze, stack),
cumsum, matmul (vector, matrix and broadcast batched), softmax, layer norm, where, 1-D and 2-D
convolution (stride, dilation, groups, asymmetric padding), max/avg pooling and scan (a tanh
recurrence with a carry, a per-step output, a constant, either direction).

Tolerance: rtol 1e-4 and atol 1e-5 x max(1, max |expected|), elementwise (tools/fuzz/oracle.py,
which also says when a value outside it is not a finding). The compiled code sums in other
orders (blocked and vectorised matmul, convolution and reductions, FMA contraction) in float32,
whose unit roundoff is 6e-8; sums here have under ~500 terms, so a correct, well-conditioned
result stays within ~1e-5 relative of the interpreter, and a wrong index or a dropped term is
far outside.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import cache

import numpy as np

from dlg.compiler.passes.autodiff import grad
from dlg.errors import DlgError
from dlg.ir import Builder, DType, Graph, TensorType
from dlg.ir.graph import Value
from dlg.ir.ops.control import SCAN
from dlg.runtime.interp import Interpreter
from dlg.runtime.native import NativeGraph
from tools.fuzz.oracle import close, float64_run

F32 = DType.f32
UNARY = ["neg", "abs", "tanh", "sigmoid", "relu", "sin", "cos", "gelu", "leaky_relu", "silu",
         "softplus", "elu", "erf", "square"]
POSITIVE = ["log", "sqrt", "rsqrt", "reciprocal", "exp"]
BINARY = ["add", "sub", "mul", "maximum", "minimum", "div"]
REDUCE = ["reduce_sum", "reduce_max", "reduce_min", "reduce_mean", "logsumexp", "reduce_var"]
TIMEOUT = 60.0  # seconds a case may take (its compile included)


class GraphMaker:
    """One random graph: `grow` picks an op family and applies it to an existing value."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.g = Graph("fuzz")
        self.b = Builder(self.g)
        self.inputs: dict[str, np.ndarray] = {}
        self.data = np.random.default_rng(rng.randrange(2**31))

    def fresh(self, shape: tuple[int, ...]) -> Value:
        name = f"x{len(self.inputs)}"
        self.inputs[name] = self.data.standard_normal(shape).astype(np.float32)
        return self.b.input(name, TensorType(F32, shape))

    def shape(self, v: Value) -> tuple[int, ...]:
        return tuple(int(d) for d in self.g.type_of(v).shape)

    def positive(self, v: Value) -> Value:
        return self.b.add(self.b.mul(v, v), self.b.full(shape=(), value=0.5))

    # ---- op families: each returns a new value, or None when it does not fit ---------------
    def unary(self, v: Value) -> Value:
        if self.rng.random() < 0.3:
            op = self.rng.choice(POSITIVE)
            x = self.b.tanh(v) if op == "exp" else self.positive(v)
            return getattr(self.b, op)(x)
        return getattr(self.b, self.rng.choice(UNARY))(v)

    def binary(self, v: Value) -> Value:
        shape = self.shape(v)
        other = tuple(1 if self.rng.random() < 0.5 else d for d in shape)
        other = other[self.rng.randint(0, len(other)):]
        if self.rng.random() < 0.2 and shape:  # a broadcast the other way: v's dims grow
            other = (self.rng.randint(1, 3),) + tuple(self.rng.choice([1, d]) for d in shape)
        w = self.fresh(other)
        op = self.rng.choice(BINARY)
        if op == "div":
            return self.b.div(v, self.positive(w))
        a, c = (v, w) if self.rng.random() < 0.5 else (w, v)
        return getattr(self.b, op)(a, c)

    def reduce(self, v: Value) -> Value | None:
        rank = len(self.shape(v))
        if not rank:
            return None
        axes = tuple(sorted(self.rng.sample(range(rank), self.rng.randint(1, rank))))
        op = self.rng.choice(REDUCE)
        keep = self.rng.random() < 0.5
        if op == "reduce_var":
            if min(self.shape(v)[a] for a in axes) < 2:
                return None
            return self.b.reduce_var(v, axes=axes, keepdims=keep, correction=1.0)
        return getattr(self.b, op)(v, axes=axes, keepdims=keep)

    def movement(self, v: Value) -> Value | None:
        shape, rng, b = self.shape(v), self.rng, self.b
        kind = rng.choice(["transpose", "reshape", "slice", "pad", "concat", "broadcast",
                           "unsqueeze", "stack", "cumsum"])
        if kind == "reshape":
            n = int(np.prod(shape))
            divisors = [d for d in range(1, n + 1) if n % d == 0]
            new = (rng.choice(divisors),)
            return b.reshape(v, shape=new + (n // new[0],) if rng.random() < 0.7 else (n,))
        if kind == "broadcast":
            return b.broadcast_to(v, shape=(rng.randint(1, 3),) + shape)
        if kind == "unsqueeze":
            return b.unsqueeze(v, axes=(rng.randint(0, len(shape)),))
        if not shape:
            return None
        axis = rng.randrange(len(shape))
        if kind == "transpose":
            perm = list(range(len(shape)))
            rng.shuffle(perm)
            return b.transpose(v, perm=tuple(perm))
        if kind == "slice":
            start = rng.randrange(shape[axis])
            stop = rng.randint(start + 1, shape[axis])
            return b.slice(v, axes=(axis,), starts=(start,), stops=(stop,),
                           steps=(rng.randint(1, 3),))
        if kind == "pad":
            pads = tuple((rng.randint(0, 2), rng.randint(0, 2)) for _ in shape)
            return b.pad(v, pads=pads, value=rng.choice([0.0, -1.5]))
        if kind == "concat":
            other = self.fresh(shape[:axis] + (rng.randint(1, 3),) + shape[axis + 1:])
            return b.concat(*((v, other) if rng.random() < 0.5 else (other, v)), axis=axis)
        if kind == "stack":
            return b.stack(v, b.neg(v), axis=rng.randint(0, len(shape)))
        return b.cumsum(v, axis=axis, reverse=rng.random() < 0.5)

    def matmul(self, v: Value) -> Value | None:
        shape, rng = self.shape(v), self.rng
        if not shape:
            return None
        m = rng.randint(1, 6)
        if len(shape) == 1 or rng.random() < 0.7:
            return self.b.matmul(v, self.fresh((shape[-1], m)))
        batch = tuple(rng.choice([1, d]) for d in shape[:-2])[rng.randint(0, len(shape) - 2):]
        w = self.fresh(batch + (m, shape[-2]))
        return self.b.matmul(w, v)  # [.., m, k] @ [.., k, n]

    def normalize(self, v: Value) -> Value | None:
        shape = self.shape(v)
        if not shape:
            return None
        if self.rng.random() < 0.5:
            op = self.rng.choice(["softmax", "log_softmax"])
            return getattr(self.b, op)(v, axis=self.rng.randrange(len(shape)))
        affine = [self.fresh(shape[-1:]), self.fresh(shape[-1:])] if self.rng.random() < 0.5 \
            else []
        return self.b.layer_norm(v, *affine, normalized_shape=shape[-1:], eps=1e-5)

    def where(self, v: Value) -> Value:
        b = self.b
        return b.where(b.gt(v, b.full(shape=(), value=0.0)), v, b.mul(v, v))

    def spatial(self, v: Value) -> Value | None:
        """Conv or pooling over v seen as [N, C, *spatial] (1 or 2 spatial dims)."""
        shape, rng = self.shape(v), self.rng
        if len(shape) == 2:
            shape = (1,) + shape
        if len(shape) not in (3, 4):
            return None
        x = self.b.reshape(v, shape=shape)
        nd, c = len(shape) - 2, shape[1]
        if rng.random() < 0.5:
            groups = rng.choice([g for g in range(1, c + 1) if c % g == 0])
            c_out = groups * rng.randint(1, 3)
            dilation = tuple(rng.randint(1, 2) for _ in range(nd))
            padding = tuple((rng.randint(0, 2), rng.randint(0, 2)) for _ in range(nd))
            kernel = tuple(rng.randint(1, max(1, (s + lo + hi - 1) // d + 1))
                           for s, (lo, hi), d in zip(shape[2:], padding, dilation))
            kernel = tuple(min(k, 3) for k in kernel)
            w = self.fresh((c_out, c // groups) + kernel)
            return self.b.conv(x, w, stride=tuple(rng.randint(1, 3) for _ in range(nd)),
                               padding=padding, dilation=dilation, groups=groups)
        kernel = tuple(rng.randint(1, min(3, s)) for s in shape[2:])
        padding = tuple(rng.randint(0, k // 2) for k in kernel)
        stride = tuple(rng.randint(1, 2) for _ in range(nd))
        op = rng.choice(["max_pool", "avg_pool"])
        return getattr(self.b, op)(x, kernel=kernel, stride=stride, padding=padding,
                                   ceil_mode=rng.random() < 0.5)

    def scan(self, v: Value) -> Value | None:
        """h' = tanh(h @ w + x_t) (or h * w for vectors of one), y_t = h' * x_t, over axis 0
        (the compiler's scans run over axis 0; other axes are a transpose away)."""
        shape, rng = self.shape(v), self.rng
        if not shape:
            return None
        step = shape[1:]
        h0 = self.fresh(step)
        d = step[-1] if step else 1
        w = self.fresh((d, d) if step else ())
        body = Graph("body")
        bb = Builder(body)
        h = bb.input("h", TensorType(F32, step))
        xt = bb.input("x_t", TensorType(F32, step))
        wt = bb.input("w", TensorType(F32, (d, d) if step else ()))
        mixed = bb.matmul(h, wt) if step else bb.mul(h, wt)
        h2 = bb.tanh(bb.add(mixed, xt))
        body.set_output("h", h2)
        body.set_output("y", bb.mul(h2, xt))
        carry, ys = self.b.emit(SCAN, h0, v, w, body=body, n_carry=1, n_seq=1, axis=0,
                                reverse=rng.random() < 0.5)
        if rng.random() < 0.5:  # use the final carry too
            return self.b.add(ys, carry)
        return ys

    FAMILIES: list[tuple[str, float]] = [
        ("unary", 3), ("binary", 3), ("reduce", 1.5), ("movement", 3), ("matmul", 1.5),
        ("normalize", 1), ("where", 0.5), ("spatial", 2), ("scan", 1)]

    def build(self) -> tuple[Graph, dict[str, np.ndarray]]:
        rng = self.rng
        shape = tuple(rng.randint(1, 5) for _ in range(rng.randint(1, 4)))
        values = [self.fresh(shape)]
        names, weights = zip(*self.FAMILIES)
        for _ in range(rng.randint(1, 8)):
            family: Callable[[Value], Value | None] = getattr(
                self, rng.choices(names, weights)[0])
            try:
                v = family(rng.choice(values))
            except DlgError:  # attributes this op refuses for this shape: try another
                continue
            if v is not None and int(np.prod(self.shape(v))) <= 4096:
                values.append(v)
        self.g.set_output("y", values[-1])
        if rng.random() < 0.5:  # and the gradient of a weighted sum, wrt every input
            weights_v = self.fresh(self.shape(values[-1]))
            self.g.set_output("loss", self.b.reduce_sum(self.b.mul(values[-1], weights_v)))
            return grad(self.g, "loss", wrt=list(self.inputs)), self.inputs
        return self.g, self.inputs


def make(seed: int, index: int) -> tuple[Graph, dict[str, np.ndarray]]:
    return GraphMaker(random.Random(f"graphs:{seed}:{index}")).build()


def compare(g: Graph, inputs: dict[str, np.ndarray]) -> None:
    expected, _ = Interpreter().run(g, inputs, {})
    got = NativeGraph(g)(inputs, {})
    exact = cache(lambda: float64_run(g, inputs, {}))
    for k, want in expected.items():
        close(f"{k}: compiled", got[k], want, lambda k=k: exact()[k])


def check(seed: int, index: int) -> str:
    compare(*make(seed, index))
    return "ok"


def describe(seed: int, index: int) -> str:
    from dlg.ir.printer import format_graph
    g, _ = make(seed, index)
    return format_graph(g, spans=False)
