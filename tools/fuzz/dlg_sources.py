"""Campaign (a): generated and mutated .dlg sources through parse -> elaborate -> infer ->
compile. Only a DlgError may escape; a syntax error's span must lie inside the text.

Compiling is the slow step (~1-5 s a graph on the shared machine against ~0.1 s to load), so
a source that loads is compiled when its graph is new to this worker and its index is a
multiple of `COMPILE_EVERY`; the compiled forward pass then runs on small inputs (every symbolic
dim 3, integer inputs 0) against the interpreter.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict

import numpy as np

import dlg
from dlg.errors import DlgError, DlgSyntaxError
from dlg.ir.printer import format_graph
from dlg.ir.shapes import evaluate_shape
from dlg.ir.types import TensorType
from dlg.runtime.model import Model
from tools.fuzz.campaign import Finding
from tools.fuzz.sources import source

COMPILE_EVERY = int(os.environ.get("DLG_FUZZ_COMPILE_EVERY", "2"))
MAX_ELEMENTS = 1 << 20
TIMEOUT = 5.0  # seconds a case may take, its compile included
_seen: set[str] = set()


def check_syntax_error(e: DlgSyntaxError, text: str) -> None:
    lines = text.split("\n")  # lines as lark counts them
    if e.span is None or not 1 <= e.span.line <= len(lines):
        raise Finding(f"syntax error span outside the text: {e.span}")
    if not 1 <= e.span.col <= len(lines[e.span.line - 1]) + 2:
        raise Finding(f"syntax error column outside its line: {e.span}")


def example_inputs(types: dict[str, TensorType], rng: np.random.Generator
                   ) -> dict[str, np.ndarray] | None:
    """Small inputs for a model (every symbol 3, integers 0); None when they would be large."""
    env: defaultdict[str, int] = defaultdict(lambda: 3)
    shapes = {k: evaluate_shape(t.shape, env) for k, t in types.items()}
    if any(min(s, default=1) < 0 for s in shapes.values()) \
            or sum(int(np.prod(s)) for s in shapes.values()) > MAX_ELEMENTS:
        return None
    out = {}
    for k, t in types.items():
        dtype = t.dtype.np
        if np.issubdtype(dtype, np.floating):
            out[k] = rng.standard_normal(shapes[k]).astype(dtype)
        else:
            out[k] = np.zeros(shapes[k], dtype)
    return out


def compare(m: Model, rng: np.random.Generator) -> str:
    """The compiled forward pass against the interpreter, on example inputs."""
    inputs = example_inputs(m.inputs, rng)
    if inputs is None:
        return "too_large"
    try:
        want = m(**inputs)
    except DlgError:
        return "run_error"
    try:
        got = dlg.compile(m)(**inputs)
    except DlgError:
        return "compile_error"
    for w, g in zip(np.atleast_1d(want) if not isinstance(want, tuple) else want,
                    np.atleast_1d(got) if not isinstance(got, tuple) else got):
        w, g = np.asarray(w), np.asarray(g)
        if w.shape != g.shape or w.dtype != g.dtype:
            raise Finding(f"compiled output {g.dtype}{list(g.shape)} != interpreter "
                          f"{w.dtype}{list(w.shape)}")
        finite = np.isfinite(w) if w.dtype.kind == "f" else np.ones(w.shape, bool)
        scale = max(1.0, float(np.abs(w[finite]).max(initial=0)))
        if w.dtype.kind == "f" and not np.array_equal(np.isnan(w), np.isnan(g)):
            raise Finding("compiled and interpreted NaNs differ")
        if not np.allclose(g[finite], w[finite], rtol=1e-4, atol=1e-5 * scale):
            raise Finding("compiled output differs from the interpreter")
    return "compiled"


def load(text: str) -> Model:
    """Parse, elaborate and infer, the train section too when there is one."""
    m = dlg.loads(text, file="fuzz.dlg")
    _ = m.train_graph
    return m


def check(seed: int, index: int) -> str:
    _, text = source(seed, index)
    try:
        m = load(text)
    except DlgSyntaxError as e:
        check_syntax_error(e, text)
        return "syntax_error"
    except DlgError:
        return "load_error"
    key = hashlib.sha1(format_graph(m.graph, spans=False).encode()).hexdigest()
    if index % COMPILE_EVERY or key in _seen:
        return "loaded"
    _seen.add(key)
    return compare(m, np.random.default_rng(index))


def describe(seed: int, index: int) -> str:
    kind, text = source(seed, index)
    return f"--- case {index} ({kind}) ---\n{text}\n---"
