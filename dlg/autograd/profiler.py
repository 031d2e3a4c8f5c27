"""`dlg.autograd.profiler`: torch.autograd.profiler's `profile` and `record_function` (the same
profiler as dlg.profiler's: frontend/profiler.py)."""

from dlg.frontend.profiler import (EventList, FunctionEvent, FunctionEventAvg, profile,
                                   record_function)

__all__ = ["EventList", "FunctionEvent", "FunctionEventAvg", "profile", "record_function"]
