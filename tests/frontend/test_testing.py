"""dlg.testing.assert_close against torch.testing.assert_close: which pairs pass, and the
messages of those that do not."""

from __future__ import annotations

import numpy as np
import pytest

import dlg

torch = pytest.importorskip("torch")

CASES = [
    lambda lib: (lib.tensor([1.0, 2.0]), lib.tensor([1.0, 2.1])),
    lambda lib: (lib.tensor([1.0, 2.0]), lib.tensor([1.0, 2.0], dtype=lib.float64)),
    lambda lib: (lib.tensor([1.0, 2.0]), lib.tensor([1.0, 2.0, 3.0])),
    lambda lib: (lib.tensor([1, 2]), lib.tensor([1, 3])),
    lambda lib: ({"a": lib.ones(1)}, {"a": lib.zeros(1)}),
    lambda lib: (lib.ones(2), lib.ones(2) * 1.000001),
    lambda lib: ([lib.ones(1), 2.0], [lib.ones(1), 2.0 + 1e-9]),
    lambda lib: (lib.tensor([float("nan")]), lib.tensor([float("nan")])),
]


def _outcome(lib, case, **kwargs):
    try:
        lib.testing.assert_close(*case(lib), **kwargs)
    except AssertionError as e:
        return str(e)
    return None


@pytest.mark.parametrize("case", CASES)
def test_assert_close_agrees_with_torch(case):
    ours, theirs = _outcome(dlg, case), _outcome(torch, case)
    assert (ours is None) == (theirs is None), (ours, theirs)
    if theirs is not None:  # the same first lines (numbers are computed in another precision)
        first = theirs.replace("torch.", "dlg.").splitlines()
        assert ours.splitlines()[:3] == first[:3]
        if len(first) > 3:
            assert ours.splitlines()[3].split(":")[0] == first[3].split(":")[0]


def test_assert_close_tolerances_and_message():
    dlg.testing.assert_close(dlg.ones(2), dlg.ones(2) * 1.1, rtol=0.2, atol=0.0)
    dlg.testing.assert_close(dlg.tensor([np.nan]), dlg.tensor([np.nan]), equal_nan=True)
    with pytest.raises(AssertionError, match="^mine$"):
        dlg.testing.assert_close(dlg.ones(2), dlg.zeros(2), msg="mine")
    with pytest.raises(ValueError, match="Both 'rtol' and 'atol'"):
        dlg.testing.assert_close(dlg.ones(2), dlg.ones(2), rtol=0.1)
