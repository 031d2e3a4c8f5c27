"""The module machinery of `dlg.nn`: Parameter, Module (parameters, buffers and children by
PyTorch name; state_dict, train/eval, repr) and the containers Sequential, ModuleList and
ModuleDict."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from dlg.errors import DlgTypeError, DlgValueError
from dlg.foreign import is_foreign, type_name
from dlg.frontend import engine
from dlg.frontend.nn.hooks import Hooks
from dlg.frontend.nn.module_api import ModuleAPI
from dlg.frontend.tensor import Tensor, _as_array, all_tensors, foreign_tensors
from dlg.ir.dtypes import DType
from dlg.ir.init import initialize


class Parameter(Tensor):
    """A tensor a module trains (requires_grad by default)."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True):
        # torch's Parameter keeps its data's dtype (an int one then refuses requires_grad)
        self._setup(_as_array(data, None), requires_grad, None)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Buffer(Tensor):
    """torch.nn.Buffer: a tensor that, assigned to a module attribute, is registered as a
    buffer (`persistent` ones in state_dict), as register_buffer does."""

    __slots__ = ("persistent",)

    def __init__(self, data: Any, *, persistent: bool = True):
        self._setup(_as_array(data, None), False, None)
        self.persistent = persistent


def init_parameter(name: str, shape: tuple[int, ...], *args: Any, **kwargs: Any) -> Parameter:
    return Parameter(initialize(name, engine.rng(), shape, DType.f32, *args, **kwargs))


