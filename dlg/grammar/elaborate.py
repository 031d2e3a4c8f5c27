"""Elaboration: run a model's .dlg definition once to build its IR graph and initial parameters.

Static values (attributes, dims, tuples) are computed in Python as the text is walked; tensor
expressions emit IR nodes through a Builder. Layers are instantiated with PyTorch-style
hierarchical parameter names. `if`/`for` are resolved at elaboration time (their conditions
must be static); `scan` builds its body as a subgraph and stays one node.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlg.errors import (
    DlgError,
    DlgNameError,
    DlgShapeError,
    DlgSyntaxError,
    DlgTypeError,
    DlgValueError,
    Span,
)
from dlg.functions.args import operands
from dlg.functions.call import bind_all
from dlg.functions.spelling import OPERATORS
from dlg.grammar import ast, layer_lists
from dlg.grammar.initializers import INITIALIZER_NAMES
from dlg.grammar.values import (
    Builtin,
    Function,
    InitSpec,
    LayerClass,
    LayerInstance,
    Scope,
    GraphTensor,
    describe,
    index_tuple,
    suggest,
)
from dlg.functions.indexing import index
from dlg.ir.builder import Builder
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph, LayerCall, Value
from dlg.ir.init import initialize
from dlg.ir.ops.opdef import REGISTRY, OpDef
from dlg.ir.shapes import Dim, Sym
from dlg.ir.train_spec import TrainSpec
from dlg.ir.types import TensorType

MAX_NESTING = 32  # def calls and layers inside each other (real models nest a few deep)
PRELUDE_FILE = "prelude.dlg"

# Which statements may appear where (the grammar accepts any statement in any block).
_ALLOWED: dict[type, set[str]] = {
    ast.InputDecl: {"model", "train"}, ast.ParamDecl: {"model", "layer"},
    ast.LayerDecl: {"model", "layer"}, ast.OutputDecl: {"model"}, ast.ForwardDef: {"layer"},
    ast.MetricDecl: {"train"}, ast.Update: {"forward"}, ast.Emit: {"scan"},
    ast.Return: {"forward", "def"},
}
_PLACE = {"model": "a model", "train": "a train section", "layer": "a layer body",
          "forward": "a forward function", "def": "a def", "scan": "a scan body"}
_WHAT = {ast.InputDecl: "`input`", ast.ParamDecl: "`param`/`buffer`", ast.LayerDecl: "`layer`",
         ast.OutputDecl: "`output`", ast.ForwardDef: "`forward`", ast.MetricDecl: "`metric`",
         ast.Update: "`update`", ast.Emit: "`emit`", ast.Return: "`return`"}

_STATIC_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": operator.pow, "==": operator.eq,
    "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
_TENSOR_BINOPS = {symbol: op for op, symbol in OPERATORS.items()}
_ANNOTATIONS = {"int", "float", "bool", "str", "tensor", "tuple", "dtype", "any", "layer"}


@dataclass
class _Returned:
    value: Any


@dataclass
class _Frame:
    """A graph being built: the main graph, or a scan body nested in its parent frame."""

    graph: Graph
    builder: Builder
    captures: dict[tuple[int, Value], Value] = field(default_factory=dict)
    outer: list[Value] = field(default_factory=list)  # parent-frame values the body reads
    emits: dict[str, GraphTensor] = field(default_factory=dict)


@dataclass
class Elaborated:
    """The result of elaborating one model (in one mode)."""

    graph: Graph
    params: dict[str, np.ndarray]
    trainable: dict[str, bool]
    train: TrainSpec | None
    layer_calls: list[LayerCall]


class Elaborator:
    def __init__(self, name: str, training: bool, seed: int | None):
        self.graph = Graph(name)
        self.frames = [_Frame(self.graph, Builder(self.graph))]
        self.training = training
        self.rng = np.random.default_rng(seed)
        self.params: dict[str, np.ndarray] = {}
        self.trainable: dict[str, bool] = {}
        self.instances: list[LayerInstance] = []
        self.nesting: list[tuple[str, Span]] = []  # def calls and layer bodies being run, one
        # inside the other: (what, where)
        self.user_span: Span | None = None  # innermost span in user code (not the prelude)
        self.layer_calls: list[LayerCall] = []
        # float parameters declared at another dtype than their .dlg type (a dlg.nn LSTM after
        # .double() runs the prelude's f32 layer with f64 weights), by full name
        self.param_dtypes: dict[str, DType] = {}

    # -- spans ------------------------------------------------------------------------------------
    @contextmanager
    def at(self, span: Span | None) -> Iterator[None]:
        """Locate nodes and errors at `span`; prelude code is located at the user's call site."""
        saved = self.user_span
        if span is not None and not span.file.endswith(PRELUDE_FILE):
            self.user_span = span
        b = self.frames[-1].builder
        saved_b = b.span
        b.span = self.user_span
        try:
            yield
        except DlgError as e:
            if e.span is not None and e.span.file.endswith(PRELUDE_FILE) and self.user_span:
                e.span = self.user_span  # a prelude line means nothing to the user
            raise e.with_span(self.user_span or span)
        finally:
            self.user_span = saved
            b.span = saved_b

    # -- tensors ----------------------------------------------------------------------------------
    @property
    def builder(self) -> Builder:
        return self.frames[-1].builder

    def local(self, t: GraphTensor, depth: int | None = None) -> Value:
        """The value of `t` in the graph being built, capturing it into scan bodies as needed."""
        i = len(self.frames) - 1 if depth is None else depth
        frame = self.frames[i]
        if t.graph is frame.graph:
            return t.value
        key = (id(t.graph), t.value)
        if key not in frame.captures:
            if i == 0:
                raise DlgNameError("a value computed inside a scan body is used outside it; "
                                   "emit it or make it a carry")
            outer = self.local(t, i - 1)
            frame.captures[key] = frame.builder.input(f"captured{len(frame.outer)}", t.type)
            frame.outer.append(outer)
        return frame.captures[key]

    def wrap(self, v: Value) -> GraphTensor:
        frame = self.frames[-1]
        return GraphTensor(v, frame.graph, frame.graph.type_of(v))

    def emit(self, op: OpDef | str, *inputs: GraphTensor | Value, **attrs: Any) -> Any:
        """Emit an op on tensors; returns a GraphTensor (or a tuple for multi-output ops)."""
        opdef = REGISTRY[op] if isinstance(op, str) else op
        values = [x if isinstance(x, Value) else self.local(x) for x in inputs]
        out = self.builder.emit(opdef, *values, **attrs)
        return tuple(self.wrap(v) for v in out) if isinstance(out, tuple) else self.wrap(out)

    def constant(self, value: Any, dtype: DType) -> GraphTensor:
        return self.wrap(self.builder.constant(value, dtype))

    def as_tensor(self, value: Any, what: str = "value") -> GraphTensor:
        """A tensor from a tensor or a Python number (f32, i64 or bool)."""
        return operands(self, (value,), (what,))[0]

    # -- the Front of dlg.functions: the builtins emit through the elaborator ------------------
    def is_tensor(self, value: Any) -> bool:
        return isinstance(value, GraphTensor)

    def type_of(self, x: GraphTensor) -> TensorType:
        return x.type

    def lift(self, value: Any, dtype: DType) -> GraphTensor:
        return self.constant(value, dtype)

    def describe(self, value: Any) -> str:
        return describe(value)

    # -- statements -------------------------------------------------------------------------------
    def exec_block(self, stmts: tuple[ast.Stmt, ...], scope: Scope, where: str) -> Any:
        for stmt in stmts:
            allowed = _ALLOWED.get(type(stmt))
            if allowed is not None and where not in allowed:
                raise DlgSyntaxError(f"{_WHAT[type(stmt)]} is not allowed in {_PLACE[where]}",
                                     stmt.span)
            with self.at(stmt.span):
                result = self.exec_stmt(stmt, scope, where)
            if isinstance(result, _Returned):
                return result
        return None

    def exec_stmt(self, s: ast.Stmt, scope: Scope, where: str) -> Any:
        if isinstance(s, ast.Assign):
            value = self.eval(s.value, scope)
            for target, v in _destructure(s.targets, value, s.span):
                scope[target] = v
                if isinstance(v, GraphTensor) and v.graph is self.frames[-1].graph:
                    v.graph.label(v.value, target)
        elif isinstance(s, ast.Return):
            values = tuple(self.eval(e, scope) for e in s.values)
            return _Returned(values[0] if len(values) == 1 else values if values else None)
        elif isinstance(s, ast.If):
            cond = self.static_bool(self.eval(s.cond, scope), "an `if` condition", s.cond.span)
            return self.exec_block(s.body if cond else s.orelse, scope, where)
        elif isinstance(s, ast.For):
            for item in layer_lists.iterate(self.eval(s.iter, scope), s.iter.span):
                scope[s.var] = item
                result = self.exec_block(s.body, scope, where)
                if result is not None:
                    return result
        elif isinstance(s, ast.InputDecl):
            self.declare_input(s, scope)
        elif isinstance(s, ast.ParamDecl):
            self.declare_param(s, scope)
        elif isinstance(s, ast.LayerDecl):
            self.declare_layer(s, scope)
        elif isinstance(s, ast.OutputDecl):
            self.declare_output(s, scope)
        elif isinstance(s, ast.ForwardDef):
            inst = self.instances[-1]
            if inst.forward is not None:
                raise DlgNameError(f"layer {inst.cls.node.name} has two forward functions",
                                   s.span)
            inst.forward = s
        elif isinstance(s, ast.MetricDecl):
            value = self.eval(s.value, scope)
            self.check_scalar(value, f"metric {s.name!r}", s.value.span)
            scope[s.name] = value
            self.add_output(s.name, value, s.span)
        elif isinstance(s, ast.Update):
            self.update_state(s, scope)
        elif isinstance(s, ast.Emit):
            self.emit_step(s, scope)
        elif isinstance(s, ast.Scan):
            self.exec_scan(s, scope)
        elif isinstance(s, ast.Assert):
            if not self.static_bool(self.eval(s.cond, scope), "an assert", s.cond.span):
                message = "assertion failed" if s.message is None else self.eval(s.message, scope)
                raise DlgShapeError(str(message))
        else:  # pragma: no cover - the grammar has no other statements
            raise AssertionError(type(s))
        return None

    # -- declarations -----------------------------------------------------------------------------
    def declare_input(self, s: ast.InputDecl, scope: Scope) -> None:
        if self.graph.input_named(s.name) is not None:
            raise DlgNameError(f"duplicate input {s.name!r}", s.span)
        t = self.eval_type(s.type, scope, concrete=False)
        scope[s.name] = self.wrap(self.builder.input(s.name, t))

    def declare_param(self, s: ast.ParamDecl, scope: Scope) -> None:
        inst = self.instances[-1]
        name = self.eval_pname(s.name, scope)
        full = inst.prefix + name
        if full in self.params:
            raise DlgNameError(f"duplicate parameter {full!r}", s.name.span)
        t = self.eval_type(s.type, scope, concrete=True)
        if full in self.param_dtypes and t.dtype.is_float:
            t = TensorType(self.param_dtypes[full], t.shape)
        init = None if s.init is None else self.eval(s.init, Scope(scope, INITIALIZER_NAMES))
        with self.at(s.init.span if s.init is not None else s.span):
            self.params[full] = make_initial_value(init, t, self.rng)
        self.trainable[full] = not s.buffer
        scope[name] = self.wrap(self.builder.param(full, t, trainable=not s.buffer))
        inst.params[name] = full

    def declare_layer(self, s: ast.LayerDecl, scope: Scope) -> None:
        name = self.eval_pname(s.name, scope)
        if name in scope.names:
            raise DlgNameError(f"duplicate name {name!r}: it is already "
                               f"{describe(scope.names[name])}", s.name.span)
        prefix = self.instances[-1].prefix + ("" if name == layer_lists.SELF else name + ".")
        scope[name] = layer_lists.build_layer(self, s.value, scope, prefix)

    def instantiate(self, cls: LayerClass, args: list[Any], kwargs: dict[str, Any], prefix: str,
                    span: Span) -> LayerInstance:
        bound = self.bind(cls.node.params, args, kwargs, cls.scope, f"layer {cls.node.name}", span)
        inst = LayerInstance(cls, prefix, Scope(cls.scope, bound))
        self.instances.append(inst)
        try:
            with self.nested(f"layer {cls.node.name}", span):
                self.exec_block(cls.node.body, inst.scope, "layer")
        finally:
            self.instances.pop()
        return inst

    @contextmanager
    def nested(self, what: str, span: Span) -> Iterator[None]:
        """One more def call or layer made inside another: a def or layer that uses itself
        without end is an error here, not a RecursionError."""
        if len(self.nesting) >= MAX_NESTING:  # name the one that recurs, at its own call
            names = [name for name, _ in self.nesting]
            culprit = max(names, key=names.count)
            where = next(at for name, at in reversed(self.nesting) if name == culprit)
            raise DlgNameError(f"{culprit} uses itself without end (more than {MAX_NESTING} "
                               f"nested def calls and layers)", where)
        self.nesting.append((what, span))
        try:
            yield
        finally:
            self.nesting.pop()

    def declare_output(self, s: ast.OutputDecl, scope: Scope) -> None:
        if s.value is None:
            values = tuple(scope.lookup(n, s.span) for n in s.names)
        else:
            value = self.eval(s.value, scope)
            pairs = _destructure(s.names if len(s.names) > 1 else (s.names[0],), value, s.span)
            values = tuple(v for _, v in pairs)
        for name, value in zip(s.names, values):
            scope[name] = value
            self.add_output(name, value, s.span)

    def add_output(self, name: str, value: Any, span: Span) -> None:
        if any(n == name for n, _ in self.graph.outputs):
            raise DlgNameError(f"duplicate output {name!r}", span)
        if not isinstance(value, GraphTensor):
            raise DlgTypeError(f"output {name!r} must be a tensor, got {describe(value)}", span)
        self.graph.set_output(name, self.local(value))
        self.graph.label(self.local(value), name)

    def update_state(self, s: ast.Update, scope: Scope) -> None:
        inst = self.instances[-1]
        if s.name not in inst.params:
            raise DlgNameError(f"`update` needs a buffer or param of this layer; {s.name!r} is "
                               f"not one{suggest(s.name, inst.params)}", s.span)
        full = inst.params[s.name]
        value = self.as_tensor(self.eval(s.value, scope), what=f"update {s.name}")
        old = self.graph.type_of(self.graph.nodes[scope.lookup(s.name, s.span).value.node].out)
        if value.type != old:
            raise DlgShapeError(f"update {s.name}: new value {value.type} does not match {old}",
                                s.span)
        if len(self.frames) > 1:
            raise DlgSyntaxError("`update` is not allowed inside a scan body", s.span)
        self.graph.updates = [(n, v) for n, v in self.graph.updates if n != full]
        self.graph.updates.append((full, self.local(value)))

    # -- scan -------------------------------------------------------------------------------------
    def exec_scan(self, s: ast.Scan, scope: Scope) -> None:
        options = {k.name: self.eval(k.value, scope) for k in s.options}
        for k in s.options:
            if k.name not in ("axis", "reverse"):
                raise DlgNameError(f"scan takes axis= and reverse=, not {k.name}=", k.span)
        axis = options.get("axis", 0)
        reverse = options.get("reverse", False)
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise DlgTypeError(f"scan axis must be an int, got {describe(axis)}", s.span)
        seqs = [(name, self.expect_tensor(self.eval(e, scope), "a scan sequence", e.span))
                for name, e in s.sequences]
        inits = [(k.name, self.expect_tensor(self.eval(k.value, scope), f"carry {k.name!r}",
                                             k.value.span)) for k in s.carries]
        body = Graph("scan_body", span=s.span)
        frame = _Frame(body, Builder(body, self.user_span))
        self.frames.append(frame)
        body_scope = Scope(scope)
        try:
            for name, init in inits:
                body_scope[name] = self.wrap(frame.builder.input(name, init.type))
            for name, seq in seqs:
                a = axis % max(seq.type.rank, 1)
                if not -seq.type.rank <= axis < seq.type.rank:
                    raise DlgShapeError(f"scan axis {axis} is out of range for {seq.type}",
                                        s.span)
                step_type = seq.type.with_shape(seq.type.shape[:a] + seq.type.shape[a + 1:])
                body_scope[name] = self.wrap(frame.builder.input(name, step_type))
            self.exec_block(s.body, body_scope, "scan")
            for name, _ in inits:
                new = self.expect_tensor(body_scope.lookup(name, s.span), f"carry {name!r}",
                                         s.span)
                body.set_output(name, self.local(new))
            for name, value in frame.emits.items():
                body.set_output(name, self.local(value))
        finally:
            self.frames.pop()
        if not frame.emits and not inits:
            raise DlgSyntaxError("a scan body must update a carry or emit a value", s.span)
        outs = self.emit("scan", *[t for _, t in inits], *[t for _, t in seqs], *frame.outer,
                         body=body, n_carry=len(inits), n_seq=len(seqs), axis=axis,
                         reverse=reverse)
        names = [n for n, _ in inits] + list(frame.emits)
        for name, out in zip(names, outs):
            scope[name] = out

    def emit_step(self, s: ast.Emit, scope: Scope) -> None:
        frame = self.frames[-1]
        if s.name in frame.emits:
            raise DlgNameError(f"{s.name!r} is emitted twice in one scan step", s.span)
        frame.emits[s.name] = self.expect_tensor(self.eval(s.value, scope), f"emit {s.name}",
                                                 s.value.span)

    # -- expressions ------------------------------------------------------------------------------
    def eval(self, e: ast.Expr, scope: Scope) -> Any:
        with self.at(e.span):
            return self._eval(e, scope)

    def _eval(self, e: ast.Expr, scope: Scope) -> Any:
        if isinstance(e, ast.Literal):
            return e.value
        if isinstance(e, ast.Name):
            return scope.lookup(e.id, e.span)
        if isinstance(e, ast.TemplateName):
            return scope.lookup(self.eval_pname(e, scope), e.span)
        if isinstance(e, ast.TupleExpr):
            return tuple(self.eval(x, scope) for x in e.items)
        if isinstance(e, ast.BinOp):
            return self.binop(e, scope)
        if isinstance(e, ast.UnaryOp):
            return self.unaryop(e, scope)
        if isinstance(e, ast.Call):
            return self.call(e, scope)
        if isinstance(e, ast.Subscript):
            from_value = self.eval(e.value, scope)
            return self.subscript(from_value, e, scope)
        if isinstance(e, ast.GetAttr):
            return self.getattr(self.eval(e.value, scope), e)
        if isinstance(e, ast.Comprehension):
            return layer_lists.comprehension(self, e, scope)
        if isinstance(e, ast.DictExpr):
            raise DlgTypeError("{name: ...} declares named layers: `layer towers = {a: "
                               "Linear(4, 4), b: Linear(4, 4)}`", e.span)
        raise DlgSyntaxError("slices and `...` are only allowed inside [ ]", e.span)

    def binop(self, e: ast.BinOp, scope: Scope) -> Any:
        a = self.eval(e.left, scope)
        if e.op in ("and", "or") and not isinstance(a, GraphTensor):
            a_bool = self.static_bool(a, f"`{e.op}`", e.left.span)
            if (e.op == "and") != a_bool:
                return a_bool
            return self.static_bool(self.eval(e.right, scope), f"`{e.op}`", e.right.span)
        b = self.eval(e.right, scope)
        if e.op in ("==", "!=") and (a is None or b is None):
            return (a is None and b is None) == (e.op == "==")  # a tensor is never none
        if isinstance(a, GraphTensor) or isinstance(b, GraphTensor):
            return self.tensor_binop(e.op, a, b)
        if e.op in ("==", "!="):
            same = _static_equal(a, b)
            return same if e.op == "==" else not same
        if e.op == "@" or e.op not in _STATIC_BINOPS:
            raise DlgTypeError(f"`{e.op}` needs tensors, got {describe(a)} and {describe(b)}")
        for v in (a, b):
            if v is None or isinstance(v, (Function, Builtin, LayerClass, LayerInstance)):
                raise DlgTypeError(f"`{e.op}` cannot take {describe(v)}")
        try:
            return _STATIC_BINOPS[e.op](a, b)
        except ZeroDivisionError:
            raise DlgValueError(f"division by zero in `{e.op}`") from None
        except (TypeError, ValueError):
            raise DlgTypeError(f"`{e.op}` cannot combine {describe(a)} and {describe(b)}"
                               ) from None

    def tensor_binop(self, op: str, a: Any, b: Any) -> GraphTensor:
        if op not in _TENSOR_BINOPS:
            raise DlgTypeError(f"`{op}` is not defined on tensors")
        sides = operands(self, (a, b), (f"the left side of `{op}`", f"the right side of `{op}`"))
        return self.emit(_TENSOR_BINOPS[op], *sides)

    def unaryop(self, e: ast.UnaryOp, scope: Scope) -> Any:
        v = self.eval(e.operand, scope)
        if e.op == "not":
            if isinstance(v, GraphTensor):
                return self.emit("logical_not", v)
            return not self.static_bool(v, "`not`", e.operand.span)
        if isinstance(v, GraphTensor):
            return v if e.op == "+" else self.emit("neg", v)
        if isinstance(v, bool) or not isinstance(v, (int, float, Sym)):
            raise DlgTypeError(f"unary `{e.op}` needs a number or tensor, got {describe(v)}")
        return v if e.op == "+" else -v

    def call(self, e: ast.Call, scope: Scope) -> Any:
        if layer_lists.is_sequential(e, scope):
            raise DlgTypeError("Sequential(...) makes a layer list: declare it with "
                               "`layer name = Sequential(...)` and call `name(x)`", e.func.span)
        callee = self.eval(e.func, scope)
        args, kwargs = self.eval_args(e, scope)
        return self.apply(callee, args, kwargs, e.span, e.func.span)

    def apply(self, callee: Any, args: list[Any], kwargs: dict[str, Any], span: Span,
              func_span: Span | None = None) -> Any:
        if isinstance(callee, Builtin):
            given, keywords = bind_all(callee.fn, callee.name, tuple(args), kwargs)
            return callee.fn(self, *given, **keywords)
        if isinstance(callee, Function):
            bound = self.bind(callee.node.params, args, kwargs, callee.scope,
                              f"{callee.node.name}()", span)
            with self.nested(f"{callee.node.name}()", span):
                result = self.exec_block(callee.node.body, Scope(callee.scope, bound), "def")
            return result.value if result is not None else None
        if isinstance(callee, LayerInstance):
            return self.call_layer(callee, args, kwargs, span)
        if isinstance(callee, layer_lists.LayerList):
            return layer_lists.call_layers(self, callee, args, kwargs, span)
        if isinstance(callee, LayerClass):
            raise DlgTypeError(f"{callee.node.name}(...) makes a layer: declare it with "
                               f"`layer name = {callee.node.name}(...)` and call `name(x)`",
                               func_span or span)
        raise DlgTypeError(f"{describe(callee)} is not callable", func_span or span)

    def call_layer(self, inst: LayerInstance, args: list[Any], kwargs: dict[str, Any],
                   span: Span) -> Any:
        fwd = inst.forward
        if fwd is None:
            raise DlgTypeError(f"layer {inst.cls.node.name} has no forward function", span)
        name = inst.prefix.rstrip(".")
        bound = self.bind(fwd.params, args, kwargs, inst.scope, f"{name}.forward", span)
        self.instances.append(inst)
        try:
            result = self.exec_block(fwd.body, Scope(inst.scope, bound), "forward")
        finally:
            self.instances.pop()
        value = result.value if result is not None else None
        if len(self.frames) == 1:
            self.layer_calls.append(LayerCall(name, inst.cls.node.name, _tensor_types(value)))
        return value

    def eval_args(self, call: ast.Call, scope: Scope) -> tuple[list[Any], dict[str, Any]]:
        args = [self.eval(a, scope) for a in call.args]
        kwargs: dict[str, Any] = {}
        for k in call.kwargs:
            if k.name in kwargs:
                raise DlgSyntaxError(f"keyword argument {k.name!r} given twice", k.span)
            kwargs[k.name] = self.eval(k.value, scope)
        return args, kwargs

    def bind(self, params: tuple[ast.Param, ...], args: list[Any], kwargs: dict[str, Any],
             defscope: Scope, what: str, span: Span) -> dict[str, Any]:
        """Bind call arguments to a signature, Python-style, with clear errors."""
        names = [p.name for p in params]
        if len(args) > len(params):
            raise DlgTypeError(f"{what} takes {len(params)} argument"
                               f"{'s' if len(params) != 1 else ''}, got {len(args)}", span)
        bound: dict[str, Any] = dict(zip(names, args))
        for key, value in kwargs.items():
            if key not in names:
                raise DlgTypeError(f"{what} has no argument {key!r}{suggest(key, names)}", span)
            if key in bound:
                raise DlgTypeError(f"{what} got argument {key!r} twice", span)
            bound[key] = value
        for p in params:
            if p.name not in bound:
                if p.default is None:
                    raise DlgTypeError(f"{what} is missing argument {p.name!r}", span)
                bound[p.name] = self.eval(p.default, defscope)
            _check_annotation(p, bound[p.name], what, span)
        return bound

    def getattr(self, value: Any, e: ast.GetAttr) -> Any:
        if isinstance(value, GraphTensor):
            attrs = {"shape": value.type.shape, "dtype": value.type.dtype,
                     "ndim": value.type.rank}
            if e.name in attrs:
                return attrs[e.name]
            if e.name == "T":
                return self.emit("transpose", value, perm=_swap_last(value.type.rank, e.span))
            raise DlgNameError(f"a tensor has no attribute {e.name!r} (it has shape, dtype, "
                               "ndim, T)", e.span)
        if isinstance(value, LayerInstance):
            if value.scope.names.get(e.name, _MISSING) is _MISSING:
                raise DlgNameError(f"layer {value.prefix.rstrip('.')} has no attribute "
                                   f"{e.name!r}{suggest(e.name, value.scope.names)}", e.span)
            return value.scope.names[e.name]
        if isinstance(value, layer_lists.LayerList):
            return layer_lists.child(value, e.name, e.span)
        raise DlgTypeError(f"{describe(value)} has no attributes", e.span)

    def subscript(self, value: Any, e: ast.Subscript, scope: Scope) -> Any:
        items = [Ellipsis if isinstance(item, ast.EllipsisExpr) else
                 (self.eval_slice(item, scope) if isinstance(item, ast.SliceExpr)
                  else self.eval(item, scope)) for item in e.items]
        if isinstance(value, GraphTensor):
            return index(self, value, items)
        if isinstance(value, layer_lists.LayerList):
            return layer_lists.index_layers(value, items, e.span)
        return index_tuple(value, items, e.span)

    def eval_slice(self, s: ast.SliceExpr, scope: Scope) -> slice:
        return slice(*(None if x is None else self.eval(x, scope)
                       for x in (s.start, s.stop, s.step)))

    # -- types, names, checks ----------------------------------------------------------------------
    def eval_type(self, t: ast.TensorTypeExpr, scope: Scope, concrete: bool) -> TensorType:
        try:
            dtype = DType.parse(t.dtype)
        except ValueError:
            names = [d.value for d in DType]
            raise DlgTypeError(f"unknown dtype {t.dtype!r}{suggest(t.dtype, names)} "
                               f"(dtypes: {', '.join(names)})", t.span) from None
        dims: list[Dim] = []
        for d in t.dims:
            dims.extend(self.eval_dims(d, scope, concrete))
        return TensorType(dtype, tuple(dims))

    def eval_dims(self, e: ast.Expr, scope: Scope, concrete: bool) -> tuple[Dim, ...]:
        """One dim, or several when the expression is a tuple (`f32[shape]` splices it)."""
        dim_scope = Scope(scope, {n: Sym.named(n) for n in _free_symbols(e, scope)})
        value = self.eval(e, dim_scope)
        if isinstance(value, tuple):
            return tuple(self.check_dim(v, e, concrete) for v in value)
        return (self.check_dim(value, e, concrete),)

    def check_dim(self, value: Any, e: ast.Expr, concrete: bool) -> Dim:
        if isinstance(value, bool) or not isinstance(value, (int, Sym)):
            raise DlgShapeError(f"a dim must be an integer or a symbol, got {describe(value)}",
                                e.span)
        if isinstance(value, int) and value < 0:
            raise DlgShapeError(f"a dim cannot be negative, got {value}", e.span)
        if concrete and isinstance(value, Sym):
            raise DlgShapeError(f"parameter shapes must be known numbers, got {value}", e.span)
        return value

    def eval_pname(self, n: ast.Name | ast.TemplateName, scope: Scope) -> str:
        if isinstance(n, ast.Name):
            return n.id
        head, *parts = n.template.split("{")  # weight_ih_l{l}{suffix}: each {key} filled in
        for part in parts:
            key, _, tail = part.partition("}")
            value = scope.lookup(key, n.span)
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise DlgTypeError(f"{{{key}}} in a name must be an int or string, got "
                                   f"{describe(value)}", n.span)
            head += f"{value}{tail}"
        return head

    def static_bool(self, value: Any, what: str, span: Span) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, GraphTensor):
            raise DlgTypeError(f"{what} must be known when the model is built, but this is "
                               f"{describe(value)}; use where(cond, a, b) for tensors", span)
        if value is None:
            return False
        raise DlgTypeError(f"{what} needs a bool, got {describe(value)}", span)

    def expect_tensor(self, value: Any, what: str, span: Span) -> GraphTensor:
        if not isinstance(value, GraphTensor):
            raise DlgTypeError(f"{what} must be a tensor, got {describe(value)}", span)
        return value

    def check_scalar(self, value: Any, what: str, span: Span) -> GraphTensor:
        t = self.expect_tensor(value, what, span)
        if t.type.rank != 0:
            raise DlgShapeError(f"{what} must be a scalar, got {t.type}", span)
        return t


