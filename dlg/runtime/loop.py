"""Loops without Python: a compiled graph run over the batches of a data set, many steps per
native call.

Calling a compiled step from Python costs microseconds; a small model's step computes for less.
`NativeLoop` hands a whole run of steps to the native driver (codegen/driver.py), as JAX's
`lax.fori_loop` does: it gathers each batch's rows from the data arrays by index (a permutation
passed in), calls the step's entry, and sums the loss and metrics times the batch's rows. Python
comes back between chunks of steps (a progress bar, a schedule's learning rate), never per step.
The data is checked once (dtype, shape, contiguity) with the same checks as a call, at each
batch size the loop runs (a last smaller batch is a second plan of the graph).
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlg.compiler.codegen.driver import DTYPE_CODES, SLOT, loop_function
from dlg.compiler.codegen.llvm_cpu import ENTRY
from dlg.errors import DlgValueError
from dlg.runtime.arenas import Arena
from dlg.runtime.interp import check_input, check_input_names
from dlg.runtime.native import ALIGN, NativeGraph, Plan, native_array

SEED, FIRST, COUNT, BATCHES, ORDER = (SLOT[k] for k in ("seed", "first", "count", "batches",
                                                         "order"))


def data_length(data: Mapping[str, np.ndarray]) -> int:
    """The rows of a data set: every array's first dim, all equal."""
    lengths = {name: len(a) if a.ndim else None for name, a in data.items()}
    if None in lengths.values() or len(set(lengths.values())) != 1:
        raise DlgValueError("the data arrays differ in length: " + ", ".join(
            f"{n} has {k if k is not None else 'no rows (a scalar)'}" for n, k in lengths.items()))
    return int(next(iter(lengths.values()), 0))  # type: ignore[arg-type]


@dataclass
class Bound:
    """The loop at one batch size: the graph's plan, the loop's own copy of its pointer table
    (the graph's own calls keep theirs), output arrays, and the buffers rows are gathered into."""

    rows: int
    plan: Plan
    arena: Arena
    table: ctypes.Array
    outputs: dict[str, np.ndarray]
    gathered: list[tuple[int, np.ndarray]]  # (table slot, buffer) per data array
    words: ctypes.Array  # the driver's array descriptors: address, bytes per row, table slot
    args: ctypes.Array  # the driver's arguments (driver.ARGUMENTS), the fixed ones filled
    params: dict[str, np.ndarray] = field(default_factory=dict)  # the arrays the table holds


