"""The kernel IR: loop nests over flat buffers with scalar expressions, target-independent.

A fused group of graph nodes lowers to one `Kernel`: loops over its output's index space
(`Loop`) around a store (`Store`) of a scalar expression tree. Expressions read buffers at
computed flat indices (`Load`), apply scalar ops (`Op`: an elementwise graph primitive's
`OpDef`, or one of the few `KernelOp`s no graph op names; semantics in codegen/scalar.py, one
table for every backend), and fold over inner index spaces (`Reduce`, which a backend emits as a
nested loop with an accumulator). Index arithmetic is ordinary i64
expressions over loop variables and the symbolic dims (`Var`), which are runtime arguments.
`Loop.parallel` marks loops whose iterations are independent; a backend decides what to do
with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, is_dataclass

from dlg.ir.dtypes import DType
from dlg.ir.ops.opdef import OpDef

I64 = DType.i64


@dataclass(frozen=True, eq=False)
class KernelOp:
    """A scalar operation of the kernel IR that is no graph primitive (guards, index arithmetic,
    the combines of reductions). Graph primitives appear in kernels as their own `OpDef`."""

    name: str

    def __repr__(self) -> str:
        return f"<kernel op {self.name}>"


SELECT = KernelOp("select")  # cond ? a : b: bounds guards and clamped indices
MAX, MIN = KernelOp("max"), KernelOp("min")  # reduce_max/reduce_min's combine; index bounds
ARGMAX, ARGMIN = KernelOp("argmax"), KernelOp("argmin")  # combines only: first extreme's position
CLAMP = KernelOp("clamp")  # an index forced into [lo, hi] (gathers never read out of bounds)
FLOORDIV, MOD = KernelOp("floordiv"), KernelOp("mod")  # index arithmetic on i64 (truncating)
ScalarOp = OpDef | KernelOp


@dataclass(frozen=True)
class Expr:
    dtype: DType


def _hashed_once(cls: type) -> type:
    """Keep each node's hash (its dataclass hash would rehash the whole subtree on every call:
    exponential in a DAG's depth, and codegen looks expressions up in dicts). Not pickled: a
    string's hash differs between processes."""
    fields_hash = cls.__hash__

    def __hash__(self: Expr) -> int:
        try:
            return self.__dict__["_hash"]
        except KeyError:
            value = fields_hash(self)
            object.__setattr__(self, "_hash", value)
            return value

    def __getstate__(self: Expr) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}
    cls.__hash__ = __hash__  # type: ignore[method-assign]
    cls.__getstate__ = __getstate__  # type: ignore[attr-defined]
    return cls


@dataclass(frozen=True)
class Const(Expr):
    value: float | int | bool


@dataclass(frozen=True)
class Var(Expr):
    """A loop or reduction variable, or a symbolic dim (all i64)."""

    name: str


@_hashed_once
@dataclass(frozen=True)
class Load(Expr):
    """buffer[index]; where `guard` is false the value is `other` and memory is not read."""

    buffer: str
    index: Expr
    guard: Expr | None = None
    other: float = 0.0


@_hashed_once
@dataclass(frozen=True)
class Op(Expr):
    """A scalar op with a form in codegen/scalar.py: ADD, EXP, LT, CAST, SELECT, FLOORDIV, ..."""

    op: ScalarOp
    args: tuple[Expr, ...]


@_hashed_once
@dataclass(frozen=True)
class Reduce(Expr):
    """Fold `body` with `combine` (ADD, MUL, MAX, MIN, ARGMAX, ARGMIN) over the index space
    `axes` ((var, extent) pairs, row-major), starting from `init`. argmax/argmin give the flat
    position (in that index space) of the first extreme."""

    combine: ScalarOp
    axes: tuple[tuple[str, Expr], ...]
    body: Expr
    init: float


@_hashed_once
@dataclass(frozen=True)
class Random(Expr):
    """A uniform [0, 1) draw: a hash of (the call's seed, `salt`, `index`). Counter-based, so
    no element depends on evaluation order or on other elements."""

    salt: int
    index: Expr


@dataclass(frozen=True)
class Stmt:
    pass


@dataclass(frozen=True)
class Loop(Stmt):
    var: str
    extent: Expr
    body: tuple[Stmt, ...]
    parallel: bool = False


@dataclass(frozen=True)
class Store(Stmt):
    """buffer[index] = value, or += value with `accumulate` (scatters)."""

    buffer: str
    index: Expr
    value: Expr
    accumulate: bool = False


