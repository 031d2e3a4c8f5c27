"""Weight normalisation and spectral normalisation, torch's two spellings of each.

The old ones (torch.nn.utils.weight_norm / spectral_norm) replace `weight` by parameters
(`weight_g`, `weight_v`; `weight_orig` with buffers `weight_u`, `weight_v`) and a forward
pre-hook that computes `module.weight` from them before each call, with recorded ops. The new
ones (torch.nn.utils.parametrizations) are parametrization modules for `parametrize`.
Spectral norm estimates the largest singular value by power iteration on u and v, which are
buffers updated in place without gradient in training mode and left alone in eval mode, as
torch's; the weight is divided by sigma = u . (W v).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend.handles import RemovableHandle
from dlg.frontend.nn.conv import ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from dlg.frontend.nn.module import Module, Parameter
from dlg.frontend.nn.parametrize import register_parametrization
from dlg.frontend.tensor import Tensor, call


def norm_except_dim(v: Tensor, dim: int | None) -> Tensor:
    """The 2-norm of v over every axis but `dim` (kept as size 1); over all of it for dim None
    or -1 (torch's convention in weight_norm)."""
    squares = v * v
    if dim is None or dim == -1:
        return squares.sum().sqrt()
    axes = [a for a in range(v.ndim) if a != dim % v.ndim]
    return squares.sum(axes, keepdim=True).sqrt() if axes else squares.sqrt()


def weight_norm_of(v: Tensor, g: Tensor, dim: int | None) -> Tensor:
    return v * (g / norm_except_dim(v, dim))


# ---- torch.nn.utils.weight_norm (a forward pre-hook) ------------------------------------------
class _WeightNormHook:
    def __init__(self, name: str, dim: int | None):
        self.name, self.dim = name, dim
        self.handle: RemovableHandle | None = None

    def compute(self, module: Module) -> Tensor:
        return weight_norm_of(getattr(module, f"{self.name}_v"), getattr(module, f"{self.name}_g"),
                              self.dim)

    def __call__(self, module: Module, args: Any) -> None:
        object.__setattr__(module, self.name, self.compute(module))


def weight_norm(module: Module, name: str = "weight", dim: int | None = 0) -> Module:
    """torch.nn.utils.weight_norm: `name` becomes `name_g` (its norm over every axis but
    `dim`) and `name_v` (its direction), recombined before each forward."""
    weight = _parameter(module, name, "weight_norm")
    if any(isinstance(h, _WeightNormHook) for h, _ in module._forward_pre_hooks.values()):
        raise DlgValueError(f"cannot register two weight_norm hooks on the same parameter "
                            f"{name}", engine.caller_span())
    hook = _WeightNormHook(name, dim)
    del module._parameters[name]
    with engine.no_grad():
        g = norm_except_dim(weight, dim)
    module.register_parameter(f"{name}_g", Parameter(g.numpy_view().copy()))
    module.register_parameter(f"{name}_v", Parameter(weight.numpy_view().copy()))
    object.__setattr__(module, name, hook.compute(module))
    hook.handle = module.register_forward_pre_hook(hook)
    return module


def remove_weight_norm(module: Module, name: str = "weight") -> Module:
    return _removed(module, name, _WeightNormHook, lambda hook: hook.compute(module),
                    parameters=("g", "v"), buffers=())


# ---- torch.nn.utils.spectral_norm (a forward pre-hook) ----------------------------------------
def _as_matrix(weight: Tensor, dim: int) -> Tensor:
    if dim != 0:
        weight = weight.permute(dim, *(a for a in range(weight.ndim) if a != dim))
    return weight.reshape(weight.shape[0], -1)


def _normalize(x: Tensor, eps: float) -> Tensor:
    return call("normalize", x, 2.0, 0, eps)


class _SpectralNormHook:
    def __init__(self, name: str, n_power_iterations: int, dim: int, eps: float):
        self.name, self.n, self.dim, self.eps = name, n_power_iterations, dim, eps

    def compute(self, module: Module, power_iteration: bool) -> Tensor:
        weight = getattr(module, f"{self.name}_orig")
        u, v = getattr(module, f"{self.name}_u"), getattr(module, f"{self.name}_v")
        matrix = _as_matrix(weight, self.dim)
        if power_iteration:
            with engine.no_grad():
                for _ in range(self.n):
                    v.copy_(_normalize(call("mv", matrix.t(), u), self.eps))
                    u.copy_(_normalize(call("mv", matrix, v), self.eps))
        sigma = call("dot", u.clone(), call("mv", matrix, v.clone()))
        return weight / sigma

    def __call__(self, module: Module, args: Any) -> None:
        object.__setattr__(module, self.name, self.compute(module, module.training))


def _default_dim(module: Module, dim: int | None) -> int:
    if dim is not None:
        return dim
    return 1 if isinstance(module, (ConvTranspose1d, ConvTranspose2d, ConvTranspose3d)) else 0


def _check_iterations(n: Any) -> None:
    if not isinstance(n, int) or n <= 0:
        raise DlgValueError(f"Expected n_power_iterations to be positive, but got "
                            f"n_power_iterations={n}", engine.caller_span())


def spectral_norm(module: Module, name: str = "weight", n_power_iterations: int = 1,
                  eps: float = 1e-12, dim: int | None = None) -> Module:
    """torch.nn.utils.spectral_norm: `name_orig` (the parameter), buffers `name_u` and
    `name_v` (the power iteration's vectors), `name` = name_orig / sigma before each forward."""
    weight = _parameter(module, name, "spectral_norm")
    if any(isinstance(h, _SpectralNormHook) for h, _ in module._forward_pre_hooks.values()):
        raise DlgValueError(f"cannot register two spectral_norm hooks on the same parameter "
                            f"{name}", engine.caller_span())
    _check_iterations(n_power_iterations)
    hook = _SpectralNormHook(name, n_power_iterations, _default_dim(module, dim), eps)
    h, w = _as_matrix(weight, hook.dim).shape
    with engine.no_grad():
        u = _normalize(call("randn", h), eps)
        v = _normalize(call("randn", w), eps)
    del module._parameters[name]
    module.register_parameter(f"{name}_orig", weight)
    module.register_buffer(f"{name}_u", u)
    module.register_buffer(f"{name}_v", v)
    object.__setattr__(module, name, weight.detach())
    module.register_forward_pre_hook(hook)
    return module


def remove_spectral_norm(module: Module, name: str = "weight") -> Module:
    return _removed(module, name, _SpectralNormHook, lambda hook: hook.compute(module, False),
                    parameters=("orig",), buffers=("u", "v"))


def _removed(module: Module, name: str, hook_type: type, compute: Callable[[Any], Tensor],
             parameters: tuple[str, ...], buffers: tuple[str, ...]) -> Module:
    """`module` with its `hook_type` hook on `name` gone: the weight it computes
    (`compute(hook)`) becomes a plain parameter again, and the hook's parameters and buffers
    (`name_<suffix>`) are dropped."""
    kind = "weight_norm" if hook_type is _WeightNormHook else "spectral_norm"
    for key, (hook, _) in list(module._forward_pre_hooks.items()):
        if isinstance(hook, hook_type) and hook.name == name:
            with engine.no_grad():
                weight = compute(hook)
            del module._forward_pre_hooks[key]
            for suffix in parameters:
                del module._parameters[f"{name}_{suffix}"]
            for suffix in buffers:
                del module._buffers[f"{name}_{suffix}"]
            module.__dict__.pop(name, None)
            module.register_parameter(name, Parameter(weight.numpy_view().copy()))
            return module
    raise DlgValueError(f"{kind} of '{name}' not found in {type(module).__name__}",
                        engine.caller_span())


def _parameter(module: Module, name: str, what: str) -> Tensor:
    weight = module._parameters.get(name)
    if weight is None:
        raise DlgValueError(f"{what}: module {type(module).__name__} has no parameter "
                            f"{name!r}", engine.caller_span())
    return weight


# ---- torch.nn.utils.parametrizations ---------------------------------------------------------
class _WeightNorm(Module):
    def __init__(self, dim: int | None = 0):
        super().__init__()
        self.dim = -1 if dim is None else dim

    def forward(self, weight_g: Tensor, weight_v: Tensor) -> Tensor:
        return weight_norm_of(weight_v, weight_g, self.dim)

    def right_inverse(self, weight: Tensor) -> tuple[Tensor, Tensor]:
        return norm_except_dim(weight, self.dim), weight


class _SpectralNorm(Module):
    def __init__(self, weight: Tensor, n_power_iterations: int = 1, dim: int = 0,
                 eps: float = 1e-12):
        super().__init__()
        ndim = weight.ndim
        if not -ndim <= dim < ndim:
            raise DlgValueError(f"Dimension out of range (expected to be in range of "
                                f"[-{ndim}, {ndim - 1}] but got {dim})", engine.caller_span())
        _check_iterations(n_power_iterations)
        self.dim, self.eps = dim % ndim, eps
        if ndim > 1:
            self.n_power_iterations = n_power_iterations
            with engine.no_grad():
                matrix = _as_matrix(weight, self.dim)
                h, w = matrix.shape
                self.register_buffer("_u", _normalize(call("randn", h), eps))
                self.register_buffer("_v", _normalize(call("randn", w), eps))
                self._power_method(matrix, 15)

    def _power_method(self, matrix: Tensor, n: int) -> None:
        with engine.no_grad():
            for _ in range(n):
                self._u.copy_(_normalize(call("mv", matrix, self._v), self.eps))
                self._v.copy_(_normalize(call("mv", matrix.t(), self._u), self.eps))

    def forward(self, weight: Tensor) -> Tensor:
        if weight.ndim == 1:
            return _normalize(weight, self.eps)
        matrix = _as_matrix(weight, self.dim)
        if self.training:
            self._power_method(matrix.detach(), self.n_power_iterations)
        sigma = call("dot", self._u.clone(), call("mv", matrix, self._v.clone()))
        return weight / sigma

    def right_inverse(self, value: Tensor) -> Tensor:
        return value


def parametrized_weight_norm(module: Module, name: str = "weight", dim: int | None = 0
                             ) -> Module:
    """torch.nn.utils.parametrizations.weight_norm: originals original0 (g), original1 (v)."""
    return register_parametrization(module, name, _WeightNorm(dim), unsafe=True)


def parametrized_spectral_norm(module: Module, name: str = "weight",
                               n_power_iterations: int = 1, eps: float = 1e-12,
                               dim: int | None = None) -> Module:
    """torch.nn.utils.parametrizations.spectral_norm: buffers `_u`, `_v` on the
    parametrization (`parametrizations.weight.0._u`)."""
    weight = getattr(module, name, None)
    if not isinstance(weight, Tensor):
        raise DlgValueError(f"Module '{type(module).__name__}' has no parameter or buffer with "
                            f"name '{name}'", engine.caller_span())
    norm = _SpectralNorm(weight, n_power_iterations, _default_dim(module, dim), eps)
    return register_parametrization(module, name, norm)
