"""`OpDef`: everything about one primitive or composite op, made in one `defop` call.

An op has named inputs (a trailing `*name` is variadic), an attribute schema checked when a node
is made, a shape/dtype rule (`infer`), a NumPy reference implementation (`ref`, *the* semantics),
its vector-Jacobian product (`vjp`) and, for composites, a `decompose` rule that rewrites it into
primitives with a `Builder`.

The VJP protocol (STYLE §3): `vjp(b, node, g) -> tuple[Value | None, ...]` builds IR with `b`
(a `Builder` on the gradient graph) and returns one cotangent per input of `node`, `None` where
there is none (integer inputs, indices). `g` is the cotangent of `node.out`, or a tuple with one
per output for multi-output ops (zeros where none flowed). A returned cotangent may have the
*broadcast* shape of the node's output: the autodiff pass sums it back to the input's shape in
one place. `vjp=None` means the op is not differentiable (asking for a gradient through it is an
error); `zero_vjp` says its gradient is zero (floor, sign, comparisons). Ops with `needs_ctx` get
`ctx=` (a way to differentiate a body graph: scan). `save_for_vjp(b, *inputs, **attrs)`, when set,
emits the forward node in a form whose extra outputs keep what the VJP re-reads (scan's per-step
carries); the autodiff pass uses it for nodes on the gradient path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from dlg.errors import DlgAttributeError
from dlg.ir.dtypes import DType
from dlg.ir.shapes import Sym

REQUIRED = object()


class Trait(Enum):
    """What the passes need to know about an op, stated on its `defop` (STYLE §1): fusion,
    padding, simplify, autodiff, lowering and the registry tests key on these, never on names."""

    UNARY = "unary"                # one tensor input
    BINARY = "binary"              # two tensor inputs, broadcast against each other
    ELEMENTWISE = "elementwise"    # out[i] depends on its inputs at (broadcast) index i only
    COMPARISON = "comparison"      # elementwise, with a bool result
    COMMUTATIVE = "commutative"    # op(x, y) == op(y, x): the rewrite matcher tries both orders
    ARITHMETIC = "arithmetic"      # one cheap instruction: fusion recomputes it for a few readers
    REDUCTION = "reduction"        # combines its input over axes (sums, extremes, arg-extremes)
    CONTRACTION = "contraction"    # a sum of products reading each operand element many times
    WINDOW = "window"              # a reduction over sliding windows (pooling)
    MOVEMENT = "movement"          # moves or selects elements, computes nothing
    VIEW = "view"                  # movement that is index arithmetic over one input
    CHEAP = "cheap"                # costs nothing to recompute per reader (views, fills)
    PADDED = "padded"              # takes zero padding as an attribute (explicit_padding)
    OWN_KERNEL = "own_kernel"      # compiled as a kernel of its own (loops, scatters)
    MULTI_OUTPUT = "multi_output"  # its output count depends on attributes: always a tuple
    SOURCE = "source"              # no tensor inputs: values come from attributes or the caller
    ARGUMENT = "argument"          # a source the caller supplies (input, param): no reference
    BUFFER = "buffer"              # a source already in memory (input, param, constant)
    RANDOM = "random"              # fresh samples each run: never folded nor merged
    SHAPE_ONLY = "shape_only"      # reads its input's shape, never its data (numel)
    OWN_GRADIENT = "own_gradient"  # a composite autodiff keeps whole: its VJP is the user's
    PYTHON = "python"              # runs Python (an eager autograd.Function): eager tapes only
    INTERPRETED = "interpreted"    # complex values: eager and the interpreter run it, the
                                   # compiler refuses it (no lowering yet)

    # singletons, as DType's: C's identity hash, not Enum's Python hash of the name, which every
    # `Trait.X in op.traits` paid (eager apply, autograd's tape signature, the passes)
    __hash__ = object.__hash__


# Attribute kinds and the Python values they accept.
ATTR_KINDS = ("int", "float", "bool", "str", "ints", "dims", "axes", "pads", "dtype", "graph",
              "array", "float?", "int?", "object")  # object: any Python value (Trait.PYTHON ops)


@dataclass(frozen=True)
class Attr:
    """One attribute of an op: its kind (see ATTR_KINDS) and default (REQUIRED if none)."""

    kind: str
    default: Any = REQUIRED
    choices: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        assert self.kind in ATTR_KINDS, self.kind


@dataclass(frozen=True, eq=False)
class OpDef:
    name: str
    inputs: tuple[str, ...]
    attrs: Mapping[str, Attr]
    infer: Callable[..., Any]
    ref: Callable[..., Any] | None = None
    vjp: Callable[..., Any] | None = None
    decompose: Callable[..., Any] | None = None
    traits: frozenset[Trait] = frozenset()
    needs_ctx: bool = False  # ref (and vjp) receive ctx=: an RNG, a way to run/differentiate bodies
    doc: str = ""
    save_for_vjp: Callable[..., Any] | None = None

    @property
    def is_composite(self) -> bool:
        return self.decompose is not None

    @property
    def variadic(self) -> bool:
        return bool(self.inputs) and self.inputs[-1].startswith("*")

    def __repr__(self) -> str:
        return f"<op {self.name}>"

    def check_attrs(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Fill defaults and check every attribute against the schema."""
        unknown = set(given) - set(self.attrs)
        if unknown:
            raise DlgAttributeError(
                f"{self.name}: unknown attribute {min(unknown)!r}"
                f" (it takes {', '.join(self.attrs) or 'no attributes'})")
        out = {}
        for name, spec in self.attrs.items():
            if name in given:
                out[name] = _check_kind(self.name, name, spec, given[name])
            elif spec.default is REQUIRED:
                raise DlgAttributeError(f"{self.name}: missing attribute {name!r}")
            else:
                out[name] = spec.default
        return out


