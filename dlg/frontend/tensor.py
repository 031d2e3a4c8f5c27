"""`dlg.Tensor`: an eager, NumPy-backed tensor with the PyTorch surface programs use (the methods
written for PyTorch programs alone, conversions and in-place updates, are in `tensor_methods`).

Its methods and operators are the user-facing functions of `dlg.functions` (the ones .dlg has
too), run with the eager front `EAGER`: every op goes through `engine.apply` (the registry and
its references), or the `engine.Planned` it kept for the same call, and `backward()` through the
autodiff pass, so eager results and gradients are the interpreter's. Dtypes promote as in
PyTorch before a binary op (an int tensor meeting a float becomes float; .dlg refuses that
instead); Python numbers then take the tensor's dtype.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from operator import attrgetter
from typing import Any, NamedTuple

import numpy as np

from dlg import foreign
from dlg.errors import DlgError, DlgShapeError, DlgTypeError, DlgValueError
from dlg.frontend import autograd, engine, grad_hooks, printing, replay
from dlg.frontend.grad_fn import GradFn
from dlg.frontend.handles import RemovableHandle
from dlg.frontend.size import Size
from dlg.functions import indexing
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph, Value
from dlg.functions import FUNCTIONS
from dlg.functions.args import int_scalar
from dlg.functions.call import bind_all
from dlg.ir.ops import REGISTRY
from dlg.ir.ops.custom import PY_FUNCTION, STOP_GRADIENT
from dlg.ir.ops.elementwise import CAST, WHERE
from dlg.ir.ops.losses import CROSS_ENTROPY, NLL_LOSS
from dlg.ir.ops.nn import DROPOUT
from dlg.ir.ops.source import INPUT, PARAM
from dlg.ir.ops.opdef import REQUIRED, OpDef, Trait
from dlg.ir.shapes import numel
from dlg.ir.types import TensorType

_NO_DATA = object()
_NUMPY_DTYPES = {d: d.np for d in DType}  # a dict read, where `DType.np` is a property call


def _legacy_sized(first: Any, sizes: tuple[Any, ...]) -> np.ndarray:
    """torch.Tensor(d0, d1, ...): zeros of that shape (torch leaves them uninitialised, and
    programs fill them: nn.Parameter(torch.Tensor(out, in)) then an initialiser)."""
    dims = (first, *sizes)
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0
               for d in dims):
        raise DlgTypeError(f"Tensor(*sizes): expected non-negative ints, got {dims!r} (give the "
                           f"data as one list, or requires_grad= by keyword)",
                           engine.caller_span())
    return np.zeros(tuple(int(d) for d in dims), np.float32)


def _public_array(data: Any, sizes: tuple[Any, ...]) -> np.ndarray:
    """What torch.Tensor(...) makes: float32 from data (ints and bools too; torch.tensor infers
    the dtype), a tensor's own storage and dtype, or the legacy sized forms Tensor(5),
    Tensor(2, 3), Tensor(torch.Size)."""
    if data is _NO_DATA:  # torch's Tensor(): an empty float32 tensor
        return np.zeros(0, np.float32)
    if sizes or (isinstance(data, (int, np.integer)) and not isinstance(data, bool)):
        return _legacy_sized(data, sizes)  # Tensor(5) is shape (5,), as in torch
    if isinstance(data, Size):  # Tensor(x.shape): zeros of that shape
        return np.zeros(data, np.float32)
    if isinstance(data, Tensor):  # torch: the same storage and dtype
        return data.numpy_view()
    if isinstance(data, (float, complex, bool, np.generic, str)) or data is None:
        hint = "" if isinstance(data, str) or data is None else (
            f" (dlg.tensor({data!r}) makes a 0-d tensor)")
        raise DlgTypeError(f"Tensor(data): data must be a sequence, got "
                           f"{type(data).__name__}{hint}", engine.caller_span())
    return numpy_data(data, np.dtype(np.float32))


class MaxResult(NamedTuple):
    values: Tensor
    indices: Tensor


class Tensor:
    __slots__ = ("_value", "tensor_type", "record", "_requires_grad", "grad", "graph_value",
                 "__weakref__")

    def __init__(self, data: Any = _NO_DATA, *sizes: Any, requires_grad: bool = False):
        """torch.Tensor's constructor: float32 from data (dlg.tensor infers the dtype as
        torch.tensor does), Tensor(d0, d1, ...) float32 zeros of that shape (torch's
        uninitialised). dlg's own code makes tensors with `Tensor.of`."""
        self._setup(_public_array(data, sizes), requires_grad, None)

    @classmethod
    def of(cls, value: Any, *, requires_grad: bool = False, record: engine.Record | None = None,
           dtype: DType | None = None) -> Tensor:
        """A tensor of `value` in its own dtype (Python floats float32, ints int64), or `dtype`:
        dlg's internal constructor, torch.tensor's inference (the public `Tensor(data)` is
        always float32)."""
        out = cls.__new__(cls)
        out._setup(_as_array(value, dtype), requires_grad, record)
        return out

    def _setup(self, array: np.ndarray, requires_grad: bool, record: engine.Record | None
               ) -> None:
        self._value = array
        self.tensor_type = TensorType(DType.of(array), array.shape)
        self.record = record
        self.grad: Tensor | None = None
        self.graph_value: Value | None = None  # set on the symbolic tensors `dlg.trace` runs with
        self._requires_grad = False
        if requires_grad:
            self.requires_grad_(True)
        elif record is not None:
            self._requires_grad = True

    # -- data -------------------------------------------------------------------------------------
    @classmethod
    def traced(cls, value: Value, t: TensorType) -> Tensor:
        """A symbolic tensor of a trace: a type and a graph value, no data."""
        out = cls.__new__(cls)
        out._value, out.tensor_type, out.record, out.grad, out._requires_grad, out.graph_value = (
            None, t, None, None, False, value)
        return out

    @classmethod
    def result(cls, array: np.ndarray, t: TensorType, record: engine.Record | None) -> Tensor:
        """An op's result of inferred type `t`: taken as it is when the array has that type (the
        constructor's checks and conversions would change nothing), else through them."""
        if array.dtype != _NUMPY_DTYPES[t.dtype] or array.shape != t.shape:
            return cls.of(array, record=record)
        out = cls.__new__(cls)
        out._value, out.tensor_type, out.record, out.grad, out._requires_grad, out.graph_value = (
            array, t, record, None, record is not None, None)
        return out

    def numpy_view(self) -> np.ndarray:
        if self._value is None:
            raise engine.TraceHazard()
        return self._value

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """NumPy (and so dlg models and executables) can take a tensor as an array."""
        array = self.numpy_view()
        return array if dtype is None else array.astype(dtype)

    def __dlpack__(self, *, stream: Any = None, max_version: Any = None, dl_device: Any = None,
                   copy: Any = None) -> Any:
        """The array's DLPack capsule, so `torch.from_dlpack(t)` (`np.from_dlpack`, JAX's...)
        shares this tensor's memory; refused, as torch refuses it, while it requires grad."""
        if self.requires_grad:
            raise DlgValueError("can't export a tensor that requires grad through DLPack; use "
                                "tensor.detach()", engine.caller_span())
        kwargs = {k: v for k, v in (("max_version", max_version), ("dl_device", dl_device),
                                    ("copy", copy)) if v is not None}
        return self.numpy_view().__dlpack__(stream=stream, **kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)  # kDLCPU: eager tensors live in host memory

    def numpy(self) -> np.ndarray:
        if self.requires_grad:
            raise DlgValueError("can't call numpy() on a tensor that requires grad; use "
                                "tensor.detach().numpy()", engine.caller_span())
        return self.numpy_view()

    def tolist(self) -> Any:
        return self.numpy_view().tolist()

    def item(self) -> Any:
        if self.numpy_view().size != 1:
            raise DlgValueError(f"item(): the tensor has {self._value.size} elements, not 1",
                                engine.caller_span())
        return self._value.reshape(()).item()

    @property
    def data(self) -> Tensor:
        """The same storage, detached from autograd; assigning a tensor makes this one share
        its storage (dtype and shape too), as torch's `x.data = y` does, so `w.data *= mask`
        keeps w's views; traced, an in-place op on it writes this tensor (PixelCNN's
        `self.weight.data *= mask`)."""
        out = self.detach()
        tracer = engine.current_tracer()
        if tracer is not None and out.graph_value is not None and tracer.owns(self):
            tracer.alias(out, self)
        return out

    @data.setter
    def data(self, value: Tensor) -> None:
        tracer = engine.current_tracer()
        if tracer is not None and isinstance(value, Tensor) and (
                value.graph_value is not None or tracer.owns(self)):
            alias = tracer.aliases.get(id(value))
            if alias is not None and alias[1] is self:
                return  # `x.data *= m` assigns back what the in-place op already wrote
            if value.tensor_type != self.tensor_type:
                raise DlgValueError(f"x.data = {value.tensor_type} on {self.tensor_type} while "
                                    f"tracing: a traced tensor keeps its type",
                                    engine.caller_span())
            tracer.rebind(self, tracer.cut(tracer.value_of(value)))
            return
        if isinstance(value, Tensor):
            self._value = value.numpy_view()
            self.tensor_type = TensorType(value.dtype, self._value.shape)
            return
        self._value = _as_array(value, self.tensor_type.dtype).copy()
        self.tensor_type = TensorType(self.tensor_type.dtype, self._value.shape)

    def detach(self) -> Tensor:
        """The same storage without gradient; traced, a `stop_gradient` of the tensor's value
        (keeping the value would let the gradient through, and a parameter's would be frozen
        into a constant)."""
        tracer = engine.current_tracer()
        if tracer is not None and tracer.owns(self):
            return Tensor.traced(tracer.cut(tracer.value_of(self)), self.tensor_type)
        out = Tensor.__new__(Tensor)
        out._value, out.tensor_type, out.record, out.grad, out._requires_grad, out.graph_value = (
            self._value, self.tensor_type, None, None, False, self.graph_value)
        return out

    def detach_(self) -> Tensor:
        """detach in place: this tensor becomes a leaf without gradient (truncated BPTT's
        `hidden.detach_()`); traced, it holds the `stop_gradient` of its value from here on."""
        tracer = engine.current_tracer()
        if tracer is not None and tracer.owns(self):
            tracer.rebind(self, tracer.cut(tracer.value_of(self)))
            return self
        self.record, self._requires_grad = None, False
        return self

    # read as a slot (C speed: the engine reads it at every op), set through `_set_flag`
    requires_grad = property(attrgetter("_requires_grad"))

    @requires_grad.setter
    def requires_grad(self, requires_grad: bool) -> None:
        self._set_flag(bool(requires_grad), "")

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        self._set_flag(bool(requires_grad), "requires_grad_")
        return self

    def _set_flag(self, requires_grad: bool, method: str) -> None:
        """torch's rules: only a leaf's flag changes (`requires_grad_()` may confirm a
        non-leaf's True), and only a float tensor requires grad."""
        if self.record is not None and (requires_grad is False or not method):
            detach = (" If you want to use a computed variable in a subgraph that doesn't "
                      "require differentiation use var_no_grad = var.detach().")
            raise DlgValueError("you can only change requires_grad flags of leaf variables."
                                + ("" if requires_grad else detach), engine.caller_span())
        if requires_grad and not self.tensor_type.dtype.is_inexact:
            raise DlgTypeError(f"only float tensors (and complex ones) can require gradients, "
                               f"not {self.tensor_type}",
                               engine.caller_span())
        self._requires_grad = requires_grad

    @property
    def is_leaf(self) -> bool:
        return self.record is None

    @property
    def grad_fn(self) -> GradFn | None:
        """The node that made this tensor (dlg.frontend.grad_fn): the op's name, a str with
        torch's next_functions; None for a leaf."""
        return GradFn(self.record) if self.record is not None else None

    def accumulate_grad(self, value: np.ndarray | Tensor) -> None:
        """Add `value` to `.grad`: into a leaf's tensor (torch accumulates there in place), as a
        new tensor for a retained non-leaf (torch's: a `.grad` held from an earlier backward
        keeps its value); a recorded gradient (create_graph) stays recorded, added as a new
        tensor."""
        if isinstance(value, Tensor):
            self.grad = value if self.grad is None else self.grad + value
            return
        value = np.asarray(value, self.tensor_type.dtype.np)
        if self.grad is None:
            self.grad = Tensor.of(value.copy())
        elif self.is_leaf:
            self.grad._value = self.grad._value + value
        else:
            self.grad = Tensor.of(self.grad._value + value)

    def backward(self, gradient: Any = None, retain_graph: bool | None = None,
                 create_graph: bool = False, inputs: Any = None) -> None:
        """Gradients into `.grad` (torch's keywords; the tape is always kept, so
        `retain_graph` changes nothing; with `create_graph`, the gradients are recorded
        tensors, differentiable again)."""
        seed = None if gradient is None else _as_array(gradient, self.tensor_type.dtype)
        wanted = [inputs] if isinstance(inputs, Tensor) else inputs
        autograd.backward(self, seed, wanted, run_graph if create_graph else None)

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in `.grad` at the next backward."""
        autograd.retain_grad(self)

    @property
    def retains_grad(self) -> bool:
        return autograd.retains_grad(self)

    def register_hook(self, hook: Callable[[Tensor], Any]) -> RemovableHandle:
        """`hook(grad)` at each backward; a tensor it returns replaces the gradient
        (dlg.frontend.grad_hooks)."""
        return grad_hooks.register_hook(self, hook)

    def register_post_accumulate_grad_hook(self, hook: Callable[[Tensor], Any]
                                           ) -> RemovableHandle:
        """`hook(self)` after each backward has added to this leaf's `.grad`."""
        return grad_hooks.register_post_accumulate(self, hook)

    # -- shape and dtype ---------------------------------------------------------------------------
    @property
    def shape(self) -> Size:
        """A dlg.Size of ints; while tracing, a symbolic dim (such as the batch size N) where
        there is one."""
        return Size.of(self.tensor_type.shape)

    @property
    def dtype(self) -> DType:
        return self.tensor_type.dtype

    @property
    def ndim(self) -> int:
        return self.tensor_type.rank

    def size(self, dim: int | None = None) -> Any:
        return self.shape if dim is None else self.shape[_axis(dim, self.ndim)]

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> Any:
        return numel(self.tensor_type.shape)

    def __len__(self) -> int:
        if not self.ndim:
            raise DlgTypeError("len() of a 0-d tensor", engine.caller_span())
        return self.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        """The tensor's slices along its first axis, as torch iterates (for row in t, a, b = t,
        zip, max())."""
        return (self[i] for i in range(len(self)))

    def __format__(self, spec: str) -> str:
        """f"{loss:.4f}": a 0-d tensor formats as its number; others take no format spec."""
        if not self.ndim and self._value is not None:
            return format(self.item(), spec)
        if spec:
            raise DlgTypeError(f"a format spec ({spec!r}) needs a 0-d tensor, got "
                               f"{self.tensor_type}", engine.caller_span())
        return str(self)

    def __repr__(self) -> str:
        """torch's text (printing.py): the dtype shown unless it is float32, complex64, int64
        or bool, the shape where there are no elements (unless 1-d)."""
        if self._value is None:
            return f"tensor(<traced {self.tensor_type}>)"
        values = self._value
        suffixes = []
        if values.size == 0 and values.ndim != 1:
            suffixes.append(f"size={tuple(values.shape)}")
        if ((self.dtype is not DType.f32) if values.size == 0 else self.dtype not in (
                DType.f32, DType.c64, DType.i64, DType.bool)):
            suffixes.append(f"dtype={self.dtype!r}")
        if self.record is not None:
            suffixes.append(f"grad_fn=<{self.grad_fn}>")
        elif self.requires_grad:
            suffixes.append("requires_grad=True")
        return printing.with_suffixes("tensor(" + printing.tensor_string(values, 7), suffixes, 7)

    def __bool__(self) -> bool:
        if self.numpy_view().size != 1:
            raise DlgValueError("the truth value of a tensor with several elements is "
                                "ambiguous", engine.caller_span())
        return bool(self._value.reshape(()))

    def __float__(self) -> float:
        if self.requires_grad:  # torch's warning (float() only: item() and int() give none)
            warnings.warn("Converting a tensor with requires_grad=True to a scalar may lead to "
                          "unexpected behavior.\nConsider using tensor.detach() first.",
                          UserWarning, stacklevel=2)
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        return int(self.item())

    __hash__ = object.__hash__

    # -- methods (the user-facing functions of dlg.functions; more are attached below) -----------
    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return call("flatten", self, start_dim, end_dim)  # torch.flatten starts at 0

    def t(self) -> Tensor:
        return self if self.ndim < 2 else call("transpose", self, 0, 1)

    @property
    def T(self) -> Tensor:  # noqa: N802
        return call("permute", self, tuple(reversed(range(self.ndim))))

    def max(self, dim: int | None = None, keepdim: bool = False) -> Any:  # noqa: A003
        """The maximum, or (values, indices) along `dim`, as torch.max."""
        return _extremum("max", "argmax", self, dim, keepdim)

    def min(self, dim: int | None = None, keepdim: bool = False) -> Any:  # noqa: A003
        return _extremum("min", "argmin", self, dim, keepdim)

    def pow(self, exponent: Any) -> Tensor:
        return self ** exponent


