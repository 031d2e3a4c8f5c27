"""`python -m benchmarks`: dlg compiled vs the NumPy interpreter vs PyTorch eager, in one run.

For each model: cold compile time (the disk cache is off), inference at several batch sizes and
one training step (forward, backward, optimizer update), medians of repeated runs, and the
ratios against dlg compiled (> 1 means dlg is faster). Not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ["DLG_CACHE_DIR"] = "off"  # compile times are cold compiles

import dlg  # noqa: E402
from benchmarks.peers import torch_model  # noqa: E402

MODELS = Path(__file__).resolve().parent.parent / "models"
ALL = ["mlp", "convnet", "cnn", "cifar_cnn", "rnn", "gru", "lstm", "linear_regression",
       "logistic_regression"]
TORCH_LOSS = {"mlp": "nll_loss", "linear_regression": "mse_loss",
              "logistic_regression": "binary_cross_entropy_with_logits"}


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def batch(m: dlg.Model, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    shape = [n] + [int(d) for d in list(m.inputs["x"].shape)[1:]]
    x = rng.standard_normal(shape).astype(np.float32)
    label = m.train_graph.input_named("y").types[0]
    if label.dtype.is_float:
        y = rng.random([n] + [int(d) for d in label.shape[1:]]).astype(np.float32)
    else:
        y = rng.integers(0, 10, n).astype(np.int64)
    return x, y


def torch_step(name: str, m: dlg.Model, net, torch):
    spec = m.train_spec.optimizer
    hyper = {k: v for k, v in spec.hyper.items()}
    opt = getattr(torch.optim, spec.name)(net.parameters(), **hyper)
    loss_fn = getattr(torch.nn.functional, TORCH_LOSS.get(name, "cross_entropy"))
    logistic = name == "logistic_regression"

    def step(x, y):
        opt.zero_grad()
        out = net(x)
        loss = loss_fn(torch.logit(out) if logistic else out, y)
        loss.backward()
        opt.step()
    return step


def run(names: list[str], batches: list[int], train_batch: int, repeat: int,
        interpreter: bool) -> None:
    try:
        import torch
        torch.set_num_threads(os.cpu_count() or 1)
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    print(f"{'model':<20} {'what':<14} {'dlg ms':>9} {'interp ms':>10} {'torch ms':>9} "
          f"{'interp/dlg':>10} {'torch/dlg':>9}")
    for name in names:
        m = dlg.load(MODELS / f"{name}.dlg")
        start = time.perf_counter()
        exe = dlg.compile(m)
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        step = exe.train_step()
        step_compile_s = time.perf_counter() - start
        print(f"{name:<20} compile        {compile_s * 1000:9.0f}   (training step "
              f"{step_compile_s * 1000:.0f} ms)")
        net = None
        if torch is not None:
            net = torch_model(name)
            net.load_state_dict(dict(zip(net.state_dict(), (torch.from_numpy(v.copy())
                                                            for v in m.params.values()))))
        for n in batches:
            x, y = batch(m, n, rng)
            ours = median_ms(lambda: exe(x=x), repeat)
            ref = median_ms(lambda: m(x=x), max(1, repeat // 3)) if interpreter else None
            peer = None
            if net is not None:
                tx = torch.from_numpy(x)
                with torch.no_grad():
                    peer = median_ms(lambda: net(tx), repeat)
            row(name, f"infer b={n}", ours, ref, peer)
        x, y = batch(m, train_batch, rng)
        ours = median_ms(lambda: step(x=x, y=y), repeat)
        ref = None
        if interpreter:
            slow = m.train_step()
            ref = median_ms(lambda: slow(x=x, y=y), max(1, repeat // 3))
        peer = None
        if net is not None:
            tstep = torch_step(name, m, net, torch)
            tx, ty = torch.from_numpy(x), torch.from_numpy(y)
            peer = median_ms(lambda: tstep(tx, ty), repeat)
        row(name, f"train b={train_batch}", ours, ref, peer)


def row(name: str, what: str, ours: float, ref: float | None, peer: float | None) -> None:
    fmt = lambda v: f"{v:9.2f}" if v is not None else f"{'-':>9}"  # noqa: E731
    ratio = lambda v: f"{v / ours:9.2f}x" if v is not None else f"{'-':>10}"  # noqa: E731
    print(f"{name:<20} {what:<14} {ours:9.2f} {fmt(ref):>10} {fmt(peer)} {ratio(ref):>10} "
          f"{ratio(peer)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(ALL), help="comma-separated model names")
    parser.add_argument("--batches", default="1,64,1024", help="inference batch sizes")
    parser.add_argument("--train-batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=9, help="runs per median")
    parser.add_argument("--no-interpreter", action="store_true",
                        help="skip the (slow) NumPy interpreter")
    args = parser.parse_args()
    run(args.models.split(","), [int(b) for b in args.batches.split(",")], args.train_batch,
        args.repeat, not args.no_interpreter)


if __name__ == "__main__":
    main()