class NativeLoop:
    """Runs `native` over batches of `data` (arrays by input name, equally long), adding the
    outputs named in `accumulate` times each batch's rows into `totals` (float64, in that
    order; zero it with `totals[:] = 0`); with `stop`, a non-finite first output (the loss) ends
    the run."""

    def __init__(self, native: NativeGraph, data: Mapping[str, np.ndarray],
                 accumulate: Sequence[str], stop: bool):
        check_input_names(native.input_names, data)
        self.native = native
        self.arrays = [(name, buf, t, native_array(name, np.asarray(data[name])))
                       for name, buf, t in native.input_types]
        self.length = data_length({name: a for name, _, _, a in self.arrays})
        outputs = dict(native.program.outputs)
        types = {name: native.program.buffers[buf].dtype.np for name, buf in outputs.items()}
        unsupported = [n for n in accumulate if str(types[n]) not in DTYPE_CODES]
        if unsupported:
            raise DlgValueError(f"output {unsupported[0]!r} is {types[unsupported[0]]}: a loop "
                                f"sums only {', '.join(DTYPE_CODES)} values")
        self.accumulate = list(accumulate)
        self.output_words = _words([(native.index[outputs[n]], DTYPE_CODES[str(types[n])])
                                    for n in accumulate])
        self.stop = stop
        self.totals = np.zeros(len(self.accumulate))
        self.bound: dict[int, Bound] = {}
        self.function, _ = loop_function()
        self.entry = native.jit.engine.get_function_address(ENTRY)

    def holds(self, data: Mapping[str, object]) -> bool:
        """Whether `data` is the arrays this loop runs over (the same objects)."""
        return len(data) == len(self.arrays) and all(
            data.get(name) is array for name, _, _, array in self.arrays)

    def bind(self, rows: int) -> Bound:
        """The loop at a batch size (made once): every input checked at that many rows."""
        bound = self.bound.get(rows)
        if bound is not None:
            return bound
        env: dict[str, int] = {}
        for name, _, t, array in self.arrays:  # a batch's shape (rows may repeat, outnumber all)
            check_input(name, t, np.broadcast_to(array[:1], (rows, *array.shape[1:])), env)
        native = self.native
        arena = Arena()  # the loop's own: the pool's arenas are the calls'
        plan = native.plan(native.layout(env), arena)
        table = type(plan.table).from_buffer_copy(plan.table)
        outputs = {}
        for name, buf in native.program.outputs:
            outputs[name] = np.empty(plan.layout.shapes[buf], native.program.buffers[buf].dtype.np)
            table[native.index[buf]] = outputs[name].ctypes.data
        gathered, described = [], []
        for _, buf, _, array in self.arrays:
            row_bytes = array.itemsize * int(np.prod(array.shape[1:], dtype=np.int64))
            gathered.append((native.index[buf], _aligned(rows * row_bytes)))
            described.append((array.ctypes.data, row_bytes, native.index[buf]))
        words = _words(described)
        args = (ctypes.c_int64 * len(SLOT))()
        for name, value in (("entry", self.entry), ("table", ctypes.addressof(table)),
                            ("dims", ctypes.addressof(plan.layout.dims)), ("rows", rows),
                            ("arrays", ctypes.addressof(words)), ("narrays", len(self.arrays)),
                            ("outputs", ctypes.addressof(self.output_words)),
                            ("noutputs", len(self.accumulate)),
                            ("totals", self.totals.ctypes.data), ("stop", int(self.stop))):
            args[SLOT[name]] = value
        bound = self.bound[rows] = Bound(rows, plan, arena, table, outputs, gathered, words,
                                         args)
        return bound

    def run(self, params: Mapping[str, np.ndarray], rows: int, first: int, count: int,
            batches: int, order: np.ndarray | None) -> int:
        """Steps first..first+count-1, step s on batch s mod `batches`: rows
        order[b*rows:(b+1)*rows] (int64, checked by the caller), or rows b*rows.. in place
        without an order. Returns the steps completed (fewer when the loss stopped it)."""
        if self.native.anomaly is not None and count > 1:  # a step a call: its batch is known
            done = 0
            while done < count and self.run(params, rows, first + done, 1, batches, order):
                done += 1
            return done
        bound = self.bind(rows)
        native = self.native
        args = bound.args
        with native.lock:
            _bind_params(native, bound, params)
            if order is not None:  # an in-place run pointed these slots at the data
                for slot, buffer in bound.gathered:
                    bound.table[slot] = buffer.ctypes.data
            args[SEED] = seed = native.seed_cell[0]  # step k gets seed + k + 1, as calls would
            args[FIRST], args[COUNT], args[BATCHES] = first, count, batches
            args[ORDER] = 0 if order is None else order.ctypes.data
            done = self.function(ctypes.addressof(args))
            native.seed_cell[0] = seed + done + (done < count)
            if native.anomaly is not None:  # did the step stop at a kernel? (one step run)
                native.anomaly(*self.step_inputs(params, rows, first, batches, order))
        return done

    def step_inputs(self, params: Mapping[str, np.ndarray], rows: int, step: int, batches: int,
                    order: np.ndarray | None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Step `step`'s batch by input name and the parameters: what the interpreter needs
        to run that step again."""
        start = step % batches * rows
        picked = slice(start, start + rows) if order is None else order[start:start + rows]
        return {name: array[picked] for name, _, _, array in self.arrays}, dict(params)

    def value(self, rows: int, name: str) -> float:
        """An output of the last step run at `rows` rows (the loss that stopped a run)."""
        return float(self.bind(rows).outputs[name])


def _bind_params(native: NativeGraph, bound: Bound, params: Mapping[str, np.ndarray]) -> None:
    """Point the table at the parameters, each checked against the plan; an array bound before
    is the same memory (the loop holds it, so it cannot be resized), so only new ones are."""
    p = native.program
    for name, buf in p.params:
        value = params.get(name)
        if value is not None and value is bound.params.get(name):
            continue
        if value is None:
            raise DlgValueError(f"no value for parameter {name!r}")
        shape = bound.plan.layout.shapes[buf]
        if value.shape != shape or value.dtype != p.buffers[buf].dtype.np:
            raise DlgValueError(f"parameter {name!r}: expected {p.buffers[buf].dtype}"
                                f"{list(shape)}, got {value.dtype}"
                                f"{list(value.shape)}")
        bound.table[native.index[buf]] = native_array(name, value).ctypes.data
        bound.params[name] = value


def _words(rows: list[tuple[int, ...]]) -> ctypes.Array:
    """Descriptor rows (ARRAY_WORDS or OUTPUT_WORDS each) as one int64 array for the driver."""
    flat = [word for row in rows for word in row]
    return (ctypes.c_int64 * max(len(flat), 1))(*flat)


def _aligned(nbytes: int) -> np.ndarray:
    """`nbytes` of memory starting on an ALIGN boundary."""
    raw = np.empty(nbytes + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start:start + nbytes]


def check_order(order: np.ndarray | Sequence[int], length: int) -> np.ndarray:
    """A row order as the driver reads it: int64, C-contiguous, every index a row of the data."""
    array = np.ascontiguousarray(order, dtype=np.int64)
    if array.ndim != 1:
        raise DlgValueError(f"perm must be a 1-d array of row indices, got shape "
                            f"{list(array.shape)}")
    bad = (array < 0) | (array >= length)
    if bad.any():
        at = int(np.argmax(bad))
        raise DlgValueError(f"perm[{at}] is {int(array[at])}, not a row of the data "
                            f"(0..{length - 1})")
    return array
