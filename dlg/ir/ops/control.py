"""`scan`: recurrence over a sequence axis as ONE node whose body is a subgraph.

Inputs are `n_carry` initial carries, then `n_seq` sequences, then constants the body reads.
The body graph takes (carries..., one slice of each sequence..., constants...) and returns
(new carries..., per-step outputs...). The node returns the final carries and the per-step
outputs stacked along `axis`. It is never unrolled: the interpreter loops, codegen emits a loop,
and autodiff (later) runs a reverse scan over the saved steps.
"""

from __future__ import annotations

import numpy as np

from dlg.errors import DlgShapeError, DlgTypeError
from dlg.ir.ops.common import normalize_axis
from dlg.ir.ops.opdef import Attr, defop
from dlg.ir.shapes import evaluate_shape
from dlg.ir.types import TensorType


def _drop_axis(t: TensorType, axis: int) -> TensorType:
    return t.with_shape(t.shape[:axis] + t.shape[axis + 1:])


def _scan_infer(*types: TensorType, body, n_carry: int, n_seq: int, axis: int, reverse: bool):
    carries, seqs = types[:n_carry], types[n_carry:n_carry + n_seq]
    consts = types[n_carry + n_seq:]
    if n_seq < 1:
        raise DlgTypeError("scan needs at least one sequence to iterate over")
    axes = [normalize_axis("scan", axis, s.rank) for s in seqs]
    lengths = {s.shape[a] for s, a in zip(seqs, axes)}
    if len(lengths) != 1:
        raise DlgShapeError("scan: sequences have different lengths along axis "
                            f"{axis}: {', '.join(str(s) for s in seqs)}")
    (length,) = lengths
    body_inputs = [n.types[0] for n in body.inputs]
    expected = list(carries) + [_drop_axis(s, a) for s, a in zip(seqs, axes)] + list(consts)
    if body_inputs != expected:
        raise DlgTypeError("scan: body inputs " + ", ".join(map(str, body_inputs))
                           + " do not match " + ", ".join(map(str, expected)))
    outs = [body.type_of(v) for _, v in body.outputs]
    if len(outs) < n_carry:
        raise DlgTypeError(f"scan: body returns {len(outs)} values, fewer than its "
                           f"{n_carry} carries")
    for i, (before, after) in enumerate(zip(carries, outs)):
        if before != after:
            name = body.outputs[i][0]
            raise DlgShapeError(f"scan: carry {name!r} starts as {before} but the body makes it "
                                f"{after}; a carry must keep its shape and dtype")
    stacked = []
    for y in outs[n_carry:]:
        a = axis % (y.rank + 1)
        stacked.append(y.with_shape(y.shape[:a] + (length,) + y.shape[a:]))
    return tuple(carries) + tuple(stacked)


def _scan_ref(*arrays: np.ndarray, body, n_carry: int, n_seq: int, axis: int, reverse: bool, ctx):
    carries = list(arrays[:n_carry])
    seqs = arrays[n_carry:n_carry + n_seq]
    consts = list(arrays[n_carry + n_seq:])
    length = seqs[0].shape[axis]
    steps = range(length - 1, -1, -1) if reverse else range(length)
    ys: list[list[np.ndarray]] = []
    for t in steps:
        outs = ctx.run(body, carries + [np.take(s, t, axis=axis) for s in seqs] + consts)
        carries = list(outs[:n_carry])
        ys.append(list(outs[n_carry:]))
    if reverse:
        ys.reverse()
    n_ys = len(body.outputs) - n_carry
    if length == 0:
        y_types = [body.type_of(v) for _, v in body.outputs[n_carry:]]
        stacked = [np.zeros(_empty_shape(t, axis, ctx.env), t.dtype.np) for t in y_types]
    else:
        stacked = [np.stack([step[i] for step in ys], axis=axis % (ys[0][i].ndim + 1))
                   for i in range(n_ys)]
    return tuple(carries) + tuple(stacked)


def _empty_shape(t: TensorType, axis: int, env: dict[str, int]) -> tuple[int, ...]:
    a = axis % (t.rank + 1)
    dims = evaluate_shape(t.shape, env)
    return dims[:a] + (0,) + dims[a:]


SCAN = defop("scan", ("*inputs",), _scan_infer,
             attrs={"body": Attr("graph"), "n_carry": Attr("int"), "n_seq": Attr("int"),
                    "axis": Attr("int", 0), "reverse": Attr("bool", False)},
             ref=_scan_ref, needs_ctx=True)
