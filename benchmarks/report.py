"""The whole report of a run: when and where, the timing and throughput tables, compile times,
and every warning; as terminal text or as Markdown (what benchmarks/README.md holds)."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import machine
from benchmarks.runner import Results
from benchmarks.table import render, throughput_table, times_table

PACKAGES = ("numpy", "llvmlite", "torch", "onnx", "onnxscript", "onnxruntime", "jax", "jaxlib")
COMPILES = (("dlg", "infer", "dlg inference"), ("dlg", "train", "dlg training step"),
            ("jax", "infer", "JAX jit inference"), ("jax", "train", "JAX jit training step"))


def versions() -> str:
    found = [f"Python {platform.python_version()}"]
    for name in PACKAGES:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def commit() -> str:
    """The checkout's commit, `-dirty` when it has uncommitted changes (they ran too)."""
    here = Path(__file__).resolve().parent
    done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=here,
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def load() -> float:
    """The 1-minute load average: above the core count, the timings shared the machine."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


@dataclass
class Facts:
    """When and on what a run was made, read as it starts; the peak and load once more at the
    end (a shared machine: the better peak is kept, both loads are shown)."""

    peak: float
    peak_how: str
    date: str = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc)
                      .strftime("%Y-%m-%d %H:%M UTC"))
    commit: str = field(default_factory=commit)
    loads: list[float] = field(default_factory=lambda: [load()])


def compile_table(results: Results) -> tuple[list[str], list[list[str]]]:
    """Cold compile seconds per model (dlg's disk cache off; JAX's for the first shape)."""
    models = list(dict.fromkeys(model for _, model, _ in results.compile_s))
    columns = [c for c in COMPILES if any((c[0], m, c[1]) in results.compile_s for m in models)]
    seconds = lambda key: f"{results.compile_s[key]:.2f}" if key in results.compile_s else "-"
    body = [[m, *(seconds((peer, m, what)) for peer, what, _ in columns)] for m in models]
    return ["model", *(c[2] for c in columns)], body


def report(results: Results, facts: Facts, markdown: bool) -> str:
    missing = "; ".join(f"{k} ({v})" for k, v in results.missing.items()) or "none"
    peak = facts.peak
    header = [f"Date: {facts.date}, dlg {facts.commit}",
              f"Machine: {machine.describe()}; fp32 peak {peak:.0f} GFLOP/s ({facts.peak_how}); "
              f"load average {' -> '.join(f'{v:.1f}' for v in facts.loads)} (start -> end)",
              f"Versions: {versions()}",
              f"Peers missing: {missing}"]
    sections = [
        ("Median ms per call (lower is better; dlg / fastest below 1 means dlg is ahead)",
         times_table(results.rows, results.peers)),
        (f"GFLOP/s per cell and % of the {peak:.0f} GFLOP/s peak (a multiply-add counts as 2)",
         throughput_table(results.rows, results.peers, peak)),
        ("Cold compile, seconds", compile_table(results)),
    ]
    out = ["\n".join(f"- {h}" if markdown else h for h in header)]
    for title, (head, body) in sections:
        if body:
            out.append(f"{'#### ' if markdown else ''}{title}\n\n{render(head, body, markdown)}")
    if results.warnings:
        out.append(("#### " if markdown else "") + "Warnings\n\n" +
                   "\n".join(f"- {w}" for w in results.warnings))
    return "\n\n".join(out) + "\n"
