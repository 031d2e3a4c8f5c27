"""The IR text parser (STYLE §7): print -> parse -> print is the identity, and parsing gives back
the same graph, for every reference model (inference and training step) after every pipeline
stage and for hand-built graphs with every attribute kind; bad text is a DlgError at its
line:col."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import dlg
from dlg.compiler.pipeline import PIPELINE, CompileCtx, CompileOptions, TrainTarget, run_stages
from dlg.errors import (
    DlgAttributeError,
    DlgError,
    DlgNameError,
    DlgSyntaxError,
    DlgTypeError,
    Span,
)
from dlg.ir import Builder, DType, Graph, TensorType
from dlg.ir.compare import graph_diff
from dlg.ir.parse_ir import parse_ir
from dlg.ir.printer import ARRAY_LIMIT, format_graph
from dlg.ir.verify import verify
from tests.ir.sample_graphs import N, SPAN, every_attr_kind, f32, recurrent, tiny
from tests.test_models import LARGE

MODELS = sorted((Path(__file__).resolve().parent.parent.parent / "models").glob("*.dlg"))
MODELS = [p for p in MODELS if p.name not in LARGE]  # minutes after every stage; not new ops


def assert_round_trip(g: Graph, where: str = "") -> None:
    for spans in (True, False):
        text = format_graph(g, spans)
        again = parse_ir(text)
        assert format_graph(again, spans) == text, where
        assert graph_diff(g, again, spans=spans) == [], where
        verify(again)


def after_each_stage(g: Graph, ctx: CompileCtx) -> Iterator[tuple[str, Graph]]:
    yield "input", g
    for stage in PIPELINE:
        if not stage.training or ctx.train is not None:
            g = run_stages(g, ctx, [stage])
            yield stage.name, g


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_every_model_round_trips_after_every_stage(path):
    m = dlg.load(path)
    train = TrainTarget(m.train_spec.loss, m.train_spec.optimizer)
    runs = [("inference", m.graph, CompileCtx(CompileOptions(verify=True))),
            ("training step", m.train_graph, CompileCtx(CompileOptions(verify=True), train))]
    for kind, graph, ctx in runs:
        stages = []
        for stage, g in after_each_stage(graph, ctx):
            assert_round_trip(g, f"{kind} after {stage}")
            stages.append(stage)
        assert stages[-1] == "sink" and ("autodiff" in stages) == (kind != "inference")


@pytest.mark.parametrize("make", [tiny, recurrent, every_attr_kind])
def test_hand_built_graphs_round_trip(make):
    assert_round_trip(make())


def _specials() -> Graph:
    """Floats that print as words, every dtype's arrays, odd names, a gradient node."""
    g = Graph("x.vjp")
    b = Builder(g, span=SPAN)
    x = b.input("x", TensorType(f32, (N, 2)))
    for value in (math.inf, -math.inf, math.nan, -0.0, 1e-300, 0.1):
        g.set_output(f"full {value}", b.full(shape=(2,), value=value))
    for dtype, values in ((DType.f16, [0.1, 65504.0]), (DType.f64, [0.1, 1e300]),
                          (DType.f32, [np.nan, -np.inf]), (DType.i32, [-7, 2**31 - 1]),
                          (DType.i64, [-(2**63), 5]), (DType.bool, [True, False])):
        g.set_output(f"c.{dtype}", b.constant(np.array(values, dtype=dtype.np), dtype))
    g.set_output("empty", b.constant(np.zeros((0, 3), np.float32), f32))
    g.set_output("grad.x", Builder(g, backward=True).neg(x, name='a "quoted" name'))
    return g


def test_special_floats_arrays_and_names_round_trip():
    g = _specials()
    text = format_graph(g)
    assert "value=inf" in text and "value=-inf" in text and "value=nan" in text
    assert 'graph x.vjp(' in text and '"full inf": f32[2]' in text
    assert "f16[2]{0.1, 6.55e+04}" in text and "bool[2]{true, false}" in text
    assert "f32[0,3]{}" in text and "# backward" in text
    assert_round_trip(g)


