"""ONNX conformance counts by op: runs tests/onnx/test_backend.py's node cases (the interpreter,
or with --compiled every supported case compiled) and prints, per ONNX op, how many cases that
use it passed, failed as expected (XFAIL) or skipped, as the markdown table of docs/onnx.md.

    python tools/onnx_conformance.py [--compiled]
"""

from __future__ import annotations

import argparse
import sys
import unittest
import warnings
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
warnings.filterwarnings("ignore")

from tests.onnx import test_backend as suite  # noqa: E402


class Outcomes(unittest.TestResult):
    """Each case's outcome by name: passed, xfailed, skipped, failed."""

    def __init__(self) -> None:
        super().__init__()
        self.outcome: dict[str, str] = {}

    def _set(self, test: unittest.TestCase, outcome: str) -> None:
        self.outcome[test._testMethodName.removesuffix("_cpu").removeprefix("test_")] = outcome

    def addSuccess(self, test):  # noqa: N802 (unittest's names)
        self._set(test, "passed")

    def addExpectedFailure(self, test, err):  # noqa: N802
        self._set(test, "xfailed")

    def addSkip(self, test, reason):  # noqa: N802
        self._set(test, "skipped")

    def addFailure(self, test, err):  # noqa: N802
        self._set(test, "failed")

    addError = addFailure  # noqa: N815
    addUnexpectedSuccess = addSuccess  # noqa: N815


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compiled", action="store_true",
                        help="every supported case compiled for this CPU (minutes)")
    args = parser.parse_args()
    cls = suite.OnnxCompiledAllTest if args.compiled else suite.OnnxBackendNodeModelTest
    result = Outcomes()
    unittest.defaultTestLoader.loadTestsFromTestCase(cls).run(result)
    by_op: dict[str, Counter[str]] = defaultdict(Counter)
    for name, outcome in result.outcome.items():
        for op in suite.CASES["test_" + name]:
            by_op[op][outcome] += 1
    total = Counter(result.outcome.values())
    print(f"cases: {sum(total.values())}, " + ", ".join(f"{k} {v}" for k, v in sorted(
        total.items())))
    print("\n| op | passed | xfailed | failed |\n|---|---|---|---|")
    for op in sorted(op for op in by_op if op in suite.OPS):
        c = by_op[op]
        print(f"| {op} | {c['passed']} | {c['xfailed']} | {c['failed']} |")
    skipped = sorted(op for op in by_op if op not in suite.OPS)
    print(f"\nnot imported ({len(skipped)}, their cases skip): {' '.join(skipped)}")
    return 1 if total["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
