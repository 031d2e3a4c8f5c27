"""`dlg.nn.functional` and the top-level function spellings (`dlg.relu`, `dlg.cat`, ...): the
user-facing functions of `dlg.functions` as Python calls them (`tensor.eager`: PyTorch's
keywords, errors at the caller's line), so a new elementwise primitive appears here by itself.

Left out are the .dlg functions whose PyTorch namesake means something else (`NOT_PYTORCH`);
`split` (part sizes), `numel` (an int) and `take` (of the flattened tensor, tensor_info.py) are
written here with torch's meaning. Eager-only:
tensors from data (tensor, from_numpy), leaf tensors with `requires_grad=` and `device=`,
randperm, max/min with indices, torch.flatten's start at axis 0, binary functions and cat/stack
promoting as PyTorch does, and regression losses taking their target in the input's dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dlg.frontend import engine, tensor_methods  # noqa: F401  (tensor_methods attaches methods)
from dlg.frontend import methods
from dlg.frontend.methods import binary_function, promote
from dlg import foreign
from dlg.errors import DlgTypeError
from dlg.frontend.tensor import (MaxResult, Tensor, as_number, call, checked, eager,
                                 foreign_array, numpy_data, op)
from dlg.frontend.factory import factory, leaf
from dlg.frontend import complex_tensors, composites, sampling, selection, stateful, tensor_info
from dlg.frontend import fft as spectral
from dlg.frontend import index_put as indexing
from dlg.functions import FUNCTIONS
from dlg.functions.args import number_dtype
from dlg.functions.creation import dtype_arg
from dlg.functions.shape import split_sizes
from dlg.functions.elementwise import ELEMENTWISE
from dlg.ir.dtypes import DType
from dlg.ir.ops import REGISTRY
from dlg.ir.ops.elementwise import WHERE
from dlg.ir.ops.opdef import Trait

# .dlg functions whose PyTorch namesake means something else
NOT_PYTORCH = {
    "split": "split(x, n) is torch.chunk; torch.split takes part sizes",
    "take": "torch.take indexes the flattened tensor",
    "one_hot": "f32 by default; torch's F.one_hot gives int64",
    "numel": "a tensor here; torch.numel is an int", "T": "torch spells it x.mT",
}

_generated: dict[str, Callable[..., Any]] = {
    name: binary_function(name) if Trait.BINARY in REGISTRY[name].traits else eager(name)
    for name in ELEMENTWISE}
_generated.update({name: eager(name) for name in FUNCTIONS
                   if name not in _generated and name not in NOT_PYTORCH})
_generated["matmul"] = binary_function("matmul")
_generated.update({name: methods.joined(name) for name in ("cat", "concat", "concatenate",
                                                           "stack")})
_generated.update({alias: methods.binary_function(name, alias)
                   for alias, name in methods.BINARY_ALIASES.items()})
globals().update(_generated)


def _t(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor.of(x)


# ---- creation ------------------------------------------------------------------------------------
def tensor(data: Any, dtype: DType | None = None, device: Any = None,
           requires_grad: bool = False) -> Tensor:
    """A copy of `data`; Python floats make float32 (torch's default dtype), NumPy arrays and
    tensors keep theirs."""
    dtype = None if dtype is None else checked(dtype_arg, dtype, "tensor(): dtype")
    if foreign.is_foreign(data):  # a torch tensor keeps its dtype, as a NumPy array does
        data = foreign_array(data)
    value = numpy_data(data.numpy_view() if isinstance(data, Tensor) else data,
                       None if dtype is None else dtype.np, copy=True)
    if dtype is None and value.dtype in (np.float64, np.complex128) and not isinstance(
            data, (Tensor, np.ndarray, np.generic)):  # Python floats and complexes: torch's
        value = value.astype(np.float32 if value.dtype.kind == "f" else np.complex64)
    return leaf(Tensor.of(value, dtype=dtype), requires_grad, device)


def from_numpy(array: np.ndarray) -> Tensor:
    return Tensor.of(array)


def from_dlpack(ext_tensor: Any) -> Tensor:
    """torch.from_dlpack: a tensor sharing the memory of a CPU array exposing `__dlpack__` (a
    torch tensor, a JAX or NumPy array, a dlg tensor); a GPU array is a DlgTypeError."""
    if isinstance(ext_tensor, Tensor):
        return ext_tensor.detach()
    if not hasattr(ext_tensor, "__dlpack__"):
        raise DlgTypeError(f"from_dlpack takes an array exposing __dlpack__ (a torch, JAX, CuPy "
                           f"or NumPy array), got {foreign.type_name(ext_tensor)}",
                           engine.caller_span())
    return Tensor.of(ext_tensor)


def full(size: Any, fill_value: Any, dtype: DType | None = None, device: Any = None,
         layout: Any = None, pin_memory: bool = False, requires_grad: bool = False) -> Tensor:
    """The dtype follows the value when not given (int64 for an int, bool for a bool)."""
    if dtype is None:
        dtype = (DType.c64 if isinstance(fill_value, (np.complexfloating, type(1j)))
                 else number_dtype((fill_value,)))
    size = tuple(map(as_number, size)) if isinstance(size, (tuple, list)) else as_number(size)
    return leaf(call("full", size, fill_value, dtype=dtype), requires_grad, device, layout,
                pin_memory)


# the factories: PyTorch's device=, layout=, pin_memory=, requires_grad= (and memory_format=)
_FACTORIES = ("zeros", "ones", "empty", "rand", "randn", "arange", "linspace", "logspace", "eye",
              "randint", "zeros_like", "ones_like", "empty_like", "full_like", "rand_like",
              "randn_like", "randint_like")
_generated.update({name: factory(name, like=name.endswith("_like")) for name in _FACTORIES})
globals().update({name: _generated[name] for name in _FACTORIES})


def randperm(n: int, *, generator: Any = None, dtype: DType = DType.i64, device: Any = None,
             layout: Any = None, pin_memory: bool = False, requires_grad: bool = False
             ) -> Tensor:
    """A random permutation of 0..n-1, drawn eagerly from dlg's generator (dlg.manual_seed),
    or `generator`."""
    dtype = checked(dtype_arg, dtype, "randperm(): dtype")
    with engine.drawing_from(generator):
        order = engine.rng().permutation(n)
    return leaf(Tensor.of(order.astype(dtype.np)), requires_grad, device, layout, pin_memory)


# ---- PyTorch's conventions -----------------------------------------------------------------------
def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """torch.flatten starts at axis 0 (nn.Flatten and .dlg's flatten at 1)."""
    return call("flatten", x, start_dim, end_dim)


narrow = tensor_methods.narrow  # start may be a 0-d tensor


# torch.max/min: the extremum, (values, indices) along `dim`, or maximum/minimum(x, other)
max, min = tensor_methods.max_, tensor_methods.min_  # noqa: A001


def where(condition: Tensor, x: Any = None, y: Any = None) -> Any:
    """x where the condition holds, else y; with the condition alone, its nonzero positions
    (one tensor per axis, eager only)."""
    if x is None and y is None:
        return nonzero(condition, as_tuple=True)
    return call("where", condition, *promote(WHERE, x, y))


def _float_target(name: str) -> Callable[..., Tensor]:
    def loss(input: Tensor, target: Any, *args: Any, **kwargs: Any) -> Tensor:  # noqa: A002
        if isinstance(input, Tensor):
            target = _t(target).to(input.dtype)
        return call(name, input, target, *args, **kwargs)
    loss.__name__ = loss.__qualname__ = name
    loss.__doc__ = FUNCTIONS[name].__doc__
    return loss


_FLOAT_TARGET = ("mse_loss", "l1_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
                 "smooth_l1_loss", "huber_loss", "kl_div", "soft_margin_loss", "poisson_nll_loss",
                 "hinge_embedding_loss")
globals().update({name: _float_target(name) for name in _FLOAT_TARGET})
one_hot, embedding, batch_norm = stateful.one_hot, stateful.embedding, stateful.batch_norm
embedding_bag = stateful.embedding_bag

__all__ = ["MaxResult", "flatten", "from_dlpack", "from_numpy", "full", "max", "min", "op",
           "tensor", "where", "one_hot", "embedding", "embedding_bag", "batch_norm",
           *_FLOAT_TARGET]
__all__ += sorted(set(_generated) - set(__all__))


# ---- math with PyTorch's promotion and Python results (frontend/methods.py) ---------------------
div = divide = methods.divide
true_divide = methods.divide
clamp = clip = methods.clamp
mean = methods.mean
allclose, equal = methods.python_bool("allclose"), methods.python_bool("equal")
repeat_interleave = methods.repeat_interleave


def ctc_loss(log_probs: Any, targets: Any, input_lengths: Any, target_lengths: Any,
             blank: int = 0, reduction: str = "mean", zero_infinity: bool = False) -> Tensor:
    """F.ctc_loss. Concatenated 1-d targets are split by target_lengths, so a tensor of them is
    read here, eagerly (while tracing, give them as ints or the targets padded as [N, S])."""
    if (isinstance(targets, Tensor) and targets.ndim == 1 and isinstance(log_probs, Tensor)
            and log_probs.ndim == 3 and isinstance(target_lengths, Tensor)
            and target_lengths.graph_value is None):
        target_lengths = target_lengths.tolist()
    return call("ctc_loss", log_probs, targets, input_lengths, target_lengths, blank,
                reduction, zero_infinity)

# ---- written over Tensor operations in Python (frontend/composites.py) -------------------------
triplet_margin_with_distance_loss = composites.triplet_margin_with_distance_loss
gumbel_softmax = composites.gumbel_softmax
globals().update(composites.IN_PLACE)
_generated.update({name: composites.with_inplace(_generated[name], n)
                   for name, n in composites.INPLACE_OPTIONS.items()})
globals().update({name: _generated[name] for name in composites.INPLACE_OPTIONS})
__all__ += ["gumbel_softmax", "triplet_margin_with_distance_loss", *composites.IN_PLACE]

# ---- sampling beyond rand/randn/randint (frontend/sampling.py) ----------------------------------
multinomial, bernoulli, normal = sampling.multinomial, sampling.bernoulli, sampling.normal
__all__ += ["bernoulli", "multinomial", "normal"]

# ---- eager only: shapes that depend on the data (frontend/selection.py) -------------------------
nonzero, argwhere, masked_select = selection.nonzero, selection.argwhere, selection.masked_select
unique, unique_consecutive, bincount = (selection.unique, selection.unique_consecutive,
                                        selection.bincount)
__all__ += ["argwhere", "bincount", "masked_select", "nonzero", "unique", "unique_consecutive"]


# ---- PyTorch's meaning of names that .dlg uses otherwise, and queries ----------------------------
def split(tensor: Tensor, split_size_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
    """torch.split: parts of `split_size_or_sections` elements (the last one smaller), or of
    each size of a list (.dlg's split(x, n) is torch.chunk)."""
    return checked(split_sizes, tensor, split_size_or_sections, dim)


def numel(input: Tensor) -> Any:  # noqa: A002
    """The number of elements, an int (.dlg's numel is a tensor)."""
    return input.numel()


def is_tensor(obj: Any) -> bool:
    return isinstance(obj, Tensor)


def is_floating_point(input: Tensor) -> bool:  # noqa: A002
    return input.dtype.is_float


__all__ += ["is_floating_point", "is_tensor", "numel", "randperm", "split"]
globals().update(tensor_info.TOP_LEVEL)  # clone, take, put, result_type, as_tensor, ...
__all__ += list(tensor_info.TOP_LEVEL)
index_put = indexing.index_put  # torch.index_put; Tensor.index_put(_) too
__all__ += ["index_put"]
# complex numbers with torch's meaning on real tensors too (the generated real, conj, angle and
# complex take complex tensors only): frontend/complex_tensors.py
globals().update(complex_tensors.TOP_LEVEL)
__all__ += sorted(set(complex_tensors.TOP_LEVEL) - set(__all__))
globals().update(spectral.WINDOWS)  # hann_window, ...: frontend/fft.py
__all__ += sorted(spectral.WINDOWS)
stft = spectral.stft  # torch.stft, Tensor.stft
__all__ += ["stft"]
