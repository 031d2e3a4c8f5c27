"""Every op has a user spelling or a stated reason why none (STYLE §10: parametrized over the
registry), the generated elementwise functions reach every door, and `to_dlg` writes every
spelled op so that it loads back to the same values."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
import dlg.nn.functional as F
from dlg.frontend.functional import NOT_PYTORCH
from dlg.functions import FUNCTIONS
from dlg.functions.elementwise import ELEMENTWISE, is_generated
from dlg.functions.spelling import SPELLINGS, UNSPELLED
from dlg.grammar.builtins import BUILTINS
from dlg.grammar.unparse import graph_to_dlg
from dlg.ir.builder import Builder
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph
from dlg.ir.ops import REGISTRY, Trait
from dlg.ir.types import TensorType
from dlg.runtime.interp import Interpreter
from tests.ir.test_registry import CASES


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_op_has_a_spelling_or_a_reason(name):
    op = REGISTRY[name]
    assert (op in SPELLINGS) != (op in UNSPELLED), f"{name}: spelled and unspelled, or neither"


@pytest.mark.parametrize("name", sorted(n for n, op in REGISTRY.items() if is_generated(op)))
def test_generated_elementwise_functions_reach_every_door(name):
    """A new elementwise primitive needs no edit outside its defop (and its scalar form)."""
    assert ELEMENTWISE[name] is FUNCTIONS[name] and BUILTINS[name].fn is FUNCTIONS[name]
    assert callable(getattr(F, name)) and callable(getattr(dlg, name))
    # a method, or torch's property (x.real, x.imag)
    assert callable(getattr(dlg.Tensor, name)) or isinstance(getattr(dlg.Tensor, name), property)
    assert REGISTRY[name] in SPELLINGS


def test_every_function_is_a_builtin_and_a_python_function_unless_torch_differs():
    assert set(FUNCTIONS) <= set(BUILTINS)
    # split, numel, one_hot and take are there, written by hand with torch's meaning
    assert ({n for n in FUNCTIONS if not hasattr(F, n)}
            == set(NOT_PYTORCH) - {"split", "numel", "one_hot", "take"})
    assert len(F.split(dlg.arange(5), 2)) == 3 and F.numel(dlg.ones(2, 3)) == 6


def _case_graph(name: str) -> tuple[Graph, dict[str, np.ndarray]]:
    arrays, attrs = CASES[name]
    g = Graph("M")
    b = Builder(g)
    feeds = {f"a{i}": a for i, a in enumerate(arrays)}
    ins = [b.input(n, TensorType(DType.of(a), a.shape)) for n, a in feeds.items()]
    out = b.emit(REGISTRY[name], *ins, **attrs)
    for i, v in enumerate(out if isinstance(out, tuple) else (out,)):
        g.set_output(f"y{i}", v)
    return g, feeds


@pytest.mark.parametrize("name", sorted(n for n, op in REGISTRY.items() if op in SPELLINGS))
def test_to_dlg_writes_every_spelled_op(name):
    g, feeds = _case_graph(name)
    model = dlg.loads(graph_to_dlg(g))
    want, _ = Interpreter().run(g, feeds, {})
    got = model(**feeds)
    got = got if isinstance(got, tuple) else (got,)
    for i, value in enumerate(got):
        expected = want[f"y{i}"]
        assert value.dtype == expected.dtype and value.shape == expected.shape
        if Trait.RANDOM not in REGISTRY[name].traits and REGISTRY[name] is not REGISTRY["dropout"]:
            np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-7)
