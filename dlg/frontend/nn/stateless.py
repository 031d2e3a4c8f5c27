"""torch.func.functional_call (and the older torch.nn.utils.stateless.functional_call): a
module called with other tensors in place of its parameters and buffers, for the duration of
the call. MAML's inner loop and ensembling pass tensors computed from the parameters (p - lr *
grad, with create_graph), so gradients reach the originals through them. Tied names (one
tensor under two names) take a given value under each, unless `tie_weights=False`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from dlg.errors import DlgTypeError, DlgValueError
from dlg.foreign import type_name
from dlg.frontend.engine import caller_span
from dlg.frontend.nn.module import Module
from dlg.frontend.tensor import Tensor


def _merged(dicts: Any) -> dict[str, Any]:
    """One name -> tensor dict from a dict or a tuple of them (a name given twice is an
    error, as torch's)."""
    dicts = tuple(dicts) if isinstance(dicts, (tuple, list)) else (dicts,)
    out: dict[str, Any] = {}
    for d in dicts:
        if not isinstance(d, Mapping):
            raise DlgTypeError(f"functional_call: expected a dict of name -> tensor (or a tuple "
                               f"of them), got {type(d).__name__}", caller_span())
        repeated = sorted(set(out) & set(d))
        if repeated:
            raise DlgValueError(f"functional_call got multiple values for keys {repeated}, "
                                f"which are used in multiple dicts", caller_span())
        out.update(d)
    return out


def _slot(module: Module, name: str) -> tuple[dict[str, Any], str]:
    """The table (its owner's _parameters or _buffers) and key that hold `name`."""
    path, _, leaf = name.rpartition(".")
    owner: Any = module
    for part in path.split(".") if path else ():
        if part not in owner._modules:
            raise DlgValueError(f"functional_call: {type(module).__name__} has no submodule "
                                f"{path!r} (key {name!r})", caller_span())
        owner = owner._modules[part]
    for table in (owner._parameters, owner._buffers):
        if leaf in table:
            return table, leaf
    raise DlgValueError(f"functional_call: {type(owner).__name__} has no parameter or buffer "
                        f"{leaf!r} (key {name!r})", caller_span())


def _with_tied(module: Module, given: dict[str, Any]) -> dict[str, Any]:
    """`given` with each value also under the other names of the tensor it replaces."""
    names: dict[int, list[str]] = {}
    for name, t in [*module.named_parameters(remove_duplicate=False),
                    *module.named_buffers(remove_duplicate=False)]:
        names.setdefault(id(t), []).append(name)
    out = dict(given)
    for group in names.values():
        keys = [n for n in group if n in given]
        if len(keys) > 1 and any(given[k] is not given[keys[0]] for k in keys):
            raise DlgValueError(f"functional_call got multiple values for the tied weights "
                                f"{keys}", caller_span())
        for n in group if keys else ():
            out.setdefault(n, given[keys[0]])
    return out


@contextmanager
def _swapped(module: Module, values: dict[str, Any]) -> Iterator[None]:
    slots = [(*_slot(module, name), value) for name, value in values.items()]
    for _, _, value in slots:
        if not isinstance(value, Tensor):
            raise DlgTypeError(f"functional_call: values must be tensors, got "
                               f"{type_name(value)}", caller_span())
    saved = [(table, key, table[key]) for table, key, _ in slots]
    try:
        for table, key, value in slots:
            table[key] = value
        yield
    finally:
        for table, key, original in saved:
            table[key] = original


def functional_call(module: Module, parameter_and_buffer_dicts: Any, args: Any = None,
                    kwargs: dict[str, Any] | None = None, *, tie_weights: bool = True,
                    strict: bool = False) -> Any:
    """module(*args, **kwargs) with the named tensors in place of its parameters and buffers
    (the others its own); `strict` requires every parameter and buffer, and no other name."""
    if not isinstance(module, Module):
        raise DlgTypeError(f"functional_call: expected a dlg.nn.Module, got "
                           f"{type(module).__name__}", caller_span())
    values = _merged(parameter_and_buffer_dicts)
    if tie_weights:
        values = _with_tied(module, values)
    if strict:
        known = {n for n, _ in module.named_parameters(remove_duplicate=False)}
        known |= {n for n, _ in module.named_buffers(remove_duplicate=False)}
        unexpected, missing = sorted(set(values) - known), sorted(known - set(values))
        errors = []
        if unexpected:
            errors.append(f"Unexpected key(s): {', '.join(map(repr, unexpected))}.")
        if missing:
            errors.append(f"Missing key(s): {', '.join(map(repr, missing))}.")
        if errors:
            raise DlgValueError(f"Error(s) in reparametrizing for {type(module).__name__}:\n\t"
                                + "\n\t".join(errors), caller_span())
    args = () if args is None else args if isinstance(args, tuple) else (args,)
    with _swapped(module, values):
        return module(*args, **(kwargs or {}))


__all__ = ["functional_call"]
