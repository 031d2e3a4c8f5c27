"""prelude.dlg's MultiheadAttention against torch.nn.MultiheadAttention with the same weights:
outputs and head-averaged weights in both layouts, with a key padding mask, without biases;
PyTorch's parameter names, order and initialisation; its argument check."""

from __future__ import annotations

import numpy as np
import pytest

import dlg

torch = pytest.importorskip("torch")

E, HEADS, L, S = 8, 2, 5, 4


def model(batch_first: bool, bias: bool = True, seed: int = 0) -> dlg.Model:
    """y, w = attn(q, kv, kv, mask): a key/value sequence of another length than the query's."""
    layout = "N, {}, 8" if batch_first else "{}, N, 8"
    src = f"""model M {{
        input q: f32[{layout.format(L)}]
        input kv: f32[{layout.format(S)}]
        input key_padding_mask: bool[N, {S}]
        layer attn = MultiheadAttention({E}, {HEADS}, bias={str(bias).lower()},
                                        batch_first={str(batch_first).lower()})
        output y, w = attn(q, kv, kv, key_padding_mask)
    }}"""
    return dlg.loads(src, seed=seed)


@pytest.mark.parametrize("batch_first, bias", [(True, True), (False, True), (True, False)])
def test_matches_torch(batch_first, bias):
    torch.manual_seed(0)
    module = torch.nn.MultiheadAttention(E, HEADS, bias=bias, batch_first=batch_first).eval()
    m = model(batch_first, bias)
    state = {f"attn.{k}": v.numpy() for k, v in module.state_dict().items()}
    assert list(m.params) == list(state), "parameter names and order follow PyTorch"
    m.load_state_dict(state)
    rng = np.random.default_rng(0)
    q = rng.standard_normal((3, L, E) if batch_first else (L, 3, E)).astype(np.float32)
    kv = rng.standard_normal((3, S, E) if batch_first else (S, 3, E)).astype(np.float32)
    mask = np.zeros((3, S), bool)
    mask[0, 2:], mask[2, 0] = True, True  # row 1 attends to every key
    with torch.no_grad():
        t_kv = torch.from_numpy(kv)
        want_y, want_w = module(torch.from_numpy(q), t_kv, t_kv,
                                key_padding_mask=torch.from_numpy(mask))
    y, w = m(q=q, kv=kv, key_padding_mask=mask)
    np.testing.assert_allclose(y, want_y.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w, want_w.numpy(), rtol=1e-5, atol=1e-6)
    assert np.all(w[0, :, 2:] == 0), "padded keys get no weight"


def test_initialisation_follows_torch():
    m = model(True)
    bound = np.sqrt(6 / (E + 3 * E))  # xavier_uniform over [3E, E]
    w = m.params["attn.in_proj_weight"]
    assert w.shape == (3 * E, E) and np.abs(w).max() <= bound and np.abs(w).max() > bound / 2
    assert not np.any(m.params["attn.in_proj_bias"]) and not np.any(m.params["attn.out_proj.bias"])
    assert np.abs(m.params["attn.out_proj.weight"]).max() <= 1 / np.sqrt(E)  # Linear's bound


def test_embed_dim_must_divide_into_heads():
    src = "model M { input x: f32[N, 3, 6]  layer a = MultiheadAttention(6, 4)  y, w = a(x, x, x)" \
          "  output out = y }"
    with pytest.raises(dlg.DlgError, match="embed_dim must be divisible by num_heads"):
        dlg.loads(src)
