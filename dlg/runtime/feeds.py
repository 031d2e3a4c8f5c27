"""The arrays fit, evaluate and predict take, arranged by input name.

A model's inputs come from `x`: one array for a single input, or a dict by name. The train
section's inputs (labels, and the optional per-sample weight) come from `y` the same way, or,
with `y=None`, from `x`'s dict; a train section without labels takes none (an autoencoder's
`fit(x)`).

Sample weights reach the loss as a train-section input named `sample_weight` (f32[N]) that the
loss multiplies into its per-sample values, e.g. `loss = mean(cross_entropy(logits, y,
reduction="none") * sample_weight)`: Keras' weighted mean over the batch. `fit(sample_weight=w)`
feeds it, `class_weight={class: weight}` feeds the weight of each sample's class label, and
without either it is all ones, so the loss is the unweighted one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from dlg import foreign
from dlg.errors import DlgValueError
from dlg.ir.types import TensorType

if TYPE_CHECKING:
    from dlg.runtime.model import Model

SAMPLE_WEIGHT = "sample_weight"

Feed = dict[str, np.ndarray]


def input_arrays(model: Model, x: Any, what: str = "x") -> Feed:
    """The model's inputs from `x` (one array, or a dict by input name)."""
    return _named(model, dict(model.inputs), x, what)


def _named(model: Model, types: Mapping[str, TensorType], data: Any, what: str) -> Feed:
    """Arrays by name; lists and numbers become arrays of the declared dtype, as a call takes
    them (arrays keep theirs: the step checks it)."""
    names = list(types)
    if isinstance(data, Mapping):
        missing = [n for n in names if n not in data]
        if missing:
            raise DlgValueError(f"{what} has no {', '.join(map(repr, missing))} "
                                f"(it has {', '.join(map(str, data)) or 'nothing'}; "
                                f"{model.name} takes {', '.join(names)})")
        return {n: _array(data[n], types[n], what) for n in names}
    if len(names) != 1:
        raise DlgValueError(f"{what}: {model.name} takes {len(names)} arrays here "
                            f"({', '.join(names) or 'none'}); pass a dict by name")
    return {names[0]: _array(data, types[names[0]], what)}


def _array(value: Any, t: TensorType, what: str) -> np.ndarray:
    if foreign.is_foreign(value):  # a torch tensor: refused with a reason, not torch's error
        return foreign.numpy_of(value)
    if isinstance(value, (np.ndarray, np.generic)) or hasattr(value, "__array__"):
        return np.asarray(value)
    try:
        return np.asarray(value, t.dtype.np)
    except (TypeError, ValueError) as e:
        raise DlgValueError(f"{what}: cannot convert to {t.dtype}: {e}") from None


def train_arrays(model: Model, x: Any, y: Any = None, sample_weight: Any = None,
                 class_weight: Mapping[int, float] | None = None, what: str = "") -> Feed:
    """Every input of the training graph by name: the model's inputs, then the train
    section's (labels and `sample_weight`), all equally long."""
    spec = model.train_spec
    if spec is None or model.train_graph is None:
        raise DlgValueError(f"model {model.name} has no train section to train or evaluate "
                            f"with")
    feed = input_arrays(model, x, what + "x")
    declared = {n.name: n.types[0] for n in model.train_graph.inputs if n.name in spec.labels}
    labels = [n for n in declared if n != SAMPLE_WEIGHT]
    if y is None and labels and not (isinstance(x, Mapping) and all(n in x for n in labels)):
        raise DlgValueError(f"{what}y is missing: the train section of {model.name} declares "
                            f"the label{'s' * (len(labels) > 1)} {', '.join(labels)}")
    if y is not None and not labels:
        raise DlgValueError(f"{what}y: the train section of {model.name} declares no labels "
                            f"(its loss uses the inputs and outputs only); call fit(x)")
    if labels:
        feed.update(_named(model, {n: declared[n] for n in labels}, x if y is None else y,
                           what + "y"))
    length = _length(feed)
    if SAMPLE_WEIGHT in declared:
        feed[SAMPLE_WEIGHT] = _weights(declared[SAMPLE_WEIGHT], feed, labels, length,
                                       sample_weight, class_weight)
    elif sample_weight is not None or class_weight is not None:
        raise DlgValueError(
            f"{'sample_weight' if sample_weight is not None else 'class_weight'}: the train "
            f"section of {model.name} has no `input {SAMPLE_WEIGHT}: f32[N]`; declare it and "
            f"weight the per-sample loss with it, e.g. `loss = mean(cross_entropy(logits, y, "
            f"reduction=\"none\") * {SAMPLE_WEIGHT})`")
    return feed


def _length(feed: Feed) -> int:
    lengths = {n: len(a) if a.ndim else None for n, a in feed.items()}
    if None in lengths.values() or len(set(lengths.values())) != 1:
        raise DlgValueError("inputs and labels differ in length: " + ", ".join(
            f"{n} has {k if k is not None else 'no rows (a scalar)'}" for n, k in lengths.items()))
    return int(next(iter(lengths.values())))  # type: ignore[arg-type]


def _weights(t: TensorType, feed: Feed, labels: list[str], length: int, sample_weight: Any,
             class_weight: Mapping[int, float] | None) -> np.ndarray:
    """The per-sample weights: given, from the class labels, both multiplied (as Keras
    does), or ones."""
    weights = np.ones(length, t.dtype.np)
    if sample_weight is not None:
        given = np.asarray(sample_weight, t.dtype.np)
        if given.shape != (length,):
            raise DlgValueError(f"sample_weight must hold one weight per sample, shape "
                                f"[{length}], got {list(given.shape)}")
        weights *= given
    if class_weight is not None:
        if len(labels) != 1 or feed[labels[0]].dtype.kind not in "iu" or feed[labels[0]].ndim != 1:
            raise DlgValueError("class_weight needs one label of class indices, shape [N]; "
                                "pass sample_weight instead")
        classes = feed[labels[0]]
        unknown = sorted(set(np.unique(classes).tolist()) - set(class_weight))
        if unknown:
            raise DlgValueError(f"class_weight has no weight for class {unknown[0]} "
                                f"(it has {', '.join(map(str, sorted(class_weight)))})")
        table = {int(k): float(v) for k, v in class_weight.items()}
        weights *= np.array([table[int(c)] for c in classes], t.dtype.np)
    return weights


def split_off(feed: Feed, fraction: float) -> tuple[Feed, Feed]:
    """Keras' validation_split: the last `fraction` of the rows (taken before any shuffle)
    held out for validation."""
    if not (isinstance(fraction, (int, float)) and 0 <= fraction < 1):
        raise DlgValueError(f"validation_split must lie in [0, 1), got {fraction!r}")
    length = _length(feed)
    cut = length - int(length * fraction)
    if cut in (0, length):
        raise DlgValueError(f"validation_split={fraction} of {length} samples leaves "
                            f"{'no training' if cut == 0 else 'no validation'} samples")
    return {k: v[:cut] for k, v in feed.items()}, {k: v[cut:] for k, v in feed.items()}


def validation_arrays(model: Model, data: Any) -> Feed:
    """`validation_data`: (x, y), (x, y, sample_weight), or for a model without labels x or
    (x,)."""
    parts = tuple(data) if isinstance(data, (tuple, list)) else (data,)
    if not 1 <= len(parts) <= 3:
        raise DlgValueError(f"validation_data must be (x, y) or (x, y, sample_weight), "
                            f"got {len(parts)} items")
    x, y, weight = (*parts, None, None)[:3]
    return train_arrays(model, x, y, weight, what="validation_data: ")
