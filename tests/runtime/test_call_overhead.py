"""The compiled call path: the fast native check (codegen/binder.py) and the Python path it falls
back to give the same results and the same errors; `out=`; parameters reassigned between calls;
batch sizes that alternate; several threads calling one executable. The interpreter is the
oracle for values. No timings here (benchmarks measure them)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import dlg
from dlg.compiler.codegen import binder
from dlg.errors import DlgValueError
from dlg.ir import Builder, Graph, TensorType
from dlg.runtime import native
from dlg.runtime.native import NativeGraph

NET = """
model Net {
    input x: f32[N, 4]
    input s: f32[N, 3]
    layer fc = Linear(4, 3)
    output y = relu(fc(x)) + s
    output total = sum(s)
}
"""
RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def net() -> dlg.Executable:
    return dlg.compile(dlg.loads(NET))


def batch(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 4)).astype(np.float32),
            rng.standard_normal((n, 3)).astype(np.float32))


def assert_like_interpreter(exe: dlg.Executable, got: tuple, x: np.ndarray, s: np.ndarray):
    for a, b in zip(got, exe.model(x=x, s=s)):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


def test_the_binder_reads_this_processes_numpy():
    assert binder.binder() is not None, "the struct layouts differ: every call takes Python"


def test_a_repeated_call_takes_the_fast_path(net, monkeypatch):
    x, s = batch(5)
    first = net(x, s)
    monkeypatch.setattr(net.native, "_run_checked", lambda *a: pytest.fail("took Python"))
    again = net(x=x, s=s)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert_like_interpreter(net, again, x, s)


def test_alternating_batch_sizes_use_their_own_plans(net):
    for n in (3, 7, 3, 1, 7):
        x, s = batch(n, seed=n)
        got = net(x, s)
        assert got[0].shape == (n, 3)
        assert_like_interpreter(net, got, x, s)


def test_out_receives_the_results(net):
    x, s = batch(4)
    y, total = np.empty((4, 3), np.float32), np.empty((), np.float32)
    got = net(x, s, out=(y, total))
    assert got[0] is y and got[1] is total
    for a, b in zip(got, net(x, s)):
        np.testing.assert_array_equal(a, b)


def test_out_by_output_name(net):
    x, s = batch(4)
    y, total = np.empty((4, 3), np.float32), np.empty((), np.float32)
    got = net(x, s, out={"total": total, "y": y})
    assert got[0] is y and got[1] is total
    for a, b in zip(got, net(x, s)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(DlgValueError, match=r"out: no output named 'h'; give one array per "
                                            r"output \(y, total\)"):
        net(x, s, out={"y": y, "h": total})
    with pytest.raises(DlgValueError, match="out: no array for output 'total'"):
        net(x, s, out={"y": y})


def test_out_of_a_single_output_model_is_an_array():
    exe = dlg.compile(dlg.load("models/linear_regression.dlg"))
    x = np.array([[1.0], [2.0]], np.float32)
    y = np.empty((2, 1), np.float32)
    assert exe(x, out=y) is y
    np.testing.assert_allclose(y, exe.model(x), rtol=RTOL, atol=ATOL)


def bad_outs(x: np.ndarray, s: np.ndarray, fc: np.ndarray) -> list:
    total = np.empty((), np.float32)
    readonly = np.empty((4, 3), np.float32)
    readonly.flags.writeable = False
    misaligned = np.zeros(4 * 3 * 4 + 1, np.uint8)[1:].view(np.float32).reshape(4, 3)
    return [
        ((np.empty((4, 2), np.float32), total), r"out 'y': expected f32\[4, 3\], got f32\[4, 2\]"),
        ((np.empty((4, 3), np.float64), total), r"out 'y': expected f32\[4, 3\], got f64\[4, 3\]"),
        (([[0.0] * 3] * 4, total), r"out 'y': expected f32\[4, 3\], got list"),
        ((np.empty((4, 6), np.float32)[:, ::2], total), "'out y' is not C-contiguous"),
        ((misaligned, total), "'out y' is not aligned"),
        ((readonly, total), "out 'y' is read-only"),
        ((s, total), "out 'y' shares memory with an input"),
        ((np.empty((4, 3), np.float32), fc.reshape(-1)[:1].reshape(())), "out 'total' shares"),
        ((s[:, :3].copy(),), r"out: expected 2 arrays \(y, total\), got 1"),
    ]


@pytest.mark.parametrize("row", range(9))
def test_a_bad_out_is_an_error_and_writes_nothing(net, row):
    x, s = batch(4)
    net(x, s)  # the plan exists, so the fast check sees the bad out first
    fc = net.params["fc.bias"]
    out, message = bad_outs(x, s, fc)[row]
    before = s.copy(), fc.copy()
    with pytest.raises(DlgValueError, match=message):
        net(x, s, out=out)
    np.testing.assert_array_equal(s, before[0])
    np.testing.assert_array_equal(fc, before[1])


def big_endian(a: np.ndarray) -> np.ndarray:
    return a.astype(a.dtype.newbyteorder(">"))


BAD_INPUTS = [
    (lambda x: x.astype(np.float64), "input 'x': expected dtype f32, got f64"),
    (big_endian, "input 'x': dtype >f4 is not supported"),
    (lambda x: x[:, :3].copy(), r"input 'x': expected shape \[N, 4\], got \[4, 3\]"),
    (lambda x: x[:2].copy(), "input 's': expected shape \\[N, 3\\], got \\[4, 3\\]: dim N"),
    (lambda x: x.reshape(4, 4, 1), "input 'x': expected shape .* expected rank 2, got rank 3"),
]


@pytest.mark.parametrize("make, message", BAD_INPUTS)
def test_inputs_the_fast_check_refuses_get_the_detailed_error(net, make, message):
    x, s = batch(4)
    net(x, s)
    with pytest.raises(DlgValueError, match=message):
        net(make(x), s)


def test_a_call_with_too_few_arrays_is_an_error_not_a_crash(net):
    """`run` fills the pointer table from its tuples: a missing parameter left a null pointer
    that the native code read (a segfault)."""
    native_graph = net.native
    x, s = batch(3)
    params = tuple(net.params[name] for name in native_graph.param_names)
    with pytest.raises(DlgValueError, match="expected 2 inputs and 2 parameters, got 2 and 0"):
        native_graph.run((x, s), ())
    with pytest.raises(DlgValueError, match="expected 2 inputs and 2 parameters, got 1 and 2"):
        native_graph.run((x,), params)


def strided(x: np.ndarray) -> np.ndarray:
    wide = np.zeros((x.shape[0], 2 * x.shape[1]), x.dtype)
    wide[:, ::2] = x
    return wide[:, ::2]


def misaligned(x: np.ndarray) -> np.ndarray:
    raw = np.zeros(x.nbytes + 1, np.uint8)[1:].view(x.dtype).reshape(x.shape)
    raw[...] = x
    return raw


def test_equal_inputs_the_fast_check_refuses_still_run(net):
    x, s = batch(2)
    want = net(x, s)
    tagged = np.dtype(np.float32, metadata={"unit": "m"})  # == float32, another object
    for other in (x.astype(tagged), x.tolist(), x.view(np.matrix), strided(x), misaligned(x),
                  np.asfortranarray(x)):
        for a, b in zip(net(other, s), want):
            np.testing.assert_array_equal(a, b)


def test_reassigned_and_updated_parameters_are_seen(net):
    x, s = batch(3)
    net(x, s)
    model = net.model
    old = model.params["fc.weight"].copy()
    try:
        model.params["fc.weight"] = old * 2  # a new array object
        assert_like_interpreter(net, net(x, s), x, s)
        model.params.assign("fc.weight", old * 3)  # the same object, new values
        assert_like_interpreter(net, net(x, s), x, s)
    finally:
        model.params["fc.weight"] = old


def test_the_fast_and_the_checked_path_draw_the_same_random_numbers(monkeypatch):
    g = Graph("d")
    b = Builder(g)
    x = b.input("x", TensorType.parse("f32[N, 64]"))
    g.set_output("y", b.dropout(x, p=0.5, training=True))
    ones = np.ones((3, 64), np.float32)
    fast = NativeGraph(g, seed=7)
    draws = [fast({"x": ones}, {})["y"] for _ in range(3)]
    monkeypatch.setattr(native, "binder", lambda: None)
    checked = NativeGraph(g, seed=7)
    assert all(layout.signature is None for layout in checked.layouts.values())
    for want in draws:
        np.testing.assert_array_equal(checked({"x": ones}, {})["y"], want)
    assert not np.array_equal(draws[0], draws[1])


def test_ranks_beyond_the_binder_take_the_python_path():
    g = Graph("deep")
    b = Builder(g)
    x = b.input("x", TensorType.parse("f32[N, 1, 1, 1, 1, 1, 1, 1, 2]"))
    g.set_output("y", b.neg(x))
    ng = NativeGraph(g)
    a = np.arange(6, dtype=np.float32).reshape(3, 1, 1, 1, 1, 1, 1, 1, 2)
    for _ in range(2):
        np.testing.assert_array_equal(ng({"x": a}, {})["y"], -a)
    assert next(iter(ng.layouts.values())).signature is None


def test_concurrent_callers_get_the_sequential_results(net):
    batches = [batch(n, seed=n) for n in (1, 2, 5) for _ in range(4)]
    want = [net(x, s) for x, s in batches]
    got: list = [None] * len(batches)

    def work(k: int) -> None:
        for _ in range(20):
            got[k] = net(*batches[k])
    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            np.testing.assert_array_equal(a, b)


def test_train_step_arguments_in_any_form_agree():
    model = dlg.load("models/linear_regression.dlg")
    x = np.array([[1.0], [2.0], [3.0]], np.float32)
    y = 2 * x + 1
    start = {k: v.copy() for k, v in model.params.items()}
    results = []
    for call in (lambda s: s(x, y), lambda s: s(x=x, y=y), lambda s: s(x, y=y)):
        model.load_state_dict(start)
        step = dlg.compile(model).train_step()
        results.append([call(step)["loss"] for _ in range(3)])
    assert results[0] == results[1] == results[2]
    assert results[0][2] < results[0][0]
    with pytest.raises(DlgValueError, match="input 'y' given twice"):
        step(x, y, y=y)
    with pytest.raises(DlgValueError, match="missing input 'y'"):
        step(x)
