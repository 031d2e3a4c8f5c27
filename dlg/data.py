"""`dlg.data`: the public face of `dlg.runtime.data` (`from dlg.data import DataLoader`)."""

from dlg.runtime.data import (
    DataLoader,
    load_digits,
    load_mnist,
    read_idx,
    synthetic_regression,
    train_test_split,
    write_idx,
)

__all__ = ["DataLoader", "load_digits", "load_mnist", "read_idx", "synthetic_regression",
           "train_test_split", "write_idx"]
