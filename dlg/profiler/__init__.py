"""`dlg.profiler`: torch.profiler's `profile`, `record_function`, `schedule` and trace handler,
timing dlg's eager ops (frontend/profiler.py says what is timed)."""

from dlg.frontend.profiler import (ProfilerAction, ProfilerActivity, profile, record_function,
                                   schedule, tensorboard_trace_handler)

__all__ = ["ProfilerAction", "ProfilerActivity", "profile", "record_function", "schedule",
           "tensorboard_trace_handler"]
