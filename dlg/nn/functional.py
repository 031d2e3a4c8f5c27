"""`dlg.nn.functional`: the functional forms (the public face of dlg.frontend.functional, which
takes them from the user-facing functions of `dlg.functions`)."""

import sys as _sys

from dlg.frontend import functional as _functional

globals().update({name: getattr(_functional, name) for name in _functional.__all__})
__all__ = list(_functional.__all__)


def _findable(fn: object, module: str, name: str) -> None:
    """Name `fn` by where pickle can find it (`module.name`) unless it is found where it says it
    is: a module holding F.relu (TransformerEncoderLayer's activation) pickles with the whole
    model, as torch's does, where made functions named a module that lacks them."""
    home = _sys.modules.get(getattr(fn, "__module__", None) or "")
    if getattr(home, getattr(fn, "__qualname__", ""), None) is not fn:
        try:
            fn.__module__, fn.__qualname__ = module, name  # type: ignore[attr-defined]
        except (AttributeError, TypeError):  # a builtin or a class that keeps its own
            pass


for _name in __all__:
    if callable(globals()[_name]) and not isinstance(globals()[_name], type):
        _findable(globals()[_name], __name__, _name)
