"""Where `dlgc train` gets its data: `--data digits | mnist:FOLDER | npz:FILE | regression`, or
`auto`, which picks from the model's input shape. Arrays come back by input name, shaped and
typed for the training graph's inputs, split into train and held-out test parts. An .npz
archive feeds any model (several inputs, several labels, or none) by naming its arrays after
the inputs; the built-in sets feed models with one input and one label."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlg.errors import DlgValueError
from dlg.ir.shapes import numel
from dlg.ir.types import TensorType
from dlg.runtime.data import load_digits, load_mnist, synthetic_regression, train_test_split
from dlg.runtime.feeds import SAMPLE_WEIGHT
from dlg.runtime.model import Model

KINDS = "digits, mnist:FOLDER, npz:FILE or regression"


@dataclass(frozen=True)
class TrainingData:
    """Every input of the training graph by name (model inputs, then the train section's),
    for training and for the held-out test."""

    train: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    description: str

    @staticmethod
    def rows(feed: dict[str, np.ndarray]) -> int:
        return len(next(iter(feed.values())))


def training_data(m: Model, source: str, seed: int = 0) -> TrainingData:
    """The data `source` names, fitted to model `m`."""
    assert m.train_spec is not None
    types = {**m.inputs, **_label_types(m)}
    kind, _, arg = source.partition(":")
    if kind == "npz":
        if not arg:
            raise DlgValueError("--data npz:FILE needs the .npz archive's path")
        train, test = _npz(Path(arg), types, seed)
        return TrainingData(_fitted(train, types), _fitted(test, types), arg)
    x_name = _single(m.inputs, "input")
    y_name = _single({k: t for k, t in types.items()
                      if k not in m.inputs and k != SAMPLE_WEIGHT}, "label")
    x_type, y_type = types[x_name], types[y_name]
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
    elif kind == "regression":
        x, y = synthetic_regression(n=1000, seed=seed)
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_fraction=0.2, seed=seed)
        parts = [x_train, y_train, x_test, y_test]
        description = "synthetic y = 2x + 1 + noise"
    else:
        raise DlgValueError(f"unknown data source {source!r}: use {KINDS}")
    x_train, y_train, x_test, y_test = parts
    return TrainingData(_fitted({x_name: x_train, y_name: y_train}, types),
                        _fitted({x_name: x_test, y_name: y_test}, types), description)


def _label_types(m: Model) -> dict[str, TensorType]:
    graph = m.train_graph
    assert graph is not None and m.train_spec is not None
    return {n.name: n.types[0] for n in graph.inputs if n.name in m.train_spec.labels}


def _single(types: dict[str, TensorType], what: str) -> str:
    if len(types) != 1:
        raise DlgValueError(f"the built-in data sets feed models with one {what}; this one has "
                            f"{len(types)} ({', '.join(types) or 'none'}): pass --data "
                            f"npz:FILE with arrays named after the inputs and labels")
    return next(iter(types))


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


def _npz(path: Path, types: dict[str, TensorType], seed: int
         ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The archive's arrays named after the training graph's inputs (`sample_weight` may be
    left out: it is then all ones), and their `NAME_test` twins when every one has one (else
    a seeded 80/20 split)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError) as e:
        raise DlgValueError(f"cannot read {path} as an .npz archive: {e}") from None
    names = [n for n in types if n != SAMPLE_WEIGHT or n in arrays]
    missing = [n for n in names if n not in arrays]
    if missing:
        raise DlgValueError(f"{path} has no array{'s' * (len(missing) > 1)} "
                            f"{', '.join(map(repr, missing))} (it has "
                            f"{', '.join(arrays) or 'none'}); the model trains on "
                            f"{', '.join(names)}, each an array named after its input or "
                            f"label (held-out ones may be given as NAME_test)")
    if all(f"{n}_test" in arrays for n in names):
        return {n: arrays[n] for n in names}, {n: arrays[f"{n}_test"] for n in names}
    parts = train_test_split(*(arrays[n] for n in names), test_fraction=0.2, seed=seed)
    return dict(zip(names, parts[0::2])), dict(zip(names, parts[1::2]))


def _fitted(arrays: dict[str, np.ndarray], types: dict[str, TensorType]
            ) -> dict[str, np.ndarray]:
    return {n: _fit(a, types[n], n) for n, a in arrays.items()}


def _fit(a: np.ndarray, t: TensorType, what: str) -> np.ndarray:
    """Reshape samples to the declared per-sample shape and convert within a kind (float data
    to the declared float dtype, integer labels to the declared integer dtype)."""
    shape = tuple(t.shape[1:])
    if all(isinstance(d, int) for d in shape) and a.ndim and a[0].size == numel(shape):
        a = a.reshape((len(a),) + shape)  # type: ignore[arg-type]
    if a.dtype.kind == "f" and not t.dtype.is_float:
        raise DlgValueError(f"{what}: the data is {a.dtype} but the model declares {t}")
    return np.ascontiguousarray(a.astype(t.dtype.np, copy=False))
