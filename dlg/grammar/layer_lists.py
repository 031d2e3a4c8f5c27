"""Layer lists: PyTorch's containers in .dlg, made in `layer` declarations.

    layer blocks = Sequential(Block(16), Block(16))       # nn.Sequential: blocks(x) runs them
    layer heads = [Linear(64, 10) for i in range(4)]      # nn.ModuleList: heads[i], for h in heads
    layer towers = {a: Linear(4, 4), b: Linear(4, 4)}     # nn.ModuleDict: towers.a, towers["b"]
    layer stem = Sequential({conv: Conv2d(3, 8, 3), act: ReLU()})  # stem.conv.weight; stem(x)

Children are named as PyTorch names them (`blocks.0.conv1.weight`, `towers.a.bias`), so state
dicts move between the two. Everything here is static: indexing takes ints (or keys) known while
the model is built, and a `for` over a list unrolls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dlg.errors import DlgNameError, DlgTypeError, DlgValueError, Span
from dlg.grammar import ast
from dlg.grammar.values import LayerClass, LayerInstance, Scope, describe, suggest

if TYPE_CHECKING:
    from dlg.grammar.elaborate import Elaborator

SEQUENTIAL = "Sequential"
_WRITTEN_AS = {"ModuleList": "in brackets: `layer heads = [Linear(4, 2) for i in range(3)]`",
               "ModuleDict": "in braces: `layer towers = {a: Linear(4, 4), b: ReLU()}`"}
SELF = "self"  # `layer self = Sequential(...)`: the layer itself holds them (0.weight)


@dataclass(eq=False)
class LayerList:
    """Child layers by PyTorch name ("0", "1", ... or a ModuleDict's keys)."""

    prefix: str  # "blocks."
    children: dict[str, Any] = field(default_factory=dict)  # LayerInstance or LayerList

    def __repr__(self) -> str:
        n = len(self.children)
        return f"{self.name} ({n} layer{'s' if n != 1 else ''})"

    @property
    def name(self) -> str:
        return self.prefix.rstrip(".") or SELF


class Sequential(LayerList):
    """Children called in order: `blocks(x)`; numbered, or named when made from a dict."""


class ModuleList(LayerList):
    """Numbered children, indexed and iterated: `heads[i](x)`, `for h in heads { ... }`."""


class ModuleDict(LayerList):
    """Named children: `towers.a(x)`, `towers["a"](x)`; iterating gives the keys."""


# ---- declaring ---------------------------------------------------------------------------------
def build_layer(E: Elaborator, e: ast.Expr, scope: Scope, prefix: str) -> Any:
    """The layer (or layer list) that the right side of `layer NAME = e` makes, its parameters
    named under `prefix` (`blocks.0.`)."""
    if isinstance(e, ast.Comprehension) and e.brackets:
        return _numbered(E, ModuleList(prefix), [(e.elt, s) for s in _items(E, e, scope)])
    if isinstance(e, ast.TupleExpr) and e.brackets:
        return _numbered(E, ModuleList(prefix), [(x, scope) for x in e.items])
    if isinstance(e, ast.DictExpr):
        return _named(E, ModuleDict(prefix), e, scope)
    if not isinstance(e, ast.Call):
        raise DlgTypeError("a layer declaration needs a call, e.g. `layer fc = Linear(4, 2)`, "
                           "or a layer list: `[...]`, `{name: ...}`, `Sequential(...)`", e.span)
    if is_sequential(e, scope):
        if e.kwargs:
            raise DlgTypeError("Sequential takes layers, not keyword arguments", e.kwargs[0].span)
        if len(e.args) == 1 and isinstance(e.args[0], ast.DictExpr):  # named, in order
            return _named(E, Sequential(prefix), e.args[0], scope)
        children: list[tuple[ast.Expr, Scope]] = []
        for arg in e.args:
            if isinstance(arg, ast.Comprehension) and not arg.brackets:
                children += [(arg.elt, s) for s in _items(E, arg, scope)]
            else:
                children.append((arg, scope))
        return _numbered(E, Sequential(prefix), children)
    if isinstance(e.func, ast.Name) and e.func.id in _WRITTEN_AS and not scope.has(e.func.id):
        raise DlgNameError(f"a {e.func.id} is written {_WRITTEN_AS[e.func.id]}", e.func.span)
    cls = E.eval(e.func, scope)
    if not isinstance(cls, LayerClass):
        raise DlgTypeError(f"`layer {prefix.rstrip('.') or SELF} = ...` needs a layer "
                           f"definition such as Linear, got {describe(cls)}", e.func.span)
    args, kwargs = E.eval_args(e, scope)
    with E.at(e.span):
        return E.instantiate(cls, args, kwargs, prefix, e.span)


def is_sequential(e: ast.Call, scope: Scope) -> bool:
    """`Sequential(...)`, unless the program defines its own `Sequential`."""
    return (isinstance(e.func, ast.Name) and e.func.id == SEQUENTIAL
            and not scope.has(SEQUENTIAL))


def _numbered(E: Elaborator, out: LayerList, children: list[tuple[ast.Expr, Scope]]
              ) -> LayerList:
    """`out` with the layers `children` make, named 0, 1, ... under its prefix."""
    for i, (e, scope) in enumerate(children):
        out.children[str(i)] = build_layer(E, e, scope, f"{out.prefix}{i}.")
    return out


def _named(E: Elaborator, out: LayerList, e: ast.DictExpr, scope: Scope) -> LayerList:
    """`out` with the layers of `{key: ...}`, named by their keys under its prefix."""
    for key, value in zip(e.keys, e.values):
        if not key or "." in key:
            raise DlgNameError(f"a layer name cannot be empty or contain '.', got {key!r}",
                               value.span)
        out.children[key] = build_layer(E, value, scope, f"{out.prefix}{key}.")
    return out


def _items(E: Elaborator, e: ast.Comprehension, scope: Scope) -> list[Scope]:
    """A scope per item of a comprehension, its variable bound to the item."""
    return [Scope(scope, {e.var: item}) for item in iterate(E.eval(e.iter, scope), e.iter.span)]


def comprehension(E: Elaborator, e: ast.Comprehension, scope: Scope) -> tuple[Any, ...]:
    """`[f(i) for i in range(3)]` outside a layer declaration: a tuple of values."""
    return tuple(E.eval(e.elt, s) for s in _items(E, e, scope))


# ---- using -------------------------------------------------------------------------------------
def iterate(value: Any, span: Span) -> tuple[Any, ...]:
    """What `for x in value` visits: a tuple's items, a layer list's layers, a dict's keys."""
    if isinstance(value, tuple):
        return value
    if isinstance(value, ModuleDict):
        return tuple(value.children)
    if isinstance(value, LayerList):
        return tuple(value.children.values())
    raise DlgTypeError(f"`for` iterates over a tuple, range(...) or a layer list, got "
                       f"{describe(value)}", span)


def call_layers(E: Elaborator, layers: LayerList, args: list[Any], kwargs: dict[str, Any],
                span: Span) -> Any:
    """`blocks(x)`: a Sequential runs its layers in order, each on the last one's result."""
    if not isinstance(layers, Sequential):
        raise DlgTypeError(f"{describe(layers)} is not callable: call its layers "
                           f"({layers.name}[0](x), or `for l in {layers.name} {{ ... }}`)", span)
    if len(args) != 1 or kwargs:
        raise DlgTypeError(f"Sequential {layers.name} takes one argument, got "
                           f"{len(args) + len(kwargs)}", span)
    x = args[0]
    for child in layers.children.values():
        x = E.apply(child, [x], {}, span)
    return x


def index_layers(layers: LayerList, items: list[Any], span: Span) -> Any:
    """`heads[i]`, `heads[1:]` (a list of the same kind) or `towers["a"]`."""
    if len(items) != 1 or items[0] is Ellipsis:
        raise DlgTypeError(f"{describe(layers)} takes one index", span)
    (item,) = items
    if isinstance(layers, ModuleDict):
        if not isinstance(item, str):
            raise DlgTypeError(f"{describe(layers)} is indexed by a key string, got "
                               f"{describe(item)}", span)
        return child(layers, item, span)
    keys = list(layers.children)
    if isinstance(item, slice):
        if not all(v is None or isinstance(v, int) and not isinstance(v, bool)
                   for v in (item.start, item.stop, item.step)) or item.step == 0:
            raise DlgTypeError("a layer list slice takes int bounds and a nonzero step", span)
        return type(layers)(layers.prefix, {k: layers.children[k] for k in keys[item]})
    if isinstance(item, bool) or not isinstance(item, int):
        raise DlgTypeError(f"a layer list index must be an int known when the model is built, "
                           f"got {describe(item)}", span)
    if not -len(keys) <= item < len(keys):
        raise DlgValueError(f"index {item} is out of range for {describe(layers)}", span)
    return layers.children[keys[item]]


def child(layers: LayerList, name: str, span: Span) -> Any:
    """`towers.a`: a layer by key (a ModuleDict's, or a Sequential made from a dict)."""
    if name in layers.children:
        return layers.children[name]
    if not isinstance(layers, ModuleDict) and all(k.isdigit() for k in layers.children):
        raise DlgNameError(f"{describe(layers)} has numbered layers: index it, "
                           f"{layers.name}[0]", span)
    raise DlgNameError(f"{describe(layers)} has no layer {name!r}"
                       f"{suggest(name, layers.children)}", span)


def is_layer(value: Any) -> bool:
    return isinstance(value, (LayerInstance, LayerList))