def test_an_elided_array_is_an_error_pointing_at_it():
    g = Graph("big")
    b = Builder(g)
    g.set_output("y", b.constant(np.zeros(ARRAY_LIMIT + 1, np.float32), f32))
    text = format_graph(g)
    assert f"f32[{ARRAY_LIMIT + 1}]{{...}}" in text
    with pytest.raises(DlgSyntaxError, match=r"<ir>:2:37: error: this array was elided .* JSON"):
        parse_ir(text)


def test_spans_come_back_without_source_text():
    again = parse_ir(format_graph(tiny()), "t.ir")
    node = next(n for n in again if n.op.name == "add")
    assert node.span == Span("m.dlg", 3, 5) and not node.backward and node.name == "y"


BASE = """\
graph g(%x: f32[N,3], %w: param f32[3]) -> (out: f32[N,3]) {
  %y: f32[N,3] = add(%x, %w)  # m.dlg:3:5
  return out = %y
}"""

# (what to replace in BASE, with what) -> error class, line:col, message
BAD = [
    (("add(%x", "add(%q"), DlgNameError, "2:22", r"%q is not defined before its use"),
    (("add", "frobnicate"), DlgNameError, "2:18", r"unknown op 'frobnicate'"),
    (("f32[N,3] = add", "f64[N,3] = add"), DlgTypeError, "2:18",
     r"add: printed types \['f64\[N,3\]'\] but its inputs give \['f32\[N,3\]'\]"),
    (("f32[N,3] = add", "q7[N,3] = add"), DlgSyntaxError, "2:7", r"bad type 'q7\[N,3\]'"),
    (("f32[N,3] = add", "f32[N+,3] = add"), DlgSyntaxError, "2:7", r"bad type"),
    (("%w)", "%w, %x)"), DlgTypeError, "2:18", r"add takes 2 inputs \(x, y\), got 3"),
    (("  # m.dlg:3:5", " {alpha=1}"), DlgAttributeError, "2:18", r"unknown attribute 'alpha'"),
    (("# m.dlg:3:5", "# see above"), DlgSyntaxError, "2:31", r"a node's comment is its span"),
    (("-> (out: f32[N,3])", "-> (out: f32[N,4])"), DlgTypeError, "1:50",
     r"the header promises out: f32\[N,4\], but return gives out: f32\[N,3\]"),
    (("-> (out: f32[N,3])", "-> ()"), DlgSyntaxError, "1:7", r"lists 0 results, its return"),
    (("out = %y", "out = %y,"), DlgSyntaxError, "4:1", r"unexpected '}'"),
    (("%y: f32[N,3] = add(%x, %w)", "%x: f32[N,3] = add(%x, %w)"), DlgNameError, "2:3",
     r"%x is defined twice"),
    (("add(%x, %w)", "constant() {value=f32[2]{1.0}}"), DlgTypeError, "2:36",
     r"f32\[2\] holds 2 elements, 1 given"),
    (("add(%x, %w)", "full() {shape=[N, 3], value=1.0, dtype=f33}"), DlgAttributeError, "2:18",
     r"attribute 'dtype' must be dtype, got 'f33'"),
    (("add(%x, %w)", "full() {shape=[N, 3], value=1.0, value=2.0}"), DlgSyntaxError, "2:51",
     r"attribute value given twice"),
    (("add(%x, %w)", 'full() {shape=[N, 3], value="one"}'), DlgAttributeError, "2:18",
     r"attribute 'value' must be float"),
    (("add(%x, %w)", "scan(%x)"), DlgSyntaxError, "2:18", r"scan takes 1 nested graph"),
    (("return", "retrun"), DlgSyntaxError, "3:3", r"unexpected 'retrun'"),
    (("}", "} }"), DlgSyntaxError, "4:3", r"unexpected '}'"),
    (("\n}", ""), DlgSyntaxError, "3:18", r"unexpected end of the IR text"),
]


@pytest.mark.parametrize("edit, cls, where, message", BAD, ids=[b[3][:30] for b in BAD])
def test_bad_text_is_a_dlg_error_at_its_line_and_column(edit, cls, where, message):
    text = BASE.replace(*edit)
    assert text != BASE
    with pytest.raises(DlgError) as info:
        parse_ir(text, "t.ir")
    assert type(info.value) is cls
    assert info.value.format().startswith(f"t.ir:{where}: error:")
    assert info.value.span is not None and info.value.span.snippet()  # the line and a caret
    assert re.search(message, info.value.message), info.value.message
