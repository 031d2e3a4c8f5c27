"""dlg.data: the batching loader, the built-in digits, MNIST IDX files, synthetic data."""

from __future__ import annotations

import csv
import gzip
from collections import Counter

import numpy as np
import pytest

from dlg.data import (
    DataLoader,
    load_digits,
    load_mnist,
    read_idx,
    synthetic_regression,
    train_test_split,
    write_idx,
)
from dlg.errors import DlgValueError
from dlg.runtime.data.digits import FILE, resize_bilinear


# ---- loader -----------------------------------------------------------------------------------
@pytest.mark.parametrize("n, batch, shuffle, drop_last", [
    (10, 3, False, False), (10, 3, True, False), (10, 3, True, True), (9, 3, True, True),
    (5, 8, False, False), (5, 8, True, True)])
def test_loader_visits_every_sample_once(n, batch, shuffle, drop_last):
    x, y = np.arange(n * 2).reshape(n, 2), np.arange(n)
    loader = DataLoader(x, y, batch_size=batch, shuffle=shuffle, seed=0, drop_last=drop_last)
    batches = list(loader)
    assert len(batches) == len(loader)
    seen = np.concatenate([b[1] for b in batches]) if batches else np.array([], int)
    expected = (n // batch) * batch if drop_last else n
    assert len(seen) == expected and len(set(seen.tolist())) == expected
    for bx, by in batches:
        np.testing.assert_array_equal(bx, x[by])  # rows stay paired
        assert bx.flags.c_contiguous and len(by) <= batch
    if not shuffle:
        np.testing.assert_array_equal(seen, np.arange(expected))


def test_loader_reshuffles_each_epoch_reproducibly():
    x = np.arange(50)
    a, b = DataLoader(x, batch_size=50, shuffle=True, seed=7), DataLoader(x, batch_size=50,
                                                                           shuffle=True, seed=7)
    first, second = next(iter(a))[0], next(iter(a))[0]
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, next(iter(b))[0])
    np.testing.assert_array_equal(second, next(iter(b))[0])  # epoch 2 matches too
    np.testing.assert_array_equal(np.sort(second), x)


@pytest.mark.parametrize("shuffle", [False, True])
def test_loader_batches_are_c_contiguous_from_any_layout(shuffle):
    x = np.asfortranarray(np.arange(60.0).reshape(10, 6))[:, ::2]  # neither C nor F order
    for (b,) in DataLoader(x, batch_size=4, shuffle=shuffle, seed=0):
        assert b.flags.c_contiguous


@pytest.mark.parametrize("arrays, kwargs, message", [
    ((np.zeros(3), np.zeros(4)), {}, "differ in length: 3, 4"),
    ((np.zeros(3),), {"batch_size": 0}, "positive int"),
    ((np.zeros(3),), {"batch_size": 2.5}, "positive int"),
    ((), {}, "at least one array"),
])
def test_loader_errors(arrays, kwargs, message):
    with pytest.raises(DlgValueError, match=message):
        DataLoader(*arrays, **kwargs)


# ---- digits -----------------------------------------------------------------------------------
def test_digits_split_is_stratified_and_disjoint():
    x, y = load_digits(size=8, split="all")
    assert x.shape == (1797, 1, 8, 8) and x.dtype == np.float32 and y.dtype == np.int64
    xtr, ytr = load_digits(size=8, split="train")
    xte, yte = load_digits(size=8, split="test")
    assert len(ytr) + len(yte) == 1797
    assert set(ytr) == set(yte) == set(range(10))
    # a few digits are pixel-identical duplicates, so compare multisets of (image, label) rows:
    # the two parts must add up to the whole, each row taken exactly as often as it occurs
    def rows(x, y):
        return Counter(r.tobytes() + bytes([c]) for r, c in zip(x.reshape(len(x), -1), y))
    assert rows(xtr, ytr) + rows(xte, yte) == rows(x, y)
    assert abs(len(yte) / 1797 - 0.2) < 0.01
    for c in range(10):  # stratified: every class splits 80/20 to within one image
        assert abs(np.sum(yte == c) - 0.2 * np.sum(y == c)) <= 1


