"""dlg's eager surface held to PyTorch's own OpInfo samples (issue 12's bars): every op dlg
spells as PyTorch does runs torch's float32 CPU samples, outputs and gradients against torch.

The normal suite runs up to CAP samples per target, spread over each OpInfo's list, and a few
representative ops traced and compiled; `-m opinfo_full` runs every sample, and every op
compiled. Each op's uint8, int8 and int16 samples (where torch supports the dtype) run values
only, SMALL_INT_CAP of them in the normal suite. `python tools/opinfo_report.py` prints the same
table without pytest (`--small-ints` for the integer samples).
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("expecttest")  # torch.testing._internal needs it

from tests.opinfo import harness  # noqa: E402
from tests.opinfo.compiled import run_target_compiled  # noqa: E402

TARGETS, LEFT_OUT = harness.scope()
# samples per target in the normal suite, spread over each OpInfo's list: a method or an alias
# runs the function's code after its own binding, so it gets fewer
CAP, METHOD_CAP = 6, 2
COMPILED_FIRST = 2  # of the CAP samples: an LLVM compile each
COMPILED_FULL_CAP = 8  # every sample of every op compiled would take an hour
# one op per family the compiler lowers: unary, binary with broadcasting, reduction, composite,
# contraction, window, movement, indexing, concatenation, loss
COMPILED_OPS = ("sin", "pow", "sum", "softmax", "matmul", "nn.functional.conv2d",
                "nn.functional.max_pool2d", "transpose", "__getitem__", "cat",
                "nn.functional.cross_entropy")

_EAGER: dict[tuple[str, bool], list[harness.Result]] = {}


def eager_results(target: harness.Target, full: bool = False) -> list[harness.Result]:
    """The target's results, run once per session (the bars reuse the per-op runs): every
    sample, or CAP spread over the list (a method or alias the first METHOD_CAP of those)."""
    if (target.key, full) not in _EAGER:
        first = None if full or target.primary else METHOD_CAP
        _EAGER[target.key, full] = harness.run_target(target, None if full else CAP, first)
    return _EAGER[target.key, full]


@pytest.mark.parametrize("target", TARGETS, ids=[t.key for t in TARGETS])
def test_opinfo_samples_agree_with_torch(target):
    """No crash and no mismatch; a failure names the sample and what differs."""
    failures = harness.failures(eager_results(target))
    assert not failures, failures


def check_bars(full: bool) -> None:
    results = [r for t in TARGETS for r in eager_results(t, full)]
    report = harness.table(results)
    print(report)
    missed = harness.missed_bars(results)
    assert not missed, f"bars missed: {'; '.join(missed)}\n{report}"


def test_opinfo_bars():
    """Issue 12's bars over the ops in scope: 0 crashes, 0 mismatches, >= 90 % of samples
    pass. The per-target table is printed (and is the assertion message when a bar fails)."""
    check_bars(full=False)


@pytest.mark.opinfo_full
def test_opinfo_bars_every_sample():
    check_bars(full=True)


SMALL_INT_CAP = 3
SMALL_INT_TARGETS = harness.small_int_targets(TARGETS)
# torch's polygamma at a pole (a negative integer, which integer samples hit) is a large finite
# number for n = 1, NaN or infinite in dlg; float32 samples miss the poles
SMALL_INT_KNOWN = {"polygamma": "poles at negative integers"}
_SMALL: dict[tuple[str, str, bool], list[harness.Result]] = {}


def small_int_results(target: harness.Target, dtype, full: bool = False) -> list[harness.Result]:
    key = (target.key, str(dtype), full)
    if key not in _SMALL:
        _SMALL[key] = harness.run_target(target, None if full else SMALL_INT_CAP, dtype=dtype)
    return _SMALL[key]


@pytest.mark.parametrize("target, dtype", SMALL_INT_TARGETS,
                         ids=[f"{t.key}/{str(d).removeprefix('torch.')}"
                              for t, d in SMALL_INT_TARGETS])
def test_opinfo_small_int_samples_agree_with_torch(target, dtype):
    """uint8/int8/int16 samples: no crash, no mismatch (values and dtypes; no gradients)."""
    if target.opinfo.name in SMALL_INT_KNOWN:
        pytest.skip(SMALL_INT_KNOWN[target.opinfo.name])
    failures = harness.failures(small_int_results(target, dtype))
    assert not failures, failures


# integer kernels the compiler emits differently for uint8 (unsigned compares, divisions,
# shifts) and the int8/int16 widths: compiled against eager dlg
SMALL_INT_COMPILED_OPS = ("add", "mul", "remainder", "floor_divide", "maximum", "lt", "amax",
                          "argmax", "sum", "cumsum", "bitwise_right_shift", "where", "cat",
                          "__getitem__", "matmul")
SMALL_INT_COMPILED = [(t, d) for t, d in SMALL_INT_TARGETS
                      if t.opinfo.name in SMALL_INT_COMPILED_OPS]


@pytest.mark.parametrize("target, dtype", SMALL_INT_COMPILED,
                         ids=[f"{t.key}/{str(d).removeprefix('torch.')}"
                              for t, d in SMALL_INT_COMPILED])
def test_opinfo_small_ints_traced_and_compiled_agree_with_eager(target, dtype):
    failures = harness.failures(run_target_compiled(target, CAP, COMPILED_FIRST, dtype=dtype))
    assert not failures, failures


@pytest.mark.opinfo_full
def test_opinfo_small_int_every_sample():
    results = [r for t, d in SMALL_INT_TARGETS if t.opinfo.name not in SMALL_INT_KNOWN
               for r in small_int_results(t, d, full=True)]
    print(harness.table(results))
    assert not harness.failures(results), harness.failures(results)


COMPILED_TARGETS = [t for t in harness.one_per_opinfo(TARGETS)
                    if t.opinfo.name in COMPILED_OPS]


@pytest.mark.parametrize("target", COMPILED_TARGETS, ids=[t.key for t in COMPILED_TARGETS])
def test_opinfo_traced_and_compiled_agree_with_eager(target):
    failures = harness.failures(run_target_compiled(target, CAP, COMPILED_FIRST))
    assert not failures, failures


ALL_COMPILED = harness.one_per_opinfo(TARGETS)


@pytest.mark.opinfo_full
@pytest.mark.parametrize("target", ALL_COMPILED, ids=[t.key for t in ALL_COMPILED])
def test_opinfo_every_op_traced_and_compiled(target):
    failures = harness.failures(run_target_compiled(target, COMPILED_FULL_CAP))
    assert not failures, failures
