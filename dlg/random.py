"""`dlg.random`: torch.random's seeding and state functions for dlg's eager generator."""

from dlg.frontend.engine import initial_seed
from dlg.frontend.rng_state import fork_rng, get_rng_state, manual_seed, seed, set_rng_state

__all__ = ["fork_rng", "get_rng_state", "initial_seed", "manual_seed", "seed",
           "set_rng_state"]
