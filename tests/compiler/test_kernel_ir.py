"""Kernel expressions are DAGs (a gradient reuses a recomputed value many times): walking,
substituting, hashing and printing one must cost its distinct nodes, not its paths (2^60 here)."""

from __future__ import annotations

from dlg.compiler.kernel_ir import I64, Const, Load, Op, Var, canonical, substitute, walk
from dlg.ir.dtypes import DType
from dlg.ir.ops.elementwise import ADD, MUL

DEPTH = 60


def doubled(leaf):
    """((leaf + leaf) + (leaf + leaf)) ... DEPTH times: DEPTH + 1 distinct nodes."""
    e = leaf
    for _ in range(DEPTH):
        e = Op(DType.f32, ADD, (e, e))
    return e


def test_walk_yields_each_distinct_node_once_in_preorder():
    leaf = Load(DType.f32, "x", Var(I64, "i"))
    nodes = list(walk(doubled(leaf)))
    assert len(nodes) == DEPTH + 2  # the ops, the load, its index
    assert nodes[-2:] == [leaf, Var(I64, "i")] and isinstance(nodes[0], Op)


def test_substitute_keeps_the_sharing():
    e = substitute(doubled(Load(DType.f32, "x", Op(I64, MUL, (Var(I64, "i"), Const(I64, 4))))),
                   {"i": Const(I64, 3)})
    assert e.args[0] is e.args[1]
    assert list(walk(e))[-3:] == [Op(I64, MUL, (Const(I64, 3), Const(I64, 4))), Const(I64, 3),
                                  Const(I64, 4)]


def test_deep_dags_hash_and_print_in_linear_time():
    e = doubled(Load(DType.f32, "x", Var(I64, "i")))
    assert hash(e) == hash(doubled(Load(DType.f32, "x", Var(I64, "i"))))
    text = canonical((e,), lambda name: name.upper())
    assert len(text.splitlines()) == DEPTH + 3 and "'X'" not in text and "X" in text
    assert canonical((e,), str) == canonical((doubled(Load(DType.f32, "x", Var(I64, "i"))),), str)
