"""Timing one call: warm-ups, then the median over `repeat` measurements, each a run of enough
back-to-back calls to last at least `min_time` seconds (so short calls are not timer noise)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

WARMUP_S = 0.05  # at least this long (and 2 calls) of warm-up: caches, thread pools, allocators


def calls_per_measurement(fn: Callable[[], object], min_time: float) -> int:
    """Warm `fn` up and return how many calls one measurement needs to last `min_time`."""
    start, calls = time.perf_counter(), 0
    while calls < 2 or time.perf_counter() - start < WARMUP_S:
        fn()
        calls += 1
    per_call = (time.perf_counter() - start) / calls
    return max(1, int(min_time / per_call) + 1)


def median_seconds(fn: Callable[[], object], repeat: int, min_time: float) -> float:
    """The median seconds per call of `fn`."""
    number = calls_per_measurement(fn, min_time)
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)
