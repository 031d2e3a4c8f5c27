"""Keras' fit, beyond one input and one label: train sections without labels (an autoencoder's
`fit(x)` and `dlgc train`), several named inputs and labels (dicts, .npz archives),
validation_split, sample_weight/class_weight against a hand-computed weighted loss, and
batched predict against calling the model. Compiled runs are checked against the interpreter.
"""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.cli import main
from dlg.errors import DlgValueError

AUTOENCODER = """
model AE {
    input x: f32[N, 6]
    layer enc = Linear(6, 2)
    layer dec = Linear(2, 6)
    output recon = dec(tanh(enc(x)))
}

train AE {
    loss = mse_loss(recon, x)
    optimizer = Adam(lr=0.02)
}
"""

TWO_IN_TWO_OUT = """
model Two {
    input a: f32[N, 3]
    input b: f32[N, 2]
    layer fa = Linear(3, 1)
    layer fb = Linear(2, 1)
    output p = fa(a) + fb(b)
    output q = fb(b)
}

train Two {
    input y: f32[N, 1]
    input t: f32[N, 1]
    loss = mse_loss(p, y) + 0.5 * mse_loss(q, t)
    optimizer = SGD(lr=0.05, momentum=0.9)
}
"""

WEIGHTED = """
model Clf {
    input x: f32[N, 4]
    layer fc = Linear(4, 3)
    output logits = fc(x)
}

train Clf {
    input y: i64[N]
    input sample_weight: f32[N]
    loss = mean(cross_entropy(logits, y, reduction="none") * sample_weight)
    optimizer = SGD(lr=0.1)
}
"""


def load(tmp_path, source: str, name: str) -> dlg.Model:
    path = tmp_path / f"{name}.dlg"
    path.write_text(source)
    return dlg.load(path, seed=0)


@pytest.fixture(scope="module")
def ae_data() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.tanh(rng.normal(size=(40, 2)) @ rng.normal(size=(2, 6))).astype(np.float32)


@pytest.fixture(scope="module")
def two_data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(30, 3)).astype(np.float32), rng.normal(size=(30, 2)).astype(np.float32)
    y = (a.sum(1, keepdims=True) - b[:, :1]).astype(np.float32)
    return {"a": a, "b": b, "y": y, "t": (2 * b[:, 1:]).astype(np.float32)}


def test_autoencoder_fits_without_labels_compiled_as_interpreted(tmp_path, ae_data):
    runs = []
    for compiled in (True, False):
        m = load(tmp_path, AUTOENCODER, "ae")
        history = m.fit(ae_data, epochs=3, batch_size=16, verbose=0, compiled=compiled)
        runs.append((history.history["loss"], m.state_dict()))
    (compiled_loss, compiled_w), (interp_loss, interp_w) = runs
    np.testing.assert_allclose(compiled_loss, interp_loss, rtol=1e-5)
    for k in compiled_w:
        np.testing.assert_allclose(compiled_w[k], interp_w[k], rtol=1e-5, atol=1e-6)
    assert compiled_loss[-1] < compiled_loss[0]


def test_dlgc_trains_an_autoencoder_from_npz_with_callback_flags(tmp_path, capsys, ae_data):
    (tmp_path / "ae.dlg").write_text(AUTOENCODER)
    np.savez(tmp_path / "ae.npz", x=ae_data)
    code = main([
        "train", str(tmp_path / "ae.dlg"), "--data", f"npz:{tmp_path / 'ae.npz'}", "-q",
        "--epochs", "6", "--batch-size", "8", "--validation-split", "0.25",
        "--early-stop", "3", "--save-best", str(tmp_path / "best.npz"),
        "--csv-log", str(tmp_path / "log.csv"), "-o", str(tmp_path / "w.safetensors")])
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0] == "epoch,loss,val_loss" and len(rows) == 7
    losses = [float(r.split(",")[1]) for r in rows[1:]]
    assert losses[-1] < losses[0]
    assert "test: loss" in out and (tmp_path / "best.npz").exists()


