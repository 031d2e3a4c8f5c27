"""Run a fuzz campaign: cases in worker processes under a per-case deadline, a progress line,
and a summary of outcomes and findings.

A case is `check(seed, index) -> outcome`, a function of two ints, so the parent sends only the
index and a finding is replayed with `--case INDEX`. The deadline is in CPU seconds of the case
(on a machine shared by many, wall time is mostly waiting): a case over it runs once more and
is a `timeout` finding if it overruns again; a worker still busy after ten deadlines of wall
time is killed and replaced (a hang: a `timeout` too); a worker that dies is a `crash` finding.
An exception that is not a DlgError is a finding named by its type and the innermost dlg frame,
so a thousand cases hitting one bug count once, with their first index.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

Check = Callable[[int, int], str]
HUNG = 10  # a worker still busy after this many deadlines of wall time is killed


class Finding(Exception):
    """Raised by a check for a wrong result (a mismatch): reported like an escaped exception."""


def signature(e: BaseException) -> str:
    """Exception type, the innermost frame inside dlg (or the check) and the message's start."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "/dlg/" in f.filename]
    where = f"{frames[-1].filename.split('/dlg/')[-1]}:{frames[-1].lineno}" if frames else "?"
    message = str(e).split("\n")[0]
    if isinstance(e, Finding):  # its figures in parentheses vary from case to case
        message = message.split(" (")[0]
    message = message[:80]
    return f"{type(e).__name__} at {where}: {message}"


def run_case(check: Check, seed: int, index: int) -> tuple[str, str, str]:
    """(outcome, finding signature or "", traceback or "")."""
    try:
        return check(seed, index), "", ""
    except RecursionError as e:  # never acceptable, even when raised as part of a DlgError path
        return "finding", signature(e), traceback.format_exc()
    except Exception as e:  # noqa: BLE001  (a finding is any exception the check let through)
        return "finding", signature(e), traceback.format_exc()


def _worker(check: Check, seed: int, conn: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the campaign, not its cases
    conn.send("ready")  # imports done (spawning takes many seconds on a loaded machine)
    while True:
        index = conn.recv()
        if index is None:
            return
        start = time.process_time()  # CPU seconds: wall time on a loaded machine says little
        outcome, sig, tb = run_case(check, seed, index)
        conn.send((index, outcome, sig, tb, time.process_time() - start))


@dataclass
class Summary:
    campaign: str
    seed: int
    cases: int = 0
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    findings: dict[str, dict[str, Any]] = field(default_factory=dict)
    slowest: tuple[float, int] = (0.0, -1)
    interrupted: bool = False

    def add(self, index: int, outcome: str, sig: str, tb: str, seconds: float) -> None:
        self.cases += 1
        self.outcomes[outcome] += 1
        self.slowest = max(self.slowest, (seconds, index))
        if sig:
            entry = self.findings.setdefault(sig, {"count": 0, "first": index, "traceback": tb})
            entry["count"] += 1

    def text(self) -> str:
        stop = " (interrupted)" if self.interrupted else ""
        lines = [f"{self.campaign}: {self.cases} cases{stop} (seed {self.seed}) in "
                 f"{self.seconds:.0f} s, "
                 f"slowest case {self.slowest[0]:.2f} CPU s (#{self.slowest[1]})",
                 "outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())),
                 f"findings: {len(self.findings)}"]
        for sig, entry in sorted(self.findings.items(), key=lambda kv: kv[1]["first"]):
            lines.append(f"  {entry['count']:6d}x  first #{entry['first']}: {sig}")
        return "\n".join(lines)

    def json(self) -> dict[str, Any]:
        return {"campaign": self.campaign, "seed": self.seed, "cases": self.cases,
                "seconds": round(self.seconds, 1), "outcomes": dict(self.outcomes),
                "slowest": list(self.slowest), "interrupted": self.interrupted,
                "findings": self.findings}


class Pool:
    """Worker processes, each with one case in flight and a deadline."""

    def __init__(self, check: Check, seed: int, workers: int) -> None:
        self.check, self.seed = check, seed
        self.ctx = mp.get_context("spawn")
        self.slots: list[Any] = [self._start() for _ in range(workers)]

    def _start(self) -> list[Any]:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker, args=(self.check, self.seed, child), daemon=True)
        proc.start()
        child.close()
        parent.recv()
        return [proc, parent, None, 0.0]  # process, pipe, case in flight, its start time

    def restart(self, slot: list[Any]) -> None:
        slot[0].kill()
        slot[0].join()
        slot[:] = self._start()

    def close(self) -> None:
        for proc, conn, _, _ in self.slots:
            try:
                conn.send(None)
            except OSError:
                pass
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()


