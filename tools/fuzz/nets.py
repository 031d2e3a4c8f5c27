"""Campaign (c): random dlg.nn compositions, eager vs traced (`dlg.trace`, run by the NumPy
interpreter) vs compiled, outputs and parameter gradients.

A net is a `Sequential` grown layer by layer from the current activation's layout: flat
[N, F] (Linear, LayerNorm, BatchNorm1d, activations, Dropout), sequences [N, C, L] (Conv1d,
pools, BatchNorm1d, InstanceNorm1d, GroupNorm, recurrent layers over [N, L, C]) and images
[N, C, H, W] (Conv2d, pools, adaptive pools, BatchNorm2d, GroupNorm, Dropout2d), with Flatten
between them. Nets run in eval mode (dropout off, norms on running statistics). The net and
sum(net(x) * weights) are traced together at batch 2 and run at batch 3 (the symbolic batch),
eager output and `backward()` gradients (input and parameters) against the traced graph's output
and autodiff gradients, interpreted and compiled (one native graph: compiling is the slow
step). Judged as tools/fuzz/oracle.py says.
"""

from __future__ import annotations

import random
from functools import cache
from typing import Any

import numpy as np

import dlg
from dlg import nn
from dlg.compiler.passes.autodiff import grad
from dlg.runtime.interp import Interpreter
from dlg.runtime.native import NativeGraph
from tools.fuzz.oracle import close, float64_run

TIMEOUT = 120.0  # seconds a case may take: compiling a gradient graph is slow on a loaded box
ACTIVATIONS = ["ReLU", "Tanh", "Sigmoid", "GELU", "SiLU", "ELU", "LeakyReLU", "Softplus",
               "Hardswish", "Mish", "ReLU6", "Hardtanh", "Softsign", "LogSigmoid", "SELU"]


class Recurrent(nn.Module):
    """[N, C, L] -> a recurrent layer over L -> its per-step outputs [N, L, H] -> [N, H, L]."""

    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x: Any) -> Any:
        return self.rnn(x.transpose(1, 2))[0].transpose(1, 2)


