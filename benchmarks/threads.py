"""Throughput of one compiled model called from several Python threads at once (MLP calls),
against one caller, with onnxruntime's InferenceSession.run measured the same way:

    python -m benchmarks.threads                      # batch 1, 1 and 2 caller threads
    python -m benchmarks.threads --batch 64 --threads 1 2 4 --seconds 2

Each caller runs its calls in a loop; rounds alternate between the runners and the best round of
each counts. Both libraries run their native code with the GIL released, each dlg call in an
arena of its own, so callers overlap there; the Python around each call holds the GIL, and
handing the GIL from thread to thread costs microseconds of wake-up. With every core per call
one caller already keeps the cores busy; with one thread a call, callers scale as far as the
Python share of a call and those hand-overs allow. The report gives the process's CPU use (CPU
seconds per wall second: 2.0 means both cores ran all the time) and the calls per CPU second,
so a loaded machine shows as what it is.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable



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


def runners(batch: int) -> dict[str, Callable[[], object]]:
    """Batch calls of the MLP by who runs them: dlg with every core per call and with one, and
    onnxruntime (when installed) with intra-op threads = cores and = 1, as a server would set
    each."""
    import dlg

    from benchmarks.cases import Case
    from benchmarks.machine import cores

    case = Case.load("mlp")
    exe = dlg.compile(case.model)
    x = case.batch(batch)[0]
    n = cores()

    def dlg_with(threads: int) -> Callable[[], object]:
        def call() -> object:
            return exe(x)
        call.threads = threads  # type: ignore[attr-defined]
        return call
    calls: dict[str, Callable[[], object]] = {f"dlg, {n} threads a call": dlg_with(n),
                                              "dlg, 1 thread a call": dlg_with(1)}
    try:
        from benchmarks import onnx_peer
    except ImportError:
        print("onnxruntime: missing (pip install -e '.[bench]')")
        return calls
    for threads in (n, 1):
        session = onnx_peer.session(case, threads)
        feed = {"x": x}
        calls[f"onnxruntime, {threads} intra-op thread{'s' if threads > 1 else ''}"] = (
            lambda run=session.run, feed=feed: run(None, feed))
    return calls


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="caller thread counts (default: 1 2)")
    parser.add_argument("--batch", type=int, default=1, help="rows per call (default: 1)")
    parser.add_argument("--seconds", type=float, default=1.0, help="per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    import dlg

    calls = runners(args.batch)
    best: dict[tuple[str, int], tuple[float, float, float]] = {}  # calls/s, CPU use, per CPU s
    for _ in range(args.rounds):
        for name, call in calls.items():
            if hasattr(call, "threads"):
                dlg.set_num_threads(call.threads)
            for _ in range(200):
                call()
            for t in args.threads:
                wall, cpu, count = measure(call, t, args.seconds)
                row = (count / wall, cpu / wall, count / max(cpu, 1e-9))
                if (name, t) not in best or row[0] > best[name, t][0]:
                    best[name, t] = row
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"batch-{args.batch} MLP calls, best of {args.rounds} rounds of {args.seconds:g} s; "
          f"{os.cpu_count()} cores, load average {load:.1f}")
    print(f"{'':32} {'callers':>7} {'calls/s':>10} {'vs 1 caller':>11} {'CPU use':>7} "
          f"{'calls per CPU s':>15}")
    for name in calls:
        one = best[name, args.threads[0]][0]
        for t in args.threads:
            rate, use, per_cpu = best[name, t]
            print(f"{name:32} {t:7} {rate:10,.0f} {rate / one:10.2f}x {use:7.2f} "
                  f"{per_cpu:15,.0f}")


if __name__ == "__main__":
    main()
