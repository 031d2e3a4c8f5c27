"""`.dlgx` artifacts and `dlgc compile`: round trips without recompiling, and every way a file
can be wrong is a clear error (checked in subprocesses where loading native code is involved)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import dlg
from dlg.cli import main
from dlg.runtime import native
from tests.test_models import MODELS


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    path = tmp_path_factory.mktemp("art") / "lstm.dlgx"
    exe = dlg.compile(MODELS / "lstm.dlg")
    exe.save(path, train=True)
    return path, exe


def test_round_trip_runs_without_compiling(artifact):
    path, exe = artifact
    before = next(native.COMPILES)
    loaded = dlg.load(path)
    x = np.random.default_rng(0).standard_normal((3, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), exe(x))
    step, fresh = loaded.train_step(), exe.train_step()
    y = np.array([1, 2, 3])
    assert step(x=x, y=y) == pytest.approx(fresh(x=x, y=y))
    assert next(native.COMPILES) == before + 1, "nothing was compiled while loading"
    assert set(loaded.params) == set(exe.params)


def flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


def rewrite(path, tmp_path, change):
    members = dict((n, zipfile.ZipFile(path).read(n)) for n in zipfile.ZipFile(path).namelist())
    change(members)
    out = tmp_path / "bad.dlgx"
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out


def manifest_edit(edit):
    def change(members):
        manifest = json.loads(members["manifest.json"])
        edit(manifest)
        members["manifest.json"] = json.dumps(manifest).encode()
    return change


@pytest.mark.parametrize("change, message", [
    (lambda m: m.__setitem__("main.o", flip(m["main.o"])), "does not match its hash"),
    (lambda m: m.__setitem__("weights", b"junk"), "does not match its hash"),
    (lambda m: m.pop("manifest.json"), "no readable manifest"),
    (manifest_edit(lambda m: m.__setitem__("format", 99)), "format 99 is not supported"),
    (manifest_edit(lambda m: m["target"].__setitem__("triple", "riscv64-unknown-linux")),
     "was compiled for riscv64"),
    (manifest_edit(lambda m: m["keys"].__setitem__("main.o", "0" * 64)),
     "different module"),
])
def test_tampered_artifacts_are_refused(artifact, tmp_path, change, message):
    bad = rewrite(artifact[0], tmp_path, change)
    with pytest.raises(dlg.DlgValueError, match=message):
        dlg.load(bad)


def test_truncated_and_foreign_files(artifact, tmp_path):
    truncated = tmp_path / "t.dlgx"
    truncated.write_bytes(artifact[0].read_bytes()[:500])
    with pytest.raises(dlg.DlgValueError, match="corrupt or truncated"):
        dlg.load(truncated)
    with pytest.raises(dlg.DlgValueError, match="no such file"):
        dlg.load(tmp_path / "missing.dlgx")


def test_dlgc_compile_report_emits_and_artifact(capsys, tmp_path):
    out = tmp_path / "cnn.dlgx"
    assert main(["compile", str(MODELS / "cnn.dlg"), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "kernels" in text and "arena of" in text and "seconds per pass" in text
    assert out.exists()
    x = np.zeros((2, 3, 10, 10), np.float32)
    np.testing.assert_allclose(dlg.load(out)(x), dlg.load(MODELS / "cnn.dlg")(x), rtol=1e-5)
    for emit, marker in [("llvm", 'define void @"dlg_entry"'), ("kernels", "kernel k0_"),
                         ("graph", "graph CNN("), ("asm", "dlg_entry")]:
        assert main(["compile", str(MODELS / "cnn.dlg"), "--emit", emit]) == 0
        assert marker in capsys.readouterr().out, emit
    assert main(["compile", str(MODELS / "mlp.dlg"), "--train", "--dump-after", "simplify"]) == 0
    assert "// ---- after simplify ----" in capsys.readouterr().out


def test_dlgc_compile_profile(capsys):
    """Kernel times on random inputs add up to the call's time (cycle counts, shared out)."""
    assert main(["compile", str(MODELS / "cnn.dlg"), "--train", "--profile", "3",
                 "--batch", "8"]) == 0
    head, *rows = capsys.readouterr().out.splitlines()
    assert head.startswith("CNN at batch 8:") and "ms per call, 3 calls" in head
    times = [float(r.split()[0]) for r in rows if " ms " in r and "more kernels" not in r]
    assert times == sorted(times, reverse=True) and any("im2col" in r for r in rows)  # CNN's conv
    total = float(head.split(":")[1].split()[0])
    tail = sum(float(r.split()[0]) for r in rows if "more kernels" in r)
    assert sum(times) + tail == pytest.approx(total, rel=0.01)


def test_dlgc_compile_errors(capsys, tmp_path):
    assert main(["compile", str(MODELS / "mlp.dlg"), "--dump-after", "fusion"]) == 1
    assert "unknown pass 'fusion'" in capsys.readouterr().err
    assert main(["compile", str(MODELS / "mlp.dlg"), "-o", str(tmp_path / "x.zip")]) == 1
    assert "artifacts are .dlgx files" in capsys.readouterr().err
