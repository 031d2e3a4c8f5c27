"""The thread pool that parallel loops run on, as a small LLVM module JIT-compiled once per
process.

Creating a thread per parallel loop costs tens of microseconds, more than a whole small kernel
(an RNN step's matmul) takes, so the workers are started once and wait. A parallel loop calls
`dlg_run_parallel(run, template, words, extent, count)`: [0, extent) is split into `count`
parts; each part is `run(row)` where row is the template's words with the part's (start, end)
as the last two. The caller publishes the job, wakes the workers and takes parts too (an atomic
counter hands them out). A worker joins a job before it reads any of it (`ticket`: the job's
generation, a closed bit and the count of workers that joined, changed by one compare-and-swap);
when the caller has no part left to take it closes the ticket and waits only for the workers
that joined, so no worker can still be reading the job when the next one is published, and a
worker that was not running (its core busy with another process) never holds the caller up: it
finds the ticket closed when it wakes and waits for the next job. (The first pool waited for
every worker to check in: with the second core busy, a GRU's 28 steps at batch 1 took 0.78 ms
instead of 0.16 ms on one core.) Workers spin briefly for the next job (a scan calls its
kernels back to back), then sleep on a condition variable; the caller spins as briefly for the
workers that joined before it sleeps (a sleep is a futex round trip: GRU b1 0.24 -> 0.10 ms).
One job runs on the pool at a time: a caller that finds it busy (another Python thread's call,
or a part that itself runs a parallel loop) runs every part itself, in order, as does the
caller in a forked child, which has none of the workers. The parts are the same either way,
so results are too.

Compiled graph modules declare `dlg_run_parallel` and MCJIT resolves it to this module's
function (`llvm.add_symbol`), so cached object code stays valid across processes.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable

import llvmlite.binding as llvm
from llvmlite import ir
from threadpoolctl import threadpool_limits

from dlg.compiler.codegen import cache

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
I8P = I8.as_pointer()
RUN = ir.FunctionType(I8P, [I8P]).as_pointer()
RUN_PARALLEL = "dlg_run_parallel"
RUN_PARALLEL_TYPE = ir.FunctionType(ir.VoidType(), [RUN, I64.as_pointer(), I64, I64, I64])
MAX_WORDS = 128  # a part's arguments (buffers, dims, seed, start, end) as words
SPINS = 1 << 15  # polls of the job counter before a worker sleeps (tens of microseconds)
SYNC_BYTES = 128  # room for a pthread mutex or condition variable on any platform
CLOSED = 1 << 31  # the ticket's bit for "no more workers may join"; below it, those that joined
GENERATION = 1 << 32  # the ticket's unit of generation, above the closed bit


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def declare(m: ir.Module) -> ir.Function:
    """`dlg_run_parallel` in a graph module (resolved when its code is loaded)."""
    if RUN_PARALLEL not in m.globals:
        ir.Function(m, RUN_PARALLEL_TYPE, RUN_PARALLEL)
    return m.globals[RUN_PARALLEL]


@functools.cache
def start(workers: int, machine: Callable[[], llvm.TargetMachine]) -> object:
    """Compile the pool, start `workers` threads and make `dlg_run_parallel` resolvable; once per
    process (its object code kept in the disk cache). Returns the engine, which must stay
    alive."""
    engine = cache.library("thread pool", _module, "no passes",
                           lambda text: object_code_as_written(text, machine()), machine)
    llvm.add_symbol(RUN_PARALLEL, engine.get_function_address(RUN_PARALLEL))
    ctypes.CFUNCTYPE(None, ctypes.c_int64)(engine.get_function_address("dlg_pool_start"))(workers)
    if workers:
        numpy_blas_on_one_thread()
    return engine


def numpy_blas_on_one_thread() -> None:
    """NumPy's BLAS on one thread once the pool has started: OpenBLAS's idle threads spin for
    about 0.1 s after each call, on the cores the pool's workers need, and eager ops run through
    NumPy until they tier up, so a training loop kept them spinning (a compiled 256x512 Linear on
    2 cores: 1.42 ms when NumPy multiplies matrices in the same loop, 0.80 ms on one BLAS
    thread). threadpoolctl finds whichever BLAS this NumPy loaded (OpenBLAS, MKL, BLIS)."""
    threadpool_limits(1, user_api="blas")


def object_code_as_written(text: str, tm: llvm.TargetMachine) -> bytes:
    """A library's machine code, as written: no IR passes (the pool is small and waits on
    memory; half.py's conversion is straight-line)."""
    mod = llvm.parse_assembly(text)
    mod.data_layout = str(tm.target_data)
    return tm.emit_object(mod)


