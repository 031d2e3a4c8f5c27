"""PyTorch's own test corpus (OpInfo, `op_db`) run through dlg's eager surface.

Scope: each OpInfo whose PyTorch spelling dlg has — `dlg.<name>` (dotted names through
`dlg.nn.functional`...), the method `dlg.Tensor.<name>`, a property (`x.T`), or an adapter for
the OpInfos whose `op` is a lambda with its own argument order — is a `Target` per spelling
(`add:fn`, `add:method`). Every float32 CPU sample runs through torch and through dlg and gets
one outcome: pass; refused (dlg said what it does not support: a DlgError, Python's TypeError
for an argument the function does not take, a torch dtype dlg lacks); crash (any other
exception, in the call or in backward); mismatch (structure, shape, dtype, values, or the
gradient for a fixed random cotangent). `compiled.py` runs the same samples traced and compiled
against eager dlg. The small integer dtypes (SMALL_INTS: uint8, int8, int16) run each OpInfo's
samples of that dtype where torch supports it, values only (integers have no gradient)."""

from __future__ import annotations

import inspect
import itertools
import os
import re
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import numpy as np
import torch

import dlg
from tests.opinfo.convert import (NoCounterpart, array_difference, describe, difference,
                                  flat_outputs, rebuild, to_dlg)

OUTCOMES = ("pass", "refused", "crash", "mismatch")
SMALL_INTS = (torch.uint8, torch.int8, torch.int16)

# float32 results of dlg's NumPy references against ATen's kernels: both round each op once,
# but sums and products run in another order, so a few ulps of the largest term add up
RTOL, ATOL = 1e-4, 1e-5

# the OpInfos whose `op` is a lambda: (dlg spelling, the adapter from torch's argument order)
ADAPTERS: dict[str, tuple[str, Callable[[Callable[..., Any]], Callable[..., Any]]]] = {
    "where": ("where", lambda f: lambda x, condition, y, **kw: f(condition, x, y, **kw)),
    "nn.functional.embedding": ("nn.functional.embedding",
                                lambda f: lambda weight, idx, **kw: f(idx, weight, **kw)),
    "einsum": ("einsum", lambda f: lambda tensors, equation: f(equation, tensors)),
    "repeat": ("repeat", lambda f: f),  # lambda x, dims: x.repeat(dims)
    # wrapper_set_seed(torch.<name>, ...): torch's own argument order
    **{name: (name, lambda f: f) for name in ("randn", "randn_like", "rand_like", "randint",
                                              "randint_like",
                                              "nn.functional.dropout", "nn.functional.dropout2d",
                                              "nn.functional.dropout3d", "nn.functional.rrelu")},
}

# OpInfos whose samples hand dlg a torch callable, which cannot take dlg tensors
TORCH_CALLABLES = {"nn.functional.triplet_margin_with_distance_loss": (
    "its samples pass torch's PairwiseDistance() as distance_function; tested with dlg's in "
    "tests/frontend/test_modules_cells_losses.py")}

# results drawn at random or left uninitialised: only structure, shapes and dtypes compared
VALUES_UNDEFINED = {"randn", "rand_like", "randn_like", "randint", "randint_like", "bernoulli",
                    "normal", "multinomial", "uniform", "log_normal", "empty", "empty_like",
                    "new_empty", "empty_permuted", "empty_strided", "new_empty_strided",
                    "nn.functional.dropout", "nn.functional.dropout2d",
                    "nn.functional.dropout3d", "nn.functional.alpha_dropout",
                    "nn.functional.feature_alpha_dropout"}
# ... only in the samples that pass training=True (rrelu's slopes are drawn then; in eval mode
# they are their mean, and values and gradients are compared)
RANDOM_WHEN_TRAINING = {"nn.functional.rrelu"}


def values_defined(name: str, kwargs: dict[str, Any]) -> bool:
    """Whether the op's result on a sample with these keywords is torch's to compare with."""
    return name not in VALUES_UNDEFINED and not (name in RANDOM_WHEN_TRAINING
                                                 and kwargs.get("training"))


# OpInfos whose float32 result in torch is further from the exact one than RTOL (the matrix
# exponential of a large-norm matrix: torch's float32 squarings lose 1e-3; logcumsumexp's
# gradient, 2e-3 on OpInfo's samples; ctc_loss's gradient after 50 frames of its recursion,
# 4e-4 in a few places, where dlg's is within RTOL); their reference is torch's float64
# result, rounded to float32
IN_FLOAT64 = {"matrix_exp", "linalg.matrix_exp", "logcumsumexp", "nn.functional.ctc_loss"}

