"""torch.nn.utils.parametrize: a module's tensor computed from original parameters.

`register_parametrization(module, "weight", p)` moves the weight into
`module.parametrizations.weight` (a ParametrizationList): `original` (or `original0`,
`original1`, ... when `p.right_inverse` returns several tensors), and `p` as its submodule
`0` (more parametrizations chain as `1`, `2`, ...). As torch does, the module's class is swapped
for a subclass with a `weight` property, so every read computes p(original) with recorded ops
(gradients reach the originals; traced, the ops are in the graph), and an assignment goes
through right_inverse. state_dict keys are torch's (`parametrizations.weight.original`,
a parametrization's buffers as `parametrizations.weight.0._u`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend.nn.module import Module, ModuleDict, ModuleList, Parameter
from dlg.frontend.tensor import Tensor


class ParametrizationList(ModuleList):
    """The parametrizations of one tensor and its original(s)."""

    def __init__(self, modules: list[Module], original: Tensor, unsafe: bool = False):
        super().__init__(modules)
        self.unsafe = unsafe
        first = modules[0]
        value = _right_inverse(first, original) if hasattr(first, "right_inverse") else original
        if isinstance(value, Tensor):
            self.is_tensor, self.ntensors = True, 1
            self._keep("original", value, original)
        else:
            self.is_tensor, self.ntensors = False, len(value)
            for i, v in enumerate(value):
                self._keep(f"original{i}", v, original)

    def _keep(self, name: str, value: Tensor, like: Tensor) -> None:
        """An original: a parameter where the tensor was one, a buffer where it was a buffer
        (a parametrized running_mean stays out of parameters(), as in torch)."""
        kept = _parameter(value, like)
        if isinstance(like, Parameter):
            setattr(self, name, kept)
        else:
            self.register_buffer(name, Tensor.of(kept.detach().numpy_view()))

    def right_inverse(self, value: Tensor) -> None:
        """Assigning the parametrized tensor: the originals take the inverses' values."""
        with engine.no_grad():
            for m in reversed(list(self)):
                if not hasattr(m, "right_inverse"):
                    raise DlgValueError(f"parametrization {type(m).__name__} does not implement "
                                        f"right_inverse", engine.caller_span())
                value = _right_inverse(m, value)
            values = [value] if self.is_tensor else list(value)
            for i, v in enumerate(values):
                original = self.original if self.is_tensor else getattr(self, f"original{i}")
                original.data = v

    def forward(self) -> Tensor:
        if self.is_tensor:
            x = self[0](self.original)
        else:
            x = self[0](*(getattr(self, f"original{i}") for i in range(self.ntensors)))
        for m in list(self)[1:]:
            x = m(x)
        return x


def _right_inverse(m: Module, value: Tensor) -> Any:
    with engine.no_grad():
        return m.right_inverse(value)


def _parameter(value: Tensor, like: Tensor) -> Parameter:
    return Parameter(value.detach().numpy_view().copy(), requires_grad=like.requires_grad)


def register_parametrization(module: Module, tensor_name: str, parametrization: Module,
                             *, unsafe: bool = False) -> Module:
    """torch's: the first parametrization of `tensor_name` moves the tensor into
    `module.parametrizations[tensor_name].original`; later ones chain after it."""
    if not isinstance(parametrization, Module):
        raise DlgValueError(f"register_parametrization: the parametrization must be a "
                            f"dlg.nn.Module, got {type(parametrization).__name__}",
                            engine.caller_span())
    if is_parametrized(module, tensor_name):
        plist = module.parametrizations[tensor_name]
        if not unsafe:
            _check(parametrization, plist())
        plist.append(parametrization)
        return module
    if tensor_name not in module._parameters and tensor_name not in module._buffers:
        raise DlgValueError(f"register_parametrization: module {type(module).__name__} has no "
                            f"parameter or buffer named {tensor_name!r}", engine.caller_span())
    original = getattr(module, tensor_name)
    if not unsafe:
        _check(parametrization, original)
    plist = ParametrizationList([parametrization], original, unsafe)
    module._parameters.pop(tensor_name, None)
    module._buffers.pop(tensor_name, None)
    if not is_parametrized(module):
        module.parametrizations = ModuleDict()
        _swap_class(module)
    module.parametrizations[tensor_name] = plist
    setattr(type(module), tensor_name, property(_getter(tensor_name), _setter(tensor_name)))
    return module


