"""Run a fuzz campaign with a progress bar and a summary:

    python -m tools.fuzz parse  --cases 100000 --seed 0 --workers 2   # (a) .dlg sources
    python -m tools.fuzz graphs --cases 10000                          # (b) compiled vs interp
    python -m tools.fuzz nn     --cases 2000                           # (c) eager/traced/compiled
    python -m tools.fuzz parse  --case 1234 --seed 0                   # replay one case

Exit status 1 when a finding was made. `--json PATH` writes the summary with a traceback per
finding. Compiled code goes to a fresh cache folder, removed at the end.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import signal
import sys
import tempfile

from tools.fuzz.campaign import console, run, run_case, write

CAMPAIGNS = {"parse": "tools.fuzz.dlg_sources", "graphs": "tools.fuzz.graphs",
             "nn": "tools.fuzz.nets"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.fuzz", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("campaign", choices=CAMPAIGNS)
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0, help="first case index (to resume)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--timeout", type=float,
                    help="seconds a case may take (parse: 5, graphs: 60, nn: 120)")
    ap.add_argument("--json", help="write the summary here")
    ap.add_argument("--case", type=int, help="replay one case in this process and show it")
    args = ap.parse_args(argv)
    # Ctrl-C, or `kill PID` of a campaign started in the background (where SIGINT is ignored),
    # stops it with the summary of the cases run so far
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    cache = tempfile.mkdtemp(prefix="dlg-fuzz-cache-")
    os.environ.setdefault("DLG_CACHE_DIR", cache)
    module = importlib.import_module(CAMPAIGNS[args.campaign])
    try:
        if args.case is not None:
            print(module.describe(args.seed, args.case))
            outcome, sig, tb = run_case(module.check, args.seed, args.case)
            print(outcome, sig, tb, sep="\n")
            return 1 if sig else 0
        summary = run(args.campaign, module.check, args.seed, args.cases, args.start,
                      args.workers, args.timeout or module.TIMEOUT, log=console())
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(file=sys.stderr)
    print(summary.text())
    write(summary, args.json)
    return 1 if summary.findings else 0


if __name__ == "__main__":
    sys.exit(main())