# gradients that float32 cannot give to RTOL and ATOL, with the (rtol, atol) they are compared
# at: logcumsumexp's is a sum of g * exp(x - out) with out rounded to float32, whose ulp at
# OpInfo's x = 10000 is 1e-3: dlg's is up to 7e-4 (relative) from the float64 one there, and a
# small sum of such terms 2e-5 (absolute); within 2e-6 of it on ordinary inputs
GRADIENT_TOLERANCE = {"logcumsumexp": (1e-3, 1e-4)}


# outputs defined up to a sign per column (eigenvectors): LAPACK builds (NumPy's, ATen's) choose
# differently, so those outputs are compared in absolute value and gradients, which depend on
# the sign, are not compared (tests/frontend/test_dense_linalg.py checks sign-free ones)
SIGN_FREE = {"linalg.eigh": 1}

# orderings whose indices among equal values are the kernel's choice (torch's unstable sort):
# integer samples repeat values, so their indices are compared through the values they pick
# (with the position of `dim` among the positional arguments)
TIED = {"sort": 0, "argsort": 0, "topk": 1, "kthvalue": 1, "mode": 0, "median": 0,
        "nanmedian": 0}


@dataclass(frozen=True)
class Target:
    """One dlg spelling of one OpInfo: `call(input, *args, **kwargs)` as torch's OpInfo calls."""

    key: str  # "softmax.with_dtype:method", "cat@concat:fn" (an alias)
    opinfo: Any
    call: Callable[..., Any]

    @property
    def primary(self) -> bool:
        """The OpInfo's own name as a function (methods and aliases run the same code)."""
        return self.key.endswith(":fn") and "@" not in self.key


@dataclass(frozen=True)
class Result:
    key: str
    index: int  # the sample's position in the OpInfo's sample list
    outcome: str
    detail: str  # the exception or the difference, one line
    sample: str  # the sample in short


@cache
def op_db() -> tuple[Any, ...]:
    """PyTorch's OpInfo database (the import takes about ten seconds: once per process)."""
    from torch.testing._internal.common_methods_invocations import op_db as db
    return tuple(db)


