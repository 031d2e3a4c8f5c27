"""Every reference model loads, runs, and matches the equivalent PyTorch module given the same
weights; parameter names equal the PyTorch state_dict keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dlg
from benchmarks.peers import torch_model

MODELS = Path(__file__).resolve().parent.parent / "models"
# resnet.dlg and transformer.dlg take minutes through the interpreter and compiler tests that
# run every model: tests/test_models_resnet_transformer.py checks them (reduced sizes of the same
# files; full size with -m models_full)
LARGE = {"resnet.dlg", "transformer.dlg"}
ALL = sorted(p.name for p in MODELS.glob("*.dlg") if p.name not in LARGE)


def random_inputs(m: dlg.Model, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Normal floats, ints 0 or 1 (valid token ids), a quarter of the bools set (padding)."""
    out = {}
    for name, t in m.inputs.items():
        shape = [batch if not isinstance(d, int) else d for d in t.shape]
        if t.dtype.is_float:
            out[name] = rng.standard_normal(shape).astype(t.dtype.np)
        elif t.dtype == dlg.bool:
            out[name] = rng.random(shape) < 0.25
        else:
            out[name] = rng.integers(0, 2, shape).astype(t.dtype.np)
    return out


@pytest.mark.parametrize("name", ALL)
def test_model_loads_and_runs(name):
    m = dlg.load(MODELS / name)
    rng = np.random.default_rng(0)
    for batch in (1, 3):
        outputs = m(**random_inputs(m, batch, rng))
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        for value, t in zip(outputs, m.outputs.values()):
            assert value.dtype == t.dtype.np
            assert value.shape[0] == batch and np.isfinite(value).all()
    assert m.train_spec is not None and m.train_graph is not None
    header = (MODELS / name).read_text().splitlines()[0]
    assert header.startswith(f"# {name}:"), "each model starts with a header comment"


def test_every_model_has_a_summary():
    for name in ALL:
        text = dlg.load(MODELS / name).summary()
        assert "Params:" in text and "output" in text


# ---- PyTorch parity -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mlp.dlg", "convnet.dlg", "cnn.dlg", "cifar_cnn.dlg", "rnn.dlg",
                                  "gru.dlg", "lstm.dlg"])
def test_matches_pytorch_with_the_same_weights(name):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch_model(name.removesuffix(".dlg")).eval()  # the benchmarks' peers
    m = dlg.load(MODELS / name)
    state = net.state_dict()
    assert list(m.params) == list(state), "parameter names and order follow PyTorch"
    m.load_state_dict(state)
    x = random_inputs(m, 4, np.random.default_rng(1))["x"]
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(m(x=x), expected, rtol=1e-4, atol=1e-5)
    # and back: the dlg state_dict loads into PyTorch
    net.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