class Loss(nn.Module):
    """The net's output and sum(net(x) * weights), a scalar whose gradient reaches every
    parameter: one traced graph gives the output and, through autodiff, the gradients."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Any, weights: Any) -> Any:
        y = self.net(x)
        return y, (y * weights).sum()


class NetMaker:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def pick(self, *options: Any) -> Any:
        return self.rng.choice(options)

    def layer(self, shape: list[int]) -> tuple[nn.Module, list[int]] | None:
        """One layer that fits activations of `shape` (batch excluded), and its output shape."""
        r, rng = self.pick, self.rng
        common = ["act", "dropout", "identity"]
        if len(shape) == 1:
            (f,) = shape
            kind = r(*common, "linear", "linear", "layernorm", "batchnorm")
            if kind == "linear":
                g = rng.randint(1, 9)
                return nn.Linear(f, g, bias=rng.random() < 0.8), [g]
            if kind == "layernorm":
                return nn.LayerNorm(f, elementwise_affine=rng.random() < 0.7), shape
            if kind == "batchnorm":
                return nn.BatchNorm1d(f), shape
        else:
            c, spatial = shape[0], shape[1:]
            two = len(spatial) == 2
            kind = r(*common, "conv", "conv", "pool", "norm", "flatten",
                     "adaptive" if two else "recurrent")
            if kind == "conv":
                k = rng.randint(1, min(3, *spatial))
                groups = r(*[g for g in range(1, c + 1) if c % g == 0])
                c_out = groups * rng.randint(1, 3)
                stride, pad = rng.randint(1, 2), rng.randint(0, k // 2)
                conv = (nn.Conv2d if two else nn.Conv1d)(c, c_out, k, stride=stride,
                                                         padding=pad, groups=groups,
                                                         bias=rng.random() < 0.8)
                return conv, [c_out] + [(s + 2 * pad - k) // stride + 1 for s in spatial]
            if kind == "pool":
                k = rng.randint(1, min(2, *spatial))
                cls = r(*((nn.MaxPool2d, nn.AvgPool2d) if two else (nn.MaxPool1d, nn.AvgPool1d)))
                return cls(k, stride=k), [c] + [(s - k) // k + 1 for s in spatial]
            if kind == "norm":
                groups = r(*[g for g in range(1, c + 1) if c % g == 0])
                return r(nn.BatchNorm2d(c) if two else nn.BatchNorm1d(c),
                         nn.GroupNorm(groups, c),
                         nn.InstanceNorm2d(c) if two else nn.InstanceNorm1d(c)), shape
            if kind == "flatten":
                return nn.Flatten(), [int(np.prod(shape))]
            if kind == "adaptive":
                size = [rng.randint(1, s) for s in spatial]
                return r(nn.AdaptiveAvgPool2d(size), nn.AdaptiveMaxPool2d(size)), [c] + size
            if kind == "recurrent":
                h = rng.randint(1, 6)
                cls = r(nn.RNN, nn.GRU, nn.LSTM)
                return Recurrent(cls(c, h, batch_first=True)), [h] + spatial
        if kind == "act":
            return getattr(nn, r(*ACTIVATIONS))(), shape
        if kind == "dropout":
            return (nn.Dropout(0.5) if len(shape) != 3 else nn.Dropout2d(0.5)), shape
        return nn.Identity(), shape

    def build(self) -> tuple[nn.Module, list[int]]:
        rng = self.rng
        shape = [rng.randint(1, 5)] + [rng.randint(2, 7) for _ in range(rng.randint(0, 2))]
        layers, first = [], list(shape)
        for _ in range(rng.randint(2, 8)):
            made = self.layer(shape)
            if made is None or min(made[1]) < 1:
                continue
            layers.append(made[0])
            shape = made[1]
        net = nn.Sequential(*layers) if layers else nn.Sequential(nn.Identity())
        return net.eval(), first


def make(seed: int, index: int) -> tuple[nn.Module, list[int], np.random.Generator]:
    rng = random.Random(f"nn:{seed}:{index}")
    dlg.manual_seed(rng.randrange(2**31))
    net, shape = NetMaker(rng).build()
    return net, shape, np.random.default_rng(rng.randrange(2**31))


def check(seed: int, index: int) -> str:
    net, shape, data = make(seed, index)
    example = data.standard_normal([2] + shape).astype(np.float32)
    x = data.standard_normal([3] + shape).astype(np.float32)
    loss = Loss(net)
    xt = dlg.tensor(x, requires_grad=True)
    weights = data.standard_normal(net(xt).shape).astype(np.float32)
    y, total = loss(xt, dlg.tensor(weights))
    total.backward()
    want = {"output0": y.detach().numpy(), "x": xt.grad.numpy()}
    want |= {k: p.grad.numpy() for k, p in loss.named_parameters() if p.grad is not None}

    m = dlg.trace(loss, dlg.tensor(example), dlg.tensor(weights[:2]))
    g = grad(m.graph, "output1", wrt=["x"] + m.trainable)
    inputs = {"x": x, "weights": weights}
    interp, _ = Interpreter().run(g, inputs, m.params)
    native = NativeGraph(g)(inputs, dict(m.params))

    @cache
    def exact() -> dict[str, np.ndarray]:
        return float64_run(g, inputs, m.params)
    for name, w in want.items():
        key = name if name in interp else next(k for k in interp if k.endswith("." + name)
                                                 or k.endswith("_" + name))
        close(f"traced {key}", interp[key], w, lambda k=key: exact()[k])
        close(f"compiled {key}", native[key], interp[key], lambda k=key: exact()[k])
    return "ok"


def describe(seed: int, index: int) -> str:
    net, shape, _ = make(seed, index)
    return f"input [N, {', '.join(map(str, shape))}]\n{net!r}"
