"""onnxruntime as a peer (inference only): each model exported from its PyTorch module with
`torch.onnx.export` (the TorchScript exporter, dynamo=False: it needs no network and exports
nn.LSTM/GRU/RNN as ONNX's recurrent ops), the batch dim dynamic, run with every graph
optimisation and one intra-op thread per core."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from benchmarks import torch_peer
from benchmarks.cases import Case
from benchmarks.machine import cores



def export(case: Case) -> bytes:
    net = torch_peer.network(case).eval()
    x = case.batch(2)[0]
    extras = case.extras(x)
    inputs = (torch.from_numpy(x), *(torch.from_numpy(v) for v in extras.values()))
    names = ["x", *extras]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter warns about batch_first RNNs
        torch.onnx.export(net, inputs, buffer, dynamo=False, input_names=names,
                          output_names=["out"],
                          dynamic_axes={name: {0: "N"} for name in [*names, "out"]})
    return buffer.getvalue()


def session(case: Case, threads: int | None = None) -> ort.InferenceSession:
    """A session with every graph optimisation and `threads` intra-op threads (default: one
    per core)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or cores()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(export(case), options, providers=["CPUExecutionProvider"])


class Peer:
    name = "onnxruntime"

    def __init__(self) -> None:
        self.sessions: dict[str, ort.InferenceSession] = {}

    def infer(self, case: Case, x: np.ndarray) -> Callable[[], Any]:
        if case.name not in self.sessions:
            self.sessions[case.name] = session(case)
        run, feed = self.sessions[case.name].run, {"x": x, **case.extras(x)}
        return lambda: run(None, feed)[0]
