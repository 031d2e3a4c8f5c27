"""`dlg.serialization`: torch.serialization's allowlist for `torch.load`'s default
weights_only mode. A whole module saved with `dlg.save(model, path)` loads without
`weights_only=False` when every class the file names is listed (the word_language_model
example's `with torch.serialization.safe_globals([RNNModel, torch.nn.modules.rnn.LSTM, ...]):
model = torch.load(f)`); dlg's own tensor, parameter and dtype classes are always allowed then,
as torch allows its own. Anything else the file names is refused unread."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

_SAFE: list[Any] = []


def add_safe_globals(safe_globals: Iterable[Any]) -> None:
    """Allow these classes and functions in weights_only loads from now on."""
    _SAFE.extend(safe_globals)


def get_safe_globals() -> list[Any]:
    return list(_SAFE)


def clear_safe_globals() -> None:
    _SAFE.clear()


@contextmanager
def safe_globals(safe_globals: Iterable[Any]) -> Iterator[None]:  # noqa: N802
    """Allow these in weights_only loads inside the block."""
    before = list(_SAFE)
    _SAFE.extend(safe_globals)
    try:
        yield
    finally:
        _SAFE[:] = before


__all__ = ["add_safe_globals", "clear_safe_globals", "get_safe_globals", "safe_globals"]
