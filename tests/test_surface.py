"""README's list of the eager surface is what `import dlg` offers (tools/surface.py lists it from
the live namespaces; `--write` regenerates it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _surface_tool():
    spec = importlib.util.spec_from_file_location("surface", ROOT / "tools" / "surface.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_lists_the_eager_surface():
    assert _surface_tool().main(["--check"]) == 0, "run: python tools/surface.py --write"


def test_the_list_names_what_exists():
    import dlg

    sections = _surface_tool().sections()
    assert {"relu", "cat", "gather", "sort", "einsum"} <= set(sections["`dlg.` functions"])
    assert "view_as" in sections["`Tensor` methods and properties"]
    assert "Conv2d" in sections["`dlg.nn` modules"] and "Module" not in sections["`dlg.nn` modules"]
    for name in sections["`dlg.` functions"]:
        assert callable(getattr(dlg, name)), name
