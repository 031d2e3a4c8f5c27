"""Gradient checks against central finite differences in float64 (JAX's `check_vjp` idea: compare
<grad, v> with the directional derivative along random directions v), and a rewrite that turns
an f32 graph (a model) into the same graph in f64 so the differences are accurate."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from dlg.compiler.passes.autodiff import grad
from dlg.ir import Builder, DType, Graph, TensorType
from dlg.ir.graph import Node, Value
from dlg.ir.rewrite import copy_graph
from dlg.runtime.interp import Interpreter

EPS = 1e-6


def to_f64(g: Graph) -> Graph:
    """`g` with every f32 value made f64 (inputs, params, constants, dtype attrs, scan bodies)."""
    return copy_graph(g, _emit_f64)


def _emit_f64(b: Builder, node: Node, inputs: tuple[Value, ...]) -> Value | tuple[Value, ...]:
    attrs = {k: _attr_f64(v) for k, v in node.attrs.items()}
    return b.emit(node.op, *inputs, name=node.name, **attrs)


def _attr_f64(v):
    if v is DType.f32:
        return DType.f64
    if isinstance(v, np.ndarray) and v.dtype == np.float32:
        return v.astype(np.float64)
    if isinstance(v, Graph):
        return to_f64(v)
    return v


def scalar_loss(g: Graph, weights_seed: int = 0) -> tuple[Graph, dict[str, np.ndarray]]:
    """`g` plus an output `check_loss` = sum_i sum(out_i * w_i) over its float outputs, with the
    random weights w_i as extra inputs (returned); a complex output adds Re(sum(out_i * w_i))
    for complex weights."""
    b = Builder(g)
    rng = np.random.default_rng(weights_seed)
    total, weights = None, {}
    for name, v in list(g.outputs):
        t = g.type_of(v)
        if not t.dtype.is_inexact:
            continue
        w = b.input(f"w_{name}", t)
        shape = tuple(int(d) for d in t.shape)
        weights[f"w_{name}"] = _random(rng, shape, t.dtype.np)
        term = b.reduce_sum(b.mul(v, w))
        if t.dtype.is_complex:
            term = b.real(term)
        total = term if total is None else b.add(total, term)
    assert total is not None, "no float output to differentiate"
    g.set_output("check_loss", total)
    return g, weights


def check_gradients(g: Graph, inputs: Mapping[str, np.ndarray], params: Mapping[str, np.ndarray],
                    wrt: list[str], loss: str = "check_loss", directions: int = 3,
                    seed: int = 0, rtol: float = 1e-6, eps: float = EPS) -> float:
    """Compare grad(g) with central differences along random directions; returns the worst
    relative error (and asserts it is below rtol)."""
    gg = grad(g, loss, wrt=wrt)
    values = {**inputs, **params}

    def run(graph: Graph, vals: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        ins = {k: vals[k] for k in (n.name for n in graph.inputs)}
        return Interpreter(seed).run(graph, ins, {k: vals[k] for k in params})[0]

    grads = run(gg, values)
    rng = np.random.default_rng(seed + 1)
    worst = 0.0
    for _ in range(directions):
        v = {k: _random(rng, np.shape(values[k]), np.asarray(values[k]).dtype) for k in wrt}
        plus = {**values, **{k: values[k] + eps * v[k] for k in wrt}}
        minus = {**values, **{k: values[k] - eps * v[k] for k in wrt}}
        numeric = (float(run(g, plus)[loss]) - float(run(g, minus)[loss])) / (2 * eps)
        # a complex gradient is torch's dL/dx + i dL/dy: <g, v> is Re(conj(g) v)
        analytic = sum(float(np.sum(np.real(np.conj(grads["grad." + k]) * v[k]))) for k in wrt)
        err = abs(numeric - analytic) / max(1.0, abs(numeric))
        worst = max(worst, err)
    assert worst < rtol, f"gradient check failed: worst relative error {worst:.2e} (rtol {rtol})"
    return worst


def _random(rng: np.random.Generator, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """Standard normal values; complex ones with both parts drawn."""
    x = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


def f64_inputs(types: Mapping[str, TensorType], rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {k: rng.standard_normal(tuple(int(d) for d in t.shape)) for k, t in types.items()}
