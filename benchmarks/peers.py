"""The peers dlg is measured against: which exist, loading the installed ones (a missing one is
reported, not an error), and the reference models as PyTorch modules for the tests."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

PEERS = {"torch": "benchmarks.torch_peer", "onnxruntime": "benchmarks.onnx_peer",
         "jax": "benchmarks.jax_peer"}


def load_peers(names: list[str], missing: dict[str, str]) -> list[Any]:
    """The requested peers that import; the others go into `missing`, with the reason."""
    peers = []
    for name in names:
        try:
            peers.append(importlib.import_module(PEERS[name]).Peer())
        except ImportError as e:
            missing[name] = str(e)
    return peers


def torch_peer() -> ModuleType:
    """The torch peer's module (torch is optional: imported only when asked for)."""
    return importlib.import_module(PEERS["torch"])


def torch_model(name: str) -> Any:
    """The reference model `name` as a torch.nn.Module with PyTorch's own initialisation; its
    parameter names are the .dlg file's and it outputs what the .dlg model outputs."""
    return torch_peer().reference(name)