# ---- the eager front door of dlg.functions ------------------------------------------------------
class _Eager:
    """`dlg.functions`' Front for eager (and traced) Python: ops run through `engine.apply`.
    Dropout draws its mask here, eagerly, so that backward sees it as data."""

    training = True  # F.dropout's default; modules pass their own mode

    def is_tensor(self, value: Any) -> bool:
        return isinstance(value, Tensor)

    def type_of(self, x: Tensor) -> TensorType:
        return x.tensor_type

    def lift(self, value: Any, dtype: DType) -> Tensor:
        if dtype.is_int and isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            try:  # 300 as uint8: torch's error; -1 wraps to 255
                value = int_scalar(value, dtype)
            except DlgError as e:
                raise e.with_span(engine.caller_span()) from None
        elif (dtype.is_int and isinstance(value, (float, np.floating))
              and not float(value).is_integer()):
            raise DlgTypeError(f"the float {value} meets an {dtype} tensor (it would truncate); "
                               f"cast the tensor to a float dtype first", engine.caller_span())
        return Tensor.of(np.asarray(value, dtype.np))

    def describe(self, value: Any) -> str:
        return foreign.type_name(value)  # torch.Tensor, not Tensor

    def emit(self, opdef: OpDef, *inputs: Tensor, **attrs: Any) -> Any:
        emits = replay.emitting()
        if emits is None:
            return self._emit(opdef, *inputs, **attrs)
        with replay.inside_emit():
            out = self._emit(opdef, *inputs, **attrs)
        emits.append((opdef, inputs, attrs, out))
        return out

    def _emit(self, opdef: OpDef, *inputs: Tensor, **attrs: Any) -> Any:
        if opdef not in _EMITTED_HERE:
            return apply(opdef, *inputs, **attrs)
        if opdef is DROPOUT:
            return self._dropout(inputs[0], **attrs)
        if opdef is PY_FUNCTION:  # an autograd.Function's node, replayed (create_graph)
            return attrs["fn"].eager(inputs)
        if opdef is STOP_GRADIENT:  # torch's detach: the same storage, no record
            return inputs[0].detach()
        if opdef in (CROSS_ENTROPY, NLL_LOSS):
            _check_classes(opdef.name, inputs[0], inputs[1], attrs.get("ignore_index", -100))
        return apply(opdef, *inputs, **attrs)

    def _dropout(self, x: Tensor, p: float, training: bool) -> Tensor:
        if not training or p == 0:
            return x
        if x.graph_value is not None:  # traced: the graph draws a fresh mask at every run
            return apply(DROPOUT, x, p=p, training=True)
        keep = Tensor.of(engine.rng().random(x.shape) >= p)
        scaled = x * (1.0 / (1.0 - p)) if p < 1 else x * 0.0
        return apply(WHERE, keep, scaled, self.lift(0.0, x.dtype))


