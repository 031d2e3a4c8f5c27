"""`dlg.utils.tensorboard.SummaryWriter` against torch.utils.tensorboard's: the same calls, dlg
tensors where torch's take torch tensors, read back from both event files as equal."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tensorboardX")
accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
torch_tensorboard = pytest.importorskip("torch.utils.tensorboard")

import dlg  # noqa: E402
import dlg.nn as nn  # noqa: E402
from dlg.utils.tensorboard import SummaryWriter  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def write(writer, tensor, folder: Path) -> None:
    weights = np.random.default_rng(0).standard_normal(200).astype(np.float32)
    with writer(str(folder)) as w:
        for step in range(3):
            w.add_scalar("loss", tensor(np.float32(1.5 / (step + 1))), step)  # a 0-d tensor
            w.add_scalar("lr", 0.1 * step, step)  # a float
        w.add_scalars("parts", {"a": tensor(np.float32(2.0)), "b": 3.0}, 0)
        w.add_histogram("weights", tensor(weights), 0)
        w.add_text("note", "hello", 0)


def read(folder: Path) -> dict:
    events = accumulator.EventAccumulator(str(folder))
    events.Reload()
    tags = events.Tags()
    scalars = {t: [(e.step, e.value) for e in events.Scalars(t)] for t in tags["scalars"]}
    histograms = {t: [(e.step, e.histogram_value.num, e.histogram_value.sum,
                       e.histogram_value.min, e.histogram_value.max)
                      for e in events.Histograms(t)] for t in tags["histograms"]}
    return {"scalars": scalars, "histograms": histograms, "tensors": sorted(tags["tensors"])}


def parts(folder: Path) -> dict:
    """add_scalars writes one sub-run per key, as torch's."""
    return {p.name: read(p)["scalars"] for p in sorted(folder.iterdir()) if p.is_dir()}


def test_events_read_back_as_torch_s_writer_writes_them(tmp_path):
    write(SummaryWriter, dlg.tensor, tmp_path / "dlg")
    write(torch_tensorboard.SummaryWriter, torch.tensor, tmp_path / "torch")
    mine, theirs = read(tmp_path / "dlg"), read(tmp_path / "torch")
    np.testing.assert_allclose(mine["scalars"]["loss"], [(0, 1.5), (1, 0.75), (2, 0.5)])
    for kind in ("scalars", "histograms"):
        assert mine[kind].keys() == theirs[kind].keys() and mine[kind], kind
        for tag in mine[kind]:
            np.testing.assert_allclose(mine[kind][tag], theirs[kind][tag], rtol=1e-6)
    assert mine["tensors"] == theirs["tensors"] == ["note/text_summary"]  # add_text
    assert parts(tmp_path / "dlg") == parts(tmp_path / "torch") != {}


def test_add_graph_writes_the_exported_graph(tmp_path):
    pytest.importorskip("onnx")
    with SummaryWriter(tmp_path) as w:
        w.add_graph(nn.Sequential(nn.Linear(3, 2), nn.ReLU()), dlg.randn(2, 3))
        assert w.get_logdir() == str(tmp_path)
    events = accumulator.EventAccumulator(str(tmp_path))
    events.Reload()
    ops = {node.op for node in events.Graph().node}
    assert {"Gemm", "Relu"} <= ops


def test_a_missing_tensorboardx_names_the_extra(tmp_path):
    script = ("import sys; sys.modules['tensorboardX'] = None\n"
              "import dlg\n"
              "from dlg.utils.tensorboard import SummaryWriter\n"
              "try:\n"
              f"    SummaryWriter({str(tmp_path)!r})\n"
              "except dlg.DlgImportError as e:\n"
              "    print('refused:', e)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert 'refused:' in proc.stdout and 'pip install "dlg[tensorboard]"' in proc.stdout
