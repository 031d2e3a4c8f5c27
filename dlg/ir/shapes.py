"""Dims and shapes, with symbolic dims.

A dim is a Python int or a `Sym`: a polynomial with integer coefficients over named symbols
(`N`, `T`, `N*T`, `4*N + 1`). Arithmetic that gives a constant gives back a plain int, so
concrete shapes stay plain tuples of ints. Division is exact or an error: reshape and flatten
only ever divide a product by one of its factors.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Union

from dlg.errors import DlgShapeError, DlgTypeError, Span

Monomial = tuple[str, ...]  # sorted symbol names, repeated for powers; () is the constant term


@dataclass(frozen=True)
class Sym:
    """A symbolic dim: `terms` maps monomials to nonzero coefficients, sorted."""

    terms: tuple[tuple[Monomial, int], ...]

    @staticmethod
    def named(name: str) -> Sym:
        return Sym((((name,), 1),))

    @staticmethod
    def _make(terms: dict[Monomial, int]) -> Dim:
        clean = tuple(sorted((m, c) for m, c in terms.items() if c != 0))
        if not clean:
            return 0
        if len(clean) == 1 and clean[0][0] == ():
            return clean[0][1]
        return Sym(clean)

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(s for m, _ in self.terms for s in m)

    def __index__(self) -> int:
        """A symbolic size has no int to give where Python needs one (`range(target.shape[0])`
        in a forward dlg.compile traces with a symbolic batch): a DlgShapeError, on which
        dlg.compile traces at the call's own shapes instead, as torch.compile specialises."""
        raise DlgShapeError(f"the size {self} is symbolic while traced, and Python needs an int "
                            f"here (range(), a list's length); trace at fixed shapes, or keep "
                            f"the size a tensor op's argument")

    def __add__(self, other: Dim) -> Dim:
        out = dict(self.terms)
        for m, c in _terms(other):
            out[m] = out.get(m, 0) + c
        return Sym._make(out)

    __radd__ = __add__

    def __neg__(self) -> Dim:
        return Sym._make({m: -c for m, c in self.terms})

    def __sub__(self, other: Dim) -> Dim:
        return self + (-other)

    def __rsub__(self, other: Dim) -> Dim:
        return (-self) + other

    def __mul__(self, other: Dim) -> Dim:
        out: dict[Monomial, int] = {}
        for m1, c1 in self.terms:
            for m2, c2 in _terms(other):
                m = tuple(sorted(m1 + m2))
                out[m] = out.get(m, 0) + c1 * c2
        return Sym._make(out)

    __rmul__ = __mul__

    def __floordiv__(self, other: Dim) -> Dim:
        result = exact_div(self, other)
        if result is None:
            raise ValueError(f"{self} is not divisible by {other}")
        return result

    def __rfloordiv__(self, other: Dim) -> Dim:
        result = exact_div(other, self)
        if result is None:
            raise ValueError(f"{other} is not divisible by {self}")
        return result

    def __truediv__(self, other: object) -> Dim:
        if isinstance(other, (int, float, Sym)):
            raise _divided(f"{self} / {other}")
        return NotImplemented  # a tensor's __rtruediv__: N / x is a graph op

    def __rtruediv__(self, other: object) -> Dim:
        if isinstance(other, (int, float)):
            raise _divided(f"{other} / {self}")
        return NotImplemented

    def evaluate(self, env: Mapping[str, int]) -> int:
        total = 0
        for m, c in self.terms:
            term = c
            for s in m:
                term *= env[s]
            total += term
        return total

    def __str__(self) -> str:
        parts = []
        for m, c in sorted(self.terms, key=lambda t: (-len(t[0]), t[0])):
            body = "*".join(m)
            if not m:
                text = str(abs(c))
            elif abs(c) == 1:
                text = body
            else:
                text = f"{abs(c)}*{body}"
            parts.append(("-" if c < 0 else "+", text))
        first_sign, first = parts[0]
        out = ("-" if first_sign == "-" else "") + first
        for sign, text in parts[1:]:
            out += f" {sign} {text}"
        return out

    __repr__ = __str__


Dim = Union[int, Sym]
Shape = tuple[Dim, ...]