# ops `_Eager.emit` does more for than `apply`: a fresh mask, an autograd.Function's node, a
# detach, a check of class indices against the data
_EMITTED_HERE = frozenset({DROPOUT, PY_FUNCTION, STOP_GRADIENT, CROSS_ENTROPY, NLL_LOSS})


def _replayed(step: replay.Step, inputs: tuple[Tensor, ...]) -> Any:
    """A replayed op (`replay.replay`): through its step's kept `engine.Planned` where it has
    one and nothing else wants the op (no recording collects emits, no profiler, tracer or
    anomaly mode), else emitted, after which the step keeps the op's Planned if there is one
    (a single-output op `apply` runs unchanged). The first's saving is the call key: the
    attributes are the step's."""
    found = step.planned
    if found is not None and engine.planning() and replay.emitting() is None:
        value, record = found.one(inputs)
        return Tensor.result(value, found.types[0], record)
    out = EAGER.emit(step.op, *inputs, **step.attrs)
    if found is None and step.op not in _EMITTED_HERE and (
            step.op not in _TAKES_FLOATS or inputs[0].tensor_type.dtype in _INEXACT):
        found = engine.planned(step.op, inputs, step.attrs)
        step.planned = found if found is not None and found.single else None
    return out


def _check_classes(loss: str, scores: Tensor, target: Tensor, ignore_index: int) -> None:
    """Class indices within the classes, where the data is here (eagerly), as torch checks:
    the loss picks a target's score by comparing indices, so one past the classes would
    silently pick none."""
    labels = target._value
    if labels is None or labels.dtype.kind not in "iu" or scores.ndim == 0:
        return
    classes = scores.shape[1] if scores.ndim > 1 else scores.shape[0]
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= classes))
    if bad.any():
        raise DlgValueError(f"{loss}: target {labels[bad].flat[0]} is out of range for "
                            f"{classes} classes (0..{classes - 1}, or ignore_index "
                            f"{ignore_index})", engine.caller_span())


