"""torch.nn.utils.prune: a parameter `name` becomes `name_orig` (the parameter trained) and a
`name_mask` buffer, recombined as `name = name_mask * name_orig` by a forward pre-hook (the
pruning method itself) before each forward, so the pruned entries get no gradient and stay
zero. Pruning a pruned parameter again prunes among the entries still kept (a PruningContainer
of the methods applied); `remove` makes the pruned values a plain parameter again.

The methods are torch's: L1Unstructured (the smallest |w|), RandomUnstructured and
RandomStructured (dlg's generator, dlg.manual_seed), LnStructured (whole slices along `dim` by
their n-norm), CustomFromMask, Identity; `global_unstructured` ranks several parameters
together. `amount` is a fraction of the entries (rounded as torch rounds) or a count."""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

from dlg.errors import DlgTypeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend.nn.module import Module
from dlg.frontend.tensor import Tensor, call


class BasePruningMethod:
    """A pruning method: `compute_mask(t, default_mask)` gives the new mask; as a forward
    pre-hook it sets the module's pruned tensor from `name_orig` and `name_mask`."""

    PRUNING_TYPE = "unstructured"
    _tensor_name: str

    def __call__(self, module: Module, inputs: Any) -> None:
        object.__setattr__(module, self._tensor_name, self.apply_mask(module))

    def compute_mask(self, t: Tensor, default_mask: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define compute_mask")

    def apply_mask(self, module: Module) -> Tensor:
        mask = getattr(module, self._tensor_name + "_mask")
        orig = getattr(module, self._tensor_name + "_orig")
        return mask.to(dtype=orig.dtype) * orig

    @classmethod
    def apply(cls, module: Module, name: str, *args: Any, importance_scores: Any = None,
              **kwargs: Any) -> BasePruningMethod:
        """Prune `module.name` in place with a new `cls(*args, **kwargs)` (combined with the
        methods already applied to it)."""
        method = _composite(cls, module, name, *args, **kwargs)
        orig = getattr(module, name)
        if importance_scores is None:
            importance_scores = orig
        elif tuple(importance_scores.shape) != tuple(orig.shape):
            raise DlgValueError(f"importance_scores should have the same shape as parameter "
                                f"{name} of {module}", engine.caller_span())
        with engine.no_grad():
            if not isinstance(method, PruningContainer):
                module.register_parameter(name + "_orig", orig)
                del module._parameters[name]
                default_mask = call("ones_like", orig)
            else:
                default_mask = getattr(module, name + "_mask").detach().clone()
            mask = method.compute_mask(importance_scores.detach(), default_mask=default_mask)
        module.register_buffer(name + "_mask", mask)
        object.__setattr__(module, name, method.apply_mask(module))
        module.register_forward_pre_hook(method)
        return method

    def prune(self, t: Tensor, default_mask: Tensor | None = None,
              importance_scores: Tensor | None = None) -> Tensor:
        """`t` pruned: t * compute_mask(importance_scores or t)."""
        scores = t if importance_scores is None else importance_scores
        with engine.no_grad():
            mask = self.compute_mask(scores.detach(), default_mask=(
                call("ones_like", t) if default_mask is None else default_mask))
        return t * mask

    def remove(self, module: Module) -> None:
        """The pruned tensor made the parameter `name` again (name_orig, name_mask dropped)."""
        with engine.no_grad():
            weight = self.apply_mask(module)
        module.__dict__.pop(self._tensor_name, None)
        orig = module._parameters.pop(self._tensor_name + "_orig")
        orig.data = weight.detach()
        del module._buffers[self._tensor_name + "_mask"]
        module.register_parameter(self._tensor_name, orig)


def _composite(cls: type, module: Module, name: str, *args: Any,
               **kwargs: Any) -> BasePruningMethod:
    """A new method, alone or joined to the one already pruning `name` (its hook taken off)."""
    old = None
    for key, (hook, _) in list(module._forward_pre_hooks.items()):
        if isinstance(hook, BasePruningMethod) and hook._tensor_name == name:
            old = hook
            del module._forward_pre_hooks[key]
    method = cls(*args, **kwargs)
    method._tensor_name = name
    if isinstance(old, PruningContainer):
        old.add_pruning_method(method)
        return old
    if old is not None:
        container = PruningContainer(old)
        container.add_pruning_method(method)
        return container
    return method


class PruningContainer(BasePruningMethod):
    """The methods applied to one tensor in turn: the last prunes among what the others kept."""

    def __init__(self, *args: Any):
        self._pruning_methods: tuple[BasePruningMethod, ...] = ()
        if len(args) == 1:
            self._tensor_name = args[0]._tensor_name
        for method in args:
            self.add_pruning_method(method)

    def add_pruning_method(self, method: BasePruningMethod) -> None:
        if not isinstance(method, BasePruningMethod) and method is not None:
            raise DlgTypeError(f"{type(method)} is not a BasePruningMethod subclass",
                               engine.caller_span())
        if method is not None and self._tensor_name != method._tensor_name:
            raise DlgValueError(f"Can only add pruning methods acting on the parameter named "
                                f"'{self._tensor_name}' to PruningContainer. Found "
                                f"'{method._tensor_name}'", engine.caller_span())
        self._pruning_methods += (method,)

    def __len__(self) -> int:
        return len(self._pruning_methods)

    def __iter__(self) -> Any:
        return iter(self._pruning_methods)

    def __getitem__(self, idx: int) -> BasePruningMethod:
        return self._pruning_methods[idx]

    def compute_mask(self, t: Tensor, default_mask: Tensor) -> Tensor:
        """The last method's mask over the entries (unstructured), the slices along its dim
        (structured) or all of t (global) that the mask so far keeps."""
        method = self._pruning_methods[-1]
        mask = default_mask.to(dtype=t.dtype)
        if method.PRUNING_TYPE == "unstructured":
            keep = mask == 1
            new = mask.clone()
            new[keep] = method.compute_mask(t[keep], default_mask=mask[keep]).to(dtype=mask.dtype)
            return new
        if method.PRUNING_TYPE == "structured":
            dim = _dim(t, method.dim)  # type: ignore[attr-defined]
            others = [d for d in range(t.ndim) if d != dim]
            kept = (mask.sum(dim=others) != 0).nonzero().reshape(-1)
            partial = method.compute_mask(t.index_select(dim, kept),
                                          default_mask=mask.index_select(dim, kept))
            return mask.index_copy(dim, kept, partial.to(dtype=mask.dtype))
        return method.compute_mask(t, default_mask=mask)


class Identity(BasePruningMethod):
    """Prunes nothing (a mask of ones): a parameter pruned this way trains as before."""

    def compute_mask(self, t: Tensor, default_mask: Tensor) -> Tensor:
        return default_mask

    @classmethod
    def apply(cls, module: Module, name: str) -> BasePruningMethod:  # type: ignore[override]
        return super().apply(module, name)


class _UnstructuredAmount(BasePruningMethod):
    """Prunes `amount` single entries; a subclass chooses which (`_pruned_entries`)."""

    def __init__(self, amount: float):
        _check_amount(amount)
        self.amount = amount

    def _pruned_entries(self, t: Tensor, k: int) -> Tensor:
        """The flat positions in `t` of the `k` entries to prune."""
        raise NotImplementedError(f"{type(self).__name__} must define _pruned_entries")

    def compute_mask(self, t: Tensor, default_mask: Tensor) -> Tensor:
        k = _count(self.amount, t.numel())
        mask = default_mask.clone()
        if k:
            mask = _zeroed(mask, self._pruned_entries(t, k))
        return mask


class RandomUnstructured(_UnstructuredAmount):
    """`amount` entries chosen at random."""

    def _pruned_entries(self, t: Tensor, k: int) -> Tensor:
        return call("rand_like", t).reshape(-1).topk(k).indices

    @classmethod
    def apply(cls, module: Module, name: str, amount: float  # type: ignore[override]
              ) -> BasePruningMethod:
        return super().apply(module, name, amount=amount)


class L1Unstructured(_UnstructuredAmount):
    """The `amount` entries of smallest absolute value."""

    def _pruned_entries(self, t: Tensor, k: int) -> Tensor:
        return t.abs().reshape(-1).topk(k, largest=False).indices

    @classmethod
    def apply(cls, module: Module, name: str, amount: float,  # type: ignore[override]
              importance_scores: Any = None) -> BasePruningMethod:
        return super().apply(module, name, amount=amount, importance_scores=importance_scores)


class _StructuredAmount(BasePruningMethod):
    """Prunes `amount` whole slices along `dim`; a subclass chooses which are kept
    (`_kept_slices`)."""

    PRUNING_TYPE = "structured"

    def __init__(self, amount: float, dim: int = -1):
        _check_amount(amount)
        self.amount, self.dim = amount, dim

    def _kept_slices(self, t: Tensor, dim: int, k: int) -> Tensor:
        """The indices along `dim` of the slices kept when `k` of them are pruned."""
        raise NotImplementedError(f"{type(self).__name__} must define _kept_slices")

    def compute_mask(self, t: Tensor, default_mask: Tensor) -> Tensor:
        dim = _structured(t, self.dim)
        k = _count(self.amount, t.shape[dim])
        if not k:
            return default_mask
        return _slices(t, dim, self._kept_slices(t, dim, k)) * default_mask.to(dtype=t.dtype)


class RandomStructured(_StructuredAmount):
    """`amount` whole slices along `dim`, chosen at random."""

    def _kept_slices(self, t: Tensor, dim: int, k: int) -> Tensor:
        prob = call("rand", t.shape[dim])
        threshold = prob.kthvalue(k).values
        return (prob > threshold).nonzero().reshape(-1)

    @classmethod
    def apply(cls, module: Module, name: str, amount: float,  # type: ignore[override]
              dim: int) -> BasePruningMethod:
        return super().apply(module, name, amount=amount, dim=dim)


class LnStructured(_StructuredAmount):
    """The `amount` slices along `dim` of smallest n-norm."""

    def __init__(self, amount: float, n: Any, dim: int = -1):
        super().__init__(amount, dim)
        self.n = n

    def _kept_slices(self, t: Tensor, dim: int, k: int) -> Tensor:
        norm = call("norm", t, self.n, [d for d in range(t.ndim) if d != dim])
        return norm.topk(t.shape[dim] - k, largest=True).indices

    @classmethod
    def apply(cls, module: Module, name: str, amount: float, n: Any,  # type: ignore[override]
              dim: int, importance_scores: Any = None) -> BasePruningMethod:
        return super().apply(module, name, amount=amount, n=n, dim=dim,
                             importance_scores=importance_scores)


class CustomFromMask(BasePruningMethod):
    """The entries where a given mask is 0."""

    PRUNING_TYPE = "global"

    def __init__(self, mask: Tensor):
        self.mask = mask

    def compute_mask(self, t: Tensor, default_mask: Tensor) -> Tensor:
        if tuple(default_mask.shape) != tuple(self.mask.shape):
            raise DlgValueError(f"custom_from_mask: the mask's shape {tuple(self.mask.shape)} "
                                f"is not the parameter's {tuple(default_mask.shape)}",
                                engine.caller_span())
        return default_mask * self.mask.to(dtype=default_mask.dtype)

    @classmethod
    def apply(cls, module: Module, name: str, mask: Tensor  # type: ignore[override]
              ) -> BasePruningMethod:
        return super().apply(module, name, mask=mask)


# ---- the functional forms ------------------------------------------------------------------------
def identity(module: Module, name: str) -> Module:
    Identity.apply(module, name)
    return module


def random_unstructured(module: Module, name: str, amount: float) -> Module:
    RandomUnstructured.apply(module, name, amount)
    return module


def l1_unstructured(module: Module, name: str, amount: float,
                    importance_scores: Any = None) -> Module:
    L1Unstructured.apply(module, name, amount=amount, importance_scores=importance_scores)
    return module


def random_structured(module: Module, name: str, amount: float, dim: int) -> Module:
    RandomStructured.apply(module, name, amount, dim)
    return module


def ln_structured(module: Module, name: str, amount: float, n: Any, dim: int,
                  importance_scores: Any = None) -> Module:
    LnStructured.apply(module, name, amount, n, dim, importance_scores=importance_scores)
    return module


def custom_from_mask(module: Module, name: str, mask: Tensor) -> Module:
    CustomFromMask.apply(module, name, mask)
    return module


def global_unstructured(parameters: Iterable[tuple[Module, str]], pruning_method: type,
                        importance_scores: dict | None = None, **kwargs: Any) -> None:
    """`pruning_method` (an unstructured one) over all `parameters` ((module, name) pairs)
    ranked together, each then pruned with its share of the mask (custom_from_mask)."""
    if not isinstance(parameters, Iterable):
        raise DlgTypeError("global_unstructured(): parameters is not an Iterable",
                           engine.caller_span())
    parameters = list(parameters)
    scores = {} if importance_scores is None else importance_scores
    if not isinstance(scores, dict):
        raise DlgTypeError("global_unstructured(): importance_scores must be of type dict",
                           engine.caller_span())
    with engine.no_grad():
        relevant = call("cat", [scores.get((m, n), getattr(m, n)).detach().reshape(-1)
                                for m, n in parameters])
        default_mask = call("cat", [getattr(m, n + "_mask").reshape(-1)
                                    if n + "_mask" in m._buffers else
                                    call("ones_like", getattr(m, n)).reshape(-1)
                                    for m, n in parameters])
        method = pruning_method(**kwargs)
        if method.PRUNING_TYPE != "unstructured":
            raise DlgTypeError(f'Only "unstructured" PRUNING_TYPE supported for the '
                               f'`pruning_method`. Found method {pruning_method} of type '
                               f'{method.PRUNING_TYPE}', engine.caller_span())
        method._tensor_name = container_name = "temp"
        container = PruningContainer()
        container._tensor_name = container_name
        container.add_pruning_method(method)
        final = container.compute_mask(relevant, default_mask)
    at = 0
    for m, n in parameters:
        param = getattr(m, n)
        size = param.numel()
        custom_from_mask(m, n, mask=final[at:at + size].reshape(param.shape))
        at += size


def remove(module: Module, name: str) -> Module:
    """Make the pruning of `module.name` permanent: the pruned tensor becomes the parameter."""
    for key, (hook, _) in list(module._forward_pre_hooks.items()):
        if isinstance(hook, BasePruningMethod) and hook._tensor_name == name:
            hook.remove(module)
            del module._forward_pre_hooks[key]
            return module
    raise DlgValueError(f"Parameter '{name}' of module {module} has to be pruned before "
                        f"pruning can be removed", engine.caller_span())


def is_pruned(module: Module) -> bool:
    """Whether any submodule has a pruning hook."""
    return any(isinstance(hook, BasePruningMethod) for _, m in module.named_modules()
               for hook, _ in m._forward_pre_hooks.values())


# ---- helpers -------------------------------------------------------------------------------------
def _check_amount(amount: Any) -> None:
    if not isinstance(amount, numbers.Real) or isinstance(amount, bool):
        raise DlgTypeError(f"Invalid type for amount: {amount}. Must be int or float.",
                           engine.caller_span())
    if (isinstance(amount, numbers.Integral) and amount < 0) or (
            not isinstance(amount, numbers.Integral) and not 0.0 <= float(amount) <= 1.0):
        raise DlgValueError(f"amount={amount} should either be a float in the range [0, 1] or "
                            f"a non-negative integer", engine.caller_span())


def _count(amount: float, size: int) -> int:
    """How many of `size` to prune: an int amount as it is, a fraction rounded (Python's
    round, as torch)."""
    if isinstance(amount, numbers.Integral):
        if amount > size:
            raise DlgValueError(f"amount={amount} should be smaller than the number of "
                                f"parameters to prune={size}", engine.caller_span())
        return int(amount)
    return round(amount * size)


def _dim(t: Tensor, dim: int) -> int:
    if not -t.ndim <= dim < t.ndim:
        raise DlgValueError(f"Invalid index {dim} for tensor of size {tuple(t.shape)}",
                            engine.caller_span())
    return dim % t.ndim


def _structured(t: Tensor, dim: int) -> int:
    if t.ndim <= 1:
        raise DlgValueError(f"Structured pruning can only be applied to multidimensional "
                            f"tensors. Found tensor of shape {tuple(t.shape)} with "
                            f"{t.ndim} dims", engine.caller_span())
    return _dim(t, dim)


def _zeroed(mask: Tensor, flat_positions: Tensor) -> Tensor:
    flat = mask.reshape(-1).clone()
    flat[flat_positions] = 0
    return flat.reshape(mask.shape)


def _slices(t: Tensor, dim: int, kept: Tensor) -> Tensor:
    """Ones on the slices `kept` along `dim`, zeros elsewhere."""
    mask = call("zeros_like", t)
    return mask.index_fill(dim, kept, 1.0)