def _is_dim(v: Any) -> bool:
    return (isinstance(v, (int, np.integer)) and not isinstance(v, bool)) or isinstance(v, Sym)


def _check_kind(op: str, name: str, spec: Attr, value: Any) -> Any:
    kind = spec.kind
    if kind.endswith("?"):
        if value is None:
            return None
        kind = kind[:-1]
    ok = True
    if kind == "int":
        ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        value = int(value) if ok else value
    elif kind == "float":
        ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind == "bool":
        ok = isinstance(value, (bool, np.bool_))
        value = bool(value) if ok else value
    elif kind == "str":
        ok = isinstance(value, str)
    elif kind == "ints":
        ok = isinstance(value, (tuple, list)) and all(
            _is_dim(v) and isinstance(v, (int, np.integer))
                                                      for v in value)
        value = tuple(int(v) for v in value) if ok else value
    elif kind == "dims":
        ok = isinstance(value, (tuple, list)) and all(_is_dim(v) for v in value)
        value = tuple(v if isinstance(v, Sym) else int(v) for v in value) if ok else value
    elif kind == "axes":
        if value is None:
            return None
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            value = (int(value),)
        ok = isinstance(value, (tuple, list)) and all(
            isinstance(v, (int, np.integer)) for v in value)
        value = tuple(int(v) for v in value) if ok else value
    elif kind == "pads":
        ok = isinstance(value, (tuple, list)) and all(
            isinstance(p, (tuple, list)) and len(p) == 2 and all(isinstance(v, int) for v in p)
            for p in value)
        value = tuple((int(a), int(b)) for a, b in value) if ok else value
    elif kind == "dtype":
        ok = isinstance(value, DType)
    elif kind == "array":
        ok = isinstance(value, np.ndarray)
    elif kind == "graph":
        ok = hasattr(value, "nodes") and hasattr(value, "outputs")
    if not ok:
        raise DlgAttributeError(f"{op}: attribute {name!r} must be {kind}, got {value!r}")
    if spec.choices and value not in spec.choices:
        raise DlgAttributeError(
            f"{op}: attribute {name!r} must be one of {', '.join(map(repr, spec.choices))}, "
            f"got {value!r}")
    return value


REGISTRY: dict[str, OpDef] = {}


def zero_vjp(b: Any, node: Any, g: Any) -> tuple[None, ...]:
    """The VJP of an op whose derivative is zero wherever it exists (floor, sign, comparisons)."""
    return (None,) * len(node.inputs)


def defop(name: str, inputs: tuple[str, ...], infer: Callable[..., Any], *,
          attrs: Mapping[str, Attr] | None = None, ref: Callable[..., Any] | None = None,
          vjp: Callable[..., Any] | None = None, decompose: Callable[..., Any] | None = None,
          traits: frozenset[Trait] | set[Trait] = frozenset(), needs_ctx: bool = False,
          doc: str = "", save_for_vjp: Callable[..., Any] | None = None) -> OpDef:
    """Define an op and register it under its name (names are unique)."""
    assert name not in REGISTRY, f"op {name} defined twice"
    assert (ref is None) != (decompose is None) or Trait.ARGUMENT in traits, \
        f"{name}: an op has a reference implementation or a decomposition (exactly one)"
    op = OpDef(name, tuple(inputs), dict(attrs or {}), infer, ref, vjp, decompose,
               frozenset(traits), needs_ctx, doc, save_for_vjp)
    REGISTRY[name] = op
    return op


