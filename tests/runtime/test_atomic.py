"""dlg.files: a write that fails midway (an exception, a full disk in write or fsync) leaves the
old file as it was and no temporary file behind, and is a DlgValueError naming the path; every
writer of dlg (weights, artifacts, the disk cache, checkpoints, dlgc's outputs, dumps, IDX
files) goes through it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

import dlg
from dlg import files
from dlg.cli import main
from dlg.compiler.codegen import cache
from dlg.errors import DlgValueError
from dlg.runtime.data.mnist import write_idx
from dlg.runtime.plot import plot_history
from dlg.runtime.callbacks import History
from dlg.runtime.training import TrainStep
from dlg.runtime.weights import load_weights, save_weights
from tests.runtime.test_checkpoint import SOURCE, data

MODEL = "model M { input x: f32[N, 3] layer fc = Linear(3, 2) output y = fc(x) }"
NET = """
from dlg import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x)
"""


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def full_disk(*_args, **_kw):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "a.txt"
    files.write_text(path, "old")
    files.write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and leftovers(tmp_path) == []
    assert path.stat().st_mode & 0o777 == 0o666 & ~files._UMASK


def test_an_error_halfway_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old contents")
    with pytest.raises(RuntimeError, match="halfway"):
        with files.atomic_write(path) as f:
            f.write(b"half of the new")
            raise RuntimeError("halfway")
    assert path.read_bytes() == b"old contents" and leftovers(tmp_path) == []


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_a_full_disk_is_an_error_naming_the_path(monkeypatch, tmp_path, where):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old contents")
    if where != "write":
        monkeypatch.setattr(os, where, full_disk)
    with pytest.raises(DlgValueError, match=f"cannot write {path}: the disk is full"):
        with files.atomic_write(path) as f:
            f.write(b"x" * 100_000)
            if where == "write":  # the file's write runs out of space halfway
                full_disk()
            f.write(b"y" * 100_000)
    monkeypatch.undo()
    assert path.read_bytes() == b"old contents" and leftovers(tmp_path) == []


def test_a_missing_folder_is_an_error_naming_the_path(tmp_path):
    with pytest.raises(DlgValueError, match=f"cannot write {tmp_path / 'no' / 'a.bin'}"):
        files.write_bytes(tmp_path / "no" / "a.bin", b"x")


def test_only_new_files_are_written():
    with pytest.raises(ValueError, match="mode"):
        with files.atomic_write("x", "ab"):
            pass


# ---- every writer goes through it -------------------------------------------------------------
class Halfway(Exception):
    pass


@pytest.fixture
def failing_writes(monkeypatch):
    """Every atomic write fails after its writer has written half of what it wrote so far."""
    original = files.atomic_path

    class Wrapped:
        def __init__(self, path):
            self.path, self.inner = path, original(path)

        def __enter__(self):
            self.temp = self.inner.__enter__()
            return self.temp

        def __exit__(self, *exc):
            if exc[0] is not None:
                return self.inner.__exit__(*exc)
            data = self.temp.read_bytes()
            self.temp.write_bytes(data[:len(data) // 2])
            error = Halfway()
            self.inner.__exit__(Halfway, error, None)  # cleans up, then hands the error back
            raise error

    monkeypatch.setattr(files, "atomic_path", Wrapped)


def model():
    return dlg.loads(MODEL)


def test_weights(tmp_path, failing_writes):
    for name in ("w.safetensors", "w.npz"):
        path = tmp_path / name
        with pytest.raises(Halfway):
            save_weights(path, model().params)
        assert not path.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_weights_on_a_full_disk_keep_the_old_file(monkeypatch, tmp_path, suffix):
    path = tmp_path / f"w{suffix}"
    save_weights(path, {"a": np.zeros(3, np.float32)})
    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(DlgValueError, match=f"cannot write {path}: the disk is full"):
        save_weights(path, {"a": np.ones(3, np.float32)})
    monkeypatch.undo()
    assert load_weights(path)["a"].tolist() == [0, 0, 0] and leftovers(tmp_path) == []


def test_artifact(tmp_path, request):
    exe = dlg.compile(model())
    request.getfixturevalue("failing_writes")  # after compiling, which writes the disk cache
    with pytest.raises(Halfway):
        exe.save(tmp_path / "m.dlgx")
    assert not (tmp_path / "m.dlgx").exists() and leftovers(tmp_path) == []


def test_cache_entries(monkeypatch, tmp_path, failing_writes):
    """A failed cache write is no error (the next process compiles), and leaves nothing."""
    monkeypatch.setenv("DLG_CACHE_DIR", str(tmp_path))
    with pytest.raises(Halfway):
        cache.store("k", b"object code")
    assert cache.load("k") is None and leftovers(tmp_path) == []


def test_cache_entries_on_a_full_disk(monkeypatch, tmp_path):
    monkeypatch.setenv("DLG_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(os, "fsync", full_disk)
    cache.store("k", b"object code")
    assert cache.load("k") is None and leftovers(tmp_path) == []


def test_idx_files(tmp_path, failing_writes):
    for name in ("a-idx1-ubyte", "a-idx1-ubyte.gz"):
        with pytest.raises(Halfway):
            write_idx(tmp_path / name, np.arange(4, dtype=np.uint8))
        assert not (tmp_path / name).exists() and leftovers(tmp_path) == []


def test_checkpoints(monkeypatch, tmp_path, failing_writes):
    def interrupted(self, *args, **kw):
        raise KeyboardInterrupt
    monkeypatch.setattr(TrainStep, "__call__", interrupted)
    path = tmp_path / "c.ckpt"
    with pytest.raises(Halfway):
        dlg.loads(SOURCE).fit(*data(), epochs=1, batch_size=8, verbose=0, compiled=False,
                              checkpoint=path)
    assert not path.exists() and leftovers(tmp_path) == []


def test_plots(tmp_path, failing_writes):
    pytest.importorskip("matplotlib")
    history = History()
    history.add(1, {"loss": 1.0})
    with pytest.raises(Halfway):
        plot_history(history, tmp_path / "curves.png")
    assert not (tmp_path / "curves.png").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("command", [
    ["run", "{model}", "-i", "x={x}", "-o", "{out}/y.npy"],
    ["run", "{model}", "-i", "x={x}", "-o", "{out}/y.npz"],
    ["fmt", "--write", "{messy}"],
    ["compile", "{model}", "--dump-after", "simplify", "--dump-dir", "{out}"],
    ["trace", "{module}:Net", "--shape", "1,3", "-o", "{out}/net.dlg"],
])
def test_dlgc_outputs(tmp_path, capsys, failing_writes, command):
    (tmp_path / "m.dlg").write_text(MODEL)
    (tmp_path / "messy.dlg").write_text(MODEL)
    (tmp_path / "net.py").write_text(NET)
    np.save(tmp_path / "x.npy", np.ones((2, 3), np.float32))
    out = tmp_path / "out"
    out.mkdir()
    argv = [a.format(model=tmp_path / "m.dlg", x=tmp_path / "x.npy", out=out,
                     messy=tmp_path / "messy.dlg", module=tmp_path / "net.py") for a in command]
    with pytest.raises(Halfway):
        main(argv)
    assert list(out.iterdir()) == [] and leftovers(tmp_path) == []
    assert (tmp_path / "messy.dlg").read_text() == MODEL
