"""DESIGN's arrows, read from the imports (STYLE §13): ir imports nothing else of dlg; the
compiler never imports grammar or frontend; the runtime does not import grammar or frontend."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dlg"

FORBIDDEN = {
    "ir": ("dlg.grammar", "dlg.frontend", "dlg.compiler", "dlg.runtime", "dlg.api", "dlg.cli"),
    "compiler": ("dlg.grammar", "dlg.frontend", "dlg.api", "dlg.cli"),
    "runtime": ("dlg.grammar", "dlg.frontend", "dlg.api", "dlg.cli"),
    "grammar": ("dlg.frontend", "dlg.compiler", "dlg.runtime", "dlg.api", "dlg.cli"),
}


def imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package):
    bad = []
    for path in sorted((PACKAGE / package).rglob("*.py")):
        for name in imports(path):
            if name.startswith(FORBIDDEN[package]):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


def test_no_function_level_imports_in_the_library():
    """A function-level import to dodge a cycle is a layering bug (STYLE §13)."""
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        bad.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    assert not bad, "function-level imports: " + ", ".join(bad)


def test_file_sizes_stay_under_the_hard_cap():
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "sz.py")], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout
