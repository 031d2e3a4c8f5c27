"""The optional Graphviz pieces: the `graphviz` Python package (builds DOT source) and the
`dot` program (lays it out as SVG, PNG or PDF). Both are loaded or run only when a picture is
asked for; a missing one is a DlgImportError that names how to install both."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from dlg.errors import DlgImportError, DlgValueError
from dlg.files import write_bytes
from dlg.optional import optional_import

INSTALL = ("pip install 'dlg[viz]' (the graphviz Python package) and the Graphviz programs "
           "(apt install graphviz, brew install graphviz)")
SOURCE_FORMATS = ("dot", "gv")  # DOT text: no `dot` program needed
IMAGE_FORMATS = ("svg", "png", "pdf")


def graphviz_module() -> ModuleType:
    """The `graphviz` package, or a DlgImportError saying how to install it."""
    return optional_import("graphviz", "drawing a graph", INSTALL)


def format_of(path: Path, fmt: str | None) -> str:
    """The picture format: `fmt` if given, else the file's suffix (`graph.svg` -> svg)."""
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in SOURCE_FORMATS + IMAGE_FORMATS:
        known = ", ".join(SOURCE_FORMATS + IMAGE_FORMATS)
        raise DlgValueError(f"{path}: cannot tell the picture format from "
                            f"{'the suffix' if fmt else 'a file without a suffix'} "
                            f"{fmt!r}; use one of {known} (or --format)")
    return fmt


def save(picture: Any, path: str | Path, fmt: str | None = None) -> None:
    """Write a `graphviz.Digraph` to `path`: DOT source for .dot/.gv, else laid out by the
    `dot` program in the format of the suffix (or `fmt`). Written atomically."""
    path = Path(path)
    fmt = format_of(path, fmt)
    write_bytes(path, picture.source.encode() if fmt in SOURCE_FORMATS else _layout(picture, fmt))


def _layout(picture: Any, fmt: str) -> bytes:
    graphviz = graphviz_module()
    try:
        return picture.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise DlgImportError(f"writing {fmt.upper()} needs Graphviz's `dot` program, which is "
                             f"not on PATH: {INSTALL}; or write DOT source (-o graph.dot) "
                             f"without it") from None
    except graphviz.CalledProcessError as e:
        raise DlgValueError(f"Graphviz's dot failed: {e.stderr.decode(errors='replace')}"
                            ) from None