def _module() -> ir.Module:
    m = ir.Module("dlg_pool")
    m.triple = llvm.get_process_triple()
    state = {name: _global(m, name, I64) for name in (
        "generation", "ticket", "finished", "next", "extent", "size", "count", "words", "workers",
        "pid")}
    state["run"] = _global(m, "run", RUN)
    state["template"] = _global(m, "template", I64.as_pointer())
    sync = {name: _global(m, name, ir.ArrayType(I8, SYNC_BYTES)) for name in (
        "lock", "job_lock", "work", "done")}
    libc = _libc(m)
    b_sync = {k: v.bitcast(I8P) for k, v in sync.items()}
    work_loop = _work_loop(m, state)
    worker = _worker(m, state, b_sync, libc, work_loop)
    _pool_start(m, state, b_sync, libc, worker)
    _run_parallel(m, state, b_sync, libc, work_loop, _alone(m))
    return m


def _global(m: ir.Module, name: str, t: ir.Type) -> ir.GlobalVariable:
    g = ir.GlobalVariable(m, t, f"dlg_pool.{name}")
    g.linkage = "internal"
    g.initializer = ir.Constant(t, None)
    g.align = 64
    return g


def _libc(m: ir.Module) -> dict[str, ir.Function]:
    sigs = {"pthread_mutex_init": [I8P, I8P], "pthread_mutex_lock": [I8P],
            "pthread_mutex_unlock": [I8P], "pthread_mutex_trylock": [I8P],
            "pthread_cond_init": [I8P, I8P],
            "pthread_cond_wait": [I8P, I8P], "pthread_cond_broadcast": [I8P],
            "pthread_create": [I8P, I8P, RUN, I8P], "pthread_detach": [I64]}
    fns = {name: ir.Function(m, ir.FunctionType(I32, args), name) for name, args in sigs.items()}
    fns["getpid"] = ir.Function(m, ir.FunctionType(I32, []), "getpid")
    return fns


def _function(m: ir.Module, name: str, t: ir.FunctionType) -> tuple[ir.Function, ir.IRBuilder]:
    fn = ir.Function(m, t, name)
    return fn, ir.IRBuilder(fn.append_basic_block("entry"))


def _while(b: ir.IRBuilder, condition: Callable[[], ir.Value], body: Callable[[], None]) -> None:
    fn = b.function
    head, inner, done = (fn.append_basic_block(s) for s in ("while.head", "while.body",
                                                            "while.done"))
    b.branch(head)
    b.position_at_end(head)
    b.cbranch(condition(), inner, done)
    b.position_at_end(inner)
    body()
    b.branch(head)
    b.position_at_end(done)


def _load(b: ir.IRBuilder, g: ir.GlobalVariable) -> ir.Value:
    return b.load_atomic(g, "acquire", 8)


def _run_part(b: ir.IRBuilder, run: ir.Value, template: ir.Value, words: ir.Value,
              part: ir.Value, size: ir.Value, extent: ir.Value, row: ir.Value,
              copied: ir.Value) -> None:
    """Part `part` of a job: the template's words into `row`, the part's (start, end) as the
    last two, then `run(row)`. The pool's workers and a caller running alone split alike."""
    b.store(I64(0), copied)

    def copy() -> None:
        k = b.load(copied)
        b.store(b.load(b.gep(template, [k])), b.gep(row, [I64(0), k]))
        b.store(b.add(k, I64(1)), copied)
    _while(b, lambda: b.icmp_signed("<", b.load(copied), b.sub(words, I64(2))), copy)
    lo = b.mul(part, size)
    hi = b.add(lo, size)
    b.store(lo, b.gep(row, [I64(0), b.sub(words, I64(2))]))
    b.store(b.select(b.icmp_signed("<", hi, extent), hi, extent),
            b.gep(row, [I64(0), b.sub(words, I64(1))]))
    b.call(run, [b.bitcast(row, I8P)])


def _work_loop(m: ir.Module, state: dict) -> ir.Function:
    """Take parts from the counter until none is left."""
    fn, b = _function(m, "dlg_pool.take_parts", ir.FunctionType(ir.VoidType(), []))
    fn.linkage = "internal"
    row = b.alloca(ir.ArrayType(I64, MAX_WORDS), name="row")
    part = b.alloca(I64, name="part")
    copied = b.alloca(I64, name="k")
    b.store(b.atomic_rmw("add", state["next"], I64(1), "acq_rel"), part)

    def body() -> None:
        _run_part(b, b.load(state["run"]), b.load(state["template"]), b.load(state["words"]),
                  b.load(part), b.load(state["size"]), b.load(state["extent"]), row, copied)
        b.store(b.atomic_rmw("add", state["next"], I64(1), "acq_rel"), part)
    _while(b, lambda: b.icmp_signed("<", b.load(part), b.load(state["count"])), body)
    b.ret_void()
    return fn


