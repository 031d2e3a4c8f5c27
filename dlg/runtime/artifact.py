"""`.dlgx` artifacts: a compiled model that loads and runs without recompiling.

A zip archive of plain members, nothing pickled: `manifest.json` (format version, dlg version,
the target the code was built for, a SHA-256 of every other member), `graph.json`, `weights`
(safetensors), `main.o` (object code); with a training step also `train.json`, `train.o` and
`state` (the optimizer's state). Loading checks the format, every member's hash, and that this
machine is the target; it then lowers the graph again (cheap) and checks that it gives the same
LLVM module the object code was made from, so code and buffer layout cannot disagree.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save as save_tensors

from dlg.compiler.codegen.cache import VERSION
from dlg.compiler.codegen.llvm_cpu import host
from dlg.compiler.pipeline import CompileOptions
from dlg.errors import DlgError, DlgValueError
from dlg.files import atomic_write
from dlg.ir.serialize import dumps, loads
from dlg.ir.train_spec import OptimizerSpec, TrainSpec
from dlg.runtime.model import Model
from dlg.runtime.native import NativeGraph
from dlg.runtime.training import TrainStep

FORMAT = 1


def save_artifact(path: str | Path, model: Model, native: NativeGraph,
                  step: TrainStep | None = None) -> None:
    members: dict[str, bytes] = {
        "graph.json": dumps(model.graph).encode(),
        "weights": save_tensors({k: np.array(v, order="C") for k, v in model.params.items()}),
        "main.o": native.object_code,
    }
    manifest: dict[str, Any] = {"format": FORMAT, "dlg": VERSION, "target": host(),
                                "model": model.name, "keys": {"main.o": native.key},
                                "anomaly": native.options.anomaly}  # checks compiled in
    if step is not None:
        members["train.json"] = dumps(step.graph).encode()
        members["train.o"] = step.native.object_code  # type: ignore[union-attr]
        manifest["keys"]["train.o"] = step.native.key  # type: ignore[union-attr]
        members["state"] = save_tensors({k: np.array(v, order="C")
                                         for k, v in step.state.items()})
        spec = step.spec
        manifest["train"] = {"labels": list(spec.labels), "loss": spec.loss,
                             "metrics": list(spec.metrics),
                             "optimizer": [spec.optimizer.name,  # type: ignore[union-attr]
                                           dict(spec.optimizer.hyper)]}  # type: ignore[union-attr]
    manifest["sha256"] = {k: hashlib.sha256(v).hexdigest() for k, v in members.items()}
    with atomic_write(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest, indent=1))
        for name, data in members.items():
            z.writestr(name, data)


@dataclass
class Loaded:
    model: Model
    native: NativeGraph
    make_step: Callable[[], TrainStep] | None


def load_artifact(path: str | Path) -> Loaded:
    path = Path(path)
    members = _read(path)
    manifest = _manifest(path, members)
    model = Model(_graph(path, members["graph.json"]), _tensors(path, members["weights"]),
                  {}, seed=None)
    model._trainable = {n.name: bool(n.attrs["trainable"]) for n in model.graph.params}
    native = _native(path, model.graph, members["main.o"], manifest["keys"]["main.o"],
                     anomaly=bool(manifest.get("anomaly")))
    make_step = None
    if "train" in manifest:
        make_step = lambda: _train_step(model, path, manifest, members)  # noqa: E731
    return Loaded(model, native, make_step)


def _train_step(model: Model, path: Path, manifest: dict[str, Any],
                members: dict[str, bytes]) -> TrainStep:
    info = manifest["train"]
    name, hyper = info["optimizer"]
    hyper = {k: tuple(v) if isinstance(v, list) else v for k, v in hyper.items()}
    spec = TrainSpec(tuple(info["labels"]), info["loss"], tuple(info["metrics"]),
                     OptimizerSpec(name, hyper))
    graph = _graph(path, members["train.json"])
    native = _native(path, graph, members["train.o"], manifest["keys"]["train.o"], spec.loss,
                     bool(manifest.get("anomaly")))
    return TrainStep.prebuilt(model, spec, graph, _tensors(path, members["state"]), native)


def _read(path: Path) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(path) as z:
            return {name: z.read(name) for name in z.namelist()}
    except FileNotFoundError:
        raise DlgValueError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise DlgValueError(f"{path} is not a valid .dlgx artifact (corrupt or truncated: {e})"
                            ) from None


def _manifest(path: Path, members: dict[str, bytes]) -> dict[str, Any]:
    try:
        manifest = json.loads(members["manifest.json"])
        hashes = manifest["sha256"]
    except (KeyError, ValueError, TypeError):
        raise DlgValueError(f"{path} is not a valid .dlgx artifact (no readable manifest)"
                            ) from None
    if manifest.get("format") != FORMAT:
        raise DlgValueError(f"{path}: artifact format {manifest.get('format')} is not "
                            f"supported (this dlg reads format {FORMAT}); recompile it")
    for name, digest in hashes.items():
        if name not in members or hashlib.sha256(members[name]).hexdigest() != digest:
            raise DlgValueError(f"{path}: member {name!r} does not match its hash in the "
                                f"manifest (the file was modified or damaged)")
    target, here = manifest.get("target", {}), host()
    if target.get("triple") != here["triple"] or target.get("cpu") != here["cpu"]:
        raise DlgValueError(f"{path} was compiled for {target.get('triple')} "
                            f"({target.get('cpu')}); this machine is {here['triple']} "
                            f"({here['cpu']}): recompile it here with dlgc compile")
    return manifest


def _graph(path: Path, data: bytes) -> Any:
    try:
        return loads(data.decode())
    except (DlgError, UnicodeDecodeError) as e:
        raise DlgValueError(f"{path}: the graph in the artifact is not valid ({e})") from None


def _tensors(path: Path, data: bytes) -> dict[str, np.ndarray]:
    try:
        return {k: np.array(v) for k, v in load_tensors(data).items()}
    except (SafetensorError, ValueError) as e:
        raise DlgValueError(f"{path}: the weights in the artifact are not valid ({e})") from None


def _native(path: Path, graph: Any, code: bytes, key: str, loss: str | None = None,
            anomaly: bool = False) -> NativeGraph:
    """The artifact's code, lowered again as it was built (with anomaly checks or without,
    whatever the mode now)."""
    try:
        return NativeGraph(graph, loss=loss, prebuilt=(code, key),
                           options=CompileOptions(anomaly=anomaly))
    except DlgValueError as e:
        raise DlgValueError(f"{path}: {e.message}") from None
