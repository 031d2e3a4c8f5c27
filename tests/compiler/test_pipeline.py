"""The pipeline (STYLE §5): one literal list of graph stages, training stages only for a training
step, every stage dumpable, the IR verified after each stage with the culprit named (§6)."""

from __future__ import annotations

import gc
import io
from dataclasses import replace
from pathlib import Path

import pytest

import dlg
from dlg.compiler import pipeline
from dlg.compiler.optimizers import apply_optimizer
from dlg.compiler.passes.autodiff import GRAD_PREFIX, grad
from dlg.compiler.pipeline import (
    PIPELINE,
    STAGES,
    CompileCtx,
    CompileOptions,
    Stage,
    TrainTarget,
    compile_graph,
    object_code,
    run_stages,
    training_step,
)
from dlg.errors import DlgValueError
from dlg.ir import Builder, DType, Graph, TensorType
from dlg.ir.compare import graph_diff
from dlg.ir.ops.opdef import Trait
from dlg.ir.serialize import graph_to_json
from dlg.ir.verify import IRVerifyError

MODELS = Path(__file__).resolve().parent.parent.parent / "models"


def _dumps(options: CompileOptions) -> list[str]:
    lines = options.out.getvalue().splitlines()
    return [line[len("// ---- after "):-len(" ----")] for line in lines
            if line.startswith("// ---- after ")]


def _options(**kw) -> CompileOptions:
    return CompileOptions(out=io.StringIO(), **kw)


def test_the_graph_stages_in_order():
    assert [s.name for s in PIPELINE] == ["hoist", "last_step", "autodiff", "apply_optimizer",
                                          "decompose", "widen_half", "explicit_padding", "im2col",
                                          "simplify", "sink"]
    assert [s.name for s in PIPELINE if s.training] == ["autodiff", "apply_optimizer"]
    assert [s.name for s in PIPELINE if s.forward] == ["hoist", "last_step"]  # before autodiff
    assert STAGES[len(PIPELINE):] == ["fuse", "lower", "schedule", "llvm", "optimize", "codegen"]


def test_training_stages_run_only_for_a_training_step():
    m = dlg.load(MODELS / "mlp.dlg")
    options = _options(dump_after=("all",))
    run_stages(m.graph, CompileCtx(options))
    assert _dumps(options) == ["hoist", "last_step", "decompose", "widen_half",
                               "explicit_padding", "im2col", "simplify", "sink"]
    options = _options(dump_after=("autodiff", "apply_optimizer"))
    step, state = training_step(m.train_graph, TrainTarget("loss", m.train_spec.optimizer), options)
    text = options.out.getvalue()
    assert _dumps(options) == ["autodiff", "apply_optimizer"]
    assert "grad.fc1.weight: f32[128,784]" in text.split("after apply_optimizer")[0]
    assert "grad." not in text.split("after apply_optimizer")[1].split("{")[0]
    assert "optimizer.lr" in state and "optimizer.fc1.weight.momentum_buffer" in state


def test_the_training_step_is_the_graph_it_was():
    """autodiff then apply_optimizer make the graph `grad` and `apply_optimizer` always made."""
    m = dlg.load(MODELS / "cnn.dlg")
    spec = m.train_spec
    expected = grad(m.train_graph, spec.loss)
    grads = {n[len(GRAD_PREFIX):]: v for n, v in expected.outputs if n.startswith(GRAD_PREFIX)}
    params = {n.name: n.out for n in expected.params if n.name in grads}
    state = apply_optimizer(Builder(expected, spec.optimizer.span), spec.optimizer, params, grads)
    expected.outputs = [(n, v) for n, v in expected.outputs if not n.startswith(GRAD_PREFIX)]
    step, initial = training_step(m.train_graph, TrainTarget(spec.loss, spec.optimizer),
                                  _options())
    assert graph_to_json(step) == graph_to_json(expected)
    assert initial.keys() == state.initial.keys()


def test_every_stage_can_be_dumped():
    m = dlg.load(MODELS / "cnn.dlg")
    options = _options(dump_after=("all",))
    object_code(compile_graph(m.graph, options=options).module, options)
    assert _dumps(options) == [s for s in STAGES if s not in ("autodiff", "apply_optimizer")]
    fusion = options.out.getvalue().split("after fuse ----\n")[1]
    assert fusion.startswith("fusion of CNN: ") and "store %" in fusion


