"""PyTorch's OpInfo samples through dlg (tests/opinfo): the per-op table (samples, pass, refused,
crash, mismatch), then every crash and mismatch grouped by likely cause with one example each,
the refusals by reason, and the OpInfos dlg does not expose.

    python tools/opinfo_report.py [--compiled] [--ops a,b] [--cap N] [--small-ints]

--compiled runs each op's samples traced and compiled against eager dlg instead (8 samples an
op unless --cap says otherwise: every sample is an LLVM compile). --ops takes OpInfo names
(`sum`, `nn.functional.relu`) or target keys (`sum:method`). --small-ints runs the uint8, int8
and int16 samples of each op that torch supports them for instead (values only; each op's
function spelling), eagerly against torch or, with --compiled, compiled against eager dlg.
Needs torch and expecttest.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's tests/

try:
    from tests.opinfo import harness
    from tests.opinfo.compiled import run_target_compiled
except ImportError as e:  # torch or expecttest missing
    sys.exit(f"opinfo_report needs the parity extra (pip install -e '.[parity]'): {e}")

COMPILED_CAP = 8


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compiled", action="store_true",
                        help="traced and compiled against eager dlg")
    parser.add_argument("--ops", help="comma-separated OpInfo names or target keys")
    parser.add_argument("--cap", type=int, help="at most this many samples per op")
    parser.add_argument("--small-ints", action="store_true",
                        help="the uint8, int8 and int16 samples instead of float32's")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    targets, left_out = harness.scope()
    small = harness.small_int_targets(targets) if args.small_ints else []
    if args.ops:
        wanted = set(args.ops.split(","))

        def picked(t: harness.Target) -> bool:
            return t.key in wanted or t.opinfo.name in wanted or t.key.split(":")[0] in wanted
        targets = [t for t in targets if picked(t)]
        small = [(t, d) for t, d in small if picked(t)]
    if args.small_ints and args.compiled:
        cap = args.cap if args.cap is not None else COMPILED_CAP
        results = [r for t, d in small for r in run_target_compiled(t, cap, dtype=d)]
    elif args.small_ints:
        results = [r for t, d in small for r in harness.run_target(t, args.cap, dtype=d)]
    elif args.compiled:
        cap = args.cap if args.cap is not None else COMPILED_CAP
        results = [r for t in harness.one_per_opinfo(targets) for r in
                   run_target_compiled(t, cap)]
    else:
        results = [r for t in targets for r in harness.run_target(t, args.cap)]
    print(harness.table(results))
    for title, outcomes in (("crashes and mismatches", ("crash", "mismatch")),
                            ("refusals", ("refused",))):
        groups = harness.by_cause(results, outcomes)
        print(f"\n== {title}, by likely cause ({len(groups)} groups) ==")
        for cause, members in groups.items():
            first = {r.key: r for r in reversed(members)}  # each op's first sample
            print(f"\n[{len(members)}] {cause}")
            if outcomes == ("refused",):
                print(f"  ops: {', '.join(sorted(first))}")
            else:  # for the engineers fixing them: every op, one sample each
                for key, r in sorted(first.items()):
                    print(f"  {key} sample {r.index}: {r.sample}")
            example = members[0]
            print(f"  e.g. {example.key} sample {example.index}: {example.detail}")
    if not args.ops and not args.compiled:
        print(f"\n== OpInfos not in scope ({len(left_out)}) ==")
        for reason in sorted(set(left_out.values())):
            names = sorted(n for n, why in left_out.items() if why == reason)
            print(f"\n{reason} ({len(names)}):")
            print(textwrap.fill(", ".join(names), 100, initial_indent="  ",
                                subsequent_indent="  "))
    if harness.DROPPED:
        print(f"\nsamples torch itself rejects, not counted: {harness.DROPPED}")
    print(f"\n{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
