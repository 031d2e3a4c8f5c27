"""What one eager op costs in Python: small ops, where the arithmetic is nothing and the dispatch
is everything, the same code on dlg and torch side by side, and a char-RNN training step (the
PyTorch tutorial's names classifier) made of such ops:

    python -m benchmarks.eager_ops                    # every case, dlg and torch
    python -m benchmarks.eager_ops --cases tanh,add --calls 3000 --repeat 7 --no-torch

Each case is timed as a loop of `--calls` calls, best of `--repeat` loops, in the thread's CPU
time (`time.thread_time`): on a loaded machine wall time measures the neighbours, CPU time the
Python. dlg runs with its defaults (an op tiers to compiled code once its NumPy runs cost
OP_COMPILE_AFTER_S, a kept gradient graph once its runs cost COMPILE_AFTER_S), so each case
first runs `--warmup` seconds and the timed loops see the steady state; both libraries on one
thread. Not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

Case = Callable[[Any], Callable[[], object]]  # library -> one call, ready to repeat


def _x(lib: Any, shape: tuple[int, ...] = (1, 128), grad: bool = False) -> Any:
    data = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return lib.tensor(data, requires_grad=grad)


def _unary(grad: bool) -> Case:
    def case(lib: Any) -> Callable[[], object]:
        x = _x(lib, grad=grad)
        return lambda: lib.tanh(x)
    return case


def _method_tanh(lib: Any) -> Callable[[], object]:
    x = _x(lib)
    return lambda: x.tanh()


def _add(grad: bool) -> Case:
    def case(lib: Any) -> Callable[[], object]:
        x, b = _x(lib, grad=grad), _x(lib)
        return lambda: x + b
    return case


def _mul_scalar(lib: Any) -> Callable[[], object]:
    x = _x(lib)
    return lambda: x * 2.0


def _relu(lib: Any) -> Callable[[], object]:
    x, F = _x(lib), lib.nn.functional
    return lambda: F.relu(x)


def _sum(lib: Any) -> Callable[[], object]:
    x = _x(lib)
    return lambda: x.sum()


def _slice(lib: Any) -> Callable[[], object]:
    x = _x(lib)
    return lambda: x[:, :64]


def _cat(lib: Any) -> Callable[[], object]:
    x, h = _x(lib, (1, 57)), _x(lib)
    return lambda: lib.cat((x, h), 1)


def _linear(grad: bool) -> Case:
    def case(lib: Any) -> Callable[[], object]:
        lib.manual_seed(0)
        layer, x = lib.nn.Linear(185, 128), _x(lib, (1, 185))
        if not grad:
            for p in layer.parameters():
                p.requires_grad_(False)
        return lambda: layer(x)
    return case


def _log_softmax(lib: Any) -> Callable[[], object]:
    x = _x(lib, (1, 18))
    return lambda: lib.log_softmax(x, 1)


def char_rnn(lib: Any) -> Callable[[], object]:
    """One training step of the tutorial's RNN ([1, 57] letters, 128 hidden, 18 languages):
    8 steps of cat, two Linears and log_softmax, NLLLoss, backward, a manual SGD update."""
    nn = lib.nn
    lib.manual_seed(0)

    class RNN(nn.Module):
        def __init__(self, input_size: int, hidden_size: int, output_size: int):
            super().__init__()
            self.hidden_size = hidden_size
            self.i2h = nn.Linear(input_size + hidden_size, hidden_size)
            self.i2o = nn.Linear(input_size + hidden_size, output_size)
            self.softmax = nn.LogSoftmax(dim=1)

        def forward(self, input: Any, hidden: Any) -> Any:
            combined = lib.cat((input, hidden), 1)
            return self.softmax(self.i2o(combined)), self.i2h(combined)

    rnn, criterion, lr = RNN(57, 128, 18), nn.NLLLoss(), 0.005
    letters = np.zeros((8, 1, 57), np.float32)
    letters[np.arange(8), 0, np.arange(8) * 7] = 1
    line, category = lib.tensor(letters), lib.tensor([3])

    def step() -> object:
        hidden = lib.zeros(1, 128)
        rnn.zero_grad()
        for i in range(line.size()[0]):
            output, hidden = rnn(line[i], hidden)
        loss = criterion(output, category)
        loss.backward()
        for p in rnn.parameters():
            p.data.add_(p.grad.data, alpha=-lr)
        return loss.item()
    return step


CASES: dict[str, tuple[str, Case, int]] = {  # name: (what it times, case, calls per loop / this)
    "tanh": ("dlg.tanh(x)", _unary(False), 1),
    "tanh_grad": ("dlg.tanh(x), x requires grad", _unary(True), 1),
    "tanh_method": ("x.tanh()", _method_tanh, 1),
    "add": ("x + b", _add(False), 1),
    "add_grad": ("x + b, x requires grad", _add(True), 1),
    "mul_scalar": ("x * 2.0", _mul_scalar, 1),
    "relu": ("F.relu(x)", _relu, 1),
    "sum": ("x.sum()", _sum, 1),
    "slice": ("x[:, :64]", _slice, 1),
    "cat": ("cat((x, h), 1)", _cat, 1),
    "log_softmax": ("log_softmax(x, 1), [1, 18]", _log_softmax, 1),
    "linear": ("nn.Linear(185, 128)(x), no grad", _linear(False), 1),
    "linear_grad": ("nn.Linear(185, 128)(x)", _linear(True), 1),
    "char_rnn": ("char-RNN training step (8 letters)", char_rnn, 100),
}


def best_us(call: Callable[[], object], calls: int, repeat: int) -> float:
    """Best of `repeat` loops of `calls` calls, in microseconds of thread CPU time a call."""
    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        for _ in range(calls):
            call()
        best = min(best, time.thread_time() - start)
    return 1e6 * best / calls


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: "
                        + ", ".join(CASES))
    parser.add_argument("--calls", type=int, default=3000, help="calls a timed loop (a step "
                        "case runs a hundredth of them)")
    parser.add_argument("--repeat", type=int, default=7, help="loops, the best counts")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds each case runs "
                        "before it is timed (dlg's hot ops and gradient graphs compile)")
    parser.add_argument("--no-torch", action="store_true", help="time dlg alone")
    args = parser.parse_args(argv)
    import dlg
    libs: dict[str, Any] = {"dlg": dlg}
    if not args.no_torch:
        import torch
        torch.set_num_threads(1)
        libs["torch"] = torch
    print(f"us a call (thread CPU time, best of {args.repeat} loops of {args.calls}); "
          f"char_rnn in us a step")
    print(f"{'case':14} {'':38} " + " ".join(f"{name:>8}" for name in libs)
          + ("   dlg/torch" if "torch" in libs else ""))
    for name in args.cases.split(","):
        what, case, per = CASES[name]
        calls = max(1, args.calls // per)
        row = {}
        for lib_name, lib in libs.items():
            call = case(lib)
            warm_until = time.perf_counter() + args.warmup
            while time.perf_counter() < warm_until:
                call()
            row[lib_name] = best_us(call, calls, args.repeat)
        ratio = f"   {row['dlg'] / row['torch']:9.2f}" if "torch" in row else ""
        print(f"{name:14} {what:38} " + " ".join(f"{us:8.2f}" for us in row.values()) + ratio)


if __name__ == "__main__":
    main()
