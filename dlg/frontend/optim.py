"""`dlg.optim`: SGD, Adam, AdamW and RMSprop with PyTorch's interface (param_groups, zero_grad,
step), whose update is the graph the compiler uses (`dlg.compiler.optimizers`), run by the
interpreter: one implementation of each optimizer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from dlg.compiler.optimizers import apply_optimizer
from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend.tensor import Tensor
from dlg.ir.builder import Builder
from dlg.ir.graph import Graph
from dlg.ir.train_spec import OPTIMIZER_DEFAULTS, make_optimizer
from dlg.runtime.interp import Interpreter

LR = "optimizer.lr"


class Optimizer:
    name = ""

    def __init__(self, params: Iterable[Tensor], **hyper: Any):
        self.params = list(params)
        if not self.params:
            raise DlgValueError(f"{self.name} got an empty parameter list", engine.caller_span())
        self.spec = make_optimizer(self.name, hyper, engine.caller_span())
        self.param_groups = [{"params": self.params, **self.spec.hyper}]
        self.state: dict[str, np.ndarray] = {}
        self._graphs: dict[tuple[int, ...], Graph] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def step(self) -> None:
        with_grad = tuple(i for i, p in enumerate(self.params) if p.grad is not None)
        if not with_grad:
            return
        g = self._graphs.get(with_grad) or self._build(with_grad)
        values: dict[str, Any] = {f"p{i}": self.params[i].numpy_view() for i in with_grad}
        values.update(self.state)
        values[LR] = np.asarray(self.param_groups[0]["lr"], np.float32)
        inputs = {f"g{i}": self.params[i].grad.numpy_view()  # type: ignore[union-attr]
                  for i in with_grad}
        _, updates = Interpreter().run(g, inputs, values)
        for name, value in updates.items():
            if name.startswith("optimizer."):
                self.state[name] = value
            else:  # "p3": the 4th parameter, updated in place
                np.copyto(self.params[int(name[1:])].numpy_view(), value)

    def _build(self, with_grad: tuple[int, ...]) -> Graph:
        g = Graph(self.name)
        b = Builder(g)
        params = {f"p{i}": b.param(f"p{i}", self.params[i].type) for i in with_grad}
        grads = {f"p{i}": b.input(f"g{i}", self.params[i].type) for i in with_grad}
        state = apply_optimizer(b, self.spec, params, grads)
        for name, value in state.initial.items():
            self.state.setdefault(name, value)
        self._graphs[with_grad] = g
        return g


def _optimizer(name: str) -> type[Optimizer]:
    return type(name, (Optimizer,), {"name": name, "__doc__": f"torch.optim.{name}: "
                                     f"{', '.join(OPTIMIZER_DEFAULTS[name])}."})


SGD = _optimizer("SGD")
Adam = _optimizer("Adam")
AdamW = _optimizer("AdamW")
RMSprop = _optimizer("RMSprop")
