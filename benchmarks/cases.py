"""What is benchmarked: the reference models, their data, and what every peer must compute.

Each peer writes a model's network body (up to the value the loss reads); the inference head
and the loss are named here once, from each model's .dlg file (output and train section), so
every peer computes the same function with the same weights on the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import dlg

MODELS = Path(__file__).resolve().parent.parent / "models"

# name -> (inference head on the body's output, loss on the body's output); from the .dlg files:
# mlp's log_probs = log_softmax(logits) with nll_loss(log_probs) is cross_entropy(logits);
# convnet's nll_loss(log_softmax(logits)) too; logistic_regression's p = sigmoid(logit).
SPECS = {
    "mlp": ("log_softmax", "cross_entropy"),
    "convnet": (None, "cross_entropy"),
    "cnn": (None, "cross_entropy"),
    "cifar_cnn": (None, "cross_entropy"),
    "rnn": (None, "cross_entropy"),
    "gru": (None, "cross_entropy"),
    "lstm": (None, "cross_entropy"),
    "linear_regression": (None, "mse"),
    "logistic_regression": ("sigmoid", "bce_with_logits"),
    "resnet": (None, "cross_entropy"),
    "transformer": (None, "cross_entropy"),
}
# models whose x holds token ids: their vocabulary size; they also take a key_padding_mask
TOKENS = {"transformer": 1000}
ALL = list(SPECS)
REGRESSION_POINTS = 100  # the full batch of the regression loop row
REGRESSION_STEPS = 100


@dataclass
class Case:
    """One model: its dlg form, initial weights (shared by every peer) and how it is trained."""

    name: str
    model: dlg.Model
    init: dict[str, np.ndarray]
    head: str | None
    loss: str
    optimizer: str  # torch.optim's name, from the train section
    hyper: dict[str, object]

    @classmethod
    def load(cls, name: str) -> Case:
        model = dlg.load(MODELS / f"{name}.dlg")
        head, loss = SPECS[name]
        spec = model.train_spec.optimizer  # type: ignore[union-attr]
        return cls(name, model, model.state_dict(), head, loss, spec.name, dict(spec.hyper))

    def batch(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and labels of batch size `n`: normal inputs; class labels for classifiers,
        targets in [0, 1) for the regressions."""
        rng = np.random.default_rng(seed)
        shape = [n] + [int(d) for d in list(self.model.inputs["x"].shape)[1:]]
        if self.name in TOKENS:
            x = rng.integers(0, TOKENS[self.name], shape).astype(np.int64)
        else:
            x = rng.standard_normal(shape).astype(np.float32)
        label = self.model.train_graph.input_named("y").types[0]  # type: ignore[union-attr]
        if label.dtype.is_float:
            y = rng.random([n] + [int(d) for d in label.shape[1:]]).astype(np.float32)
        else:
            y = rng.integers(0, 10, n).astype(np.int64)
        return x, y

    def extras(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The model's inputs besides x, for the batch x (by its shape, so every peer gets the
        same): a token model's key_padding_mask."""
        return {"key_padding_mask": padding_mask(*x.shape)} if self.name in TOKENS else {}

    def reset(self) -> None:
        """The dlg model's weights back to `init`, in place (compiled code holds the arrays)."""
        for k, v in self.init.items():
            self.model.params.assign(k, v)


def padding_mask(n: int, length: int) -> np.ndarray:
    """[n, length], True at padding: row i pads its last (i % 4) eighths (none, 1/8, 2/8, 3/8)."""
    pad = (np.arange(n) % 4) * length // 8
    return np.arange(length) >= length - pad[:, None]


def regression_data(n: int = REGRESSION_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """y = 2x + 1 + noise: the PyTorch linear-regression example's data."""
    rng = np.random.default_rng(1)
    x = rng.random((n, 1)).astype(np.float32)
    return x, (2 * x + 1 + 0.1 * rng.standard_normal((n, 1))).astype(np.float32)
