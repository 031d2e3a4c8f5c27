"""The thread pool under parallel loops: many jobs back to back, callers on several Python
threads at once, and a forked child (which has no workers) — in a subprocess with a timeout, so
a deadlock fails the test instead of hanging pytest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import llvmlite.binding as llvm
import pytest

from dlg.compiler.codegen import driver, gemm, half, threads
from dlg.compiler.codegen.llvm_cpu import host_target

SCRIPT = textwrap.dedent("""
    import os, threading
    import numpy as np
    from dlg.ir import Builder, Graph, TensorType
    from dlg.runtime.native import NativeGraph

    os.environ["DLG_NUM_THREADS"] = "4"
    g = Graph("big")
    b = Builder(g)
    x = b.input("x", TensorType.parse("f32[N, 256]"))
    w = b.input("w", TensorType.parse("f32[256, 256]"))
    g.set_output("y", b.tanh(b.matmul(x, w)))
    ng = NativeGraph(g)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((n, 256)).astype(np.float32) for n in (64, 200)]
    w = rng.standard_normal((256, 256)).astype(np.float32) / 16
    want = [np.tanh(x.astype(np.float64) @ w) for x in xs]

    wrong = []

    def check(k):
        for i in range(200):
            got = ng({"x": xs[(i + k) % 2], "w": w}, {})["y"]
            if not np.allclose(got, want[(i + k) % 2], rtol=1e-4, atol=1e-5):
                wrong.append((k, i))

    threads = [threading.Thread(target=check, args=(k,)) for k in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not wrong, wrong[:5]
    pid = os.fork()
    if pid == 0:
        check(0)
        os._exit(1 if wrong else 0)
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
    print("ok")
""")


def test_jobs_from_threads_and_a_forked_child():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=240)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


OVERSUBSCRIBED = textwrap.dedent("""
    import os
    os.environ["DLG_NUM_THREADS"] = "8"  # workers far beyond the cores: most jobs end before
    # some worker runs, so the pool must finish them without it (a closed ticket) and that
    # worker must take nothing of the next job it was not counted in
    import numpy as np
    import dlg

    exe = dlg.compile(dlg.load(MODEL))
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((n, 28, 28)).astype(np.float32) for n in (1, 3, 40)]
    first = [np.array(exe(x=x)) for x in xs]
    for i in range(600):
        got = np.asarray(exe(x=xs[i % 3]))
        assert np.array_equal(got, first[i % 3]), i  # the same parts, so the same bits
    print("ok")
""")


def test_jobs_with_more_workers_than_cores_give_the_same_bits():
    script = f"MODEL = {str(Path(__file__).parents[2] / 'models' / 'gru.dlg')!r}\n" + OVERSUBSCRIBED
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=240)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


BLAS_AFTER_START = textwrap.dedent("""
    import json
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits
    import dlg

    threadpool_limits(2, user_api="blas")  # as on a 2-core machine, whatever this one has
    before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    exe = dlg.compile(dlg.loads("model M { input x: f32[N, 4]  output y = tanh(x) }"))
    exe(x=np.ones((2, 4), np.float32))
    after = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    print(json.dumps([before, after]))
""")


@pytest.mark.skipif(threads.cores() < 2, reason="one core: the pool has no workers")
def test_numpy_blas_runs_on_one_thread_once_the_pool_has_workers():
    """OpenBLAS's idle threads spin on the cores the pool's workers need."""
    out = subprocess.run([sys.executable, "-c", BLAS_AFTER_START], capture_output=True,
                         text=True, timeout=240, env={**os.environ, "DLG_NUM_THREADS": "2"})
    assert out.returncode == 0, out.stderr[-2000:]
    before, after = json.loads(out.stdout)
    assert 2 in before and set(after) == {1}, (before, after)


def test_library_functions_take_stack_only_in_their_entry_blocks():
    """An alloca outside a function's entry block takes new stack each time it runs: in the
    pool's workers, which loop forever, one per job overflowed an 8 MB thread stack after
    some hundred thousand parallel loops (a benchmark's RNN crashed). The libraries are
    compiled without passes that would hoist them."""
    modules = {"pool": threads._module(), "driver": driver._module(), "half": half._module(),
               "gemm": gemm.module(gemm.blocking(host_target(), *gemm.cache_sizes()))}
    for name, module in modules.items():
        parsed = llvm.parse_assembly(str(module))
        late = [(fn.name, block.name) for fn in parsed.functions
                for k, block in enumerate(fn.blocks) for ins in block.instructions
                if k > 0 and ins.opcode == "alloca"]
        assert not late, (name, late)
