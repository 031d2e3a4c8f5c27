"""The reference models, their heads and losses, and torch.optim's SGD and Adam, in jax.numpy.

Weights are the .dlg files' (PyTorch's names and layouts: Linear's weight is [out, in], conv
weights OIHW, recurrent gates in PyTorch's order: LSTM i,f,g,o; GRU r,z,n).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

Params = dict[str, jax.Array]


def linear(p: Params, name: str, x: jax.Array) -> jax.Array:
    return x @ p[f"{name}.weight"].T + p[f"{name}.bias"]


def conv(p: Params, name: str, x: jax.Array, padding: int) -> jax.Array:
    y = lax.conv_general_dilated(x, p[f"{name}.weight"], (1, 1), [(padding, padding)] * 2,
                                 dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return y + p[f"{name}.bias"][None, :, None, None]


def max_pool2(x: jax.Array) -> jax.Array:
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")


def flatten(x: jax.Array) -> jax.Array:
    return x.reshape(x.shape[0], -1)


def mlp(p: Params, x: jax.Array) -> jax.Array:
    return linear(p, "fc2", jax.nn.relu(linear(p, "fc1", flatten(x))))


def convnet(p: Params, x: jax.Array) -> jax.Array:
    h = jax.nn.relu(conv(p, "conv1", x, 0))
    return linear(p, "fc2", jax.nn.relu(linear(p, "fc1", flatten(h))))


def cnn(blocks: int) -> Callable[[Params, jax.Array], jax.Array]:
    """conv(3x3, padding 1)-relu-pool blocks conv1..convN, then fc1-relu-fc2."""
    def net(p: Params, x: jax.Array) -> jax.Array:
        for i in range(blocks):
            x = max_pool2(jax.nn.relu(conv(p, f"conv{i + 1}", x, 1)))
        return linear(p, "fc2", jax.nn.relu(linear(p, "fc1", flatten(x))))
    return net


def _rnn_cell(gi: jax.Array, gh: jax.Array, carry: Any) -> Any:
    return jnp.tanh(gi + gh)


def _gru_cell(gi: jax.Array, gh: jax.Array, h: jax.Array) -> jax.Array:
    ir, iz, in_ = jnp.split(gi, 3, axis=1)
    hr, hz, hn = jnp.split(gh, 3, axis=1)
    r, z = jax.nn.sigmoid(ir + hr), jax.nn.sigmoid(iz + hz)
    n = jnp.tanh(in_ + r * hn)
    return (1 - z) * n + z * h


def _lstm_cell(gi: jax.Array, gh: jax.Array, hc: tuple[jax.Array, jax.Array]) -> Any:
    i, f, g, o = jnp.split(gi + gh, 4, axis=1)
    c = jax.nn.sigmoid(f) * hc[1] + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c), c


CELLS = {"rnn": _rnn_cell, "gru": _gru_cell, "lstm": _lstm_cell}


def recurrent(kind: str) -> Callable[[Params, jax.Array], jax.Array]:
    """A one-layer batch-first RNN/GRU/LSTM of 128 units read to its last step, then fc: the
    input projection of every step is one matmul before the scan, as PyTorch's kernels do."""
    cell = CELLS[kind]

    def net(p: Params, x: jax.Array) -> jax.Array:
        w_hh, b_hh = p[f"{kind}.weight_hh_l0"], p[f"{kind}.bias_hh_l0"]
        gates_in = jnp.swapaxes(x @ p[f"{kind}.weight_ih_l0"].T + p[f"{kind}.bias_ih_l0"], 0, 1)
        h0 = jnp.zeros((x.shape[0], w_hh.shape[1]), x.dtype)
        carry0 = (h0, h0) if kind == "lstm" else h0

        def step(carry, gi):
            h = carry[0] if kind == "lstm" else carry
            carry = cell(gi, h @ w_hh.T + b_hh, carry)
            return carry, None
        carry, _ = lax.scan(step, carry0, gates_in)
        return linear(p, "fc", carry[0] if kind == "lstm" else carry)
    return net


def regression(squeeze: bool) -> Callable[[Params, jax.Array], jax.Array]:
    def net(p: Params, x: jax.Array) -> jax.Array:
        y = linear(p, "linear", x)
        return y[:, 0] if squeeze else y
    return net


BODIES = {"mlp": mlp, "convnet": convnet, "cnn": cnn(1), "cifar_cnn": cnn(2),
          "rnn": recurrent("rnn"), "gru": recurrent("gru"), "lstm": recurrent("lstm"),
          "linear_regression": regression(False), "logistic_regression": regression(True)}
HEADS = {None: lambda v: v, "log_softmax": lambda v: jax.nn.log_softmax(v, axis=1),
         "sigmoid": jax.nn.sigmoid}


def cross_entropy(logits: jax.Array, y: jax.Array) -> jax.Array:
    logp = jax.nn.log_softmax(logits, axis=1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def bce_with_logits(z: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean(jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z))))


LOSSES = {"cross_entropy": cross_entropy, "mse": lambda out, y: jnp.mean((out - y) ** 2),
          "bce_with_logits": bce_with_logits}


def init_state(optimizer: str, p: Params) -> dict[str, Any]:
    """The optimizer's state: a step count and one zero buffer per parameter for each moment."""
    zeros = lambda: {k: jnp.zeros_like(v) for k, v in p.items()}  # noqa: E731
    moments = {"SGD": ("buf",), "Adam": ("m", "v")}[optimizer]
    return {"t": jnp.zeros((), jnp.int32), **{m: zeros() for m in moments}}


def sgd(lr: float, momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0,
        nesterov: bool = False, maximize: bool = False, **_: Any) -> Callable:
    """torch.optim.SGD: the first step's buffer is the gradient itself (no dampening)."""
    def update(p: Params, s: dict[str, Any], g: Params) -> tuple[Params, dict[str, Any]]:
        new_p, buf = {}, {}
        for k in p:
            d = -g[k] if maximize else g[k]
            d = d + weight_decay * p[k] if weight_decay else d
            if momentum:
                buf[k] = jnp.where(s["t"] == 0, d, momentum * s["buf"][k] + (1 - dampening) * d)
                d = d + momentum * buf[k] if nesterov else buf[k]
            else:
                buf[k] = s["buf"][k]
            new_p[k] = p[k] - lr * d
        return new_p, {"t": s["t"] + 1, "buf": buf}
    return update


def adam(lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
         weight_decay: float = 0.0, amsgrad: bool = False, maximize: bool = False,
         decoupled_weight_decay: bool = False, **_: Any) -> Callable:
    """torch.optim.Adam (AdamW's decay when decoupled)."""
    if amsgrad:
        raise NotImplementedError("Adam(amsgrad=True) is not written for JAX here")
    b1, b2 = betas

    def update(p: Params, s: dict[str, Any], g: Params) -> tuple[Params, dict[str, Any]]:
        t = s["t"] + 1
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        new_p, m, v = {}, {}, {}
        for k in p:
            d, w = (-g[k] if maximize else g[k]), p[k]
            if weight_decay and decoupled_weight_decay:
                w = w * (1 - lr * weight_decay)
            elif weight_decay:
                d = d + weight_decay * w
            m[k] = b1 * s["m"][k] + (1 - b1) * d
            v[k] = b2 * s["v"][k] + (1 - b2) * d * d
            new_p[k] = w - (lr / c1) * m[k] / (jnp.sqrt(v[k]) / jnp.sqrt(c2) + eps)
        return new_p, {"t": t, "m": m, "v": v}
    return update


OPTIMIZERS = {"SGD": sgd, "Adam": adam}