EAGER = _Eager()
replay.TENSOR = Tensor


def run_graph(graph: Graph, inputs: Sequence[Any], params: Mapping[str, Tensor] | None = None
              ) -> list[Tensor]:
    """`graph`'s outputs computed node by node through the eager front door (so ops are
    recorded, and dropout draws its mask there), its inputs bound in order (arrays become
    constant tensors) and its params by name: how a prelude layer's graph runs eagerly
    (graph_call.py), and a gradient graph with create_graph (autograd.py). Quietly, as the
    interpreter runs graphs: NaN and inf propagate as data, without NumPy's warnings (x ** 3's
    gradient graph printed "invalid value in log" for a negative x); anomaly mode reports
    them."""
    values: dict[Value, Tensor] = {}
    args = iter(inputs)
    with np.errstate(all="ignore"):
        for node in graph:
            if node.op is INPUT:
                given = next(args)
                out = given if isinstance(given, Tensor) else Tensor.of(given)
            elif node.op is PARAM:
                out = (params or {})[node.name or ""]
            else:
                out = EAGER.emit(node.op, *(values[v] for v in node.inputs), **node.attrs)
            values.update(zip(node.outs, out if isinstance(out, tuple) else (out,)))
    return [values[v] for _, v in graph.outputs]


def as_argument(value: Any) -> Any:
    """A function's argument as eager Python takes it: a NumPy array, or another library's CPU
    array (a torch.Tensor from torch's DataLoader: `dlg.foreign`), as a constant tensor sharing
    its memory; anything else as it is."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray) or foreign.is_foreign(value):
        return Tensor.of(value)
    return value


def foreign_tensors(value: Any) -> Any:
    """`value` with another library's arrays in it (at the top, or in a plain tuple or list: an
    LSTM's `(h0, c0)`) made dlg tensors sharing their memory: how a module takes the torch
    tensors of torch's DataLoader, so its forward computes in dlg from the first line."""
    if isinstance(value, Tensor):
        return value
    if type(value) is tuple or type(value) is list:
        if all_tensors(value):
            return value
        items = [foreign_tensors(v) for v in value]
        return value if all(a is b for a, b in zip(items, value)) else type(value)(items)
    return Tensor.of(value) if foreign.is_foreign(value) else value


