"""Throughput of one compiled model called from several Python threads at once (batch-1 MLP
calls), against one thread:

    python -m benchmarks.threads                      # 1 and 2 caller threads
    python -m benchmarks.threads --threads 1 2 4 --seconds 2

Each caller runs its calls in a loop; rounds alternate between the thread counts and the best
round of each counts. The native call runs with the GIL released and in an arena of its own, so
on an idle machine two callers on two cores approach twice the calls per second. On a loaded
machine the wall-clock ratio shows the cores the system gave us as much as our scaling, so the
report also gives the process's CPU use (CPU seconds per wall second: 2.0 means both callers
ran all the time) and the calls per CPU second (equal for 1 and 2 threads when the callers
never wait on each other).
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path

import numpy as np

MODEL = Path(__file__).resolve().parent.parent / "models" / "mlp.dlg"


def measure(call: object, threads: int, seconds: float) -> tuple[float, float, int]:
    """(wall seconds, process CPU seconds, calls) of `threads` callers running for `seconds`."""
    counts = [0] * threads
    stop = threading.Event()
    ready = threading.Barrier(threads + 1)

    def work(k: int) -> None:
        ready.wait()
        n = 0
        while not stop.is_set():
            for _ in range(100):
                call()  # type: ignore[operator]
            n += 100
        counts[k] = n
    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    ready.wait()
    wall, cpu = time.perf_counter(), time.process_time()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    return time.perf_counter() - wall, time.process_time() - cpu, sum(counts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=1.0, help="per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    import dlg

    exe = dlg.compile(dlg.load(MODEL))
    x = np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(np.float32)
    for _ in range(1000):
        exe(x)
    best: dict[int, tuple[float, float, float]] = {}  # calls/s, CPU use, calls per CPU second
    for _ in range(args.rounds):
        for t in args.threads:
            wall, cpu, calls = measure(lambda: exe(x), t, args.seconds)
            row = (calls / wall, cpu / wall, calls / max(cpu, 1e-9))
            if t not in best or row[0] > best[t][0]:
                best[t] = row
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"batch-1 MLP calls, best of {args.rounds} rounds of {args.seconds:g} s; "
          f"{os.cpu_count()} cores, load average {load:.1f}")
    one = best[args.threads[0]][0]
    for t in args.threads:
        rate, use, per_cpu = best[t]
        print(f"{t} thread{'s' if t > 1 else ' '}: {rate:10,.0f} calls/s ({rate / one:.2f}x), "
              f"CPU use {use:.2f}, {per_cpu:10,.0f} calls per CPU second")


if __name__ == "__main__":
    main()
