"""`dlg.jit`: torch.jit's spellings (`trace`, `script`, `save`, `load` and the decorators) for
programs written against it. dlg has no TorchScript: frontend/jit.py says what each gives."""

from typing import Final

from dlg.frontend.jit import (LoadedModule, ScriptModule, annotate, export, freeze, ignore,
                              is_scripting, is_tracing, load, optimize_for_inference, save,
                              script, script_method, trace, unused)

ScriptFunction = ScriptModule  # isinstance checks of either pass for what trace returns

__all__ = ["Final", "LoadedModule", "ScriptFunction", "ScriptModule", "annotate", "export",
           "freeze", "ignore", "is_scripting", "is_tracing", "load", "optimize_for_inference",
           "save", "script", "script_method", "trace", "unused"]
