"""Reshape index arithmetic against NumPy's reshape: every element of the reshaped array maps to
the element NumPy puts there, for shapes with 1s, merged and split dims and a symbolic dim."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dlg.compiler import indexing as ix
from dlg.compiler.kernel_ir import FLOORDIV, I64, MOD, Op, Var, walk
from dlg.ir.shapes import Sym, evaluate_shape

N = Sym.named("N")
CASES = [  # (input shape, output shape)
    ((28, N, 28), (28 * N, 28)),
    ((28 * N, 28), (28, N, 28)),
    ((4, 6), (6, 4)),
    ((N, 2, 4, 1), (1, N, 8)),
    ((2, 3, 4, 5), (6, 20)),
    ((2, 3, 4, 5), (2, 60)),
    ((6, 1, 10), (3, 2, 2, 5)),
    ((N, 12), (N, 3, 4)),
    ((1,), (1, 1, 1)),
]


def value(e, env: dict[str, int]) -> int:
    return ix._evaluate(e, env, 0)  # noqa: SLF001  (every var is bound here)


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("in_shape,out_shape", CASES, ids=str)
def test_reshape_index_matches_numpy(in_shape, out_shape, n):
    concrete_in, concrete_out = evaluate_shape(in_shape, {"N": n}), evaluate_shape(out_shape,
                                                                                  {"N": n})
    source = np.arange(int(np.prod(concrete_in))).reshape(concrete_in)
    expected = source.reshape(concrete_out)
    names = [Var(I64, f"i.{k}") for k in range(len(out_shape))]
    index = ix.reshape(names, out_shape, in_shape)
    for position in itertools.product(*map(range, concrete_out)):
        env = {"N": n, **{v.name: p for v, p in zip(names, position)}}
        assert source[tuple(value(e, env) for e in index)] == expected[position]


def test_a_kept_dim_is_its_own_index_and_only_the_merged_group_divides():
    i0, i1 = Var(I64, "i.0"), Var(I64, "i.1")
    index = ix.reshape([i0, i1], (28 * N, 28), (28, N, 28))
    assert index[2] == i1
    divisions = [e for part in index for e in walk(part)
                 if isinstance(e, Op) and e.op in (FLOORDIV, MOD)]
    assert divisions and all(e.args[0] == i0 for e in divisions)