_MISSING = object()


def _free_symbols(e: ast.Expr, scope: Scope) -> set[str]:
    """Capitalised names in a dim expression that are not bound to a number: they are symbolic
    dims (N, T), even where a builtin has the same name."""
    out: set[str] = set()

    def walk(x: Any) -> None:
        if isinstance(x, ast.Name):
            bound = scope.lookup(x.id, None) if scope.has(x.id) else None
            if x.id[:1].isupper() and not isinstance(bound, (int, Sym)):
                out.add(x.id)
        elif isinstance(x, ast.Node):
            for v in vars(x).values():
                walk(v)
        elif isinstance(x, tuple):
            for v in x:
                walk(v)

    walk(e)
    return out


def _tensor_types(value: Any) -> tuple[TensorType, ...]:
    if isinstance(value, GraphTensor):
        return (value.type,)
    if isinstance(value, tuple):
        return tuple(t for v in value for t in _tensor_types(v))
    return ()


def _swap_last(rank: int, span: Span) -> tuple[int, ...]:
    if rank < 2:
        raise DlgShapeError(f"T needs a tensor of rank >= 2, got rank {rank}", span)
    return tuple(range(rank - 2)) + (rank - 1, rank - 2)


def _static_equal(a: Any, b: Any) -> bool:
    if isinstance(a, GraphTensor) or isinstance(b, GraphTensor):
        return False
    return bool(a == b) and type(a) is type(b) or (
        isinstance(a, (int, float, Sym)) and isinstance(b, (int, float, Sym)) and a == b
        and not isinstance(a, bool) and not isinstance(b, bool))


