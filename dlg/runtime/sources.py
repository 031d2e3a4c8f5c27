"""Where `dlgc train` gets its data: `--data digits | mnist:FOLDER | npz:FILE | regression`, or
`auto`, which picks from the model's input shape. Arrays come back shaped and typed for the
model's first input and first label, split into train and held-out test parts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlg.errors import DlgValueError
from dlg.ir.shapes import numel
from dlg.ir.types import TensorType
from dlg.runtime.data import load_digits, load_mnist, synthetic_regression, train_test_split
from dlg.runtime.model import Model

KINDS = "digits, mnist:FOLDER, npz:FILE or regression"


@dataclass(frozen=True)
class TrainingData:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    description: str


def training_data(m: Model, source: str, seed: int = 0) -> TrainingData:
    """The data `source` names, fitted to model `m` (one input, one label)."""
    assert m.train_spec is not None
    x_type = _single(m.inputs, "input")
    y_type = _single({k: t for k, t in _label_types(m).items()}, "label")
    kind, _, arg = source.partition(":")
    if kind == "auto":
        kind = _guess(x_type, y_type)
    if kind == "digits":
        size = 8 if _per_sample(x_type) == 64 else 28
        parts = [*load_digits(size=size, split="train", seed=seed),
                 *load_digits(size=size, split="test", seed=seed)]
        description = f"the built-in digits ({size}x{size})"
    elif kind == "mnist":
        if not arg:
            raise DlgValueError("--data mnist:FOLDER needs the folder holding the IDX files")
        parts = [*load_mnist(arg, split="train"), *load_mnist(arg, split="test")]
        description = f"MNIST from {arg}"
    elif kind == "npz":
        parts = _npz(Path(arg), m, seed)
        description = arg
    elif kind == "regression":
        x, y = synthetic_regression(n=1000, seed=seed)
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_fraction=0.2, seed=seed)
        parts = [x_train, y_train, x_test, y_test]
        description = "synthetic y = 2x + 1 + noise"
    else:
        raise DlgValueError(f"unknown data source {source!r}: use {KINDS}")
    x_train, y_train, x_test, y_test = parts
    return TrainingData(_fit(x_train, x_type, "x"), _fit(y_train, y_type, "y"),
                        _fit(x_test, x_type, "x"), _fit(y_test, y_type, "y"), description)


def _label_types(m: Model) -> dict[str, TensorType]:
    graph = m.train_graph
    assert graph is not None and m.train_spec is not None
    return {n.name: n.types[0] for n in graph.inputs if n.name in m.train_spec.labels}


def _single(types: dict[str, TensorType], what: str) -> TensorType:
    if len(types) != 1:
        raise DlgValueError(f"dlgc train feeds models with one {what}; this one has "
                            f"{len(types)} ({', '.join(types)}): use m.fit from Python")
    return next(iter(types.values()))


def _per_sample(t: TensorType) -> int | None:
    rest = numel(t.shape[1:]) if t.rank else 1
    return rest if isinstance(rest, int) else None


def _guess(x: TensorType, y: TensorType) -> str:
    if _per_sample(x) in (64, 784) and not y.dtype.is_float:
        return "digits"
    if _per_sample(x) == 1 and y.dtype.is_float:
        return "regression"
    raise DlgValueError(f"no built-in data fits input {x} and label {y}: pass --data "
                        f"({KINDS})")


def _npz(path: Path, m: Model, seed: int) -> list[np.ndarray]:
    x_name, y_name = next(iter(m.inputs)), next(iter(_label_types(m)))
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError) as e:
        raise DlgValueError(f"cannot read {path} as an .npz archive: {e}") from None
    for name in (x_name, y_name):
        if name not in arrays:
            raise DlgValueError(f"{path} has no array {name!r} (it has "
                                f"{', '.join(arrays) or 'none'}); name them after the model's "
                                f"input and label")
    if f"{x_name}_test" in arrays and f"{y_name}_test" in arrays:
        return [arrays[x_name], arrays[y_name], arrays[f"{x_name}_test"], arrays[f"{y_name}_test"]]
    x_train, x_test, y_train, y_test = train_test_split(arrays[x_name], arrays[y_name],
                                                        test_fraction=0.2, seed=seed)
    return [x_train, y_train, x_test, y_test]


def _fit(a: np.ndarray, t: TensorType, what: str) -> np.ndarray:
    """Reshape samples to the declared per-sample shape and convert within a kind (float data
    to the declared float dtype, integer labels to the declared integer dtype)."""
    shape = tuple(t.shape[1:])
    if all(isinstance(d, int) for d in shape) and a.ndim and a[0].size == numel(shape):
        a = a.reshape((len(a),) + shape)  # type: ignore[arg-type]
    if a.dtype.kind == "f" and not t.dtype.is_float:
        raise DlgValueError(f"{what}: the data is {a.dtype} but the model declares {t}")
    return np.ascontiguousarray(a.astype(t.dtype.np, copy=False))
