"""The verifier accepts every graph dlg builds and rejects broken ones."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import dlg
from dlg.ir import DType, TensorType
from dlg.ir.verify import IRVerifyError, verify

MODELS = sorted((Path(__file__).resolve().parent.parent.parent / "models").glob("*.dlg"))


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_every_model_graph_verifies(path):
    m = dlg.load(path)
    verify(m.graph)
    verify(m.train_graph)


def test_a_node_with_wrong_types_is_reported_with_context():
    g = dlg.load(MODELS[0]).graph
    victim = list(g.nodes.values())[-1]
    g.nodes[victim.id] = replace(victim, types=(TensorType(DType.f64, (3,)),))
    with pytest.raises(IRVerifyError, match=r">> %\d+ = "):
        verify(g)


def test_duplicate_outputs_are_reported():
    g = dlg.load(MODELS[0]).graph
    g.outputs.append(g.outputs[0])
    with pytest.raises(IRVerifyError, match="duplicate output"):
        verify(g)
