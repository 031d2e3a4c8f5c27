"""A training step's optimizer updates write the parameters (and optimizer state) in place.

Lowering computes each updated value into a buffer of its own and copies them all into the
state in one last kernel, under the guard that a step whose loss is nan or inf changes nothing
(`IfFinite`). For a large layer that copy is a pass over the weights and the momenta that
costs as much as the update itself (ConvNet's fc1: 2.8 M weights, ~4 ms of a ~20 ms step).

Where the kernel computing an update is an elementwise loop nest that reads the old value only
at the element it writes, and before it writes it, the kernel can store into the state itself:
the iteration that overwrites an element is the last one to read it. The guard moves onto that
kernel (the loss is known by then: every update follows the forward pass), so a non-finite
step still changes nothing. A kernel moves only when every buffer it writes is such an update,
no later kernel reads the old state, and nothing but the copy and other such kernels after it
read the new value (Adam's moments of a large weight, computed by one kernel and read by the one
updating the weight: MLP 784-256-10's eager Adam step, native part, 224 -> 108 us).
"""

from __future__ import annotations

from dataclasses import replace

from dlg.compiler.kernel_ir import (
    Copy,
    Expr,
    IfFinite,
    Kernel,
    Load,
    Loop,
    Stmt,
    Store,
    substitute,
    walk,
)
from dlg.compiler.lower import Program

UPDATE_KERNEL = "update_state"  # the name lowering gives the kernel of copies (k<n>_update_state)


def update_in_place(p: Program) -> Program:
    """`p` with each update kernel that can write the state in place doing so, and the copies
    it made unnecessary gone from the last kernel (and their buffers from `p`), in place."""
    if not p.kernels or not p.kernels[-1].name.endswith(UPDATE_KERNEL):
        return p
    last = p.kernels[-1]
    guard, copies = _copies(last)
    target = {c.src: c.dst for c in copies}  # new value -> the state it replaces
    writer = {b: k for k, kernel in enumerate(p.kernels[:-1]) for b in kernel.writes}
    movable = {k for k, kernel in enumerate(p.kernels[:-1]) if kernel.writes and all(
        _in_place(p, k, b, target, writer, guard) for b in kernel.writes)}
    while True:  # a new value may be read by other moving kernels only: they run under the
        # same guard, after its writer, and read it from the state it was written into
        stuck = {k for k in movable if any(
            j not in movable or j < k for j in range(len(p.kernels) - 1) if j != k
            and any(b in p.kernels[j].reads for b in p.kernels[k].writes))}
        if not stuck:
            break
        movable -= stuck
    moved = {b for k in movable for b in p.kernels[k].writes}
    if not moved:
        return p
    names = {b: target[b] for b in moved}
    for k in movable:
        p.kernels[k] = _writing_state(p.kernels[k], names, guard)
    for b in moved:
        del p.buffers[b]
    kept = tuple(c for c in copies if c.src not in moved)
    if kept:
        body: tuple[Stmt, ...] = kept if guard is None else (IfFinite(guard, kept),)
        p.kernels[-1] = Kernel.over(last.name, body)
    else:
        p.kernels.pop()
    return p


def _copies(kernel: Kernel) -> tuple[str | None, tuple[Copy, ...]]:
    """The update kernel's guard (the loss buffer, or None when unguarded) and copies."""
    body = kernel.body
    if len(body) == 1 and isinstance(body[0], IfFinite):
        return body[0].buffer, body[0].body  # type: ignore[return-value]
    return None, body  # type: ignore[return-value]


def _in_place(p: Program, k: int, new: str, target: dict[str, str], writer: dict[str, int],
              guard: str | None) -> bool:
    """Whether kernel `k`, which writes `new`, can write it into the state it replaces."""
    state = target.get(new)
    if state is None or p.buffers[new].kind != "temp" or writer.get(new) != k:
        return False
    if guard is not None and writer.get(guard, len(p.kernels)) >= k:
        return False  # the loss is not known yet
    later = p.kernels[k + 1:-1]
    if any(state in kernel.reads or state in kernel.writes for kernel in later):
        return False  # someone after reads the old state
    stores = _stores(p.kernels[k].body)
    return stores is not None and _reads_before_write(stores, new, state)


def _stores(body: tuple[Stmt, ...]) -> tuple[Store, ...] | None:
    """The plain stores of a loop nest (loops of one statement each down to the last), else
    None: only there is each iteration's order of reads and writes plain to see."""
    while len(body) == 1 and isinstance(body[0], Loop):
        body = body[0].body
    if body and all(isinstance(s, Store) and not s.accumulate for s in body):
        return body  # type: ignore[return-value]
    return None


def _reads_before_write(stores: tuple[Store, ...], new: str, state: str) -> bool:
    """In one iteration: `new` is stored once; the old `state` is read only at that element and
    not after it is overwritten; `new` itself only at that element, after."""
    at = [s for s in stores if s.buffer == new]
    if len(at) != 1:
        return False
    index, position = at[0].index, stores.index(at[0])
    for j, s in enumerate(stores):
        for e in walk(s.value):
            if isinstance(e, Load) and (
                    e.buffer == state and (e.index != index or j > position)
                    or e.buffer == new and (e.index != index or j <= position)):
                return False
        if s.buffer == state:
            return False
    return True


def _writing_state(kernel: Kernel, names: dict[str, str], guard: str | None) -> Kernel:
    """`kernel` storing into the state buffers `names` maps its outputs to, under `guard`. A
    value read back after its store is the stored expression itself, not a load: emitters
    compute an expression once per iteration, so a load of the state after the store would be
    taken for the load of the old state before it."""
    body = _renamed(kernel.body, names, {})
    return Kernel.over(kernel.name, body if guard is None else (IfFinite(guard, body),))


def _renamed(body: tuple[Stmt, ...], names: dict[str, str], stored: dict[str, Expr]
             ) -> tuple[Stmt, ...]:
    out: list[Stmt] = []
    for s in body:
        if isinstance(s, Loop):
            out.append(replace(s, body=_renamed(s.body, names, stored)))
            continue
        assert isinstance(s, Store)
        value = substitute(s.value, {}, names, stored)
        if s.buffer in names:
            stored[s.buffer] = value
        out.append(Store(names.get(s.buffer, s.buffer), substitute(s.index, {}, names, stored),
                         value, s.accumulate))
    return tuple(out)
