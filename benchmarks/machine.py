"""The machine the table was measured on: CPU model, cores, AVX-512, and its measured fp32 peak
(a large sgemm on every core: what the table's "% of peak" columns divide by)."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np

PEAK_SIZE = 2048  # sgemm side: large enough for any BLAS to reach its steady state


def cores() -> int:
    """Cores this process may run on: every peer gets this many threads."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    path = Path("/proc/cpuinfo")
    for line in path.read_text().splitlines() if path.exists() else []:
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def cpu_model() -> str:
    """The model name, with x86's family/model numbers (a VM may show only "AMD EPYC")."""
    info = _cpuinfo()
    name = info.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in info and "model" in info:
        name += f" (family {info['cpu family']}, model {info['model']})"
    return name


def avx512() -> bool:
    return "avx512f" in _cpuinfo().get("flags", "").split()


def peak_gflops(matmul=np.matmul, repeat: int = 5) -> float:
    """The best GFLOP/s of a PEAK_SIZE³ fp32 matrix product (2·n³ FLOPs) with `matmul` (torch's
    when installed: NumPy's BLAS may be slower)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((PEAK_SIZE, PEAK_SIZE)).astype(np.float32) for _ in range(2))
    matmul(a, b)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * PEAK_SIZE ** 3 / best / 1e9


def describe() -> str:
    """One line: CPU model, cores, AVX-512."""
    return f"{cpu_model()}, {cores()} cores, AVX-512: {'yes' if avx512() else 'no'}"