def _divided(expression: str) -> DlgTypeError:
    """`/` on a symbolic size: its value is unknown until the model is called (torch.compile
    specialises or guards on it instead), so there is no Python number to give back, and
    int(...) of the result could not make one either."""
    user = sys._getframe(2)  # the line with the `/`: above this and Sym's operator
    return DlgTypeError(f"{expression}: a symbolic size (the batch axis of a compiled or traced "
                        f"model) has no value to divide as a Python number; write an exact "
                        f"division of sizes with // (x.shape[0] // 4), or divide a tensor "
                        f"(x.sum(0) / x.size(0))",
                        Span(user.f_code.co_filename, user.f_lineno, 1, user.f_lineno, 1))


def _terms(d: Dim) -> tuple[tuple[Monomial, int], ...]:
    if isinstance(d, Sym):
        return d.terms
    return (((), int(d)),) if d else ()


def exact_div(a: Dim, b: Dim) -> Dim | None:
    """a / b when b divides a exactly (as polynomials), else None."""
    if isinstance(b, int):
        if b == 0:
            return None
        if isinstance(a, int):
            return a // b if a % b == 0 else None
        if all(c % b == 0 for _, c in a.terms):
            return Sym._make({m: c // b for m, c in a.terms})
        return None
    if len(b.terms) != 1:
        return 1 if a == b else None
    (bm, bc), = b.terms
    out: dict[Monomial, int] = {}
    for m, c in _terms(a):
        rest = list(m)
        for s in bm:
            if s not in rest:
                return None
            rest.remove(s)
        if c % bc:
            return None
        out[tuple(rest)] = c // bc
    return Sym._make(out)


def is_concrete(shape: Sequence[Dim]) -> bool:
    return all(isinstance(d, int) for d in shape)


def evaluate_dim(d: Dim, env: Mapping[str, int]) -> int:
    return d.evaluate(env) if isinstance(d, Sym) else int(d)


def evaluate_shape(shape: Sequence[Dim], env: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(evaluate_dim(d, env) for d in shape)


def numel(shape: Sequence[Dim]) -> Dim:
    total: Dim = 1
    for d in shape:
        total = total * d
    return total


def dim_str(d: Dim) -> str:
    return str(d)


def shape_str(shape: Sequence[Dim]) -> str:
    return "[" + ", ".join(dim_str(d) for d in shape) + "]"


_NAME = re.compile(r"[A-Za-z_]\w*")


def parse_dim(text: str) -> Dim:
    """Parse a dim printed by `dim_str` (sums of products of ints and symbols)."""
    compact = text.replace(" ", "")
    terms = re.findall(r"([+-]?)([^+-]+)", compact)
    if not compact or "".join(s + t for s, t in terms) != compact:
        raise ValueError(f"bad dim {text!r}")
    total: Dim = 0
    for sign, term in terms:
        value: Dim = 1
        for factor in term.split("*"):
            if factor.isdigit():
                value = value * int(factor)
            elif _NAME.fullmatch(factor):
                value = value * Sym.named(factor)
            else:
                raise ValueError(f"bad dim {text!r}")
        total = total + (-value if sign == "-" else value)
    return total


def bind_dims(pattern: Sequence[Dim], actual: Sequence[int], env: dict[str, int]) -> str | None:
    """Bind the symbols of `pattern` against a concrete shape, extending `env`.

    Returns None on success, or a message saying which dim disagrees. A dim that is a bare
    symbol binds it; other symbolic dims are checked once all their symbols are known.
    """
    if len(pattern) != len(actual):
        return f"expected rank {len(pattern)}, got rank {len(actual)}"
    deferred = []
    for axis, (want, got) in enumerate(zip(pattern, actual)):
        if isinstance(want, Sym) and len(want.terms) == 1 and want.terms[0][1] == 1 \
                and len(want.terms[0][0]) == 1:
            name = want.terms[0][0][0]
            if name in env and env[name] != got:
                return f"dim {name} is {env[name]} elsewhere but {got} at axis {axis}"
            env[name] = got
        elif isinstance(want, int):
            if want != got:
                return f"axis {axis} should be {want}, got {got}"
        else:
            deferred.append((axis, want, got))
    for axis, want, got in deferred:
        if not want.symbols <= env.keys():
            continue
        if want.evaluate(env) != got:
            return f"axis {axis} should be {want} = {want.evaluate(env)}, got {got}"
    return None
