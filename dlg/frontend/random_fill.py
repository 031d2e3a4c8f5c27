"""torch's in-place samplers (`x.bernoulli_`, `exponential_`, `random_`, `geometric_`,
`log_normal_`, `cauchy_`; `normal_` and `uniform_` are in tensor_methods) and `dlg.Generator`.

The samplers write NumPy draws into the tensor's array, as `normal_`/`uniform_` do, from dlg's
generator (`dlg.manual_seed`) or the one passed as `generator=`, with torch's argument checks.
The numbers differ from torch's (another generator); the distributions are torch's.

`dlg.Generator` *is* a NumPy generator (a subclass of `np.random.Generator`), so it also goes
wherever dlg takes one (`random_split`, `DataLoader`, samplers), with torch's seeding methods.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from dlg.errors import DlgTypeError, DlgValueError
from dlg.frontend import engine, tensor_methods
from dlg.frontend.tensor import Tensor, call


DEFAULT_SEED = 67280421310721  # torch's: a new generator gives the same numbers at every run


class Generator(np.random.Generator):
    """torch.Generator: a random number generator of its own, seeded with `manual_seed`."""

    def __init__(self, device: Any = "cpu"):
        super().__init__(np.random.PCG64(DEFAULT_SEED))
        self._initial_seed = DEFAULT_SEED
        self.device = str(device)

    def manual_seed(self, seed: int) -> Generator:
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise DlgTypeError(f"manual_seed expected an int, got {type(seed).__name__}",
                               engine.caller_span())
        self.bit_generator.state = np.random.PCG64(int(seed) % 2 ** 64).state
        self._initial_seed = int(seed)
        return self

    def seed(self) -> int:
        """Seed from fresh entropy; the seed used."""
        seed = int(np.random.SeedSequence().entropy) % 2 ** 63
        self.manual_seed(seed)
        return seed

    def initial_seed(self) -> int:
        return self._initial_seed

    def get_state(self) -> dict[str, Any]:
        """The generator's state, for `set_state` (torch gives a byte tensor; dlg the NumPy
        bit generator's state, a dict)."""
        return copy.deepcopy(self.bit_generator.state)

    def set_state(self, new_state: dict[str, Any]) -> Generator:
        try:
            self.bit_generator.state = new_state
        except (TypeError, ValueError, KeyError) as e:
            raise DlgValueError(f"set_state: not a state from get_state() ({e})",
                                engine.caller_span()) from None
        return self


# ---- the in-place samplers -----------------------------------------------------------------------
def _fill(x: Tensor, draw: Any, generator: Any, continuous: str | None = None) -> Tensor:
    """`draw(rng, shape)` written into x (cast to its dtype), refused as `normal_` refuses
    where a gradient is recorded. `continuous`: the distribution's name, for torch's error on
    an integer tensor."""
    if continuous is not None and not x.dtype.is_float:
        raise DlgTypeError(f"{continuous} distribution is a continuous probability "
                           f"distribution. dtype must be a floating point but you specified "
                           f"{x.dtype}", engine.caller_span())
    target = tensor_methods.writable(x)
    with engine.drawing_from(generator):
        values = draw(engine.rng(), target.shape)
    np.copyto(target, values, casting="unsafe")
    return x


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise DlgValueError(message, engine.caller_span())


def bernoulli_(self: Tensor, p: Any = 0.5, *, generator: Any = None) -> Tensor:
    """1 with probability p (a number, or a tensor broadcast to x's shape), else 0; traced, a
    fresh draw at every run (timm's drop_path: `x.new_empty(shape).bernoulli_(keep_prob)`)."""
    with engine.drawing_from(generator):
        traced = tensor_methods.traced_fill(
            self, lambda s: (call("rand_like", s) < p).to(s.dtype), p)
    if traced is not None:
        return traced
    probs = p.detach().numpy_view() if isinstance(p, Tensor) else p
    _check(bool(np.all((np.asarray(probs) >= 0) & (np.asarray(probs) <= 1))),
           f"bernoulli_ expects p to be in [0, 1], but got p={p}")
    return _fill(self, lambda rng, shape: rng.random(shape) < probs, generator)


def exponential_(self: Tensor, lambd: float = 1.0, *, generator: Any = None) -> Tensor:
    _check(lambd > 0, f"exponential_ expects lambda > 0.0, but found lambda={lambd}")
    return _fill(self, lambda rng, shape: rng.exponential(1.0 / lambd, shape), generator,
                 "Exponential")


def geometric_(self: Tensor, p: float, *, generator: Any = None) -> Tensor:
    """The trial of the first success, 1, 2, ..., each succeeding with probability p."""
    _check(0 < p < 1, f"geometric_ expects p to be in (0, 1), but got p={p}")
    return _fill(self, lambda rng, shape: rng.geometric(p, shape), generator)


def log_normal_(self: Tensor, mean: float = 1.0, std: float = 2.0, *,
                generator: Any = None) -> Tensor:
    """exp of N(mean, std^2)."""
    _check(std > 0, f"log_normal_ expects std > 0.0, but found std={std}")
    return _fill(self, lambda rng, shape: rng.lognormal(mean, std, shape), generator,
                 "LogNormal")


def cauchy_(self: Tensor, median: float = 0.0, sigma: float = 1.0, *,
            generator: Any = None) -> Tensor:
    return _fill(self, lambda rng, shape: median + sigma * rng.standard_cauchy(shape),
                 generator, "Cauchy")


def random_(self: Tensor, *args: Any, generator: Any = None, **kwargs: Any) -> Tensor:
    """Integers in [from, to): `random_(to)`, `random_(from, to)`, or `random_()`: [0, 2^m]
    for a float of m mantissa bits (24 for float32), [0, max] for an int dtype, {0, 1} for
    bool, as torch."""
    named = {"from" if k == "from_" else k: v for k, v in kwargs.items()}
    alone = len(args) == 1 and "to" not in named  # random_(to)
    bounds = {"to": args[0]} if alone else dict(zip(("from", "to"), args))
    bounds.update(named)
    if len(args) > 2 or set(bounds) - {"from", "to"}:
        raise DlgTypeError("random_() takes (to) or (from, to)", engine.caller_span())
    low, high = bounds.get("from", 0), bounds.get("to")
    dtype = self.dtype.np
    if high is None:  # one past the largest value the dtype holds exactly
        high = (2 ** (np.finfo(dtype).nmant + 1) + 1 if self.dtype.is_float else
                2 if dtype == np.bool_ else int(np.iinfo(dtype).max) + 1)
    _check(low < high, f"random_ expects 'from' to be less than 'to', but got from={low} >= "
                       f"to={high}")
    return _fill(self, lambda rng, shape: rng.integers(low, high, shape), generator)


for _sampler in (bernoulli_, exponential_, geometric_, log_normal_, cauchy_, random_):
    setattr(Tensor, _sampler.__name__, _sampler)

__all__ = ["Generator"]
