"""`dlg.profiler` and `dlg.autograd.profiler`: torch's profilers over dlg's eager op dispatch.

While a profile records, `engine.apply` times every op it dispatches (`engine.set_op_timer`;
when none records, dispatch pays one check). Each timed op is an event `dlg::<op>` (torch's
are `aten::<op>`), CPU time only; the ops a composite runs inside are part of its time.
`record_function(name)` is a range event holding the ops (and ranges) inside it, so its self
time is what they leave. Backward passes and compiled calls (`dlg.compile`, one native call)
are timed where they dispatch through `apply`; NumPy code outside it is not.
`key_averages().table(sort_by=...)` prints torch's columns: name, self CPU %, self CPU, CPU
total %, CPU total, CPU time avg, number of calls (and input shapes with `record_shapes`).
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.ir.ops.opdef import OpDef

F = TypeVar("F", bound=Callable[..., Any])


class ProfilerActivity(enum.Enum):
    """torch.profiler.ProfilerActivity: dlg times the CPU; CUDA is accepted and records
    nothing (dlg's eager tensors are on the CPU)."""

    CPU = 0
    CUDA = 1


class ProfilerAction(enum.Enum):
    NONE = 0
    WARMUP = 1
    RECORD = 2
    RECORD_AND_SAVE = 3


def schedule(*, wait: int, warmup: int, active: int, repeat: int = 0, skip_first: int = 0
             ) -> Callable[[int], ProfilerAction]:
    """torch.profiler.schedule: skip `skip_first` steps, then cycles of `wait` idle steps,
    `warmup` steps, `active` recorded steps (the last one RECORD_AND_SAVE), `repeat` cycles
    (0: for ever)."""
    if warmup < 0 or wait < 0 or active < 1 or repeat < 0 or skip_first < 0:
        raise DlgValueError("schedule: wait, warmup, repeat and skip_first must be >= 0 and "
                            "active >= 1")

    def action(step: int) -> ProfilerAction:
        if step < skip_first:
            return ProfilerAction.NONE
        step -= skip_first
        cycle = wait + warmup + active
        if repeat and step // cycle >= repeat:
            return ProfilerAction.NONE
        at = step % cycle
        if at < wait:
            return ProfilerAction.NONE
        if at < wait + warmup:
            return ProfilerAction.WARMUP
        return (ProfilerAction.RECORD if at < cycle - 1 else ProfilerAction.RECORD_AND_SAVE)
    return action


@dataclass(eq=False)
class FunctionEvent:
    """One timed op or range: times in microseconds, as torch's."""

    name: str
    start_ns: int
    end_ns: int
    input_shapes: list[list[int]] = field(default_factory=list)
    children: list[FunctionEvent] = field(default_factory=list)
    count: int = 1

    @property
    def key(self) -> str:
        return self.name

    @property
    def cpu_time_total(self) -> float:
        return (self.end_ns - self.start_ns) / 1000

    @property
    def self_cpu_time_total(self) -> float:
        return self.cpu_time_total - sum(c.cpu_time_total for c in self.children)

    @property
    def cpu_time(self) -> float:
        return self.cpu_time_total


@dataclass
class FunctionEventAvg:
    """Events of one key (and input shapes, when grouped by them), summed."""

    key: str
    input_shapes: str = ""
    count: int = 0
    cpu_time_total: float = 0.0
    self_cpu_time_total: float = 0.0
    cuda_time_total: float = 0.0
    self_cuda_time_total: float = 0.0
    device_time_total: float = 0.0
    self_device_time_total: float = 0.0
    cpu_memory_usage: int = 0
    self_cpu_memory_usage: int = 0

    @property
    def cpu_time(self) -> float:
        """The average CPU time of one call (torch's name)."""
        return self.cpu_time_total / max(self.count, 1)

    def add(self, event: FunctionEvent) -> None:
        self.count += 1
        self.cpu_time_total += event.cpu_time_total
        self.self_cpu_time_total += event.self_cpu_time_total


class EventList(list):  # type: ignore[type-arg]
    """torch's EventList: events (or averages) with `table`, `total_average` and
    `export_chrome_trace`."""

    def table(self, sort_by: str | None = None, row_limit: int = 100, max_name_column_width:
              int = 55, header: str | None = None, top_level_events_only: bool = False,
              **unused: Any) -> str:
        return _table(self, sort_by, row_limit, max_name_column_width, header)

    def key_averages(self, group_by_input_shape: bool = False) -> EventList:
        return key_averages(self, group_by_input_shape)

    def total_average(self) -> FunctionEventAvg:
        total = FunctionEventAvg("Total")
        for e in self:
            total.count += e.count
            total.cpu_time_total += e.cpu_time_total
            total.self_cpu_time_total += e.self_cpu_time_total
        return total

    def export_chrome_trace(self, path: str | Path) -> None:
        events = [{"name": e.name, "ph": "X", "ts": e.start_ns / 1000,
                   "dur": e.cpu_time_total, "pid": 0, "tid": 0, "cat": "cpu_op"}
                  for e in _walk(self)]
        Path(path).write_text(json.dumps({"traceEvents": events}))

    def __str__(self) -> str:
        return self.table()


def _walk(events: Iterable[FunctionEvent]) -> Iterable[FunctionEvent]:
    for e in events:
        yield e
        yield from _walk(e.children)


def key_averages(events: Iterable[FunctionEvent], group_by_input_shape: bool = False
                 ) -> EventList:
    """Every event (ranges' children too) summed per name, in first-seen order."""
    groups: dict[tuple[str, str], FunctionEventAvg] = {}
    for e in _walk(events):
        shapes = str(e.input_shapes) if group_by_input_shape else ""
        avg = groups.setdefault((e.name, shapes), FunctionEventAvg(e.name, shapes))
        avg.add(e)
    return EventList(groups.values())


def _us(value: float) -> str:
    """torch's time cells: 12.000us, 1.234ms, 2.000s."""
    if value >= 1e6:
        return f"{value / 1e6:.3f}s"
    if value >= 1e3:
        return f"{value / 1e3:.3f}ms"
    return f"{value:.3f}us"


_COLUMNS = ("Name", "Self CPU %", "Self CPU", "CPU total %", "CPU total", "CPU time avg",
            "# of Calls")


def _table(rows: Sequence[Any], sort_by: str | None, row_limit: int, width: int,
           header: str | None) -> str:
    rows = list(rows)
    if rows and isinstance(rows[0], FunctionEvent):
        rows = list(_walk(rows))
    if sort_by is not None:
        if not rows or not hasattr(rows[0], sort_by):
            known = ("cpu_time_total", "self_cpu_time_total", "cpu_time", "count",
                     "cuda_time_total", "self_cuda_time_total", "device_time_total")
            if sort_by not in known:
                raise DlgValueError(f"table(sort_by={sort_by!r}): sort by one of "
                                    f"{', '.join(known)}")
        rows.sort(key=lambda r: getattr(r, sort_by, 0), reverse=True)
    shown = rows[:row_limit] if row_limit > 0 else rows
    self_total = sum(r.self_cpu_time_total for r in rows) or 1.0
    shapes = any(getattr(r, "input_shapes", "") for r in rows)
    names = [r.key[:width] for r in shown]
    name_width = max([len(_COLUMNS[0]), *map(len, names)]) + 2
    heads = list(_COLUMNS) + (["Input Shapes"] if shapes else [])
    widths = [name_width] + [max(len(h), 12) + 2 for h in heads[1:]]
    line = "-" * (sum(widths) + len(widths) - 1)
    out = [header] if header else []
    out += [line, " ".join(h.ljust(w) if i == 0 else h.rjust(w)
                           for i, (h, w) in enumerate(zip(heads, widths))), line]
    for name, r in zip(names, shown):
        cells = [name, f"{100 * r.self_cpu_time_total / self_total:.2f}%",
                 _us(r.self_cpu_time_total), f"{100 * r.cpu_time_total / self_total:.2f}%",
                 _us(r.cpu_time_total), _us(r.cpu_time_total / max(r.count, 1)), str(r.count)]
        if shapes:
            cells.append(str(r.input_shapes))
        out.append(" ".join(c.ljust(w) if i == 0 else c.rjust(w)
                            for i, (c, w) in enumerate(zip(cells, widths))))
    out += [line, f"Self CPU time total: {_us(self_total)}", ""]
    return "\n".join(out)


_active: list[profile] = []  # recording profilers, outermost first


def _on_op(op: OpDef, inputs: Sequence[Any], start: int, end: int) -> None:
    for prof in _active:
        shapes = ([list(t.shape) for t in inputs] if prof.record_shapes else [])
        prof._add(FunctionEvent(f"dlg::{op.name}", start, end, shapes))


def _update_timer() -> None:
    engine.set_op_timer(_on_op if any(p._recording for p in _active) else None)


class profile:  # noqa: N801  (torch's spelling)
    """torch.profiler.profile (and torch.autograd.profiler.profile): a context manager timing
    the eager ops dispatched inside it (see the module docstring). `schedule` and `step()`
    record only the steps it marks, calling `on_trace_ready(prof)` at the end of each active
    span, as torch's. Options dlg cannot honour (memory, FLOPs, stacks, CUDA) change nothing."""

    def __init__(self, activities: Iterable[Any] | None = None,
                 schedule: Callable[[int], Any] | None = None,
                 on_trace_ready: Callable[[profile], Any] | None = None,
                 record_shapes: bool = False, profile_memory: bool = False,
                 with_stack: bool = False, with_flops: bool = False, with_modules: bool = False,
                 enabled: bool = True, **unused: Any):
        self.schedule = schedule
        self.on_trace_ready = on_trace_ready
        self.record_shapes = record_shapes
        self.enabled = enabled
        self.step_num = 0
        self._events: list[FunctionEvent] = []
        self._open: list[FunctionEvent] = []  # record_function ranges inside, innermost last
        self._recording = False

    def _action(self) -> ProfilerAction:
        if self.schedule is None:
            return ProfilerAction.RECORD
        action = self.schedule(self.step_num)
        return ProfilerAction[getattr(action, "name", str(action))]

    def _add(self, event: FunctionEvent) -> None:
        if self._recording:
            (self._open[-1].children if self._open else self._events).append(event)

    def start(self) -> None:
        if not self.enabled:
            return
        _active.append(self)
        self._recording = self._action() in (ProfilerAction.RECORD,
                                             ProfilerAction.RECORD_AND_SAVE)
        _update_timer()

    def stop(self) -> None:
        if self not in _active:
            return
        if self.schedule is not None and self._action() is ProfilerAction.RECORD_AND_SAVE:
            self._save()
        elif self.schedule is None and self.on_trace_ready is not None:
            self.on_trace_ready(self)
        self._recording = False
        _active.remove(self)
        _update_timer()

    def step(self) -> None:
        """The end of a training step: the schedule's next action starts."""
        before = self._action()
        self.step_num += 1
        if before is ProfilerAction.RECORD_AND_SAVE:
            self._save()
        if self.schedule is not None and self in _active:
            if self._action() in (ProfilerAction.WARMUP, ProfilerAction.NONE):
                self._events = []
            self._recording = self._action() in (ProfilerAction.RECORD,
                                                 ProfilerAction.RECORD_AND_SAVE)
            _update_timer()

    def _save(self) -> None:
        if self.on_trace_ready is not None:
            self.on_trace_ready(self)
        self._events = []

    def __enter__(self) -> profile:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def events(self) -> EventList:
        return EventList(self._events)

    @property
    def function_events(self) -> EventList:
        return self.events()

    def key_averages(self, group_by_input_shape: bool = False, group_by_stack_n: int = 0
                     ) -> EventList:
        return key_averages(self._events, group_by_input_shape)

    def table(self, sort_by: str | None = None, row_limit: int = 100, **kwargs: Any) -> str:
        """torch.autograd.profiler.profile's: the averages' table."""
        return self.key_averages().table(sort_by=sort_by, row_limit=row_limit, **kwargs)

    def total_average(self) -> FunctionEventAvg:
        return self.key_averages().total_average()

    def export_chrome_trace(self, path: str | Path) -> None:
        self.events().export_chrome_trace(path)

    def __str__(self) -> str:
        return self.table()


class record_function:  # noqa: N801  (torch's spelling)
    """torch.profiler.record_function(name): a range in every recording profile, holding the
    ops inside it; a context manager or a decorator."""

    def __init__(self, name: str, args: str | None = None):
        self.name = name
        self._events: list[tuple[profile, FunctionEvent]] = []

    def __enter__(self) -> record_function:
        now = time.perf_counter_ns()
        for prof in _active:
            if prof._recording:
                event = FunctionEvent(self.name, now, now)
                prof._add(event)
                prof._open.append(event)
                self._events.append((prof, event))
        return self

    def __exit__(self, *exc: object) -> None:
        now = time.perf_counter_ns()
        for prof, event in self._events:
            event.end_ns = now
            prof._open = [e for e in prof._open if e is not event]
        self._events = []

    def __call__(self, fn: F) -> F:
        name = self.name

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with record_function(name):
                return fn(*args, **kwargs)
        wrapped.__name__, wrapped.__doc__ = getattr(fn, "__name__", name), fn.__doc__
        return wrapped  # type: ignore[return-value]


def tensorboard_trace_handler(dir_name: str | Path, worker_name: str | None = None,
                              use_gzip: bool = False) -> Callable[[profile], None]:
    """torch.profiler.tensorboard_trace_handler: an on_trace_ready writing each active span as
    a Chrome trace (`<worker>.<ms>.pt.trace.json`) into `dir_name`."""
    folder = Path(dir_name)

    def handler(prof: profile) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        worker = worker_name or "dlg"
        prof.export_chrome_trace(folder / f"{worker}.{time.time_ns() // 1_000_000}.pt.trace.json")
    return handler