def _check(parametrization: Module, value: Tensor) -> None:
    """torch's consistency check: the parametrization keeps the tensor's shape and dtype."""
    with engine.no_grad():
        out = parametrization(value) if not hasattr(parametrization, "right_inverse") else None
    if out is not None and (out.shape != value.shape or out.dtype != value.dtype):
        raise DlgValueError(f"register_parametrization: a parametrization may not change the "
                            f"shape or dtype of the tensor ({value.tensor_type} to "
                            f"{out.tensor_type}); pass unsafe=True to allow it",
                            engine.caller_span())


def _swap_class(module: Module) -> None:
    cls = type(module)
    object.__setattr__(module, "__class__",
                       type(f"Parametrized{cls.__name__}", (cls,), {"_unparametrized": cls}))


def _getter(name: str) -> Any:
    def get(self: Module) -> Tensor:
        if not _caching:
            return self.parametrizations[name]()
        key = (id(self), name)
        if key not in _cache:
            _cache[key] = self.parametrizations[name]()
        return _cache[key]
    return get


_caching = 0  # open `cached()` blocks
_cache: dict[tuple[int, str], Tensor] = {}


@contextmanager
def cached() -> Iterator[None]:
    """torch's parametrize.cached(): inside the block each parametrized tensor is computed
    once, at its first read, and that tensor is given at every read after (the
    parametrizations tutorial's Cayley map solved once per forward); the cache empties when
    the outermost block ends."""
    global _caching
    _caching += 1
    try:
        yield
    finally:
        _caching -= 1
        if not _caching:
            _cache.clear()


def _setter(name: str) -> Any:
    def set_(self: Module, value: Tensor) -> None:
        self.parametrizations[name].right_inverse(value)
    return set_


def is_parametrized(module: Module, tensor_name: str | None = None) -> bool:
    plists = module.__dict__.get("_modules", {}).get("parametrizations")
    if not isinstance(plists, ModuleDict):
        return False
    return len(plists) > 0 if tensor_name is None else tensor_name in plists


def remove_parametrizations(module: Module, tensor_name: str,
                            leave_parametrized: bool = True) -> Module:
    """torch's: the tensor becomes a plain parameter (or buffer) again, holding the
    parametrized value (`leave_parametrized`) or the original. With one original, that very
    tensor is put back (given the parametrized value in place), as torch's set_ does, so an
    optimizer holding it keeps training the module's tensor; several originals give a new one."""
    if not is_parametrized(module, tensor_name):
        raise DlgValueError(f"module {type(module).__name__} has no parametrization on "
                            f"{tensor_name!r}", engine.caller_span())
    plist = module.parametrizations[tensor_name]
    if plist.is_tensor:
        original = plist.original
        if leave_parametrized:
            with engine.no_grad():
                original.data = plist()
    elif leave_parametrized:
        t = plist()
        requires = t.requires_grad
        original = Parameter(t.detach().numpy_view().copy(), requires) if requires else t.detach()
    else:
        raise DlgValueError("remove_parametrizations: leave_parametrized=False needs a "
                            "parametrization with one original tensor", engine.caller_span())
    delattr(type(module), tensor_name)
    del module.parametrizations[tensor_name]
    if isinstance(original, Parameter):
        setattr(module, tensor_name, original)
    else:
        module.register_buffer(tensor_name, original)
    if not is_parametrized(module):
        del module._modules["parametrizations"]
        object.__setattr__(module, "__class__", type(module)._unparametrized)
    return module
