"""Optional packages (onnx, torch, graphviz, tensorboardX): imported when a feature needs them,
so that dlg installs and imports with its core dependencies alone."""

from __future__ import annotations

import importlib
from types import ModuleType

from dlg.errors import DlgImportError


def optional_import(name: str, needed_for: str, install: str) -> ModuleType:
    """The module `name`, or a DlgImportError saying what needs it and how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise DlgImportError(f"{needed_for} needs the {name} Python package: {install}") from e
