"""Nested Python containers (tuples, lists, dicts, namedtuples) as a flat list of leaves and a
structure, as torch.utils._pytree sees them: the transforms differentiate or map over every
tensor in a dict of parameters, and vmap's in_dims/out_dims are prefixes of their arguments'
and outputs' structures. Anything else (tensors, numbers, None) is a leaf."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TreeSpec:
    """A container's structure: its type (None for a leaf), dict keys, and its children's."""

    kind: type | None = None
    keys: tuple[Any, ...] = ()
    children: tuple[TreeSpec, ...] = ()

    @property
    def is_leaf(self) -> bool:
        return self.kind is None

    def __str__(self) -> str:
        if self.kind is None:
            return "*"
        if issubclass(self.kind, dict):
            inner = ", ".join(f"{k!r}: {c}" for k, c in zip(self.keys, self.children))
            return "{" + inner + "}"
        inner = ", ".join(map(str, self.children))
        if self.kind is list:
            return f"[{inner}]"
        name = "" if self.kind is tuple else self.kind.__name__
        return f"{name}({inner}{',' if len(self.children) == 1 and not name else ''})"


LEAF = TreeSpec()


def _children(tree: Any) -> tuple[type | None, tuple[Any, ...], tuple[Any, ...]]:
    """(node type, keys, children), the type None for a leaf."""
    if isinstance(tree, dict):
        return type(tree), tuple(tree), tuple(tree.values())
    if isinstance(tree, (tuple, list)):
        return type(tree), (), tuple(tree)
    return None, (), ()


def flatten(tree: Any) -> tuple[list[Any], TreeSpec]:
    """The leaves, left to right (dicts in their own key order), and the structure."""
    leaves: list[Any] = []

    def walk(node: Any) -> TreeSpec:
        kind, keys, children = _children(node)
        if kind is None:
            leaves.append(node)
            return LEAF
        return TreeSpec(kind, keys, tuple(walk(c) for c in children))

    spec = walk(tree)
    return leaves, spec


def unflatten(leaves: list[Any], spec: TreeSpec) -> Any:
    """The container `spec` describes, holding `leaves` in order."""
    it = iter(leaves)

    def build(s: TreeSpec) -> Any:
        if s.kind is None:
            return next(it)
        children = [build(c) for c in s.children]
        if issubclass(s.kind, dict):
            return s.kind(zip(s.keys, children))
        if s.kind is tuple or s.kind is list:
            return s.kind(children)
        if hasattr(s.kind, "_fields"):  # a namedtuple takes its fields as arguments
            return s.kind(*children)
        return s.kind(children)

    return build(spec)


def broadcast_prefix(prefix: Any, spec: TreeSpec) -> list[Any] | None:
    """One value of `prefix` per leaf of `spec`: a leaf of the prefix stands for its whole
    subtree (vmap's `in_dims=0` for a dict of tensors); None where the prefix's containers do
    not match the structure's (other type, length or keys)."""
    out: list[Any] = []

    def walk(p: Any, s: TreeSpec) -> bool:
        kind, keys, children = _children(p)
        if kind is None:
            out.extend(p for _ in range(_count(s)))
            return True
        if kind is not s.kind or len(children) != len(s.children):
            return False
        if issubclass(kind, dict):
            if set(keys) != set(s.keys):
                return False
            by_key = dict(zip(keys, children))
            return all(walk(by_key[k], c) for k, c in zip(s.keys, s.children))
        return all(walk(pc, c) for pc, c in zip(children, s.children))

    return out if walk(prefix, spec) else None


def _count(spec: TreeSpec) -> int:
    return 1 if spec.kind is None else sum(_count(c) for c in spec.children)

