"""The built-in handwritten digits: 1,797 8x8 images (UCI, CC BY 4.0; see DIGITS_LICENSE.txt),
shipped in the package so examples and tests need no network.

At `size=28` (the default) each digit is resized bilinearly to 20x20 and pasted in the middle
of a black 28x28 canvas (a 4-pixel border), as MNIST fits its digits in a 20x20 box, so
MNIST-shaped models (`f32[N, 1, 28, 28]`) train on it unchanged. (MNIST also shifts each digit
to its centre of mass; these digits were already size- and position-normalised by NIST's
preprocessing, so we do not.) The train/test split is a seeded stratified one:
each class is shuffled and its last `test_fraction` goes to the test part.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

import numpy as np

from dlg.errors import DlgValueError

FILE = Path(__file__).with_name("digits.csv.gz")
SPLITS = ("train", "test", "all")


@lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(FILE, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    return table[:, :64].reshape(-1, 8, 8), table[:, 64]


def resize_bilinear(images: np.ndarray, size: int) -> np.ndarray:
    """Resize [N, h, w] images to [N, size, size], sampling at pixel centres (align_corners
    False, as torch.nn.functional.interpolate does)."""
    n, h, w = images.shape

    def axis(src: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.clip((np.arange(size) + 0.5) * src / size - 0.5, 0, src - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, src - 1)
        return lo, hi, pos - lo

    r0, r1, fr = axis(h)
    c0, c1, fc = axis(w)
    rows = images[:, r0] * (1 - fr)[None, :, None] + images[:, r1] * fr[None, :, None]
    return rows[:, :, c0] * (1 - fc) + rows[:, :, c1] * fc


@lru_cache(maxsize=4)
def _images(size: int) -> np.ndarray:
    raw, _ = _raw()
    pixels = raw.astype(np.float32) / 16
    if size == 8:
        return pixels
    if size != 28:
        raise DlgValueError(f"load_digits: size is 8 (raw) or 28 (MNIST-like), got {size}")
    canvas = np.zeros((len(raw), 28, 28), np.float32)
    canvas[:, 4:24, 4:24] = resize_bilinear(pixels, 20)
    return canvas


def split_indices(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """Seeded stratified split: (train indices, test indices), each sorted."""
    if not 0 < test_fraction < 1:
        raise DlgValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(len(members) * test_fraction))
        test.append(members[len(members) - k:])
        train.append(members[:len(members) - k])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load_digits(size: int = 28, split: str = "train", test_fraction: float = 0.2,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(x, y): x float32 [N, 1, size, size] in [0, 1], y int64 [N] in 0..9."""
    if split not in SPLITS:
        raise DlgValueError(f"load_digits: split is one of {', '.join(SPLITS)}, got {split!r}")
    x = _images(size)[:, None]
    y = _raw()[1]
    if split == "all":
        return x.copy(), y.copy()
    train, test = split_indices(y, test_fraction, seed)
    pick = train if split == "train" else test
    return x[pick], y[pick]
