"""torch.optim.swa_utils: stochastic weight averaging and EMA.

`AveragedModel` keeps a deep copy of the model whose parameters (and with `use_buffers` its
buffers) are a running average of the model's at each `update_parameters`: the equal-weight
mean by default (torch's p_avg + (p - p_avg) / (n + 1)), or `avg_fn(p_avg, p, n_averaged)`
(get_ema_avg_fn's exponential one). The averages are written into the copy's tensors in
place without gradient (`copy_` under no_grad), as torch's. `SWALR` anneals each group's lr
to `swa_lr` (cosine or linear) with torch's chainable arithmetic; `update_bn` recomputes
BatchNorm's running statistics with one pass over a loader (momentum None: a plain average).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any

import numpy as np

from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend.lr_scheduler import LRScheduler
from dlg.frontend.nn.module import Module
from dlg.frontend.nn.norms import _BatchNorm
from dlg.frontend.optim import Optimizer
from dlg.frontend.tensor import Tensor

AvgFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def get_ema_avg_fn(decay: float = 0.999) -> AvgFn:
    """decay * p_avg + (1 - decay) * p, torch's EMA."""
    def ema_update(ema_param: Tensor, current_param: Tensor, num_averaged: Tensor) -> Tensor:
        return decay * ema_param + (1 - decay) * current_param
    return ema_update


def get_swa_avg_fn() -> AvgFn:
    def swa_update(averaged_param: Tensor, current_param: Tensor, num_averaged: Tensor
                   ) -> Tensor:
        return averaged_param + (current_param - averaged_param) / (num_averaged + 1)
    return swa_update


class AveragedModel(Module):
    """torch's: `module` (a deep copy of the model), buffer `n_averaged`; calling it runs the
    averaged copy."""

    def __init__(self, model: Module, device: Any = None, avg_fn: AvgFn | None = None,
                 multi_avg_fn: Any = None, use_buffers: bool = False):
        super().__init__()
        if multi_avg_fn is not None:
            raise DlgValueError("AveragedModel: multi_avg_fn (torch's foreach variant) is not "
                                "supported; pass avg_fn (dlg.optim.swa_utils.get_ema_avg_fn)",
                                engine.caller_span())
        if device is not None and str(device).split(":")[0] != "cpu":
            raise DlgValueError(f"AveragedModel: device {str(device)!r}: eager dlg tensors live "
                                f"on the CPU", engine.caller_span())
        self.module = copy.deepcopy(model)
        self.register_buffer("n_averaged", Tensor.of(np.zeros((), np.int64)))
        self.avg_fn, self.use_buffers = avg_fn, use_buffers

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def update_parameters(self, model: Module) -> None:
        mine = (chain(self.module.parameters(), self.module.buffers()) if self.use_buffers
                else self.module.parameters())
        theirs = (chain(model.parameters(), model.buffers()) if self.use_buffers
                  else model.parameters())
        n = int(self.n_averaged.item())
        with engine.no_grad():
            for p_avg, p in zip(mine, theirs, strict=True):
                avg, cur = p_avg.detach(), p.detach()
                if n == 0:
                    new = cur
                elif self.avg_fn is not None:
                    new = self.avg_fn(avg, cur, self.n_averaged)
                elif avg.dtype.is_float:
                    new = avg + (cur - avg) / (n + 1)
                else:  # torch's default averages ints with integer division's rounding
                    new = avg + (cur - avg) // (n + 1)
                p_avg.copy_(new)
            if not self.use_buffers:  # the model's buffers as they are
                for b_avg, b in zip(self.module.buffers(), model.buffers(), strict=True):
                    b_avg.copy_(b.detach())
            self.n_averaged.fill_(n + 1)


def update_bn(loader: Iterable[Any], model: Module, device: Any = None) -> None:
    """torch's: every BatchNorm's running statistics reset, then one pass over `loader` in
    training mode with momentum None (an equal-weight average over the batches)."""
    momenta = {}
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.reset_running_stats()
            momenta[module] = module.momentum
    if not momenta:
        return
    was_training = model.training
    model.train()
    for module in momenta:
        module.momentum = None
    try:
        with engine.no_grad():
            for batch in loader:
                model(batch[0] if isinstance(batch, (list, tuple)) else batch)
    finally:
        for module, momentum in momenta.items():
            module.momentum = momentum
        model.train(was_training)


class SWALR(LRScheduler):
    """torch's: each group's lr annealed from its value to `swa_lr` over `anneal_epochs` steps,
    by (1 - cos(pi t)) / 2 or linearly, then held."""

    def __init__(self, optimizer: Optimizer, swa_lr: float | list[float], anneal_epochs: int = 10,
                 anneal_strategy: str = "cos", last_epoch: int = -1):
        lrs = swa_lr if isinstance(swa_lr, (list, tuple)) else [swa_lr] * len(
            optimizer.param_groups)
        if len(lrs) != len(optimizer.param_groups):
            raise DlgValueError(f"SWALR: swa_lr must have the length of param_groups, got "
                                f"{len(lrs)} for {len(optimizer.param_groups)}",
                                engine.caller_span())
        for lr, group in zip(lrs, optimizer.param_groups):
            group["swa_lr"] = lr
        if anneal_strategy not in ("cos", "linear"):
            raise DlgValueError(f"anneal_strategy must by one of 'cos' or 'linear', instead got "
                                f"{anneal_strategy}", engine.caller_span())
        if not isinstance(anneal_epochs, int) or anneal_epochs < 0:
            raise DlgValueError(f"anneal_epochs must be equal or greater than 0, got "
                                f"{anneal_epochs}", engine.caller_span())
        self.anneal_strategy, self.anneal_epochs = anneal_strategy, anneal_epochs
        super().__init__(optimizer, last_epoch)

    def _anneal(self, t: float) -> float:
        return (1 - math.cos(math.pi * t)) / 2 if self.anneal_strategy == "cos" else t

    def get_lr(self) -> list[float]:
        step = self._step_count - 1
        if self.anneal_epochs == 0:
            step = max(1, step)
        prev_alpha = self._anneal(max(0, min(1, (step - 1) / max(1, self.anneal_epochs))))
        alpha = self._anneal(max(0, min(1, step / max(1, self.anneal_epochs))))
        out = []
        for group in self.optimizer.param_groups:
            swa = group["swa_lr"]
            prev = swa if prev_alpha == 1 else (group["lr"] - prev_alpha * swa) / (1 - prev_alpha)
            out.append(swa * alpha + prev * (1 - alpha))
        return out