def tensor_argument(value: Any, what: str) -> Tensor:
    """`value` as a dlg tensor (another library's array sharing its memory, as in
    `foreign_tensors`), else a DlgTypeError saying `what` must be a tensor."""
    if foreign.is_foreign(value):
        value = Tensor.of(value)
    if not isinstance(value, Tensor):
        raise DlgTypeError(f"{what} must be a tensor, got {foreign.type_name(value)}",
                           engine.caller_span())
    return value


def eager(name: str) -> Callable[..., Any]:
    """The user-facing function `name` as Python calls it: arguments bound as in .dlg (PyTorch's
    keywords accepted), NumPy and other libraries' arrays taken as tensors, errors located at the
    caller's line."""
    fn = FUNCTIONS[name]
    direct = _direct(name)
    inputs = len(direct.inputs) if direct is not None else -1

    def run(*args: Any, **kwargs: Any) -> Any:
        if len(args) == inputs and not kwargs and all_tensors(args):
            return apply(direct, *args)  # type: ignore[arg-type]  # nothing to bind
        call_key = replay.key(name, args, kwargs) if engine.current_tracer() is None else None
        made = replay.found(call_key)
        try:
            if made is not None:  # this call's ops, as the first call with its key emitted them
                return replay.replay(made, _replayed, args, kwargs)
            args = tuple(map(as_argument, args))
            kwargs = {k: as_argument(v) for k, v in kwargs.items()}
            with replay.recording(call_key, args, kwargs) as result:
                given, keywords = bind_all(fn, name, args, kwargs)
                result.append(fn(EAGER, *given, **keywords))
            return result[0]
        except DlgError as e:
            raise e.with_span(engine.caller_span()) from None
    run.__name__ = run.__qualname__ = name
    run.__doc__ = fn.__doc__
    return run


