"""`dlg.nn.functional`: the functional forms (the public face of dlg.frontend.functional, which
takes them from the user-facing functions of `dlg.functions`)."""

from dlg.frontend import functional as _functional

globals().update({name: getattr(_functional, name) for name in _functional.__all__})
__all__ = list(_functional.__all__)