def test_dlgc_train_names_the_missing_npz_arrays(tmp_path, capsys, two_data):
    (tmp_path / "two.dlg").write_text(TWO_IN_TWO_OUT)
    np.savez(tmp_path / "part.npz", a=two_data["a"], y=two_data["y"])
    code = main(["train", str(tmp_path / "two.dlg"), "--data", f"npz:{tmp_path / 'part.npz'}"])
    err = capsys.readouterr().err
    assert code == 1
    assert "has no arrays 'b', 't' (it has a, y)" in err and "trains on a, b, y, t" in err


def test_dlgc_trains_two_inputs_two_labels_from_npz(tmp_path, capsys, two_data):
    (tmp_path / "two.dlg").write_text(TWO_IN_TWO_OUT)
    np.savez(tmp_path / "two.npz", **two_data)
    code = main(["train", str(tmp_path / "two.dlg"), "--data", f"npz:{tmp_path / 'two.npz'}",
                 "-q", "--epochs", "2", "--interpreter"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "24 train / 6 test" in err and "test: loss" in out


def test_dict_inputs_and_labels_compiled_as_interpreted(tmp_path, two_data):
    x = {k: two_data[k] for k in "ab"}
    y = {k: two_data[k] for k in "yt"}
    compiled = load(tmp_path, TWO_IN_TWO_OUT, "two")
    h1 = compiled.fit(x, y, epochs=2, batch_size=8, verbose=0)
    interpreted = load(tmp_path, TWO_IN_TWO_OUT, "two")
    h2 = interpreted.fit(two_data, epochs=2, batch_size=8, verbose=0, compiled=False)
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-5)
    for k, v in compiled.params.items():
        np.testing.assert_allclose(v, interpreted.params[k], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda m, d: m.fit({"a": d["a"]}, {"y": d["y"], "t": d["t"]}), r"x has no 'b' \(it has a"),
    (lambda m, d: m.fit({"a": d["a"], "b": d["b"]}), r"y is missing: .* labels y, t"),
    (lambda m, d: m.fit(d["a"], d["y"]), r"x: Two takes 2 arrays here \(a, b\); pass a dict"),
    (lambda m, d: m.fit(d, validation_split=1.5), r"validation_split must lie in \[0, 1\)"),
    (lambda m, d: m.fit(d, sample_weight=np.ones(30)), r"no `input sample_weight: f32\[N\]`"),
])
def test_fit_argument_errors(tmp_path, two_data, call, message):
    with pytest.raises(DlgValueError, match=message):
        call(load(tmp_path, TWO_IN_TWO_OUT, "two"), two_data)


def test_labels_given_to_a_label_free_model(tmp_path, ae_data):
    with pytest.raises(DlgValueError, match="declares no labels"):
        load(tmp_path, AUTOENCODER, "ae").fit(ae_data, ae_data)


def test_validation_split_holds_out_the_last_rows(tmp_path, two_data):
    m = load(tmp_path, TWO_IN_TWO_OUT, "two")
    history = m.fit(two_data, epochs=1, batch_size=8, verbose=0, validation_split=0.2)
    held_out = {k: v[24:] for k, v in two_data.items()}
    assert history["val_loss"][0] == pytest.approx(m.evaluate(held_out)["loss"], rel=1e-5)


@pytest.fixture(scope="module")
def clf_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(24, 4)).astype(np.float32)
    return x, rng.integers(0, 3, 24), rng.uniform(0.2, 3, 24).astype(np.float32)


