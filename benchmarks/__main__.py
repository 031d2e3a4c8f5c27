"""`python -m benchmarks`: dlg compiled against every installed peer (PyTorch eager, onnxruntime,
JAX jit), in one run, on the same weights and data.

For each model: inference at each batch size, one training step (forward, loss, backward,
optimizer update as the .dlg train section says), and for linear_regression the whole 100-step
full-batch training loop. Medians in ms per call, the fastest peer per cell and dlg's ratio to
it, GFLOP/s per cell against the machine's measured peak, and cold compile times. Every peer
runs with one thread per core. Not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from benchmarks import machine
from benchmarks.cases import ALL
from benchmarks.report import Facts, load, report
from benchmarks.peers import PEERS, torch_peer
from benchmarks.runner import Options, run
from benchmarks.table import Row


def peak() -> tuple[float, str]:
    """The machine's fp32 peak from a large sgemm, with torch's BLAS when torch is installed
    (benchmarked or not: the peak should not depend on --peers), else NumPy's."""
    how = f"sgemm {machine.PEAK_SIZE}, {machine.cores()} threads"
    try:
        sgemm = torch_peer().sgemm
    except ImportError:
        return machine.peak_gflops(), f"NumPy {how}"
    return machine.peak_gflops(sgemm), f"torch {how}"


def parse_list(text: str, allowed: list[str], what: str) -> list[str]:
    if text in ("all", ""):
        return list(allowed)
    if text == "none":
        return []
    names = text.split(",")
    unknown = [n for n in names if n not in allowed]
    if unknown:
        sys.exit(f"unknown {what} {unknown[0]!r} (choose from {', '.join(allowed)}, all or none)")
    return names


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="all", help=f"comma-separated: {', '.join(ALL)}")
    parser.add_argument("--batches", default="1,64,1024", help="inference batch sizes")
    parser.add_argument("--train-batch", type=int, default=64)
    parser.add_argument("--peers", default="all",
                        help=f"comma-separated: {', '.join(PEERS)}; all or none (dlg alone)")
    parser.add_argument("--repeat", type=int, default=9, help="measurements per median")
    parser.add_argument("--min-time", type=float, default=0.05,
                        help="seconds each measurement lasts at least (calls are repeated)")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the report")
    parser.add_argument("--peak", type=float, metavar="GFLOPS",
                        help="the machine's fp32 peak, instead of measuring it")
    args = parser.parse_args(argv)
    os.environ["DLG_CACHE_DIR"] = "off"  # read at each compile: the compile times are cold
    options = Options(parse_list(args.models, ALL, "model"),
                      [int(b) for b in args.batches.split(",")],
                      parse_list(args.peers, list(PEERS), "peer"), args.train_batch,
                      args.repeat, args.min_time)
    facts = Facts(*((args.peak, "given") if args.peak else peak()))
    print(f"{machine.describe()}; fp32 peak {facts.peak:.0f} GFLOP/s ({facts.peak_how})",
          flush=True)
    results = run(options, progress)
    facts.loads.append(load())
    if not args.peak:
        facts.peak = max(facts.peak, peak()[0])
    print("\n" + report(results, facts, markdown=False), end="")
    if args.markdown:
        args.markdown.write_text(report(results, facts, markdown=True))
        print(f"wrote {args.markdown}")


def progress(row: Row) -> None:
    cells = "  ".join(f"{name} {cell.text()}" for name, cell in row.cells.items())
    print(f"{row.model} {row.what}: {cells}", flush=True)


if __name__ == "__main__":
    main()
