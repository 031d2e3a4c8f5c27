"""Long runs: many batch-1 inference calls and training steps on one compiled model, with the
process's memory, open files and threads before and after.

    python -m tools.soak                                   # 1,000,000 calls, 100,000 steps
    python -m tools.soak --calls 20000 --steps 2000        # the suite's quick version

A leak per call shows only over a long run: a few bytes per call is megabytes after a million.
Resident memory is read after a warm-up (the first tenth of each phase: arenas planned, caches
filled, the allocator's pools grown) and at the end; the report gives the growth in percent and
the peak. File descriptors are /proc/self/fd, threads are /proc/self/status's count (native pool
workers included).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

MODEL = Path(__file__).resolve().parent.parent / "models" / "mlp.dlg"
TRAIN_BATCH = 32


@dataclass
class Phase:
    """One phase's figures: resident memory in bytes after warm-up and at the end, the peak
    sampled in between, and the counts before and after."""

    name: str
    count: int
    seconds: float
    rss_warm: int
    rss_end: int
    rss_peak: int
    fds_before: int
    fds_after: int
    threads_before: int
    threads_after: int

    @property
    def growth(self) -> float:
        """Resident memory growth after warm-up, in percent."""
        return 100.0 * (self.rss_end - self.rss_warm) / self.rss_warm


def status(field: str) -> int:
    """A number from /proc/self/status (kB fields in bytes)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            value = line.split()[1]
            return int(value) * (1024 if line.rstrip().endswith("kB") else 1)
    raise KeyError(field)


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def run_phase(name: str, count: int, call: Callable[[int], object]) -> Phase:
    """`call(k)` for k in range(count); memory read after the first tenth and every tenth
    after."""
    fds, threads = open_files(), status("Threads")
    warm = max(count // 10, 1)
    start = time.perf_counter()
    for k in range(warm):
        call(k)
    rss_warm = peak = status("VmRSS")
    for chunk in range(1, 10):
        for k in range(chunk * count // 10, (chunk + 1) * count // 10):
            call(k)
        peak = max(peak, status("VmRSS"))
    return Phase(name, count, time.perf_counter() - start, rss_warm, status("VmRSS"), peak,
                 fds, open_files(), threads, status("Threads"))


def soak(calls: int, steps: int) -> list[Phase]:
    """The inference phase (`calls` batch-1 calls of the compiled MLP, out= half of the time)
    then the training phase (`steps` compiled SGD steps on batches of TRAIN_BATCH)."""
    import dlg

    model = dlg.load(MODEL)
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((16, 1, 1, 28, 28)).astype(np.float32)
    out = np.empty((1, 10), np.float32)
    phases = []
    with dlg.compile(model) as exe:
        def infer(k: int) -> None:
            if k % 2:
                exe(xs[k % 16], out=out)
            else:
                exe(xs[k % 16])
        phases.append(run_phase("inference", calls, infer))
        step = exe.train_step()
        x = rng.standard_normal((4, TRAIN_BATCH, 1, 28, 28)).astype(np.float32)
        y = rng.integers(0, 10, (4, TRAIN_BATCH))

        def train(k: int) -> None:
            step(x[k % 4], y[k % 4])
        phases.append(run_phase("training", steps, train))
    return phases


def report(phases: list[Phase]) -> str:
    rows = []
    for p in phases:
        rows.append(f"{p.name}: {p.count:,} in {p.seconds:.1f} s "
                    f"({p.seconds / max(p.count, 1) * 1e6:.1f} us each); RSS after warm-up "
                    f"{p.rss_warm / 2**20:.1f} MiB, at the end {p.rss_end / 2**20:.1f} MiB "
                    f"({p.growth:+.3f} %), peak {p.rss_peak / 2**20:.1f} MiB; fds "
                    f"{p.fds_before} -> {p.fds_after}; threads {p.threads_before} -> "
                    f"{p.threads_after}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)
    phases = soak(args.calls, args.steps)
    print(report(phases))
    if args.json:
        args.json.write_text(json.dumps([asdict(p) | {"growth_percent": p.growth}
                                         for p in phases], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
