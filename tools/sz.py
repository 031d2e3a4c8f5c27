"""Lines of code per file and per package of dlg (STYLE §13): warns above 400 lines a file and
fails above 800, so growth is a reviewed decision. Blank and comment-only lines do not count.

    python tools/sz.py [PACKAGE_DIR]      (default: the dlg/ next to this file)
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

SOFT, HARD = 400, 800
ROOT = Path(__file__).resolve().parent.parent / "dlg"


def count(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines()
               if line.strip() and not line.strip().startswith("#"))


def main(root: Path = ROOT) -> int:
    per_package: Counter[str] = Counter()
    status = 0
    for path in sorted(root.rglob("*.py")):
        n = count(path)
        rel = path.relative_to(root.parent)
        per_package[str(rel.parent)] += n
        flag = ""
        if n > HARD:
            flag, status = f"  error: over the hard cap of {HARD} lines", 1
        elif n > SOFT:
            flag = f"  warning: over the soft cap of {SOFT} lines"
        print(f"{n:6d}  {rel}{flag}")
    print()
    for package, n in sorted(per_package.items()):
        print(f"{n:6d}  {package}/")
    print(f"{sum(per_package.values()):6d}  total")
    return status


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT))