@dataclass(frozen=True)
class Fill(Stmt):
    """buffer[0:count] = value (a scatter's output starts at zero)."""

    buffer: str
    count: Expr
    value: float


@dataclass(frozen=True)
class Copy(Stmt):
    """dst[0:count] = src[0:count], `count` in elements."""

    dst: str
    src: str
    count: Expr


@dataclass(frozen=True)
class IfFinite(Stmt):
    """Run `body` only if the scalar in `buffer` is finite (state is not updated by a step
    whose loss is nan or inf)."""

    buffer: str
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class Slot:
    """Where one buffer of a scan body comes from at step t: a whole parent buffer, or the
    t-th block of `elements` elements of one (a sequence slice or a stacked output)."""

    buffer: str
    elements: Expr | None = None


@dataclass(frozen=True)
class CallScan(Stmt):
    """for t in steps (reversed if `reverse`): body(slots at t); then next carries -> state."""

    function: str
    steps: Expr
    reverse: bool
    slots: tuple[Slot, ...]
    carry_copies: tuple[tuple[str, str, Expr], ...]  # (state, next, elements) after each step


@dataclass(frozen=True)
class Tile(Stmt):
    """A register tile of `buffer[index] = value`, whose value holds one sum (`Reduce`): `rows`
    values of `row` from `row_start` times `cols` columns of `col` from `col_start`, computed at
    once in rows * cols accumulators of `lanes` lanes, so each load feeds a row or a column.

    `along` says what the lanes run along. "col": each column is `lanes` consecutive values of
    `col` (the store is contiguous in it); with `masked`, lanes at or past `col_extent` are off.
    "sum": the lanes split the sum's last (contiguous) axis and are added up at the end; a
    column is one value of `col`. Columns along the sum past their extent are clamped to the last
    one: an edge tile recomputes and rewrites it rather than reading past the end; a short edge
    of rows runs as one-row tiles (a batch of one does its row's work once).
    A backend without vectors may run it as the loops it stands for."""

    buffer: str
    index: Expr
    value: Expr
    row: str
    row_start: Expr
    rows: int
    row_extent: Expr
    col: str
    col_start: Expr
    cols: int
    col_extent: Expr
    lanes: int
    along: str = "col"
    masked: bool = False


@dataclass(frozen=True)
class Matrix:
    """A strided matrix in a flat buffer: element (i, j) is buffer[offset + i*rows + j*cols]."""

    buffer: str
    offset: Expr
    rows: Expr
    cols: Expr


@dataclass(frozen=True)
class Gemm(Stmt):
    """c = a @ b (m x k times k x n, float32) through the host's GEMM library, once per index of
    the `batch` loops (the matrices' offsets use their variables), then `epilogue` (the fused
    bias and activation, reading c back); when m*n*k is under `min_work`, m under `min_rows` or
    b (k x n, float32) no more than `tile_b_bytes` at run time, `otherwise` runs instead
    (register tiles: packing would cost more than it saves)."""

    m: Expr
    n: Expr
    k: Expr
    a: Matrix
    b: Matrix
    c: Matrix
    batch: tuple[tuple[str, Expr], ...]
    epilogue: tuple[Stmt, ...]
    otherwise: tuple[Stmt, ...]
    min_work: int
    min_rows: int = 0
    tile_b_bytes: int = 0

    def exprs(self) -> list[Expr]:
        """Every index expression it evaluates itself (not those of its statements)."""
        return [self.m, self.n, self.k] + [e for x in (self.a, self.b, self.c)
                                           for e in (x.offset, x.rows, x.cols)] + [
            extent for _, extent in self.batch]


@dataclass
class Kernel:
    """One fused group: named after its ops; the buffers it reads and writes; its body."""

    name: str
    body: tuple[Stmt, ...]
    reads: tuple[str, ...]
    writes: tuple[str, ...]

    @staticmethod
    def over(name: str, body: tuple[Stmt, ...]) -> Kernel:
        """The kernel running `body`, its reads and writes found in it."""
        writes = buffers_written(body)
        return Kernel(name, body, tuple(b for b in buffers_read(body) if b not in writes),
                      tuple(writes))


def walk(e: Expr) -> Iterator[Expr]:
    """`e` and its subexpressions, each distinct node once: expressions are DAGs (a gradient's
    reuses a recomputed value many times), and a walk of every path is exponential in depth."""
    seen: set[int] = set()
    stack = [e]
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        yield x
        stack.extend(reversed(_children(x)))


