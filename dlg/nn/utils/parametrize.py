"""`dlg.nn.utils.parametrize`: torch.nn.utils.parametrize (dlg.frontend.nn.parametrize)."""

from dlg.frontend.nn.parametrize import (ParametrizationList, cached, is_parametrized,
                                         register_parametrization, remove_parametrizations)

__all__ = ["ParametrizationList", "cached", "is_parametrized", "register_parametrization",
           "remove_parametrizations"]