def _worker(m: ir.Module, state: dict, sync: dict, libc: dict, work: ir.Function
            ) -> ir.Function:
    """Forever: wait for a new generation (spinning, then sleeping), join its job unless the
    ticket is closed or already a later job's, take parts, and tell the caller when the last
    worker that joined a closed job is done."""
    fn, b = _function(m, "dlg_pool.worker", ir.FunctionType(I8P, [I8P]))
    fn.linkage = "internal"
    seen = b.alloca(I64, name="seen")  # every slot in the entry block: an alloca inside the
    spins = b.alloca(I64, name="spins")  # loop would take new stack at each job, and this
    joining = b.alloca(I1, name="joined"), b.alloca(I1, name="trying")  # never returns
    b.store(I64(0), seen)
    loop = fn.append_basic_block("forever")
    b.branch(loop)
    b.position_at_end(loop)
    _spin_then_sleep(b, lambda: b.icmp_signed("==", _load(b, state["generation"]),
                                              b.load(seen)), spins, sync["work"], sync, libc)
    b.store(_load(b, state["generation"]), seen)
    with b.if_then(_join(b, state, b.load(seen), *joining)):
        b.call(work, [])
        finished = b.add(b.atomic_rmw("add", state["finished"], I64(1), "seq_cst"), I64(1))
        ticket = b.load_atomic(state["ticket"], "seq_cst", 8)
        closed = b.icmp_signed("!=", b.and_(ticket, I64(CLOSED)), I64(0))
        last = b.icmp_signed("==", finished, b.and_(ticket, I64(CLOSED - 1)))
        with b.if_then(b.and_(closed, last)):
            b.call(libc["pthread_mutex_lock"], [sync["lock"]])
            b.call(libc["pthread_cond_broadcast"], [sync["done"]])
            b.call(libc["pthread_mutex_unlock"], [sync["lock"]])
    b.branch(loop)
    return fn


def _spin_then_sleep(b: ir.IRBuilder, waiting: Callable[[], ir.Value], spins: ir.Value,
                     condition: ir.Value, sync: dict, libc: dict) -> None:
    """Wait while `waiting()`: poll it SPINS times (the next job, or a joined worker's end, is
    usually microseconds away, and a sleep costs a futex round trip), then sleep on
    `condition` under the pool's lock. `spins` is an entry-block slot of the caller's."""
    b.store(I64(0), spins)
    _while(b, lambda: b.and_(waiting(), b.icmp_signed("<", b.load(spins), I64(SPINS))),
           lambda: b.store(b.add(b.load(spins), I64(1)), spins))
    b.call(libc["pthread_mutex_lock"], [sync["lock"]])
    _while(b, waiting, lambda: b.call(libc["pthread_cond_wait"], [condition, sync["lock"]]))
    b.call(libc["pthread_mutex_unlock"], [sync["lock"]])


def _join(b: ir.IRBuilder, state: dict, generation: ir.Value, joined: ir.Value,
          trying: ir.Value) -> ir.Value:
    """Count this worker in on `generation`'s job; false (nothing read of the job) when its
    ticket is closed or a later job's. `joined` and `trying` are the worker's i1 slots."""
    b.store(I1(0), joined)
    b.store(I1(1), trying)
    open_ticket = b.mul(generation, I64(GENERATION))

    def attempt() -> None:
        ticket = b.load_atomic(state["ticket"], "seq_cst", 8)
        mine = b.icmp_unsigned("==", b.and_(ticket, I64(-CLOSED)), open_ticket)
        with b.if_else(mine) as (then, otherwise):
            with then:
                pair = b.cmpxchg(state["ticket"], ticket, b.add(ticket, I64(1)), "seq_cst",
                                 "seq_cst")
                swapped = b.extract_value(pair, 1)
                b.store(swapped, joined)
                b.store(b.not_(swapped), trying)  # another worker joined first: try again
            with otherwise:
                b.store(I1(0), trying)
    _while(b, lambda: b.load(trying), attempt)
    return b.load(joined)