def _children(e: Expr) -> tuple[Expr, ...]:
    if isinstance(e, Load):
        return (e.index,) if e.guard is None else (e.index, e.guard)
    if isinstance(e, Op):
        return e.args
    if isinstance(e, Reduce):
        return (*(extent for _, extent in e.axes), e.body)
    if isinstance(e, Random):
        return (e.index,)
    return ()


def independent(loop: Loop) -> bool:
    """Whether a loop's iterations are independent: it leads (through single loops) to one store
    or register tile that writes without accumulating and reads nothing it writes."""
    s: Stmt = loop
    while isinstance(s, Loop) and len(s.body) == 1:
        s = s.body[0]
    if not isinstance(s, (Store, Tile)) or isinstance(s, Store) and s.accumulate:
        return False
    return all(not (isinstance(e, Load) and e.buffer == s.buffer) for e in walk(s.value))


def substitute(e: Expr, values: dict[str, Expr], buffers: dict[str, str] | None = None,
               loads: dict[str, Expr] | None = None) -> Expr:
    """`e` with the variables named in `values` replaced, its loads from the buffers named in
    `buffers` reading the buffers they map to, and its loads from those in `loads` replaced by
    the values given (a shared subexpression once: its copy is shared too)."""
    memo: dict[int, Expr] = {}
    renamed, forwarded = buffers or {}, loads or {}

    def sub(e: Expr) -> Expr:
        done = memo.get(id(e))
        if done is None:
            done = memo[id(e)] = _substituted(e, sub, values, renamed, forwarded)
        return done
    return sub(e)


def _substituted(e: Expr, sub: Callable[[Expr], Expr], values: dict[str, Expr],
                 buffers: dict[str, str], loads: dict[str, Expr]) -> Expr:
    if isinstance(e, Var):
        return values.get(e.name, e)
    if isinstance(e, Load):
        if e.buffer in loads:
            return loads[e.buffer]
        return Load(e.dtype, buffers.get(e.buffer, e.buffer), sub(e.index),
                    None if e.guard is None else sub(e.guard), e.other)
    if isinstance(e, Op):
        return Op(e.dtype, e.op, tuple(sub(a) for a in e.args))
    if isinstance(e, Reduce):
        return Reduce(e.dtype, e.combine, tuple((v, sub(n)) for v, n in e.axes), sub(e.body),
                      e.init)
    if isinstance(e, Random):
        return Random(e.dtype, e.salt, sub(e.index))
    return e


def buffers_read(stmts: tuple[Stmt, ...]) -> list[str]:
    out: list[str] = []
    for s in stmts:
        exprs: list[Expr] = []
        if isinstance(s, Loop):
            out += buffers_read(s.body)
            exprs = [s.extent]
        elif isinstance(s, Store):
            exprs = [s.index, s.value]
            if s.accumulate:
                out.append(s.buffer)
        elif isinstance(s, Tile):
            exprs = [s.index, s.value]
        elif isinstance(s, Copy):
            out.append(s.src)
        elif isinstance(s, CallScan):
            out += [slot.buffer for slot in s.slots]
        elif isinstance(s, IfFinite):
            out += [s.buffer] + buffers_read(s.body)
        elif isinstance(s, Gemm):
            out += [s.a.buffer, s.b.buffer] + buffers_read(s.epilogue + s.otherwise)
            exprs = s.exprs()
        out += [e.buffer for x in exprs for e in walk(x) if isinstance(e, Load)]
    return list(dict.fromkeys(out))


def buffers_written(stmts: tuple[Stmt, ...]) -> list[str]:
    out: list[str] = []
    for s in stmts:
        if isinstance(s, (Store, Fill)):
            out.append(s.buffer)
        elif isinstance(s, Copy):
            out.append(s.dst)
        elif isinstance(s, (Loop, IfFinite)):
            out += buffers_written(s.body)
        elif isinstance(s, CallScan):
            out += [slot.buffer for slot in s.slots]
    return list(dict.fromkeys(out))


# ---- text form (`dlgc compile --emit kernels`) ---------------------------------------------------
def format_expr(e: Expr) -> str:
    if isinstance(e, Const):
        return repr(e.value)
    if isinstance(e, Var):
        return e.name
    if isinstance(e, Load):
        base = f"{e.buffer}[{format_expr(e.index)}]"
        return base if e.guard is None else f"({format_expr(e.guard)} ? {base} : {e.other})"
    if isinstance(e, Op):
        return f"{e.op.name}({', '.join(format_expr(a) for a in e.args)})"
    if isinstance(e, Reduce):
        axes = ", ".join(f"{v} < {format_expr(n)}" for v, n in e.axes)
        return f"{e.combine.name}[{axes}]({format_expr(e.body)})"
    if isinstance(e, Random):
        return f"random({e.salt}, {format_expr(e.index)})"
    raise TypeError(e)


