"""The OpInfo samples traced (`dlg.trace`) and compiled (`dlg.compile`) against eager dlg: the
sample's tensors become the trace's inputs (static shapes), its other arguments are baked in.
Forward outputs only; compiled training is tested with the models. A sample eager dlg cannot
run, or one without tensor arguments (creation ops), has nothing to trace and gives no result."""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any

import numpy as np

import dlg
from tests.opinfo.convert import array_difference, flat_outputs, leaves, rebuild, to_dlg
from tests.opinfo.harness import (ATOL, RTOL, Reference, Result, Target, classify,
                                  describe_sample, references, values_defined)

STAGES = ("traced", "compiled")


def run_compiled(target: Target, ref: Reference) -> Result | None:
    """One sample traced and compiled; None when eager dlg cannot run it or it has no tensors."""
    def result(outcome: str, detail: str = "") -> Result:
        return Result(target.key, ref.index, outcome, detail, describe_sample(ref.arguments))
    try:
        inp, args, kwargs = to_dlg(ref.arguments, {})
        with warnings.catch_warnings(), dlg.no_grad():
            warnings.simplefilter("ignore")
            eager = flat_outputs(target.call(inp, *args, **kwargs))
    except Exception:  # noqa: BLE001  (the eager run reports it)
        return None
    tensors = [t.detach() for t in leaves((inp, args, kwargs), dlg.Tensor)]
    if not tensors or not values_defined(target.opinfo.name, ref.arguments[2]):
        return None
    positions = {id(t): i for i, t in enumerate(leaves((inp, args, kwargs), dlg.Tensor))}

    def traced_call(*xs: Any) -> Any:
        i, a, k = rebuild((inp, args, kwargs), lambda t: xs[positions[id(t)]], dlg.Tensor)
        return target.call(i, *a, **k)
    arrays = [np.asarray(t.numpy(), order="C") for t in tensors]  # as compiled code takes them
    stage = "trace: "
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = dlg.trace(traced_call, *tensors,
                              dynamic={f"x{i}": {} for i in range(len(tensors))})
            runs = {"traced": model(*arrays)}
            stage = "compile: "
            runs["compiled"] = dlg.compile(model)(*arrays)
    except Exception as e:  # noqa: BLE001  (every failure is an outcome)
        return result(*classify(e, stage))
    for name in STAGES:
        diff = _difference(runs[name], eager, f"{name} ")
        if diff:
            return result("mismatch", diff)
    return result("pass")


def _difference(got: Any, eager: list[Any], what: str) -> str | None:
    got = list(got) if isinstance(got, tuple) else [got]
    if len(got) != len(eager):
        return f"{what}gives {len(got)} outputs, eager {len(eager)}"
    for i, (g, e) in enumerate(zip(got, eager)):
        if not isinstance(e, dlg.Tensor):
            return f"{what}output[{i}]: eager gives {type(e).__name__}, not a tensor"
        want = np.asarray(e.detach().numpy())
        if np.asarray(g).dtype != want.dtype:
            return f"{what}output[{i}]: dtype {np.asarray(g).dtype} != eager {want.dtype}"
        # RTOL holds: the compiled float32 exp and tanh are within 3.1 and 7 ulps (DESIGN)
        diff = array_difference(np.asarray(g), want, RTOL, ATOL, f"{what}output[{i}]: ",
                                against="eager")
        if diff:
            return diff
    return None


def run_target_compiled(target: Target, cap: int | None = None,
                        first: int | None = None, dtype: Any = None) -> list[Result]:
    """Every (or at most `cap`) sample of the target's OpInfo traced and compiled, or only the
    `first` of those: float32's, or `dtype`'s (a small int's keyed `key/uint8`)."""
    refs = references(target.opinfo, cap) if dtype is None else references(target.opinfo, cap,
                                                                            dtype)
    results = [r for ref in refs[:first] if (r := run_compiled(target, ref)) is not None]
    if dtype is None:
        return results
    tag = str(dtype).removeprefix("torch.")
    return [replace(r, key=f"{r.key}/{tag}") for r in results]
