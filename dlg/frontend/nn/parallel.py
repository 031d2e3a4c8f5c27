"""`nn.DataParallel` as torch's behaves without GPUs (the Data Parallelism tutorial and
pytorch/examples wrap their model in it): the wrapped module is run as it is, kept as
`.module`, so state_dict keys start with `module.` as torch's do. dlg's eager tensors live on
the CPU: device ids are refused."""

from __future__ import annotations

from typing import Any

from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend.nn.module import Module


class DataParallel(Module):
    def __init__(self, module: Module, device_ids: Any = None, output_device: Any = None,
                 dim: int = 0):
        super().__init__()
        if device_ids:
            raise DlgValueError(f"DataParallel(device_ids={device_ids!r}): dlg's eager modules "
                                f"run on the CPU; use dlg.compile(...) for a GPU",
                                engine.caller_span())
        self.module = module
        self.device_ids: list[int] = []
        self.output_device, self.dim = output_device, dim

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        return self.module(*inputs, **kwargs)