def weighted_cross_entropy(logits: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Keras' weighted mean over the batch, by hand in float64."""
    z = logits.astype(np.float64)
    logp = z - z.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    return float(np.mean(-logp[np.arange(len(y)), y] * w))


def test_sample_weight_gives_the_hand_computed_weighted_loss(tmp_path, clf_data):
    x, y, w = clf_data
    m = load(tmp_path, WEIGHTED, "clf")
    expected = weighted_cross_entropy(m(x), y, w)
    for compiled in (True, False):
        got = m.evaluate(x, y, sample_weight=w, compiled=compiled)["loss"]
        assert got == pytest.approx(expected, rel=1e-5)
    assert m.evaluate(x, y)["loss"] == pytest.approx(
        weighted_cross_entropy(m(x), y, np.ones(24)), rel=1e-5)
    # one full-batch step reports the loss before its update
    history = m.fit(x, y, epochs=1, batch_size=24, verbose=0, sample_weight=w)
    assert history["loss"][0] == pytest.approx(expected, rel=1e-5)


def test_class_weight_is_the_sample_weight_of_each_class(tmp_path, clf_data):
    x, y, _ = clf_data
    class_weight = {0: 1.0, 1: 4.0, 2: 0.5}
    by_class = load(tmp_path, WEIGHTED, "clf")
    by_class.fit(x, y, epochs=2, batch_size=8, verbose=0, class_weight=class_weight)
    by_sample = load(tmp_path, WEIGHTED, "clf")
    by_sample.fit(x, y, epochs=2, batch_size=8, verbose=0, compiled=False,
                  sample_weight=np.array([class_weight[c] for c in y], np.float32))
    unweighted = load(tmp_path, WEIGHTED, "clf")
    unweighted.fit(x, y, epochs=2, batch_size=8, verbose=0)
    w = by_class.params["fc.weight"]
    np.testing.assert_allclose(w, by_sample.params["fc.weight"], rtol=1e-5, atol=1e-6)
    assert not np.allclose(w, unweighted.params["fc.weight"], atol=1e-3)
    with pytest.raises(DlgValueError, match="class_weight has no weight for class 2"):
        by_class.fit(x, y, verbose=0, class_weight={0: 1.0, 1: 1.0})


@pytest.mark.parametrize("compiled", [True, False])
def test_predict_in_batches_equals_calling_the_model(tmp_path, two_data, compiled):
    m = load(tmp_path, TWO_IN_TWO_OUT, "two")
    x = {k: two_data[k] for k in "ab"}
    p, q = m.predict(x, batch_size=7, compiled=compiled)  # 30 rows: a last batch of 2
    p_ref, q_ref = m(**x)
    np.testing.assert_allclose(p, p_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(q, q_ref, rtol=1e-5, atol=1e-6)


def test_predict_refuses_an_output_without_a_batch_axis(tmp_path):
    m = load(tmp_path, "model S { input x: f32[N, 3] output total = sum(x) }", "s")
    with pytest.raises(DlgValueError, match=r"output 'total' \(float32\[\] for a batch of 2\)"):
        m.predict(np.ones((5, 3), np.float32), batch_size=2, compiled=False)


@pytest.mark.parametrize("compiled", [True, False])
def test_python_lists_train_as_the_arrays_they_spell(compiled):
    """fit takes nested lists and numbers as a call does (in the declared dtypes): the same
    weights as training on the float32 arrays."""
    source = ("model M { input x: f32[N, 3]\n layer fc = Linear(3, 1)\n output y = fc(x)[:, 0] }"
              "\ntrain M { input t: f32[N]\n loss = mse_loss(y, t)\n optimizer = SGD(lr=0.1) }")
    x, t = [[0.0, 1.0, 2.0], [1.0, -1.0, 0.5]] * 2, [0.5, -1.0] * 2
    weights = []
    for data in ((x, t), (np.array(x, np.float32), np.array(t, np.float32))):
        m = dlg.loads(source, seed=0)
        m.fit(*data, epochs=3, batch_size=2, shuffle=False, verbose=0, compiled=compiled)
        weights.append(m.params["fc.weight"].copy())
    np.testing.assert_array_equal(*weights)
