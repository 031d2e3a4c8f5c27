"""Serving a compiled graph: memory bounded whatever the mix of batch sizes (peak RSS in a
subprocess), layouts forgotten and laid out again, `release`, callers on several threads getting
the sequential results (parallel loops too), the disk cache under concurrent compiles in several
processes, and a short soak (memory, files and threads flat over many calls and steps)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import dlg
from dlg.ir import Builder, Graph, TensorType
from dlg.runtime import native
from dlg.runtime.native import KEPT, NativeGraph

ROOT = Path(__file__).resolve().parents[2]


def wide_graph() -> Graph:
    """y = sum(tanh(x @ w), axis=1): the [N, 8192] product is an intermediate (arena bytes)."""
    g = Graph("wide")
    b = Builder(g)
    x = b.input("x", TensorType.parse("f32[N, 16]"))
    w = b.input("w", TensorType.parse("f32[16, 8192]"))
    g.set_output("y", b.reduce_sum(b.tanh(b.matmul(x, w)), axes=(1,), keepdims=False))
    return g


def run(script: str, timeout: int = 240) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                         text=True, timeout=timeout, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


PEAK = """
    import json
    import numpy as np
    from tests.runtime.test_serving import wide_graph
    from dlg.runtime.native import NativeGraph

    def peak():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024

    ng = NativeGraph(wide_graph())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((259, 16)).astype(np.float32)
    w = rng.standard_normal((16, 8192)).astype(np.float32) / 4
    ng({"x": x[:200], "w": w}, {})
    before = peak()
    ys = {n: ng({"x": x[:n], "w": w}, {})["y"] for n in range(201, 260)}
    grown = peak() - before  # before the oracle's own [n, 8192] arrays
    wrong = sum(not np.allclose(y, np.tanh(x[:n] @ w).sum(axis=1), rtol=1e-4, atol=1e-3)
                for n, y in ys.items())
    arena = ng.layout({"N": 259}).nbytes
    ng.release()
    released = (len(ng.layouts), len(ng.arenas))
    y = ng({"x": x[:7], "w": w}, {})["y"]
    wrong += not np.allclose(y, np.tanh(x[:7] @ w).sum(axis=1), rtol=1e-4, atol=1e-3)
    print(json.dumps({"grown": grown, "arena": arena, "wrong": wrong, "released": released}))
