"""`dlg.profiler` / `dlg.autograd.profiler` against torch's: the same program profiled by both
counts the same calls per op and range, nests ops inside record_function ranges, prints
torch's table columns, and a schedule hands the same steps to on_trace_ready."""

import time

import pytest

import dlg
from dlg.frontend import engine

torch = pytest.importorskip("torch")


def program(lib, profiler, steps: int = 3):
    net = lib.nn.Sequential(lib.nn.Linear(16, 16), lib.nn.ReLU(), lib.nn.Linear(16, 4))
    x = lib.randn(8, 16)
    with profiler.profile(record_shapes=True) as prof:
        with profiler.record_function("model_inference"):
            for _ in range(steps):
                net(x).relu().sum()
            time.sleep(0.01)  # the range's own time
    return prof


def counts(prof, names) -> dict[str, int]:
    found = {e.key.split("::")[-1]: e.count for e in prof.key_averages()}
    return {n: found.get(n, 0) for n in names}


def test_calls_and_ranges_are_counted_as_torch_counts_them():
    mine, theirs = program(dlg, dlg.profiler), program(torch, torch.profiler)
    names = ["model_inference", "linear", "relu"]
    assert counts(mine, names) == counts(theirs, names) == {"model_inference": 1, "linear": 6,
                                                            "relu": 6}
    (outer,) = mine.events()
    assert outer.name == "model_inference" and len(outer.children) == 15  # 6+6 and 3 sums
    assert outer.cpu_time_total >= 10_000  # microseconds, the sleep included
    assert outer.self_cpu_time_total >= 10_000 > sum(c.cpu_time_total for c in outer.children)
    assert all(c.cpu_time_total > 0 for c in outer.children)
    assert outer.children[0].input_shapes == [[8, 16], [16, 16], [16]]
    assert engine._op_timer is None  # dispatch is back to its one check


def test_the_table_has_torch_s_columns_sorted_as_asked():
    mine, theirs = program(dlg, dlg.profiler, 1), program(torch, torch.profiler, 1)
    ours = mine.key_averages().table(sort_by="self_cpu_time_total", row_limit=2)
    columns = ["Name", "Self CPU %", "Self CPU", "CPU total %", "CPU total", "CPU time avg",
               "# of Calls"]
    theirs_text = theirs.key_averages().table(sort_by="self_cpu_time_total", row_limit=2)
    for text in (ours, theirs_text):
        header = text.splitlines()[1]
        assert [c for c in columns if c in header] == columns
        assert "Self CPU time total:" in text
    rows = ours.splitlines()[3:5]
    assert rows[0].startswith("model_inference") and len(rows) == 2  # the sleep: most self time
    with pytest.raises(dlg.DlgValueError, match="sort by one of"):
        mine.key_averages().table(sort_by="speed")


def test_autograd_profiler_times_backward_as_one_range():
    w = dlg.randn(4, 4, requires_grad=True)
    with dlg.autograd.profiler.profile() as prof:
        (w @ w).sum().backward()
    keys = [e.key for e in prof.key_averages()]
    assert keys[:3] == ["dlg::matmul", "dlg::reduce_sum", "dlg::backward"]
    assert "dlg::backward" in prof.table(sort_by="cpu_time_total")


def test_a_schedule_saves_the_same_steps_as_torch_s():
    def run(profiler, lib):
        saved = []
        sched = profiler.schedule(wait=1, warmup=1, active=2, repeat=2)
        x = lib.ones(2, 2)
        with profiler.profile(schedule=sched,
                              on_trace_ready=lambda p: saved.append(
                                  (p.step_num, sum(e.count for e in p.key_averages()
                                                   if e.key.endswith("relu"))))) as p:
            for _ in range(10):
                x.relu()
                p.step()
        return saved
    mine, theirs = run(dlg.profiler, dlg), run(torch.profiler, torch)
    assert mine == theirs == [(4, 2), (8, 2)], (mine, theirs)
