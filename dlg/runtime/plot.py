"""Training curves as an image (`dlgc train --plot`). matplotlib is an optional extra
(`pip install "dlg[plot]"`), loaded only when a plot is asked for, so dlgc starts fast
without it."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from dlg.errors import DlgValueError
from dlg.files import atomic_write


def _pyplot() -> Any:
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        raise DlgValueError('--plot needs matplotlib: pip install "dlg[plot]"') from None
    matplotlib.use("Agg")  # files only: no window, works without a display
    return importlib.import_module("matplotlib.pyplot")


def plot_history(history: Any, path: str | Path, title: str = "") -> None:
    """One panel per quantity (loss, each metric), train and validation curves together."""
    plt = _pyplot()
    names = [k for k in history.history if not k.startswith("val_")]
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        ax.plot(history.epoch, history.history[name], marker="o", label="train")
        if f"val_{name}" in history.history:
            ax.plot(history.epoch, history.history[f"val_{name}"], marker="o", label="test")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        with atomic_write(path) as f:
            fig.savefig(f, dpi=100, format=Path(path).suffix[1:] or "png")
    finally:
        plt.close(fig)