def _resolve(root: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        root = getattr(root, part, None)
    return root


def _full_name(op: Any) -> str:
    return f"{op.name}.{op.variant_test_name}" if op.variant_test_name else op.name


def _function(name: str, torch_op: Any, aten_name: str | None = None
              ) -> Callable[..., Any] | None:
    """dlg's function spelling of `name`, when its calling convention is torch's `torch_op`."""
    if name in ADAPTERS:
        path, adapt = ADAPTERS[name]
        f = _resolve(dlg, path)
        return adapt(f) if callable(f) else None
    for spelling in (name, aten_name or name):
        f = _resolve(dlg, spelling)
        if callable(f) and not isinstance(f, type) and _resolve(torch, spelling) is torch_op:
            return f
    return None


def _method(name: str, torch_method: Any) -> tuple[str, Callable[..., Any]] | None:
    """dlg's method or property spelling: ("method" | "property", call)."""
    name = getattr(torch_method, "__name__", None) or name
    attr = inspect.getattr_static(dlg.Tensor, name, None)
    if torch_method is not None and inspect.isfunction(attr):
        return "method", lambda x, *args, **kwargs: getattr(x, name)(*args, **kwargs)
    if torch_method is None and isinstance(attr, property):  # OpInfo T: lambda x: x.T
        return "property", lambda x: getattr(x, name)
    return None


def _targets(op: Any) -> list[Target]:
    """The targets of each dlg spelling of `op`: its name's, then its aliases' (`cat@concat`)."""
    full = _full_name(op)
    found = []
    names = [("", op.name, op.op, op.method_variant, op.aten_name)]
    names += [(f"@{a.name}", a.name, a.op, a.method_variant, None) for a in op.aliases]
    for tag, name, torch_op, torch_method, aten_name in names:
        function = _function(name, torch_op, aten_name)
        if function is not None:
            found.append(Target(f"{full}{tag}:fn", op, function))
        method = _method(name, torch_method)
        if method is not None:
            found.append(Target(f"{full}{tag}:{method[0]}", op, method[1]))
    return found


def scope() -> tuple[list[Target], dict[str, str]]:
    """The targets dlg exposes, and the OpInfos left out with why."""
    targets: list[Target] = []
    left_out: dict[str, str] = {}
    for op in op_db():
        full = _full_name(op)
        if op.name in TORCH_CALLABLES:
            left_out[full] = TORCH_CALLABLES[op.name]
            continue
        found = _targets(op)
        if found and torch.float32 not in op.supported_dtypes("cpu"):
            left_out[full] = "no float32 samples"
        elif found:
            targets += found
        elif callable(_resolve(dlg, op.name)):
            left_out[full] = ("dlg has the name, OpInfo's op is a lambda: an ADAPTERS row if "
                              "they mean the same")
        else:
            left_out[full] = "not exposed"
    return targets, left_out


# ---- torch's side -------------------------------------------------------------------------------
@dataclass
class Reference:
    """torch's result for one sample, and its gradient for a fixed random cotangent."""

    index: int
    arguments: tuple[Any, tuple[Any, ...], dict[str, Any]]  # (input, args, kwargs)
    output: Any
    grads: list[np.ndarray] | None  # per tensor of `wrt` (None: no gradient compared)
    wrt: list[tuple[str, torch.Tensor]]  # the tensors of `arguments` torch differentiated
    cotangents: list[tuple[int, np.ndarray]]  # (position among the flat outputs, cotangent)


def _independent(arguments: Any) -> Any:
    """`arguments` with each tensor a copy and a leaf of its own (same values, strides and
    requires_grad; one tensor passed twice stays one), as dlg's converted tensors are: a sample
    tensor made from another would otherwise pass its gradient on in torch only, and an op that
    updates an argument in place (batch_norm's running statistics) would change what dlg gets."""
    copies: dict[int, torch.Tensor] = {}

    def copy(t: torch.Tensor) -> torch.Tensor:
        if id(t) not in copies:
            copies[id(t)] = t.detach().clone(memory_format=torch.preserve_format
                                             ).requires_grad_(t.requires_grad)
        return copies[id(t)]
    return rebuild(arguments, copy, torch.Tensor)


def _labelled(arguments: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """The sample's tensors with where they sit (input, args[1][0], kwargs['weight'])."""
    seen: set[int] = set()

    def walk(v: Any, label: str) -> Iterator[tuple[str, torch.Tensor]]:
        if isinstance(v, torch.Tensor) and id(v) not in seen:
            seen.add(id(v))
            yield label, v
        elif isinstance(v, (list, tuple)):
            for i, item in enumerate(v):
                yield from walk(item, f"{label}[{i}]")
        elif isinstance(v, dict):
            for k, item in v.items():
                yield from walk(item, f"{label}[{k!r}]")
    inp, args, kwargs = arguments
    yield from walk(inp, "input")
    yield from walk(args, "args")
    yield from walk(kwargs, "kwargs")


# a capped run spreads its picks over the first samples only: max_pool2d and logspace make over
# a thousand, whose making alone takes seconds
CAPPED_FROM = 200
_REFERENCES: dict[tuple[str, int | None, Any], tuple[Reference, ...]] = {}
DROPPED: dict[str, int] = {}  # per OpInfo: samples torch itself rejects (nothing to compare)


def references(op: Any, cap: int | None, dtype: Any = torch.float32) -> tuple[Reference, ...]:
    """torch's results for the OpInfo's CPU samples of `dtype` (seeded: the same samples in
    every run), or for at most `cap` of them spread evenly over the first CAPPED_FROM; made once
    per OpInfo, cap and dtype."""
    key = (_full_name(op), cap, dtype)
    if key not in _REFERENCES:
        _REFERENCES[key] = _references(op, cap, dtype)
    return _REFERENCES[key]


def _references(op: Any, cap: int | None, dtype: Any) -> tuple[Reference, ...]:
    """A sample torch itself rejects is dropped (and counted in DROPPED). Integer samples are
    made without requires_grad: torch refuses gradients of integers too."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        samples = list(itertools.islice(
            op.sample_inputs("cpu", dtype, requires_grad=op.supports_autograd
                             and dtype.is_floating_point),
            None if cap is None else CAPPED_FROM))
    picked = range(len(samples))
    if cap is not None and len(samples) > cap:
        picked = sorted({int(i) for i in np.linspace(0, len(samples) - 1, cap)})
    refs = []
    for i in picked:
        try:
            refs.append(_reference(op, i, samples[i]))
        except Exception:  # noqa: BLE001  (torch's own failure: not dlg's to explain)
            DROPPED[_full_name(op)] = DROPPED.get(_full_name(op), 0) + 1
    return tuple(refs)


def _reference(op: Any, index: int, sample: Any) -> Reference:
    """torch's run on copies of the sample, so that `arguments`, dlg's, keep their values."""
    arguments = _independent((sample.input, tuple(sample.args), dict(sample.kwargs)))
    torch_arguments = _independent(arguments)
    if op.name in IN_FLOAT64:
        torch_arguments = rebuild(torch_arguments, lambda t: t.detach().double().requires_grad_(
            t.requires_grad) if t.dtype == torch.float32 else t, torch.Tensor)
    inp, args, kwargs = torch_arguments
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        output = op(inp, *args, **kwargs)
    flat = flat_outputs(output)
    differentiable = [i for i, o in enumerate(flat) if isinstance(o, torch.Tensor)
                      and o.requires_grad and (o.is_floating_point() or o.is_complex())]
    pairs = [(label, t, torch_t) for (label, t), (_, torch_t)
             in zip(_labelled(arguments), _labelled(torch_arguments)) if t.requires_grad]
    wrt = [(label, t) for label, t, _ in pairs]
    rng = np.random.default_rng(index)
    cotangents = [(i, _cotangent(rng, flat[i])) for i in differentiable]
    grads = None
    if op.name in SIGN_FREE:
        output = _unsigned(output, SIGN_FREE[op.name], torch.abs)
    elif cotangents and wrt and values_defined(op.name, arguments[2]):
        found = torch.autograd.grad([flat[i] for i, _ in cotangents], [t for *_, t in pairs],
                                    [torch.from_numpy(c).to(flat[i].dtype)
                                     for i, c in cotangents], allow_unused=True)
        grads = [np.zeros(t.shape, np.float32) if g is None else
                 g.detach().resolve_conj().numpy().astype(np.complex64 if g.is_complex()
                                                          else np.float32)
                 for g, (_, t) in zip(found, wrt)]
    if op.name in IN_FLOAT64:
        output = rebuild(output, lambda t: t.detach().float() if t.dtype == torch.float64 else t,
                         torch.Tensor)
    return Reference(index, arguments, output, grads, wrt, cotangents)


def _cotangent(rng: np.random.Generator, output: torch.Tensor) -> np.ndarray:
    """A random cotangent for `output`: complex for a complex output (fft's)."""
    c = rng.standard_normal(output.shape).astype(np.float32)
    if output.is_complex():
        c = (c + 1j * rng.standard_normal(output.shape)).astype(np.complex64)
    return c


def _unsigned(outputs: Any, index: int, absolute: Callable[[Any], Any]) -> tuple[Any, ...]:
    """The outputs as a tuple, the one at `index` in absolute value."""
    return tuple(absolute(o) if i == index else o for i, o in enumerate(outputs))


# ---- dlg's side ---------------------------------------------------------------------------------
# Python's own words for a call whose arguments the function does not take
_BINDING = re.compile(r"unexpected keyword argument|takes .*positional argument|missing \d+ "
                      r"required|multiple values for argument")


def classify(e: BaseException, stage: str = "") -> tuple[str, str]:
    """(outcome, one line) for an exception dlg raised: refusals say what is unsupported."""
    cause = e.__cause__
    if isinstance(e, dlg.DlgError) and cause is not None and not isinstance(cause, dlg.DlgError):
        # a reference that failed, reported as a DlgError at the user's line: not a refusal
        return "crash", f"{stage}{type(cause).__name__} in {e.message} ({_where(cause)})"
    if isinstance(e, dlg.DlgError):
        return "refused", f"{stage}{type(e).__name__}: {e.message.splitlines()[0]}"
    if isinstance(e, NoCounterpart) or (type(e) is TypeError and _BINDING.search(str(e))):
        return "refused", f"{stage}{type(e).__name__}: {str(e).splitlines()[0]}"
    text = str(e).splitlines()[0] if str(e) else ""
    return "crash", f"{stage}{type(e).__name__}: {text} ({_where(e)})"


def _where(e: BaseException) -> str:
    """The innermost frame in dlg (or the harness) that raised, file:line; for an error that
    wraps another (the compiler's "internal compiler error in pass ..."), the wrapped one's."""
    while e.__cause__ is not None:
        e = e.__cause__
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename.startswith(root)]
    if not frames:
        return "outside dlg"
    return f"{os.path.relpath(frames[-1].filename, root)}:{frames[-1].lineno}"


def run_eager(target: Target, ref: Reference) -> Result:
    """One sample through dlg eagerly: the call, the comparison, then the gradient."""
    def result(outcome: str, detail: str = "") -> Result:
        return Result(target.key, ref.index, outcome, detail, describe_sample(ref.arguments))
    memo: dict[int, Any] = {}
    try:
        inp, args, kwargs = to_dlg(ref.arguments, memo)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = target.call(inp, *args, **kwargs)
    except Exception as e:  # noqa: BLE001  (every failure is an outcome)
        return result(*classify(e))
    values = values_defined(target.opinfo.name, ref.arguments[2])
    if target.opinfo.name in SIGN_FREE:
        got = _unsigned(got, SIGN_FREE[target.opinfo.name], abs)
    want = ref.output
    if target.opinfo.name in TIED and not ref.arguments[0].is_floating_point():
        got, want = _picked(target.opinfo.name, ref.arguments, got, want)
    diff = difference(got, want, RTOL, ATOL, values)
    if diff:
        return result("mismatch", diff)
    if ref.grads is None:
        return result("pass")
    try:
        diff = _gradient_difference(got, ref, memo,
                                    GRADIENT_TOLERANCE.get(target.opinfo.name, (RTOL, ATOL)))
    except Exception as e:  # noqa: BLE001
        return result(*classify(e, "backward: "))
    return result("mismatch", diff) if diff else result("pass")


def _picked(name: str, arguments: Any, got: Any, want: Any) -> tuple[Any, Any]:
    """(got, want) with each index output replaced by the input's values at those indices."""
    inp, args, kwargs = arguments
    x = inp.detach().numpy()
    at = TIED[name]
    dim = kwargs.get("dim", args[at] if len(args) > at else -1)

    def values(indices: np.ndarray) -> np.ndarray:
        if x.ndim == 0:
            return indices
        axis = dim % x.ndim
        wide = indices if indices.ndim == x.ndim else np.expand_dims(indices, axis)
        taken = np.take_along_axis(x, wide, axis)
        return taken if indices.ndim == x.ndim else np.squeeze(taken, axis)

    if name == "argsort":
        return (dlg.tensor(values(np.asarray(got.numpy()))), torch.from_numpy(
            values(want.numpy())))
    if not isinstance(want, tuple) or not isinstance(got, tuple) or len(got) != 2:
        return got, want
    return ((got[0], dlg.tensor(values(np.asarray(got[1].numpy())))),
            (want[0], torch.from_numpy(values(want[1].numpy()))))


def _gradient_difference(got: Any, ref: Reference, memo: dict[int, Any],
                         tolerance: tuple[float, float]) -> str | None:
    flat = flat_outputs(got)
    for i, _ in ref.cotangents:
        if not flat[i].requires_grad:
            return f"output[{i}] does not require grad (torch's does)"
    if len(ref.cotangents) == 1:
        (i, cotangent), = ref.cotangents
        flat[i].backward(dlg.tensor(cotangent))
    else:
        sum(((flat[i] * dlg.tensor(c)).sum() for i, c in ref.cotangents)).backward()
    for (label, t), want in zip(ref.wrt, ref.grads or ()):
        grad = memo[id(t)].grad
        have = np.zeros(want.shape, want.dtype) if grad is None else grad.numpy()
        diff = array_difference(np.asarray(have), want, *tolerance, f"grad of {label}: ")
        if diff:
            return diff
    return None


def describe_sample(arguments: Any) -> str:
    inp, args, kwargs = arguments
    text = describe(inp)
    if args:
        text += f", args={describe(args)}"
    if kwargs:
        text += f", kwargs={describe(kwargs)}"
    return text


def run_target(target: Target, cap: int | None = None, first: int | None = None,
               dtype: Any = torch.float32) -> list[Result]:
    """Every (or at most `cap`) sample of `dtype` of the target's OpInfo through dlg eagerly, or
    only the `first` of those; a small int's results are keyed `key/uint8`."""
    results = [run_eager(target, ref) for ref in references(target.opinfo, cap, dtype)[:first]]
    if dtype is torch.float32:
        return results
    tag = str(dtype).removeprefix("torch.")
    return [replace(r, key=f"{r.key}/{tag}") for r in results]


def small_int_targets(targets: list[Target]) -> list[tuple[Target, Any]]:
    """(target, dtype) for each OpInfo's function spelling (else its method) and each of
    SMALL_INTS that torch supports for it on the CPU: `targets`' OpInfos and the integer-only
    ones `scope` leaves out for having no float32 samples (bitwise ops, shifts, gcd)."""
    return [(t, d) for t in one_per_opinfo(targets) + one_per_opinfo(integer_only_targets())
            for d in SMALL_INTS if d in t.opinfo.supported_dtypes("cpu")]


@cache
def integer_only_targets() -> list[Target]:
    """The targets of the OpInfos dlg spells that torch runs on no float32 (integers only)."""
    return [t for op in op_db() if op.name not in TORCH_CALLABLES
            and torch.float32 not in op.supported_dtypes("cpu") for t in _targets(op)]


# ---- the table and the bars ---------------------------------------------------------------------
PASS_BAR = 0.90  # of the samples in scope


def table(results: list[Result]) -> str:
    """One row per target (samples, pass, refused, crash, mismatch) and the totals."""
    rows: dict[str, dict[str, int]] = {}
    for r in results:
        rows.setdefault(r.key, dict.fromkeys(OUTCOMES, 0))[r.outcome] += 1
    width = max([len(k) for k in rows] + [5])
    head = f"{'op':<{width}} {'samples':>7} " + " ".join(f"{o:>8}" for o in OUTCOMES)
    lines = [head, "-" * len(head)]
    for key, counts in rows.items():
        lines.append(f"{key:<{width}} {sum(counts.values()):>7} "
                     + " ".join(f"{counts[o]:>8}" for o in OUTCOMES))
    totals = {o: sum(c[o] for c in rows.values()) for o in OUTCOMES}
    lines.append("-" * len(head))
    lines.append(f"{'total':<{width}} {len(results):>7} "
                 + " ".join(f"{totals[o]:>8}" for o in OUTCOMES))
    share = totals["pass"] / len(results) if results else 0.0
    lines.append(f"{len(rows)} targets; {share:.1%} of samples pass")
    return "\n".join(lines)


def missed_bars(results: list[Result]) -> list[str]:
    """The issue's bars that `results` miss: no crash, no mismatch, PASS_BAR of samples pass."""
    counts = {o: sum(r.outcome == o for r in results) for o in OUTCOMES}
    missed = [f"{counts[o]} {o}es" for o in ("crash", "mismatch") if counts[o]]
    if not results or counts["pass"] < PASS_BAR * len(results):
        missed.append(f"{counts['pass']} of {len(results)} samples pass, under {PASS_BAR:.0%}")
    return missed


def failures(results: list[Result]) -> str:
    """The crashes and mismatches, one line each: target, sample, what happened."""
    return "\n".join(f"{r.key} sample {r.index} ({r.sample}): {r.outcome}: {r.detail}"
                     for r in results if r.outcome in ("crash", "mismatch"))


def one_per_opinfo(targets: list[Target]) -> list[Target]:
    """The function spelling of each OpInfo, else its method: their traced graphs are the same."""
    chosen: dict[int, Target] = {}
    for t in targets:
        chosen.setdefault(id(t.opinfo), t)
    return list(chosen.values())


def by_cause(results: list[Result], outcomes: tuple[str, ...]) -> dict[str, list[Result]]:
    """Results of `outcomes` grouped by likely cause (`_cause`), the largest group first."""
    groups: dict[str, list[Result]] = {}
    for r in results:
        if r.outcome in outcomes:
            groups.setdefault(f"{r.outcome}: {_cause(r)}", []).append(r)
    return dict(sorted(groups.items(), key=lambda kv: -len(kv[1])))


def _cause(r: Result) -> str:
    """The detail without what is particular to one sample: numbers, shapes and indices (quoted
    names, such as an argument's, and a crash's dlg line are kept)."""
    text, where = r.detail, ""
    located = re.fullmatch(r"(.*) \(([\w/.]+:\d+|outside dlg)\)", text)
    if located:
        text, where = located.group(1), f" at {located.group(2)}"
    text = re.sub(r"(?<![\w'])-?\d[\d.e+-]*|\[[^\]']*\]|\bnan\b|\binf\b", "#",
                  text.split(";")[0])
    return text[:200] + where