def run(name: str, check: Check, seed: int, cases: int, start: int = 0, workers: int = 1,
        timeout: float = 5.0, log: Callable[[str], None] | None = None) -> Summary:
    """Cases `start .. start+cases-1` of campaign `seed`, `workers` at a time."""
    summary = Summary(name, seed)
    os.environ.setdefault("DLG_VERIFY", "1")  # the IR verified after every pass, as in tests
    pool = Pool(check, seed, workers)
    todo = list(range(start, start + cases))[::-1]
    retried: set[int] = set()
    began = last_report = time.perf_counter()
    try:
        while not summary.interrupted and (todo or any(s[2] is not None for s in pool.slots)):
            for slot in pool.slots:
                if slot[2] is None and todo:
                    slot[2], slot[3] = todo.pop(), time.perf_counter()
                    slot[1].send(slot[2])
            busy = [s for s in pool.slots if s[2] is not None]
            ready = wait([s[1] for s in busy], timeout=1.0)
            for slot in busy:
                if slot[1] in ready:
                    try:
                        index, outcome, sig, tb, seconds = slot[1].recv()
                    except (EOFError, OSError):
                        code = slot[0].exitcode
                        summary.add(slot[2], "crash", f"worker died (exit code {code})", "",
                                    time.perf_counter() - slot[3])
                        pool.restart(slot)
                        continue
                    if seconds > timeout and index not in retried:
                        retried.add(index)
                        todo.append(index)  # once more: the machine is shared and noisy
                    else:
                        if seconds > timeout:
                            outcome = "timeout"
                            sig = f"case over {timeout:g} CPU s ({seconds:.1f} s)"
                        summary.add(index, outcome, sig, tb, seconds)
                    slot[2] = None
                elif time.perf_counter() - slot[3] > HUNG * timeout:  # hung: killed
                    summary.add(slot[2], "timeout", f"case over {HUNG * timeout:g} s of wall "
                                "time (killed)", "", time.perf_counter() - slot[3])
                    pool.restart(slot)
            now = time.perf_counter()
            if log and (now - last_report > 2 or not todo):
                last_report = now
                summary.seconds = now - began
                log(progress(summary, cases))
    except KeyboardInterrupt:  # Ctrl-C: the summary of the cases run so far
        summary.interrupted = True
    finally:
        pool.close()
    summary.seconds = time.perf_counter() - began
    return summary


def progress(s: Summary, total: int) -> str:
    done = s.cases / max(total, 1)
    rate = s.cases / max(s.seconds, 1e-9)
    eta = (total - s.cases) / rate if rate else 0
    bar = "#" * int(30 * done) + "." * (30 - int(30 * done))
    return (f"[{bar}] {s.cases}/{total} {rate:.1f}/s eta {eta / 60:.0f} min "
            f"findings {len(s.findings)}")


def write(summary: Summary, path: str | None) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(summary.json(), f, indent=1)


def console() -> Callable[[str], None]:
    """A progress bar redrawn in place on a terminal; one line per report in a log file."""
    tty = sys.stderr.isatty()

    def log(line: str) -> None:
        sys.stderr.write(("\r" + line) if tty else (line + "\n"))
        sys.stderr.flush()
    return log

