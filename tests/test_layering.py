"""DESIGN's arrows, read from the imports (STYLE §13): ir imports only ir and dlg.errors; the
user-facing functions (dlg.functions) only ir, errors and themselves; the compiler never imports
grammar or frontend; the runtime does not import grammar or frontend (only
dlg/api.py, the top-level face, and dlg/cli.py may import everything)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dlg"

IR_MAY_IMPORT = ("dlg.ir", "dlg.errors")
FUNCTIONS_MAY_IMPORT = ("dlg.functions", "dlg.ir", "dlg.errors")
FORBIDDEN = {
    "compiler": ("dlg.grammar", "dlg.frontend", "dlg.api", "dlg.cli"),
    "runtime": ("dlg.grammar", "dlg.frontend", "dlg.api", "dlg.cli"),
    "grammar": ("dlg.frontend", "dlg.compiler", "dlg.runtime", "dlg.api", "dlg.cli"),
}


def imported_names(source: str, package: list[str]) -> list[str]:
    """Absolute names of the modules (or module members) that `source`, a module of `package`,
    imports; relative imports are resolved so they cannot slip past the checks."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            if node.module:
                out.append(".".join(base + [node.module]))
            else:
                out.extend(".".join(base + [a.name]) for a in node.names)
    return out


def imports(path: Path) -> list[str]:
    return imported_names(path.read_text(), list(path.relative_to(ROOT).parts[:-1]))


def test_relative_imports_are_resolved():
    source = "from . import a\nfrom .b import c\nfrom ..d import e\nimport dlg.x as y\n"
    assert imported_names(source, ["dlg", "ir", "ops"]) == [
        "dlg.ir.ops.a", "dlg.ir.ops.b", "dlg.ir.d", "dlg.x"]


def test_ir_imports_only_ir_and_errors():
    bad = [f"{path.relative_to(ROOT)} imports {name}"
           for path in sorted((PACKAGE / "ir").rglob("*.py")) for name in imports(path)
           if name.split(".")[0] == "dlg" and not name.startswith(IR_MAY_IMPORT)]
    assert not bad, "\n".join(bad)


def test_functions_import_only_functions_ir_and_errors():
    """The layer both front doors share sits above ir and below grammar and frontend."""
    bad = [f"{path.relative_to(ROOT)} imports {name}"
           for path in sorted((PACKAGE / "functions").rglob("*.py")) for name in imports(path)
           if name.split(".")[0] == "dlg" and not name.startswith(FUNCTIONS_MAY_IMPORT)]
    assert not bad, "\n".join(bad)


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


def run_sz(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools" / "sz.py"), *args],
                          capture_output=True, text=True)


def test_file_sizes_stay_under_the_hard_cap():
    proc = run_sz()
    assert proc.returncode == 0, proc.stdout
    assert "dlg/ir/" in proc.stdout and "total" in proc.stdout


def test_sz_warns_over_400_lines_and_fails_over_800(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "small.py").write_text("x = 1\n\n# comment\n" * 10)
    (pkg / "sub" / "big.py").write_text("x = 1\n" * 401)
    proc = run_sz(str(pkg))
    assert proc.returncode == 0
    assert "    10  pkg/small.py\n" in proc.stdout
    assert "   401  pkg/sub/big.py  warning: over the soft cap" in proc.stdout
    assert "   411  total" in proc.stdout
    (pkg / "sub" / "big.py").write_text("x = 1\n" * 801)
    proc = run_sz(str(pkg))
    assert proc.returncode == 1 and "error: over the hard cap" in proc.stdout