def _pool_start(m: ir.Module, state: dict, sync: dict, libc: dict, worker: ir.Function
                ) -> None:
    fn, b = _function(m, "dlg_pool_start", ir.FunctionType(ir.VoidType(), [I64]))
    null = ir.Constant(I8P, None)
    for name in ("lock", "job_lock"):
        b.call(libc["pthread_mutex_init"], [sync[name], null])
    for name in ("work", "done"):
        b.call(libc["pthread_cond_init"], [sync[name], null])
    thread = b.alloca(I64, name="thread")
    started = b.alloca(I64, name="started")
    b.store(I64(0), started)

    tries = b.alloca(I64, name="tries")
    b.store(I64(0), tries)

    def spawn() -> None:
        rc = b.call(libc["pthread_create"], [b.bitcast(thread, I8P), null, worker, null])
        with b.if_then(b.icmp_signed("==", rc, I32(0))):
            b.call(libc["pthread_detach"], [b.load(thread)])
            b.store(b.add(b.load(started), I64(1)), started)
        b.store(b.add(b.load(tries), I64(1)), tries)
    _while(b, lambda: b.icmp_signed("<", b.load(tries), fn.args[0]), spawn)
    b.store_atomic(b.load(started), state["workers"], "release", 8)
    b.store(b.sext(b.call(libc["getpid"], []), I64), state["pid"])
    b.ret_void()


def _alone(m: ir.Module) -> ir.Function:
    """Every part of a job on the calling thread, split as the pool splits it."""
    fn, b = _function(m, "dlg_pool.alone", RUN_PARALLEL_TYPE)
    fn.linkage = "internal"
    run, template, words, extent, count = fn.args
    row = b.alloca(ir.ArrayType(I64, MAX_WORDS), name="row")
    part = b.alloca(I64, name="part")
    copied = b.alloca(I64, name="k")
    size = b.sdiv(b.add(extent, b.sub(count, I64(1))), count)
    b.store(I64(0), part)

    def body() -> None:
        _run_part(b, run, template, words, b.load(part), size, extent, row, copied)
        b.store(b.add(b.load(part), I64(1)), part)
    _while(b, lambda: b.icmp_signed("<", b.load(part), count), body)
    b.ret_void()
    return fn


def _run_parallel(m: ir.Module, state: dict, sync: dict, libc: dict, work: ir.Function,
                  alone: ir.Function) -> None:
    fn, b = _function(m, RUN_PARALLEL, RUN_PARALLEL_TYPE)
    run, template, words, extent, count = fn.args
    spins = b.alloca(I64, name="spins")
    free = b.icmp_signed("==", b.call(libc["pthread_mutex_trylock"], [sync["job_lock"]]), I32(0))
    workers = _load(b, state["workers"])
    here = b.icmp_signed("==", b.sext(b.call(libc["getpid"], []), I64), b.load(state["pid"]))
    pooled = b.and_(free, b.and_(here, b.icmp_signed(">", workers, I64(0))))
    with b.if_else(pooled) as (then, otherwise):
        with then:
            for name, value in (("run", run), ("template", template), ("words", words),
                                ("extent", extent), ("count", count),
                                ("size", b.sdiv(b.add(extent, b.sub(count, I64(1))), count))):
                b.store(value, state[name])
            b.store_atomic(I64(0), state["next"], "release", 8)
            b.store_atomic(I64(0), state["finished"], "release", 8)
            generation = b.add(_load(b, state["generation"]), I64(1))
            b.store_atomic(b.mul(generation, I64(GENERATION)), state["ticket"], "seq_cst", 8)
            b.call(libc["pthread_mutex_lock"], [sync["lock"]])
            b.store_atomic(generation, state["generation"], "release", 8)
            b.call(libc["pthread_cond_broadcast"], [sync["work"]])
            b.call(libc["pthread_mutex_unlock"], [sync["lock"]])
            b.call(work, [])
            ticket = b.atomic_rmw("or", state["ticket"], I64(CLOSED), "seq_cst")
            joined = b.and_(ticket, I64(CLOSED - 1))

            _spin_then_sleep(b, lambda: b.icmp_signed("<", b.load_atomic(
                state["finished"], "seq_cst", 8), joined), spins, sync["done"], sync, libc)
            b.call(libc["pthread_mutex_unlock"], [sync["job_lock"]])
        with otherwise:
            with b.if_then(free):  # a forked child: the lock is ours but no worker is
                b.call(libc["pthread_mutex_unlock"], [sync["job_lock"]])
            b.call(alone, [run, template, words, extent, count])
    b.ret_void()