def test_digits_split_is_seeded():
    a, b, c = (load_digits(size=8, split="test", seed=s)[0] for s in (0, 0, 1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_digits_match_the_shipped_csv():
    with gzip.open(FILE, "rt", newline="") as f:
        table = [[int(v) for v in row] for row in csv.reader(f)]
    x, y = load_digits(size=8, split="all")
    assert len(table) == 1797 and all(len(row) == 65 for row in table)
    for i in (0, 1, 900, 1796):
        np.testing.assert_array_equal(x[i, 0], np.array(table[i][:64]).reshape(8, 8) / 16)
        assert y[i] == table[i][64]
    assert Counter(row[64] for row in table) == Counter(y.tolist())


def test_digits_at_28_are_centred_like_mnist():
    small, _ = load_digits(size=8, split="all")
    big, _ = load_digits(size=28, split="all")
    assert big.shape == (1797, 1, 28, 28) and 0 <= big.min() and big.max() <= 1
    border = np.ones((28, 28), bool)
    border[4:24, 4:24] = False
    assert not big[:, 0][:, border].any()
    centre = big[:, 0, 4:24, 4:24]
    # 2.5x2.5 blocks of the 20x20 centre, averaged back to 8x8 (on a 40x40 upsampling)
    down = np.repeat(np.repeat(centre, 2, axis=1), 2, axis=2).reshape(1797, 8, 5, 8, 5).mean((2, 4))
    corr = np.corrcoef(down.reshape(-1), small[:, 0].reshape(-1))[0, 1]
    assert corr > 0.95


def test_resize_bilinear_matches_torch():
    torch = pytest.importorskip("torch")
    images = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    expected = torch.nn.functional.interpolate(torch.from_numpy(images)[:, None], size=(20, 20),
                                               mode="bilinear", align_corners=False)
    np.testing.assert_allclose(resize_bilinear(images, 20), expected[:, 0].numpy(), atol=1e-6)


def test_digits_bad_arguments():
    with pytest.raises(DlgValueError, match="split is one of"):
        load_digits(split="valid")
    with pytest.raises(DlgValueError, match="size is 8"):
        load_digits(size=16)


# ---- IDX --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(), (5,), (3, 4), (2, 3, 4), (2, 1, 3, 2)])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, shape, suffix):
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else np.finfo(dtype)
    # extremes and a fraction check the byte order and width, not only small values
    values = [info.min, info.max, 1, 0] + [-2.5 if info.min < 0 else 3] * 24
    a = np.array(values[:int(np.prod(shape))], dtype).reshape(shape)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, a)
    b = read_idx(path)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


# the bytes written by hand from the format's description: big-endian header and data
@pytest.mark.parametrize("array, expected", [
    (np.array([3, 1, 4], np.uint8), "00000801 00000003 030104"),
    (np.array([[-1], [2]], np.int8), "00000902 00000002 00000001 ff02"),
    (np.array([1, -2], np.int16), "00000b01 00000002 0001fffe"),
    (np.array([258], np.int32), "00000c01 00000001 00000102"),
    (np.array([1.0, -2.0], np.float32), "00000d01 00000002 3f800000c0000000"),
    (np.array([1.0], np.float64), "00000e01 00000001 3ff0000000000000"),
])
def test_idx_bytes_are_the_documented_ones(tmp_path, array, expected):
    write_idx(tmp_path / "a", array)
    assert (tmp_path / "a").read_bytes() == bytes.fromhex(expected)
    (tmp_path / "b").write_bytes(bytes.fromhex(expected))
    b = read_idx(tmp_path / "b")
    assert b.dtype == array.dtype and b.dtype.isnative
    np.testing.assert_array_equal(b, array)


@pytest.mark.parametrize("data, message", [
    (b"\x01\x02\x08\x01", "bad magic number"),
    (b"", "bad magic number missing"),
    (bytes([0, 0, 8, 2, 0, 0, 0]), "truncated IDX header"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]), "shape \\[5\\]"),
])
def test_idx_corrupt_files(tmp_path, data, message):
    path = tmp_path / "bad-idx"
    path.write_bytes(data)
    with pytest.raises(DlgValueError, match=message) as info:
        read_idx(path)
    assert "bad-idx" in str(info.value)


def test_idx_truncated_gz(tmp_path):
    path = tmp_path / "cut-idx.gz"
    write_idx(path, np.arange(100, dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-12])  # the gzip stream stops early
    with pytest.raises(DlgValueError, match="cannot read it") as info:
        read_idx(path)
    assert "cut-idx.gz" in str(info.value)


def test_write_idx_rejects_other_dtypes(tmp_path):
    with pytest.raises(DlgValueError, match="not int64"):
        write_idx(tmp_path / "a", np.zeros(3, np.int64))


def test_load_mnist_from_a_folder(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28)).astype(np.uint8)
    labels = np.array([7, 2, 1, 0, 4], np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels.idx1-ubyte", labels)
    x, y = load_mnist(tmp_path, split="test")
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(x[:, 0] * 255, images)
    np.testing.assert_array_equal(y, labels)
    with pytest.raises(DlgValueError, match="no train-images-idx3-ubyte"):
        load_mnist(tmp_path, split="train")
    write_idx(tmp_path / "t10k-labels.idx1-ubyte", labels[:4])
    with pytest.raises(DlgValueError, match="5 images but 4 labels"):
        load_mnist(tmp_path, split="test")
    with pytest.raises(DlgValueError, match="no such folder.*train-images-idx3-ubyte"):
        load_mnist(tmp_path / "nope")


def test_load_mnist_accepts_the_dotted_spelling(tmp_path):
    write_idx(tmp_path / "train-images.idx3-ubyte", np.full((2, 28, 28), 255, np.uint8))
    write_idx(tmp_path / "train-labels.idx1-ubyte.gz", np.array([3, 9], np.uint8))
    x, y = load_mnist(tmp_path)
    assert x.shape == (2, 1, 28, 28) and np.all(x == 1) and y.tolist() == [3, 9]


# ---- synthetic ----------------------------------------------------------------------------------
def test_synthetic_regression_is_y_equals_2x_plus_1():
    x, y = synthetic_regression(n=500, noise=0.1, seed=0)
    assert x.shape == y.shape == (500, 1) and x.dtype == np.float32
    slope, intercept = np.polyfit(x[:, 0], y[:, 0], 1)
    assert abs(slope - 2) < 0.05 and abs(intercept - 1) < 0.05


def test_train_test_split_partitions():
    a, b = np.arange(10), np.arange(10) * 10
    parts = train_test_split(a, b, test_fraction=0.3, seed=1)
    assert isinstance(parts, tuple) and len(parts) == 4
    a_tr, a_te, b_tr, b_te = parts
    assert len(a_te) == 3 and sorted(np.concatenate([a_tr, a_te])) == list(range(10))
    np.testing.assert_array_equal(b_tr, a_tr * 10)
    np.testing.assert_array_equal(b_te, a_te * 10)
    with pytest.raises(DlgValueError, match="differ in length"):
        train_test_split(a, b[:5])