def checked(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`fn(EAGER, ...)` for a helper of dlg.functions (a module checking its options when it is
    made), its errors located at the caller's line; another library's arrays (torch's) among
    the arguments as tensors."""
    args = tuple(map(foreign_tensors, args))
    try:
        return fn(EAGER, *args, **kwargs)
    except DlgError as e:
        raise e.with_span(engine.caller_span()) from None


_EAGER_FUNCTIONS: dict[str, Callable[..., Any]] = {}


def _direct(name: str) -> OpDef | None:
    """The op that function `name` emits unchanged when its every argument is a tensor given
    positionally: the generated elementwise functions (they carry the op's signature), add and
    sub (alpha 1), div (no rounding), matmul and linear (with a bias: every nn.Linear's call).
    Such a call needs no argument binding."""
    fn = FUNCTIONS.get(name)
    op = REGISTRY.get(name)
    if op is None or fn is None:
        return None
    generated = getattr(fn, "__signature__", None) is not None and fn.__name__ == op.name
    defaults = all(spec.default is not REQUIRED for spec in op.attrs.values())
    return op if defaults and (generated or name in ("add", "sub", "div", "matmul", "linear")
                               ) else None


# function name -> (the op it emits unchanged, its inputs)
DIRECT = {name: (op, len(op.inputs)) for name in FUNCTIONS if (op := _direct(name)) is not None}


def all_tensors(args: Sequence[Any]) -> bool:
    """all(isinstance(a, Tensor) for a in args), at a third of its cost (no generator)."""
    for a in args:
        if not isinstance(a, Tensor):
            return False
    return True


def call(name: str, *args: Any, **kwargs: Any) -> Any:
    """Call the user-facing function `name` from Python (`eager(name)`, made once; a direct
    op's tensors straight to `apply`)."""
    direct = DIRECT.get(name)
    if direct is not None and not kwargs and len(args) == direct[1] and all_tensors(args):
        return apply(direct[0], *args)
    if name not in _EAGER_FUNCTIONS:
        _EAGER_FUNCTIONS[name] = eager(name)
    return _EAGER_FUNCTIONS[name](*args, **kwargs)


def _extremum(name: str, arg: str, x: Tensor, dim: int | None, keepdim: bool) -> Any:
    if dim is None:
        return call(name, x)
    return MaxResult(call(name, x, dim, keepdim), call(arg, x, dim, keepdim))


# ---- making and applying ops ---------------------------------------------------------------------
# torch's unary ops that compute integer and bool tensors in float32 (the default dtype), where
# the registry's (and .dlg's) take floats only: eager Python casts first, as torch promotes
_FLOATING = frozenset(REGISTRY[name] for name in (
    "atan", "cos", "cosh", "erf", "exp", "exp2", "log", "log10", "log1p", "log2", "reciprocal",
    "rsqrt", "sigmoid", "sin", "sinh", "softsign", "sqrt", "tanh", "tanhshrink"))
_WHOLE = frozenset(REGISTRY[name] for name in ("floor", "ceil"))
_CLAMPS = {REGISTRY["hardtanh"]: (-1, 1), REGISTRY["relu6"]: (0, 6)}  # torch's default bounds
_TAKES_FLOATS = _FLOATING | _WHOLE | frozenset(_CLAMPS)
_INEXACT = frozenset(d for d in DType if d.is_inexact)


def _promote_first(opdef: OpDef, x: Tensor, attrs: dict[str, Any]) -> tuple[Tensor] | Tensor:
    """torch's rules for a float op on an int or bool `x`: the inputs to run it on (x cast to
    float32), or the whole result (floor of ints: a copy; hardtanh of ints: a clamp)."""
    if opdef in _FLOATING:
        return (apply(CAST, x, dtype=DType.f32),)
    if not x.dtype.is_int:
        return (x,)
    if opdef in _WHOLE:
        return apply(CAST, x, dtype=x.dtype)
    low, high = (int(attrs.get(k, d)) for k, d in zip(("min_val", "max_val"), _CLAMPS[opdef]))
    if x.dtype.is_unsigned and low < 0:
        raise DlgValueError(f"cannot do {opdef.name} on an unsigned type with negative "
                            f"limits ({low})", engine.caller_span())
    return call("clamp", x, low, high)


def apply(opdef: OpDef, *inputs: Tensor, **attrs: Any) -> Any:
    """Apply a registry op (eagerly, or into the trace); a tuple for multi-output ops."""
    if opdef in _TAKES_FLOATS and inputs[0].tensor_type.dtype not in _INEXACT:
        promoted = _promote_first(opdef, inputs[0], attrs)
        if isinstance(promoted, Tensor):
            return promoted
        inputs = promoted
    found = engine.planned(opdef, inputs, attrs)
    if found is not None and found.single:  # a loop's repeated op, most of them
        value, record = found.one(inputs)
        return Tensor.result(value, found.types[0], record)
    outs = found.outputs(inputs) if found is not None else engine.apply(opdef, inputs, attrs)
    if len(outs) == 1 and Trait.MULTI_OUTPUT not in opdef.traits:  # most ops: one tensor
        value, t, record = outs[0]
        if not isinstance(value, Value):
            return Tensor.result(value, t, record)
    tensors = tuple(Tensor.traced(value, t) if isinstance(value, Value) else
                    Tensor.result(value, t, record) for value, t, record in outs)
    if (opdef in engine.VIEWS or opdef in engine.RESHAPES) and isinstance(outs[0][0], Value):
        engine.current_tracer().viewed(tensors, inputs[0], opdef, attrs)  # type: ignore[union-attr]
    return tensors if Trait.MULTI_OUTPUT in opdef.traits else tensors[0]


def op(name: str, *inputs: Tensor, **attrs: Any) -> Any:
    """`apply` by op name."""
    return apply(REGISTRY[name], *inputs, **attrs)


def foreign_array(value: Any) -> np.ndarray:
    """Another library's array (`dlg.foreign`) as NumPy's, its refusal located at the caller's
    line."""
    try:
        return foreign.numpy_of(value)
    except DlgError as e:
        raise e.with_span(engine.caller_span()) from None


def numpy_data(value: Any, dtype: np.dtype | None = None, copy: bool = False) -> np.ndarray:
    """User data as an array (another library's array through `dlg.foreign`, so a torch tensor
    keeps its dtype and memory); ragged nested lists (or a string of no number) are a
    DlgValueError at the caller's line, not NumPy's."""
    if foreign.is_foreign(value):
        value = foreign_array(value)
    try:
        return np.array(value, dtype=dtype) if copy else np.asarray(value, dtype)
    except (ValueError, OverflowError) as e:  # ragged lists; 300 as uint8
        raise DlgValueError(f"cannot make a tensor of this {type(value).__name__}: {e}",
                            engine.caller_span()) from None


def _as_array(value: Any, dtype: DType | None) -> np.ndarray:
    if isinstance(value, Tensor):
        value = value._value
    elif foreign.is_foreign(value):
        value = foreign_array(value)
    if dtype is not None:
        return numpy_data(value, dtype.np)
    array = numpy_data(value)
    if array.dtype == np.float64 and not isinstance(value, np.ndarray):
        array = array.astype(np.float32)  # Python floats make float32 tensors, as in PyTorch
    elif array.dtype == np.complex128 and not isinstance(value, np.ndarray):
        array = array.astype(np.complex64)  # and Python complexes complex64
    if array.dtype.kind == "u" and 1 < array.dtype.itemsize < 8:
        array = array.astype(np.int64)  # uint16/32 widened (uint8, int8 and int16 are kept)
    try:
        DType.of(array)
    except KeyError:
        raise DlgTypeError(f"dtype {array.dtype} is not supported", engine.caller_span()) from None
    return array


def _axis(dim: int, ndim: int) -> int:
    if not -ndim <= dim < ndim:
        raise DlgShapeError(f"dimension {dim} is out of range for a {ndim}-d tensor",
                            engine.caller_span())
    return dim % ndim


def as_number(value: Any) -> Any:
    """A one-element integer eager tensor as the int it holds, as torch reads it through
    `__index__` where an int goes (a slice bound: `seq[:length]` over a tensor of lengths);
    anything else as it is (a traced tensor holds no number yet)."""
    if (isinstance(value, Tensor) and value.graph_value is None and value.dtype.is_int
            and value.numel() == 1):
        return value.item()
    return value


def _slice_of_numbers(item: Any) -> Any:
    if isinstance(item, slice):
        return slice(as_number(item.start), as_number(item.stop), as_number(item.step))
    return item


def index(x: Tensor, items: Any) -> Tensor:
    """`x[items]` (dlg.functions.indexing), errors located at the user's line."""
    items = items if isinstance(items, tuple) else (items,)
    if not all(map(indexing.is_basic, items)):
        items = tuple(map(_slice_of_numbers, items))
    traced = engine.current_tracer() is not None
    call_key = None if traced else replay.key("__getitem__", (x, items), {})
    made = replay.found(call_key)
    try:
        if made is not None:  # a loop's x[i], x[:, :k]: the ops the first such call emitted
            return replay.replay(made, _replayed, (x, items), {})
        with replay.recording(call_key, (x, items), {}) as result:
            result.append(indexing.index(EAGER, x, items))
        return result[0]
    except DlgError as e:
        raise e.with_span(engine.caller_span()) from None