def format_stmt(s: Stmt, indent: int = 1) -> list[str]:
    pad = "  " * indent
    if isinstance(s, Loop):
        head = f"{pad}for {s.var} < {format_expr(s.extent)}{' (parallel)' if s.parallel else ''}:"
        return [head] + [line for b in s.body for line in format_stmt(b, indent + 1)]
    if isinstance(s, Store):
        op = "+=" if s.accumulate else "="
        return [f"{pad}{s.buffer}[{format_expr(s.index)}] {op} {format_expr(s.value)}"]
    if isinstance(s, Tile):
        width = f"{s.cols}x{s.lanes}" if s.along == "col" else str(s.cols)
        head = (f"{pad}tile {s.row} in {format_expr(s.row_start)} + [0, {s.rows}), {s.col} in "
                f"{format_expr(s.col_start)} + [0, {width}) (< {format_expr(s.col_extent)}"
                f"{', masked' if s.masked else ''}), {s.lanes} lanes along {s.along}:")
        return [head, f"{pad}  {s.buffer}[{format_expr(s.index)}] = {format_expr(s.value)}"]
    if isinstance(s, Fill):
        return [f"{pad}{s.buffer}[0:{format_expr(s.count)}] = {s.value}"]
    if isinstance(s, Copy):
        return [f"{pad}{s.dst}[0:{format_expr(s.count)}] = {s.src}"]
    if isinstance(s, IfFinite):
        return [f"{pad}if isfinite({s.buffer}[0]):"] + [
            line for b in s.body for line in format_stmt(b, indent + 1)]
    if isinstance(s, Gemm):
        def matrix(x: Matrix) -> str:
            return (f"{x.buffer}[{format_expr(x.offset)} + i*{format_expr(x.rows)} + "
                    f"j*{format_expr(x.cols)}]")
        batch = "".join(f" for {v} < {format_expr(n)}" for v, n in s.batch)
        size = ", ".join(format_expr(x) for x in (s.m, s.n, s.k))
        lines = [f"{pad}gemm {matrix(s.c)} = {matrix(s.a)} @ {matrix(s.b)} ({size}){batch}:"]
        lines += [line for b in s.epilogue for line in format_stmt(b, indent + 1)]
        rows = f" or m < {s.min_rows}" if s.min_rows else ""
        small_b = f" or k*n*4 <= {s.tile_b_bytes}" if s.tile_b_bytes else ""
        lines.append(f"{pad}otherwise (m*n*k < {s.min_work}{rows}{small_b}):")
        return lines + [line for b in s.otherwise for line in format_stmt(b, indent + 1)]
    if isinstance(s, CallScan):
        return [f"{pad}scan {s.function} x {format_expr(s.steps)}"
                f"{' reversed' if s.reverse else ''} over {', '.join(x.buffer for x in s.slots)}"]
    raise TypeError(s)


def format_kernel(k: Kernel) -> str:
    head = f"kernel {k.name}({', '.join(k.reads)}) -> ({', '.join(k.writes)}):"
    return "\n".join([head] + [line for s in k.body for line in format_stmt(s)])


def canonical(stmts: tuple[Stmt, ...], rename: Callable[[str], str]) -> str:
    """A kernel body as text, linear in its size (repr prints a shared subexpression once per
    path to it): each distinct node of this IR once, numbered, its fields naming nodes by number
    and its strings through `rename`. Bodies that lowering built alike give the same text."""
    numbers: dict[int, int] = {}
    lines: list[str] = []

    def text(x: object) -> str:
        if isinstance(x, tuple):
            return "(" + ", ".join(text(v) for v in x) + ")"
        if isinstance(x, str):
            return rename(x)
        if not is_dataclass(x) or type(x).__module__ != __name__:  # ops print as <op add>
            return repr(x)
        if id(x) not in numbers:
            line = f"{type(x).__name__}({', '.join(text(getattr(x, f.name)) for f in fields(x))})"
            numbers[id(x)] = len(lines)
            lines.append(line)
        return f"#{numbers[id(x)]}"
    lines.append(text(stmts))
    return "\n".join(lines)
