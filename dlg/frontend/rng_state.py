"""torch's global random state functions for dlg's eager generator: `manual_seed` (which returns
it, as torch's), `seed`, `initial_seed`, `get_rng_state`/`set_rng_state` (what checkpoints keep
to resume the same draws) and `fork_rng` (draws inside leave the state as it was). The state is
an int64 tensor of six numbers (the PCG64 state and increment as 64-bit halves, and its buffered
32 bits), so torch.save/dlg.save store it as torch's byte tensor is stored; only dlg reads it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from dlg.errors import DlgTypeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend.random_fill import Generator
from dlg.frontend.tensor import Tensor

_HALF = 2 ** 64


def _signed(u: int) -> int:
    return u - _HALF if u >= 2 ** 63 else u


def manual_seed(seed: int) -> Generator:
    """Seed dlg's eager random numbers (torch.manual_seed); the generator that draws them is
    returned, as torch returns its default generator (`g = torch.manual_seed(0)`, then
    `generator=g`): its draws are the global ones."""
    engine.manual_seed(seed)
    g = Generator.__new__(Generator)
    np.random.Generator.__init__(g, engine.rng().bit_generator)
    g._initial_seed, g.device = int(seed), "cpu"
    return g


def seed() -> int:
    """Seed dlg's eager random numbers from fresh entropy; the seed used."""
    value = int(np.random.SeedSequence().entropy) % 2 ** 63
    engine.manual_seed(value)
    return value


def get_rng_state() -> Tensor:
    """dlg's eager generator's state, an int64 tensor [6] for set_rng_state."""
    state = engine.rng().bit_generator.state
    if state.get("bit_generator") != "PCG64":
        raise DlgValueError(f"get_rng_state: the generator is a {state.get('bit_generator')}, "
                            f"not dlg's (PCG64)", engine.caller_span())
    s, inc = state["state"]["state"], state["state"]["inc"]
    words = [s >> 64, s % _HALF, inc >> 64, inc % _HALF, state["has_uint32"],
             state["uinteger"]]
    return Tensor.of(np.array([_signed(w) for w in words], np.int64))


def set_rng_state(new_state: Any) -> None:
    """Put back a state get_rng_state gave: the draws that followed it come again."""
    if not (isinstance(new_state, Tensor) and tuple(new_state.shape) == (6,)
            and new_state.dtype.is_int):
        raise DlgTypeError("set_rng_state: expected the int64 tensor [6] that "
                           "dlg.get_rng_state() gives (torch's byte states do not fit dlg's "
                           "generator)", engine.caller_span())
    w = [int(v) % _HALF for v in new_state.numpy().astype(np.int64)]
    generator = np.random.Generator(np.random.PCG64())
    generator.bit_generator.state = {
        "bit_generator": "PCG64", "state": {"state": (w[0] << 64) | w[1],
                                            "inc": (w[2] << 64) | w[3]},
        "has_uint32": w[4], "uinteger": w[5]}
    initial = engine.initial_seed()
    engine._state.rng = generator
    engine._state.seed = initial


@contextmanager
def fork_rng(devices: Any = None, enabled: bool = True, **_: Any) -> Iterator[None]:
    """Draws inside the block leave dlg's generator as it was (torch.random.fork_rng)."""
    if not enabled:
        yield
        return
    saved = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(saved)


__all__ = ["fork_rng", "get_rng_state", "seed", "set_rng_state"]
