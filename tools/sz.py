"""Lines of code per file and per package of dlg (STYLE §13): warns above 400 lines a file and
fails above 800, so growth is a reviewed decision."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

SOFT, HARD = 400, 800
ROOT = Path(__file__).resolve().parent.parent / "dlg"


def count(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines()
               if line.strip() and not line.strip().startswith("#"))


def main() -> int:
    per_package: Counter[str] = Counter()
    status = 0
    for path in sorted(ROOT.rglob("*.py")):
        n = count(path)
        rel = path.relative_to(ROOT.parent)
        per_package[str(rel.parent)] += n
        flag = ""
        if n > HARD:
            flag, status = "  FAIL: over the hard cap", 1
        elif n > SOFT:
            flag = "  (over the soft cap)"
        print(f"{n:6d}  {rel}{flag}")
    print()
    for package, n in sorted(per_package.items()):
        print(f"{n:6d}  {package}/")
    print(f"{sum(per_package.values()):6d}  total")
    return status


if __name__ == "__main__":
    sys.exit(main())
