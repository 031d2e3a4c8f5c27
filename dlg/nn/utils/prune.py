"""`dlg.nn.utils.prune`: torch.nn.utils.prune's pruning methods and functions
(dlg.frontend.nn.prune)."""

from dlg.frontend.nn.prune import (BasePruningMethod, CustomFromMask, Identity, L1Unstructured,
                                   LnStructured, PruningContainer, RandomStructured,
                                   RandomUnstructured, custom_from_mask, global_unstructured,
                                   identity, is_pruned, l1_unstructured, ln_structured,
                                   random_structured, random_unstructured, remove)

__all__ = ["BasePruningMethod", "CustomFromMask", "Identity", "L1Unstructured", "LnStructured",
           "PruningContainer", "RandomStructured", "RandomUnstructured", "custom_from_mask",
           "global_unstructured", "identity", "is_pruned", "l1_unstructured", "ln_structured",
           "random_structured", "random_unstructured", "remove"]
