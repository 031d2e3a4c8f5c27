"""`dlg.nn`: PyTorch-style modules over dlg tensors.

Parameter names, shapes and initialisers are those of prelude.dlg (which follow torch.nn), drawn
with the same initialiser functions (`dlg.ir.init`), so a module's state_dict loads into the
.dlg model and into PyTorch as it is.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend import functional as F
from dlg.frontend.graph_call import call_graph
from dlg.frontend.tensor import Tensor, call, checked
from dlg.functions import args
from dlg.functions.args import ints
from dlg.functions.nn import conv_options, pool_options
from dlg.grammar.layer_graph import layer_graph, prelude_layer
from dlg.ir.dtypes import DType
from dlg.ir.init import initialize


class Parameter(Tensor):
    """A tensor a module trains (requires_grad by default)."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True):
        super().__init__(data.numpy_view() if isinstance(data, Tensor) else data, requires_grad)


def _init(name: str, shape: tuple[int, ...], *args: Any, **kwargs: Any) -> Parameter:
    return Parameter(initialize(name, engine.rng(), shape, DType.f32, *args, **kwargs))


class Module:
    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise DlgValueError(f"{type(self).__name__}.__init__ must call super().__init__() "
                                f"before assigning {name!r}", engine.caller_span())
        for table in (self._parameters, self._buffers, self._modules):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        for table in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(table, {})
            if name in entries:
                return entries[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def register_buffer(self, name: str, value: Tensor) -> None:
        self._buffers[name] = value

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.forward(*args, **kwargs)
        tracer = engine.current_tracer()
        if tracer is not None:
            tracer.called(self, out)
        return out

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix.rstrip("."), self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}{name}.")

    # -- structure ---------------------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def modules(self) -> Iterator[Module]:
        yield self
        for child in self._modules.values():
            yield from child.modules()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for name, p in self._parameters.items():
            yield prefix + name, p
        for name, child in self._modules.items():
            yield from child.named_parameters(f"{prefix}{name}.")

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        for name, b in self._buffers.items():
            yield prefix + name, b
        for name, child in self._modules.items():
            yield from child.named_buffers(f"{prefix}{name}.")

    def state_dict(self) -> OrderedDict[str, Tensor]:
        """Parameters and buffers by PyTorch name, in PyTorch's order (each module's own
        parameters, then its buffers, then its children)."""
        out: OrderedDict[str, Tensor] = OrderedDict()
        self._state(out, "")
        return out

    def _state(self, out: OrderedDict[str, Tensor], prefix: str) -> None:
        for name, p in self._parameters.items():
            out[prefix + name] = p.detach()
        for name, b in self._buffers.items():
            out[prefix + name] = b.detach()
        for name, child in self._modules.items():
            child._state(out, f"{prefix}{name}.")

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise DlgValueError(f"state_dict does not match: missing {missing}, unexpected "
                                f"{unexpected}", engine.caller_span())
        for k, target in own.items():
            if k not in state:
                continue
            value = state[k]
            value = value.detach().cpu().numpy() if hasattr(value, "cpu") else value
            array = np.asarray(value.numpy_view() if isinstance(value, Tensor) else value)
            if array.shape != target.shape:
                raise DlgValueError(f"{k}: expected shape {list(target.shape)}, got "
                                    f"{list(array.shape)}", engine.caller_span())
            np.copyto(target.numpy_view(), array, casting="same_kind")

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def to(self, device: Any = "cpu") -> Module:
        """`model.to(device)`: eager dlg modules live on the cpu (compile for other targets)."""
        if str(device) != "cpu":
            raise DlgValueError(f"device {device!r}: eager dlg modules run on the cpu; use "
                                f"dlg.compile(...) for other targets", engine.caller_span())
        return self

    def cpu(self) -> Module:
        return self

    def __repr__(self) -> str:
        inner = "".join(f"\n  ({n}): " + repr(m).replace("\n", "\n  ")
                        for n, m in self._modules.items())
        return f"{type(self).__name__}({self.extra_repr()}{inner}{chr(10) if inner else ''})"

    def extra_repr(self) -> str:
        return ""


# ---- containers ----------------------------------------------------------------------------------
class Sequential(Module):
    def __init__(self, *modules: Module):
        super().__init__()
        for i, m in enumerate(modules):
            self._modules[str(i)] = m

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)


