"""A training loop as PyTorch users write it (zero_grad, forward, loss, backward, optimizer step),
the same code on torch and on dlg, eager and through `compile(model)`:

    python -m benchmarks.eager_loop                       # MLP 784-256-10 and a small CNN, Adam
    python -m benchmarks.eager_loop --batch 128 --steps 50 --no-torch-compile

The main runner times dlg's whole-step compiled training (`dlgc train`'s path); this is the
path a ported PyTorch program takes, where each step crosses Python: dlg eager records ops and
runs its kept gradient graph, `dlg.compile(model)` runs a compiled forward and backward with
the optimizer outside. Each runner first trains `--warmup` seconds (a training run's steady
state: torch.compile has compiled, and so have dlg's hot eager ops and gradient graphs), then
rounds alternate between the runners and the best median counts. Both libraries use every
core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.machine import cores


def mlp(lib: Any) -> Any:
    nn = lib.nn
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


def cnn(lib: Any) -> Any:
    nn = lib.nn
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 7 * 7, 10))


def mnist_net(lib: Any) -> Any:
    """pytorch/examples' mnist/main.py Net (its log_softmax left to the loss)."""
    nn = lib.nn
    return nn.Sequential(nn.Conv2d(1, 32, 3, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(), nn.Linear(9216, 128),
                         nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))


MODELS = {"mlp": mlp, "cnn": cnn, "mnist_net": mnist_net}


def training_step(lib: Any, make: Callable[[Any], Any], compiled: bool, batch: int
                  ) -> Callable[[], object]:
    """One step of the loop, on MNIST-shaped random data, ready to call."""
    lib.manual_seed(0)
    model = make(lib)
    opt = lib.optim.Adam(model.parameters(), lr=1e-3)
    if compiled:
        model = lib.compile(model)
    rng = np.random.default_rng(0)
    x = lib.tensor(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32))
    y = lib.tensor(rng.integers(0, 10, batch))
    loss_fn = lib.nn.CrossEntropyLoss()

    def step() -> object:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss
    for _ in range(3):  # compiles (dlg: the optimizer's update from its fourth step)
        step()
    return step


def median_ms(step: Callable[[], object], steps: int) -> float:
    samples = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        samples.append(time.perf_counter() - start)
    return 1000 * statistics.median(samples)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="mlp,cnn",
                        help="mlp, cnn, mnist_net (pytorch/examples' MNIST Net); default mlp,cnn")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="steps per round's median")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds each runner trains before it is timed (default 3): a "
                             "training run's steady state, where dlg's eager ops and gradient "
                             "graphs have compiled (each once its NumPy runs cost 0.25 s)")
    parser.add_argument("--no-torch-compile", action="store_true",
                        help="skip torch.compile (its first compile takes tens of seconds)")
    args = parser.parse_args(argv)
    import torch

    import dlg
    torch.set_num_threads(cores())
    for name in args.models.split(","):
        make = MODELS[name]
        runners = {"torch eager": training_step(torch, make, False, args.batch),
                   "dlg eager": training_step(dlg, make, False, args.batch),
                   "dlg.compile(model)": training_step(dlg, make, True, args.batch)}
        if not args.no_torch_compile:
            runners["torch.compile(model)"] = training_step(torch, make, True, args.batch)
        for step in runners.values():
            warm_until = time.perf_counter() + args.warmup
            while time.perf_counter() < warm_until:
                step()
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            for runner, step in runners.items():
                ms = median_ms(step, args.steps)
                best[runner] = min(best.get(runner, ms), ms)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"{name}, Adam, batch {args.batch}: median ms a step, best of {args.rounds} "
              f"rounds; {cores()} cores, load average {load:.1f}")
        for runner, ms in best.items():
            print(f"  {runner:22} {ms:8.3f}  {ms / best['torch eager']:5.2f}x torch eager")


if __name__ == "__main__":
    main()
