"""`dlg.utils.tensorboard.SummaryWriter`: torch.utils.tensorboard's writer for dlg tensors.

torch's SummaryWriter is a thin layer over TensorBoard's event files; dlg's is tensorboardX's
(the `tensorboard` extra, which the fit callbacks use too), imported when a writer is made, so
a missing package is a DlgImportError naming `pip install "dlg[tensorboard]"` there, not at
import. Every `add_*` method takes dlg tensors where torch's takes torch tensors (a 0-d loss for
add_scalar, weights for add_histogram, images...): they are handed on as NumPy arrays.
`add_graph(module, input_to_model)` writes the module's graph as dlg.onnx.export traces it
(through tensorboardX's ONNX graph reader, so it needs the `onnx` package too).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path
from typing import Any

from dlg.frontend.nn import Module
from dlg.frontend.tensor import Tensor
from dlg.onnx.export import export
from dlg.optional import optional_import

__all__ = ["SummaryWriter"]


def _writer_class() -> Any:
    return optional_import("tensorboardX", "dlg.utils.tensorboard.SummaryWriter",
                           'pip install "dlg[tensorboard]" (or pip install tensorboardX)'
                           ).SummaryWriter


def _plain(value: Any) -> Any:
    """dlg tensors as NumPy arrays, in lists, tuples and dicts too (add_scalars' values)."""
    if isinstance(value, Tensor):
        return value.detach().numpy()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class SummaryWriter:
    """torch.utils.tensorboard.SummaryWriter(log_dir=None, comment='', purge_step=None,
    max_queue=10, flush_secs=120, filename_suffix=''): event files under `log_dir` (default
    runs/<date>_<host><comment>, as torch's). A context manager, as torch's."""

    def __init__(self, log_dir: str | Path | None = None, comment: str = "",
                 purge_step: int | None = None, max_queue: int = 10, flush_secs: int = 120,
                 filename_suffix: str = ""):
        self._options = {"max_queue": max_queue, "flush_secs": flush_secs,
                         "filename_suffix": filename_suffix}
        self._writer = _writer_class()(logdir=None if log_dir is None else str(log_dir),
                                       comment=comment, purge_step=purge_step, **self._options)
        self._parts: dict[str, Any] = {}  # add_scalars' runs

    @property
    def log_dir(self) -> str:
        return str(self._writer.logdir)

    def get_logdir(self) -> str:
        return self.log_dir

    def __getattr__(self, name: str) -> Any:
        writer = self.__dict__.get("_writer")
        if writer is None:
            raise AttributeError(f"SummaryWriter has no attribute {name!r}")
        method = getattr(writer, name)
        if not name.startswith("add_") or not callable(method):
            return method

        def add(*args: Any, **kwargs: Any) -> Any:
            return method(*_plain(args), **_plain(kwargs))
        add.__name__ = add.__qualname__ = name
        add.__doc__ = method.__doc__
        return add

    def add_graph(self, model: Module, input_to_model: Any = None, verbose: bool = False,
                  use_strict_trace: bool = True) -> None:
        """The module's graph as dlg.onnx.export traces it on `input_to_model` (its
        inference graph, eval mode)."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "graph.onnx"
            export(model, () if input_to_model is None else input_to_model, str(path))
            with contextlib.redirect_stdout(io.StringIO()):  # its reader prints each node
                self._writer.add_onnx_graph(str(path))

    def add_scalars(self, main_tag: str, tag_scalar_dict: dict[str, Any],
                    global_step: int | None = None, walltime: float | None = None) -> None:
        """Each value under `main_tag` in a run of its own, `<log_dir>/<main_tag>_<key>`, as
        torch's writes them (tensorboardX's nests `<main_tag>/<key>` instead)."""
        for key, value in tag_scalar_dict.items():
            folder = f"{self.log_dir}/{main_tag.replace('/', '_')}_{key}"
            writer = self._parts.get(folder)
            if writer is None:
                writer = self._parts[folder] = type(self._writer)(logdir=folder,
                                                                  **self._options)
            writer.add_scalar(main_tag, _plain(value), global_step, walltime)

    def flush(self) -> None:
        for writer in (self._writer, *self._parts.values()):
            writer.flush()

    def close(self) -> None:
        for writer in (self._writer, *self._parts.values()):
            writer.close()

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