class ModuleList(Module):
    def __init__(self, modules: Any = ()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, m: Module) -> None:
        self._modules[str(len(self._modules))] = m

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __len__(self) -> int:
        return len(self._modules)


# ---- layers --------------------------------------------------------------------------------------
class Linear(Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = _init("kaiming_uniform", (out_features, in_features), a=math.sqrt(5))
        k = 1 / math.sqrt(in_features)
        self.bias = _init("uniform", (out_features,), -k, k) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class _ConvNd(Module):
    nd = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True):
        super().__init__()
        kernel = checked(ints, kernel_size, self.nd, "kernel_size")
        checked(conv_options, self.nd, stride, padding, dilation, groups)  # .dlg's errors
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.weight = _init("kaiming_uniform", (out_channels, in_channels // groups, *kernel),
                            a=math.sqrt(5))
        k = 1 / math.sqrt(in_channels // groups * math.prod(kernel))
        self.bias = _init("uniform", (out_channels,), -k, k) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return call(f"conv{self.nd}d", x, self.weight, self.bias, self.stride, self.padding,
                    self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")


class Conv1d(_ConvNd):
    nd = 1


class Conv2d(_ConvNd):
    nd = 2


class _Pool(Module):
    kind, nd = "max", 2

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, *args: Any,
                 **kwargs: Any):
        super().__init__()
        self.args, self.kwargs = (kernel_size, stride, padding, *args), kwargs
        checked(pool_options, self.nd, kernel_size, stride, padding)  # .dlg's errors

    def forward(self, x: Tensor) -> Tensor:
        return call(f"{self.kind}_pool{self.nd}d", x, *self.args, **self.kwargs)

    def extra_repr(self) -> str:
        k, s, p = self.args[:3]
        return f"kernel_size={k}, stride={s if s is not None else k}, padding={p}"


class MaxPool1d(_Pool):
    """(kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False), as torch."""

    kind, nd = "max", 1


class MaxPool2d(_Pool):
    kind, nd = "max", 2


class AvgPool1d(_Pool):
    """(kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True)."""

    kind, nd = "avg", 1


class AvgPool2d(_Pool):
    kind, nd = "avg", 2


class Flatten(Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return F.flatten(x, self.start_dim, self.end_dim)


class Dropout(Module):
    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _activation(name: str, fn: Any) -> type[Module]:
    def forward(self: Module, x: Tensor) -> Tensor:
        return fn(x)
    return type(name, (Module,), {"forward": forward, "__doc__": f"{name}: {fn.__name__}."})


ReLU = _activation("ReLU", F.relu)
Sigmoid = _activation("Sigmoid", F.sigmoid)
Tanh = _activation("Tanh", F.tanh)


class GELU(Module):
    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return call("gelu", x, approximate=self.approximate)


class Softmax(Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, self.dim)


class LogSoftmax(Softmax):
    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(x, self.dim)


class _BatchNorm(Module):
    ranks: tuple[int, ...] = (2, 3)
    takes = ""  # the shapes it takes, as prelude.dlg's assert says

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = Parameter(np.ones(num_features, np.float32))
        self.bias = Parameter(np.zeros(num_features, np.float32))
        self.register_buffer("running_mean", Tensor(np.zeros(num_features, np.float32)))
        self.register_buffer("running_var", Tensor(np.ones(num_features, np.float32)))
        self.register_buffer("num_batches_tracked", Tensor(np.zeros((), np.int64)))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in self.ranks:
            raise DlgShapeError(f"{type(self).__name__} takes {self.takes}",
                                engine.caller_span())
        if not self.training:
            return call("batch_norm", x, self.running_mean, self.running_var, self.weight,
                        self.bias, eps=self.eps)
        axes = (0,) + tuple(range(2, x.ndim))
        mean = x.mean(axes)
        var = ((x - x.mean(axes, keepdim=True)) ** 2).mean(axes)
        y = call("batch_norm", x, mean, var, self.weight, self.bias, eps=self.eps)
        n = x.numel() // x.shape[1]  # PyTorch keeps the unbiased variance
        m = self.momentum
        with engine.no_grad():
            new_mean = self.running_mean * (1 - m) + mean.detach() * m
            new_var = self.running_var * (1 - m) + var.detach() * (m * n / (n - 1))
            count = self.num_batches_tracked + 1
        tracer = engine.current_tracer()
        for buffer, value in ((self.running_mean, new_mean), (self.running_var, new_var),
                              (self.num_batches_tracked, count)):
            if tracer is not None:
                tracer.update(buffer, value)
            else:
                np.copyto(buffer.numpy_view(), value.numpy_view())
        return y


class BatchNorm1d(_BatchNorm):
    ranks, takes = (2, 3), "[N, C] or [N, C, L]"


class BatchNorm2d(_BatchNorm):
    ranks, takes = (4,), "[N, C, H, W]"


class LayerNorm(Module):
    def __init__(self, normalized_shape: Any, eps: float = 1e-5,
                 elementwise_affine: bool = True):
        super().__init__()
        shape = checked(args.shape, (normalized_shape,))
        self.normalized_shape, self.eps = shape, eps
        if elementwise_affine:
            self.weight = Parameter(np.ones(shape, np.float32))
            self.bias = Parameter(np.zeros(shape, np.float32))

    def forward(self, x: Tensor) -> Tensor:
        affine = [self.weight, self.bias] if "weight" in self._parameters else []
        return call("layer_norm", x, self.normalized_shape, *affine, eps=self.eps)


class Embedding(Module):
    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__()
        self.weight = _init("normal", (num_embeddings, embedding_dim), 0.0, 1.0)

    def forward(self, indices: Any) -> Tensor:
        return call("embedding", indices, self.weight)


# ---- recurrent layers: prelude.dlg's, one scan per layer and direction --------------------------
class _PreludeLayer(Module):
    """A module running the prelude.dlg layer of its class's name: the options (checked by the
    prelude, with its errors), the parameters (names, shapes, initialisers) and the forward are
    the .dlg layer's, so a traced module is the graph the layer makes in a .dlg model."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()
        options, params = prelude_layer(type(self).__name__, args, kwargs, engine.rng(),
                                        engine.caller_span())
        self._options = tuple(options.items())
        for name, value in options.items():
            setattr(self, name, value)
        for name, value in params.items():
            setattr(self, name, Parameter(value))

    def forward(self, input: Any, hx: Any = None) -> Any:  # noqa: A002 (PyTorch's names)
        flat: list[Tensor] = []
        args = _tensors((input,) if hx is None else (input, hx), flat)
        graph, nesting = layer_graph(type(self).__name__, self._options, _types(args),
                                     self.training, engine.caller_span())
        return _nest(nesting, call_graph(graph, flat, self._parameters))

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._options)


class RNN(_PreludeLayer):
    """torch.nn.RNN (input_size, hidden_size, num_layers, nonlinearity, bias, batch_first,
    dropout, bidirectional); forward(input, hx=None) -> (output, h_n)."""


class GRU(_PreludeLayer):
    """torch.nn.GRU (the options of RNN but nonlinearity); forward(input, hx=None)."""


class LSTM(_PreludeLayer):
    """torch.nn.LSTM (the options of GRU and proj_size); forward(input, (h_0, c_0)=None) ->
    (output, (h_n, c_n))."""


def _tensors(x: Any, flat: list[Tensor]) -> Any:
    """Arguments as tensors (tuples and None kept), also collected into `flat` in order."""
    if isinstance(x, (tuple, list)):
        return tuple(_tensors(v, flat) for v in x)
    if x is None:
        return None
    flat.append(F._t(x))
    return flat[-1]


def _types(x: Any) -> Any:
    return tuple(_types(v) for v in x) if isinstance(x, tuple) else None if x is None else x.type


def _nest(nesting: Any, flat: list[Tensor]) -> Any:
    return tuple(_nest(n, flat) for n in nesting) if isinstance(nesting, tuple) else flat[nesting]


# ---- losses --------------------------------------------------------------------------------------
class _Loss(Module):
    fn: Any = None

    def __init__(self, reduction: str = "mean", **kwargs: Any):
        super().__init__()
        self.kwargs = {"reduction": reduction, **kwargs}

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return type(self).fn(input, target, **self.kwargs)


class CrossEntropyLoss(_Loss):
    fn = staticmethod(F.cross_entropy)

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(reduction, label_smoothing=label_smoothing)


class NLLLoss(_Loss):
    fn = staticmethod(F.nll_loss)


class MSELoss(_Loss):
    fn = staticmethod(F.mse_loss)


class L1Loss(_Loss):
    fn = staticmethod(F.l1_loss)


class BCEWithLogitsLoss(_Loss):
    fn = staticmethod(F.binary_cross_entropy_with_logits)


class BCELoss(_Loss):
    fn = staticmethod(F.binary_cross_entropy)
