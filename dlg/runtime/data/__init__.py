"""Data for training: a batching loader over NumPy arrays, the built-in digits, MNIST IDX
files, and synthetic regression data."""

from dlg.runtime.data.digits import load_digits
from dlg.runtime.data.loader import DataLoader
from dlg.runtime.data.mnist import load_mnist, read_idx, write_idx
from dlg.runtime.data.synthetic import synthetic_regression, train_test_split

__all__ = ["DataLoader", "load_digits", "load_mnist", "read_idx", "synthetic_regression",
           "train_test_split", "write_idx"]