def test_an_unknown_stage_name_lists_the_valid_ones():
    with pytest.raises(DlgValueError, match="unknown pass 'fusion'.*" + ", ".join(STAGES)):
        CompileOptions(dump_after=("fusion",))


def _break_types(g: Graph, ctx: CompileCtx) -> Graph:
    """A buggy pass: gives the first computed node a wrong type."""
    bad = next(n for n in g if Trait.SOURCE not in n.op.traits)
    nodes = {k: replace(n, types=(TensorType(DType.f64, (3,)),)) if k == bad.id else n
             for k, n in g.nodes.items()}
    return Graph(g.name, nodes, g.outputs, g.updates)


def test_verify_names_the_stage_that_broke_the_graph_and_shows_the_node():
    g = dlg.load(MODELS / "mlp.dlg").graph
    by_name = {s.name: s for s in PIPELINE}
    stages = [by_name["decompose"], by_name["explicit_padding"], Stage("break_types", _break_types),
              by_name["im2col"]]
    with pytest.raises(IRVerifyError) as info:
        run_stages(g, CompileCtx(_options(verify=True)), stages)
    lines = str(info.value).splitlines()
    assert lines[0] == ("stage 'break_types' broke the graph (stages run: decompose, "
                        "explicit_padding, break_types):")
    assert "(reshape): types ['f64[3]'] but infer gives ['f32[N,784]']" in lines[1]
    assert sum(line.startswith(">> %") for line in lines) == 1 and len(lines) >= 4
    run_stages(g, CompileCtx(_options(verify=False)), stages[:3])  # unchecked, it goes through


def test_verify_rejects_a_broken_input_graph():
    g = _break_types(dlg.load(MODELS / "mlp.dlg").graph, CompileCtx(_options()))
    with pytest.raises(IRVerifyError, match="the graph given to the compiler is broken"):
        run_stages(g, CompileCtx(_options(verify=True)))


def test_verify_is_on_in_tests_and_set_by_the_environment(monkeypatch):
    assert CompileOptions().verify  # tests/conftest.py sets DLG_VERIFY=1 for the session
    monkeypatch.delenv("DLG_VERIFY")
    assert not CompileOptions().verify and CompileOptions(verify=True).verify


def test_an_internal_error_names_the_stage_and_where_to_look():
    def crash(g: Graph, ctx: CompileCtx) -> Graph:
        raise ValueError("oops")
    stages = [next(s for s in PIPELINE if s.name == "decompose"), Stage("crash", crash)]
    with pytest.raises(RuntimeError, match=r"internal compiler error in pass 'crash': oops "
                                           r"\(inspect its input with --dump-after decompose\)"):
        run_stages(dlg.load(MODELS / "mlp.dlg").graph, CompileCtx(_options()), stages)


def test_the_compiled_graph_is_the_step_through_the_other_stages():
    m = dlg.load(MODELS / "mlp.dlg")
    step, _ = training_step(m.train_graph, TrainTarget("loss", m.train_spec.optimizer),
                            _options())
    compiled = compile_graph(step, "loss", _options())
    expected = run_stages(step, CompileCtx(_options()), [s for s in PIPELINE if not s.forward])
    assert graph_diff(expected, compiled.graph, spans=True) == []


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_during_a_compile_and_left_as_found(monkeypatch, enabled):
    """compile_graph runs with Python's cyclic collector off (its passes cost 15-30 % of a
    compile) and leaves it as it was, also when the compile fails."""
    seen = []

    def lower_spy(*args, **kwargs):
        seen.append(gc.isenabled())
        raise DlgValueError("stop here")
    monkeypatch.setattr(pipeline, "lower", lower_spy)
    g = Graph("tiny")
    b = Builder(g)
    g.set_output("y", b.relu(b.input("x", TensorType.parse("f32[N, 3]"))))
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        with pytest.raises(DlgValueError, match="stop here"):
            pipeline.compile_graph(g)
        assert seen == [False] and gc.isenabled() == enabled
    finally:
        (gc.enable if was else gc.disable)()
