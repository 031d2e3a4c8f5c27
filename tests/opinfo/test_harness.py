"""The OpInfo harness itself: its scope finds dlg's spellings, and a wrong result of each kind
gets the outcome it must (a harness that passed everything would meet the bars vacuously)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("expecttest")

import dlg  # noqa: E402
from tests.opinfo import harness  # noqa: E402

TARGETS, LEFT_OUT = harness.scope()
BY_KEY = {t.key: t for t in TARGETS}


def test_scope_has_functions_methods_properties_and_adapters():
    for key in ("sum:fn", "sum:method", "nn.functional.relu:fn", "T:property", "where:fn",
                "trace:fn", "trace:method"):  # dlg.trace(tensor) is torch.trace
        assert key in BY_KEY


def _raise(error: Exception):
    def fn(*args, **kwargs):
        raise error
    return fn


def _wrapped_reference_failure(x):
    try:
        raise ValueError("cannot reshape")
    except ValueError as e:
        raise dlg.DlgValueError("reshape failed: cannot reshape") from e


@pytest.mark.parametrize("call, outcome, detail", [
    (dlg.sin, "pass", ""),
    (dlg.cos, "mismatch", "values differ"),
    (lambda x: dlg.sin(x.detach()) + x * 0, "mismatch", "grad of input"),
    (lambda x: dlg.sin(x).double(), "mismatch", "dtype"),
    (lambda x: dlg.sin(x).unsqueeze(0), "mismatch", "shape"),
    (lambda x: (dlg.sin(x), x), "mismatch", "dlg returned tuple"),
    (_raise(IndexError("tuple index out of range")), "crash", "IndexError"),
    (_raise(TypeError("int() argument must be a string")), "crash", "TypeError"),
    (_wrapped_reference_failure, "crash", "ValueError in reshape failed"),
    (_raise(dlg.DlgTypeError("sin: no such option")), "refused", "DlgTypeError"),
    (lambda x, **kw: dlg.sin(x, bogus=1), "refused", "bogus"),
])
def test_each_kind_of_wrong_result_gets_its_outcome(call, outcome, detail):
    sin = BY_KEY["sin:fn"].opinfo
    results = harness.run_target(harness.Target("sin:test", sin, call))
    assert results and {r.outcome for r in results} == {outcome}
    assert all(detail in r.detail for r in results)