class IncompatibleKeys(NamedTuple):
    """What `load_state_dict` could not match (torch's `_IncompatibleKeys`)."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module(Hooks, ModuleAPI):
    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_backward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_backward_hooks", OrderedDict())
        object.__setattr__(self, "_load_state_dict_pre_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:  # plain values may come first, as in torch
            if not isinstance(value, (Parameter, Module)):
                object.__setattr__(self, name, value)
                return
            raise DlgValueError(f"{type(self).__name__}.__init__ must call super().__init__() "
                                f"before assigning {name!r}", engine.caller_span())
        if isinstance(value, Buffer):  # registered as a plain tensor, as torch's
            for table in (self._parameters, self._modules):
                table.pop(name, None)
            self.__dict__.pop(name, None)
            self.register_buffer(name, value.detach(), value.persistent)
            return
        if name in self._buffers and (value is None or isinstance(value, Tensor)) and not (
                isinstance(value, Parameter)):
            self._buffers[name] = value  # a buffer stays one when assigned anew, as in torch
            return
        # a parameter or module assigned anew keeps its place (torch's order of named_modules,
        # named_parameters and state_dict: `model.q = LoRALinear(model.q)`)
        keep = (self._parameters if isinstance(value, Parameter) else
                self._modules if isinstance(value, Module) else None)
        for table in (self._parameters, self._buffers, self._modules):
            if table is not keep:
                table.pop(name, None)
        self.__dict__.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            if getattr(value, "requires_grad", False) and is_foreign(value):
                raise DlgTypeError(
                    f"{type(self).__name__}.{name} = a {type_name(value)}: a dlg module would "
                    f"neither train nor save it; use dlg.nn.Parameter (dlg.from_torch converts a "
                    f"whole torch module)", engine.caller_span())
            object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        """torch's: `del module.weight` removes a parameter, buffer or submodule (the forward-AD
        tutorial then sets a plain tensor in its place)."""
        for table in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(table, {})
            if name in entries:
                del entries[name]
                if table == "_buffers":
                    self.__dict__.get("_non_persistent", set()).discard(name)
                return
        object.__delattr__(self, name)

    def __getattr__(self, name: str) -> Any:
        for table in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(table, {})
            if name in entries:
                return entries[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def register_buffer(self, name: str, value: Tensor | None, persistent: bool = True) -> None:
        """A tensor of the module's state that is not trained; a persistent one is saved in
        `state_dict`, others (caches, masks) only move with the module."""
        value = foreign_tensors(value)  # a torch.tril mask: a dlg tensor on its memory
        if value is not None and not isinstance(value, Tensor):
            raise DlgTypeError(f"register_buffer({name!r}): a buffer must be a dlg tensor or "
                               f"None, got {type_name(value)}", engine.caller_span())
        self._buffers[name] = value
        self._non_persistent.discard(name)
        if not persistent:
            self._non_persistent.add(name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        setattr(self, name, param)

    def add_module(self, name: str, module: Module | None) -> None:
        self._modules[name] = module

    def register_module(self, name: str, module: Module | None) -> None:
        """torch's alias of add_module."""
        self.add_module(name, module)

    def apply(self, fn: Any) -> Module:
        """fn(m) for every submodule, children first, then this module (torch's order)."""
        for child in self._modules.values():
            child.apply(fn)
        fn(self)
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not all_tensors(args):
            args = tuple(map(foreign_tensors, args))  # torch's DataLoader's tensors: dlg's
        if kwargs:
            kwargs = {k: foreign_tensors(v) for k, v in kwargs.items()}
        compiled = self.__dict__.get("_compiled_call")  # Module.compile() (dlg/api.py)
        if compiled is not None and engine.current_tracer() is None:
            return compiled(*args, **kwargs)
        if (self._forward_pre_hooks or self._forward_hooks or self._backward_hooks
                or self._backward_pre_hooks):
            out = self.hooked_call(self.forward, args, kwargs)
        else:
            out = self.forward(*args, **kwargs)
        tracer = engine.current_tracer()
        if tracer is not None:
            tracer.called(self, out)
        return out

    def named_modules(self, memo: set[int] | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        """This module and every submodule with its dotted name; a module held in two places
        comes once, under its first name (as in torch)."""
        memo = set() if memo is None else memo
        if remove_duplicate and id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name,
                                               remove_duplicate)

    # -- structure ---------------------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """Parameters by dotted name, each tensor once unless remove_duplicate is false (so an
        optimizer steps a shared layer once)."""
        return self._named("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def _named(self, table: str, prefix: str, recurse: bool, remove_duplicate: bool
               ) -> Iterator[tuple[str, Any]]:
        seen: set[int] = set()
        modules = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
                   if recurse else [(prefix, self)])
        for module_prefix, m in modules:
            for name, t in getattr(m, table).items():
                if t is None or remove_duplicate and id(t) in seen:
                    continue
                seen.add(id(t))
                yield (f"{module_prefix}.{name}" if module_prefix else name), t

    def state_dict(self, *args: Any, destination: Any = None, prefix: str = "",
                   keep_vars: bool = False) -> OrderedDict[str, Tensor]:
        """Parameters and buffers by PyTorch name, in PyTorch's order (each module's own
        parameters, then its buffers, then its children), detached unless `keep_vars`; names
        start with `prefix`; written into `destination` when given (torch's options)."""
        if args:  # torch's deprecated positional (destination, prefix, keep_vars)
            names = ("destination", "prefix", "keep_vars")
            if len(args) > len(names):
                raise DlgTypeError(f"state_dict() takes at most 3 positional arguments, got "
                                   f"{len(args)}", engine.caller_span())
            given = dict(zip(names, args))
            destination = given.get("destination", destination)
            prefix, keep_vars = given.get("prefix", prefix), given.get("keep_vars", keep_vars)
        out: OrderedDict[str, Tensor] = OrderedDict() if destination is None else destination
        self._state(out, prefix, keep_vars)
        return out

    def _state(self, out: OrderedDict[str, Tensor], prefix: str, keep_vars: bool = False
               ) -> None:
        for name, p in self._parameters.items():
            if p is not None:
                out[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent:
                out[prefix + name] = b if keep_vars else b.detach()
        for name, child in self._modules.items():
            if child is not None:
                child._state(out, f"{prefix}{name}.", keep_vars)

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True,
                        assign: bool = False) -> IncompatibleKeys:
        """Copy the values of `state` into the parameters and buffers of the same names; with
        `strict`, every name must match both ways. The names that did not, as torch returns
        them. `assign` (torch's): the values become the parameters and buffers themselves
        (their dtypes kept, each parameter's requires_grad the old one's), not copies. Each
        module's load pre-hooks see the state first."""
        state = self._load_pre_hooks(state, strict)
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise DlgValueError(f"state_dict does not match {type(self).__name__}: missing "
                                f"keys {missing}, unexpected keys {unexpected} (strict=False "
                                f"loads the names that match)", engine.caller_span())
        for k, target in own.items():
            if k not in state:
                continue
            value = state[k]
            value = value.detach().cpu().numpy() if hasattr(value, "cpu") else value
            array = np.asarray(value.numpy_view() if isinstance(value, Tensor) else value)
            if array.shape != target.shape:
                raise DlgValueError(f"{k}: expected shape {list(target.shape)}, got "
                                    f"{list(array.shape)}", engine.caller_span())
            if assign:
                self._assign(k, value if isinstance(value, Tensor) else Tensor.of(array.copy()))
            else:
                np.copyto(target.numpy_view(), array, casting="same_kind")
        return IncompatibleKeys(missing, unexpected)

    def _load_pre_hooks(self, state: Mapping[str, Any], strict: bool) -> Mapping[str, Any]:
        """torch's load_state_dict pre-hooks of every module, on a copy of `state`."""
        hooked = [(name, m) for name, m in self.named_modules()
                  if m.__dict__.get("_load_state_dict_pre_hooks")]
        if not hooked:
            return state
        state, errors = OrderedDict(state), []
        for name, m in hooked:
            for hook in list(m._load_state_dict_pre_hooks.values()):
                hook(m, state, f"{name}." if name else "", {}, strict, [], [], errors)
        if errors:
            raise DlgValueError(f"error(s) in loading state_dict for {type(self).__name__}: "
                                + "; ".join(errors), engine.caller_span())
        return state

    def _assign(self, name: str, value: Tensor) -> None:
        """load_state_dict(assign=True)'s swap of the parameter or buffer `name`."""
        path, _, leaf = name.rpartition(".")
        owner = self.get_submodule(path)
        if leaf in owner._parameters:
            old = owner._parameters[leaf]
            owner._parameters[leaf] = Parameter(value.detach(), old.requires_grad)
        else:
            owner._buffers[leaf] = value.detach()

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Every parameter's gradient dropped (torch's default), or with `set_to_none=False`
        set to zeros in place, as the optimizers' zero_grad."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def __repr__(self) -> str:
        """As torch prints it: the options on one line, or one line each with the children."""
        extra = self.extra_repr().split("\n") if self.extra_repr() else []
        children = [f"({n}): " + repr(m).replace("\n", "\n  ") for n, m in self._modules.items()]
        if len(extra) == 1 and not children:
            return f"{type(self).__name__}({extra[0]})"
        inner = "".join(f"\n  {line}" for line in extra + children)
        return f"{type(self).__name__}({inner}{chr(10) if inner else ''})"

    def extra_repr(self) -> str:
        return ""