"""


def test_peak_memory_stays_within_two_arenas_of_the_largest_batch():
    """60 batch sizes once each: one arena per size grew the peak by ~60 arenas."""
    got = json.loads(run(PEAK).splitlines()[-1])
    assert got["wrong"] == 0
    assert got["arena"] > 8 << 20  # big enough for 60 of them to show
    assert got["grown"] <= 2 * got["arena"], got
    assert got["released"] == [0, 0]


def test_layouts_are_bounded_and_forgotten_ones_laid_out_again():
    g = Graph("small")
    b = Builder(g)
    x = b.input("x", TensorType.parse("f32[N, 33]"))
    g.set_output("y", b.reduce_sum(b.exp(b.mul(x, x)), axes=(1,), keepdims=False))
    ng = NativeGraph(g)
    rng = np.random.default_rng(1)
    xs = {n: rng.standard_normal((n, 33)).astype(np.float32) / 4 for n in range(1, 41)}
    for _ in range(2):
        for n in range(10, 41):
            for m in (n, 5):  # 5 is called between all the others: it stays
                np.testing.assert_allclose(ng({"x": xs[m]}, {})["y"],
                                           np.exp(xs[m] * xs[m]).sum(axis=1), rtol=1e-5)
        assert len(ng.layouts) <= KEPT
        assert (5,) in ng.layouts
        assert {id(v) for v in ng.by_shapes.values()} <= {id(v) for v in ng.layouts.values()}
    assert len(ng.arenas) == 1
    arena = ng.arenas.idle[0]
    assert arena.capacity >= max(layout.nbytes for layout in ng.layouts.values())
    assert len(arena.plans) <= KEPT + 1


def test_an_executable_as_a_context_manager_frees_its_arenas():
    model = dlg.load(ROOT / "models" / "linear_regression.dlg")
    x = np.arange(6, dtype=np.float32).reshape(6, 1)
    with dlg.compile(model) as exe:
        want = exe(x)
        assert len(exe.native.arenas) == 1 and exe.native.layouts
    assert len(exe.native.arenas) == 0 and not exe.native.layouts and not exe.native.by_shapes
    np.testing.assert_array_equal(exe(x), want)  # laid out again


def test_threads_calling_one_executable_get_the_sequential_results():
    exe = dlg.compile(dlg.load(ROOT / "models" / "mlp.dlg"))
    rng = np.random.default_rng(2)
    sizes = (1, 3, 1, 16, 7, 1, 33, 2)
    xs = [rng.standard_normal((n, 1, 28, 28)).astype(np.float32) for n in sizes]
    want = [exe(x) for x in xs]
    wrong: list[tuple[int, int]] = []

    def work(k: int) -> None:
        for i in range(150):
            j = (i * 3 + k) % len(xs)
            if not np.array_equal(exe(xs[j]), want[j]):
                wrong.append((k, j))
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong, wrong[:5]
    assert 1 <= len(exe.native.arenas) <= 4


def test_set_num_threads_reaches_laid_out_calls_and_keeps_results(monkeypatch):
    """dlg.set_num_threads changes the thread count of layouts made before it (the dims array
    native code reads) and of new ones; every count computes the same bits."""
    g = Graph("wide")
    b = Builder(g)
    x = b.input("x", TensorType.parse("f32[N, 256]"))
    g.set_output("y", b.tanh(b.matmul(x, b.input("w", TensorType.parse("f32[256, 256]")))))
    ng = NativeGraph(g)
    rng = np.random.default_rng(1)
    feeds = {"x": rng.standard_normal((300, 256)).astype(np.float32),
             "w": rng.standard_normal((256, 256)).astype(np.float32) / 16}
    monkeypatch.setattr(native, "_chosen_threads", None)  # DLG_NUM_THREADS rules again after
    before = dlg.get_num_threads()
    try:
        want = ng(feeds, {})["y"]
        for count in (1, 3, before):
            dlg.set_num_threads(count)
            assert dlg.get_num_threads() == count
            assert all(layout.dims[1] == count for layout in ng.layouts.values())
            np.testing.assert_array_equal(ng(feeds, {})["y"], want)
        with pytest.raises(dlg.DlgValueError, match="positive int"):
            dlg.set_num_threads(0)
    finally:
        dlg.set_num_threads(before)


def test_parallel_loops_from_several_threads_match_sequential_calls(monkeypatch):
    """Two callers' parallel loops at once: one on the pool, the other's parts on its own thread,
    split the same way, so bitwise the same."""
    monkeypatch.setenv("DLG_NUM_THREADS", "4")
    g = Graph("big")
    b = Builder(g)
    x = b.input("x", TensorType.parse("f32[N, 256]"))
    w = b.input("w", TensorType.parse("f32[256, 256]"))
    g.set_output("y", b.tanh(b.matmul(x, w)))
    ng = NativeGraph(g)
    rng = np.random.default_rng(3)
    w_ = rng.standard_normal((256, 256)).astype(np.float32) / 16
    xs = [rng.standard_normal((n, 256)).astype(np.float32) for n in (200, 97, 256)]
    want = [ng({"x": x, "w": w_}, {})["y"] for x in xs]
    np.testing.assert_allclose(want[0], np.tanh(xs[0] @ w_), rtol=1e-4, atol=1e-5)
    wrong: list[tuple[int, int]] = []

    def work(k: int) -> None:
        for i in range(60):
            j = (i + k) % len(xs)
            if not np.array_equal(ng({"x": xs[j], "w": w_}, {})["y"], want[j]):
                wrong.append((k, j))
    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong, wrong[:5]


COMPILER = """
    import hashlib, os, sys, time
    from pathlib import Path
    import numpy as np
    from dlg.disk_cache import cache_dir
    from dlg.ir import Builder, DType, Graph, TensorType
    from dlg.runtime.native import NativeGraph

    me, ready, n = int(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    folder = cache_dir()
    corrupt = []

    def check_entries():
        for path in folder.glob("*.o"):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            digest, _, code = data.partition(b"\\n")
            if hashlib.sha256(code).hexdigest().encode() != digest:
                corrupt.append(path.name)

    (ready / str(me)).touch()  # past its imports: compiling starts once all n are
    deadline = time.time() + 120
    while len(list(ready.iterdir())) < n and time.time() < deadline:
        time.sleep(0.01)
    for k in [(me + i) % 6 for i in range(6)] + [me % 6]:  # shared graphs, in another order each
        g = Graph(f"g{k}")
        b = Builder(g)
        x = b.input("x", TensorType.parse("f32[N, 17]"))
        g.set_output("y", b.tanh(b.mul(x, b.constant(k + 1.0, DType.f32))))
        check_entries()
        ng = NativeGraph(g)
        check_entries()
        x = np.linspace(-1, 1, 34, dtype=np.float32).reshape(2, 17)
        assert np.allclose(ng({"x": x}, {})["y"], np.tanh(x * (k + 1)), atol=1e-6), k
    print("corrupt", len(corrupt), corrupt[:3])
"""


def test_processes_compiling_at_once_never_read_a_corrupt_cache_entry(tmp_path):
    env = dict(os.environ, DLG_CACHE_DIR=str(tmp_path / "cache"))
    ready = tmp_path / "ready"  # every process past its imports before the first compile
    ready.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(COMPILER), str(me),
                               str(ready), "4"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for me in range(4)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        assert out.strip().startswith("corrupt 0 "), out
    assert len(list(ready.iterdir())) == 4
    entries = list((tmp_path / "cache").glob("*.o"))
    assert len(entries) >= 6
    assert not [p for p in (tmp_path / "cache").iterdir() if p.suffix != ".o"], "temporaries left"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_short_soak_keeps_memory_files_and_threads_flat(tmp_path):
    report = tmp_path / "soak.json"
    run(f"""
        import sys
        from tools.soak import main
        sys.exit(main(["--calls", "20000", "--steps", "2000", "--json", {str(report)!r}]))
    """, timeout=600)
    for phase in json.loads(report.read_text()):
        assert phase["growth_percent"] < 1.0, phase
        assert phase["fds_after"] == phase["fds_before"], phase
        assert phase["threads_after"] == phase["threads_before"], phase
