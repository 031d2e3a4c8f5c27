"""JAX jit as a peer: the reference models written in jax.numpy/lax with the .dlg files' weights
(PyTorch layouts), inference and the whole training step each one jitted function, the
optimizers written out as torch.optim defines them (optax is not a dependency), and the
regression's training loop as one `lax.fori_loop`. XLA uses every core, its default."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.cases import Case

# XLA's CPU client sizes its thread pool to the machine's cores and has no documented flag for
# the count (jax-ml/jax#743, #5022); multi-threaded Eigen is stated explicitly, as the default.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true")

import jax  # noqa: E402  (XLA reads its flags when it is imported)
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from benchmarks import jax_models  # noqa: E402

Params = dict[str, jax.Array]


def _loss_fn(case: Case) -> Callable[[Params, jax.Array, jax.Array], jax.Array]:
    net, loss = jax_models.BODIES[case.name], jax_models.LOSSES[case.loss]
    return lambda p, x, y: loss(net(p, x), y)


def _update(case: Case) -> Callable[[Params, Any, Params], tuple[Params, Any]]:
    """(params, state, grads) -> (params, state): torch.optim's rule for the train section's
    optimizer, with its hyperparameters."""
    return jax_models.OPTIMIZERS[case.optimizer](**case.hyper)


def _labels(y: np.ndarray) -> jax.Array:
    return jnp.asarray(y.astype(np.int32) if y.dtype == np.int64 else y)


def _compiled(fn: Callable, *args: Any, donate: tuple[int, ...] = ()) -> tuple[Callable, float]:
    """`fn` jitted and compiled ahead of time for `args`, and the seconds that took."""
    start = time.perf_counter()
    compiled = jax.jit(fn, donate_argnums=donate).lower(*args).compile()
    return compiled, time.perf_counter() - start


class Trainer:
    """`run()` takes `steps` steps (one jitted call: a fori_loop when steps > 1)."""

    def __init__(self, case: Case, x: np.ndarray, y: np.ndarray, steps: int = 1):
        loss_fn, update = _loss_fn(case), _update(case)
        grad = jax.value_and_grad(loss_fn)

        def step(p, state, xb, yb):
            loss, g = grad(p, xb, yb)
            p, state = update(p, state, g)
            return p, state, loss

        def loop(p, state, xb, yb):
            body = lambda _, c: step(c[0], c[1], xb, yb)  # noqa: E731
            return lax.fori_loop(0, steps, body, (p, state, jnp.float32(0)))

        self.p = {k: jnp.array(v) for k, v in case.init.items()}  # copies, donated to the step
        self.state = jax_models.init_state(case.optimizer, self.p)
        self.x, self.y = jnp.asarray(x), _labels(y)
        self.fn, self.compile_s = _compiled(step if steps == 1 else loop, self.p, self.state,
                                            self.x, self.y, donate=(0, 1))

    def run(self) -> float:
        self.p, self.state, loss = self.fn(self.p, self.state, self.x, self.y)
        return float(loss)

    def params(self) -> dict[str, np.ndarray]:
        return {k: np.array(v) for k, v in self.p.items()}  # copies: the next run donates them


class Peer:
    name = "jax"

    def __init__(self) -> None:
        self.compile_s: dict[tuple[str, str], float] = {}

    def supports(self, case: Case) -> bool:
        """Only the models written in jax_models (not resnet, transformer)."""
        return case.name in jax_models.BODIES

    def infer(self, case: Case, x: np.ndarray) -> Callable[[], Any]:
        net, head = jax_models.BODIES[case.name], jax_models.HEADS[case.head]
        p, jx = {k: jnp.asarray(v) for k, v in case.init.items()}, jnp.asarray(x)
        fn, seconds = _compiled(lambda p, x: head(net(p, x)), p, jx)
        self.compile_s.setdefault((case.name, "infer"), seconds)
        return lambda: fn(p, jx).block_until_ready()

    def train(self, case: Case, x: np.ndarray, y: np.ndarray) -> Trainer:
        trainer = Trainer(case, x, y)
        self.compile_s.setdefault((case.name, "train"), trainer.compile_s)
        return trainer

    def loop(self, case: Case, x: np.ndarray, y: np.ndarray, steps: int) -> Trainer:
        return Trainer(case, x, y, steps)