# ---- containers ----------------------------------------------------------------------------------
class _ModuleSequence(Module):
    """What Sequential and ModuleList share: modules numbered 0, 1, ..., indexed like a list
    (negative indices, slices) and renumbered after an insert or a delete, as in PyTorch."""

    def _keys(self, i: int | slice) -> list[str]:
        keys = list(self._modules)
        if isinstance(i, slice):
            return keys[i]
        if not -len(keys) <= i < len(keys):
            raise IndexError(f"index {i} is out of range for {type(self).__name__} of "
                             f"{len(keys)}")
        return [keys[i]]

    def _renumber(self, modules: list[Module]) -> None:
        self._modules.clear()
        self._modules.update((str(i), m) for i, m in enumerate(modules))

    def __getitem__(self, i: int | slice) -> Any:
        keys = self._keys(i)
        if isinstance(i, slice):
            return self._slice([(k, self._modules[k]) for k in keys])
        return self._modules[keys[0]]

    def _slice(self, items: list[tuple[str, Module]]) -> Any:
        raise NotImplementedError

    def __setitem__(self, i: int, module: Module) -> None:
        self._modules[self._keys(i)[0]] = module

    def __delitem__(self, i: int | slice) -> None:
        for key in self._keys(i):
            del self._modules[key]
        self._renumber(list(self._modules.values()))

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __len__(self) -> int:
        return len(self._modules)

    def append(self, m: Module) -> Any:
        self._modules[str(len(self._modules))] = m
        return self

    def extend(self, modules: Any) -> Any:
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._renumber(modules)

    def pop(self, i: int | slice = -1) -> Any:
        out = self[i]
        del self[i]
        return out

    def __iadd__(self, modules: Any) -> Any:
        return self.extend(modules)

    def __add__(self, other: Any) -> Any:
        return type(self)().extend(self).extend(other)


class Sequential(_ModuleSequence):
    """Calls its modules in order; made from modules, or from an OrderedDict of named ones."""

    def __init__(self, *modules: Any):
        super().__init__()
        named = modules[0].items() if len(modules) == 1 and isinstance(modules[0], Mapping) \
            else ((str(i), m) for i, m in enumerate(modules))
        for name, m in named:
            self._modules[name] = m

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x

    def _slice(self, items: list[tuple[str, Module]]) -> Sequential:
        return Sequential(OrderedDict(items))


class ModuleList(_ModuleSequence):
    """Modules in a list: indexed and iterated, called by their owner's forward."""

    def __init__(self, modules: Any = ()):
        super().__init__()
        self.extend(modules)

    def _slice(self, items: list[tuple[str, Module]]) -> ModuleList:
        return ModuleList(m for _, m in items)


class NamedTable(Module):
    """A dict protocol over one of the module's tables (`TABLE`): ModuleDict's modules,
    ParameterDict's parameters; `entry` makes what is stored of what is given."""

    TABLE = "_modules"

    def __init__(self, entries: Any = None):
        super().__init__()
        if entries is not None:
            self.update(entries)

    @property
    def _table(self) -> OrderedDict[str, Any]:
        return self.__dict__[self.TABLE]

    def entry(self, value: Any) -> Any:
        return value

    def update(self, entries: Any) -> None:
        for name, value in (entries.items() if isinstance(entries, Mapping) else entries):
            self[name] = value

    def __getitem__(self, name: str) -> Any:
        return self._table[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self._table[name] = self.entry(value)

    def __delitem__(self, name: str) -> None:
        del self._table[name]

    def __contains__(self, name: str) -> bool:
        return name in self._table

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def pop(self, name: str) -> Any:
        return self._table.pop(name)

    def clear(self) -> None:
        self._table.clear()

    def keys(self) -> Any:
        return self._table.keys()

    def items(self) -> Any:
        return self._table.items()

    def values(self) -> Any:
        return self._table.values()


class ModuleDict(NamedTable):
    """Modules by name, in insertion order (their names prefix their parameters')."""
