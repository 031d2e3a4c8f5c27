"""Binding a call's arguments to a user-facing function, the same way from both front doors.

Keywords are accepted in PyTorch's spelling and in .dlg's (`dim`/`axis`, `keepdim`/`keepdims`,
`input`/`x`, ...): the functions are written with one name and `ALIASES` maps the other, here
and nowhere else. A wrong call gives the same message whichever door it came through.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from dlg.errors import DlgTypeError
from dlg.functions.args import suggest

# another spelling -> the name the functions use (PyTorch's on the left where they differ)
ALIASES = {"dim": "axis", "keepdim": "keepdims", "input": "x", "start_dim": "start_axis",
           "end_dim": "end_axis", "tensors": "xs", "other": "y"}

_SIGNATURES: dict[Callable[..., Any], inspect.Signature] = {}


def signature(fn: Callable[..., Any]) -> inspect.Signature:
    """The signature without the leading front argument."""
    sig = _SIGNATURES.get(fn)
    if sig is None:
        sig = inspect.signature(fn)
        sig = sig.replace(parameters=list(sig.parameters.values())[1:])
        _SIGNATURES[fn] = sig
    return sig


def bind(fn: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
         ) -> dict[str, Any]:
    """`kwargs` with aliases renamed, after checking that `name(*args, **kwargs)` fits `fn`'s
    signature; raises a DlgTypeError naming the function otherwise."""
    if not kwargs and _fits(fn, len(args), NO_KEYWORDS):  # most calls: positional, and fitting
        return {}
    params, names, open_keywords = _keywords(fn)
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key not in params and ALIASES.get(key) in params:
            key = ALIASES[key]
        if key in out:
            raise DlgTypeError(f"{name}() got argument {key!r} twice")
        if key not in names and not open_keywords:
            spellings = list(names) + [a for a, n in ALIASES.items() if n in names]
            raise DlgTypeError(f"{name}() has no argument {key!r}{suggest(key, spellings)}")
        out[key] = value
    if _fits(fn, len(args), out.keys()):
        return out
    try:  # a bad call: let inspect say what is wrong with it
        signature(fn).bind(*args, **out)
    except TypeError as err:
        raise DlgTypeError(f"{name}(): {str(err).replace('missing a required', 'missing')}"
                           ) from None
    return out



def bind_all(fn: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
             ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """`bind`, and a keyword naming fn's var-positional parameter (torch's methods take one:
    x.reshape(shape=(2, 3)), x.view(size=...), x.permute(dims=...), x.repeat(repeats=...))
    given as the positional arguments it stands for, where none were given positionally."""
    star = _star(fn) if kwargs else None
    if star is not None:
        key = next((k for k in kwargs if k == star or STAR_ALIASES.get(k) == star), None)
        if key is not None and len(args) == len(_arity(fn)[0]):
            kwargs = dict(kwargs)
            args = (*args, kwargs.pop(key))
    return args, bind(fn, name, args, kwargs)


# torch's keyword for a var-positional parameter -> the functions' name for it
STAR_ALIASES = {"size": "shape", "dims": "perm", "repeats": "sizes"}


@functools.cache
def _star(fn: Callable[..., Any]) -> str | None:
    """The name of fn's var-positional parameter, if it has one."""
    return next((p.name for p in signature(fn).parameters.values()
                 if p.kind is p.VAR_POSITIONAL), None)


NO_KEYWORDS: frozenset[str] = frozenset()


@functools.cache
def _keywords(fn: Callable[..., Any]) -> tuple[frozenset[str], tuple[str, ...], bool]:
    """fn's parameter names, those a keyword may name, and whether it takes **kwargs."""
    params = signature(fn).parameters
    names = tuple(p for p, v in params.items()
                  if v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY))
    return frozenset(params), names, any(v.kind is v.VAR_KEYWORD for v in params.values())


@functools.cache
def _arity(fn: Callable[..., Any]) -> tuple[tuple[str, ...], bool, frozenset[str]]:
    """fn's positional parameter names, whether it takes *args, and its required names."""
    params = signature(fn).parameters.values()
    positional = tuple(v.name for v in params
                       if v.kind in (v.POSITIONAL_ONLY, v.POSITIONAL_OR_KEYWORD))
    required = frozenset(v.name for v in params if v.default is v.empty
                         and v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD))
    return positional, any(v.kind is v.VAR_POSITIONAL for v in params), required


def _fits(fn: Callable[..., Any], given: int, keywords: Any) -> bool:
    """Whether `given` positional arguments and these keywords fill fn's parameters: the cheap
    test every eager call takes (inspect's full bind costs more than the op itself)."""
    positional, var_positional, required = _arity(fn)
    if given > len(positional) and not var_positional:
        return False
    taken = positional[:given]
    return not keywords & set(taken) and required <= {*taken, *keywords}
