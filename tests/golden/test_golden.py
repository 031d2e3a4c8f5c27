"""Golden IR (STYLE §12): each reference model's graph as elaborated and after the compiler's
graph stages, and the training step of a small model, compared as graphs (not as text) with
the files in tests/golden. A change to one is a reviewed change: rewrite them with
`pytest tests/golden --update-golden` and read the diff."""

from __future__ import annotations

from pathlib import Path

import pytest

import dlg
from dlg.compiler.pipeline import CompileCtx, CompileOptions, run_stages
from dlg.ir.compare import graph_diff
from dlg.ir.graph import Graph
from dlg.ir.parse_ir import parse_ir
from dlg.ir.printer import format_graph
from dlg.runtime.training import build_train_step
from tests.ir.sample_graphs import tiny

GOLDEN = Path(__file__).resolve().parent
MODELS = sorted((GOLDEN.parent.parent / "models").glob("*.dlg"))


def check_golden(path: Path, g: Graph, update: bool) -> None:
    """`g` equals the graph in `path`, or (updating) `path` is rewritten from `g`."""
    text = format_graph(g, spans=False) + "\n"
    if update:
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return
    if not path.exists():
        pytest.fail(f"no golden file {path}: write it with pytest --update-golden", pytrace=False)
    problems = graph_diff(parse_ir(path.read_text(), str(path)), g)
    if problems:
        pytest.fail(f"the graph differs from {path}:\n" + "\n".join(problems)
                    + "\n(if the change is intended: pytest --update-golden)", pytrace=False)


def _compiled_graph(g: Graph) -> Graph:
    """im2col off: by default it rewrites a conv by the host's vector width, and a golden file
    must not depend on the machine (tests/compiler/test_im2col.py covers the rewrite)."""
    return run_stages(g, CompileCtx(CompileOptions(im2col=False)))


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_elaborated_graph(path, update_golden):
    check_golden(GOLDEN / "elaborated" / f"{path.stem}.ir", dlg.load(path).graph, update_golden)


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_graph_after_the_graph_stages(path, update_golden):
    check_golden(GOLDEN / "simplified" / f"{path.stem}.ir", _compiled_graph(dlg.load(path).graph),
                 update_golden)


def test_training_step_of_mlp(update_golden):
    m = dlg.load(GOLDEN.parent.parent / "models" / "mlp.dlg")
    step, _ = build_train_step(m.train_graph, m.train_spec)
    check_golden(GOLDEN / "train_step" / "mlp.ir", _compiled_graph(step), update_golden)


def test_a_missing_golden_file_fails_unless_updating(tmp_path):
    missing = tmp_path / "tiny.ir"
    with pytest.raises(pytest.fail.Exception, match="no golden file .*--update-golden"):
        check_golden(missing, tiny(), update=False)
    assert not missing.exists()
    check_golden(missing, tiny(), update=True)
    check_golden(missing, tiny(), update=False)


def test_a_changed_graph_fails_with_both_lines(tmp_path):
    golden = tmp_path / "tiny.ir"
    golden.write_text(format_graph(tiny(), spans=False).replace("add(", "sub("))
    with pytest.raises(pytest.fail.Exception) as info:
        check_golden(golden, tiny(), update=False)
    assert str(info.value).splitlines()[1:4] == [
        "graph tiny, node 3: op differs",
        "  expected %y: f32[N,3] = sub(%x, %w)",
        "  actual   %y: f32[N,3] = add(%x, %w)",
    ]