def _destructure(targets: tuple[ast.Target, ...], value: Any, span: Span
                 ) -> list[tuple[str, Any]]:
    if len(targets) == 1 and isinstance(targets[0], str):
        return [(targets[0], value)]
    if not isinstance(value, tuple):
        raise DlgTypeError(f"cannot unpack {describe(value)} into {len(targets)} names", span)
    if len(value) != len(targets):
        raise DlgTypeError(f"cannot unpack {len(value)} values into {len(targets)} names", span)
    out: list[tuple[str, Any]] = []
    for target, v in zip(targets, value):
        if isinstance(target, str):
            out.append((target, v))
        else:
            out.extend(_destructure(target, v, span))
    return out


def _check_annotation(p: ast.Param, value: Any, what: str, span: Span) -> None:
    ann = p.annotation
    if ann is None or ann == "any":
        return
    if ann not in _ANNOTATIONS:
        raise DlgNameError(f"unknown type {ann!r} for argument {p.name!r} "
                           f"(types: {', '.join(sorted(_ANNOTATIONS))})", p.span)
    ok = {
        "int": isinstance(value, (int, Sym)) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
        "tensor": isinstance(value, GraphTensor),
        "tuple": isinstance(value, tuple),
        "dtype": isinstance(value, DType),
        "layer": layer_lists.is_layer(value),
    }[ann]
    if not ok:
        raise DlgTypeError(f"{what}: argument {p.name!r} must be {ann}, got {describe(value)}",
                           span)


MAX_PARAM_ELEMENTS = 2**31 - 1  # one param must stay indexable with 32-bit offsets


def make_initial_value(init: Any, t: TensorType, rng: np.random.Generator) -> np.ndarray:
    """The starting value of a param: an initialiser, a number, or zeros when none is given."""
    shape = tuple(int(d) for d in t.shape)
    numel = math.prod(shape)
    if numel > MAX_PARAM_ELEMENTS:
        raise DlgValueError(f"param of shape {t} has {numel:,} elements "
                            f"({numel * t.dtype.np.itemsize / 2**30:,.1f} GiB); the limit is "
                            f"{MAX_PARAM_ELEMENTS:,} elements per param")
    if init is None:
        return np.zeros(shape, t.dtype.np)
    if isinstance(init, (int, float)) and not isinstance(init, bool):
        return np.full(shape, init, t.dtype.np)
    if isinstance(init, InitSpec):
        return initialize(init.name, rng, shape, t.dtype, *init.args, **dict(init.kwargs))
    raise DlgTypeError(f"a param starts from an initialiser such as uniform(-k, k) or a number, "
                       f"got {describe(init)}")
