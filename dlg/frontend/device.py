"""`dlg.device`, torch.device's spelling: a str ('cpu', 'cuda:1') that has torch's `.type` and
`.index`, so `torch.device("cuda").index is None` and `x.device.type == "cpu"` read as in
torch. Eager tensors live on the CPU (`x.device` is `device(type='cpu')`); a device string is
still a str, so everything that took "cpu" takes it."""

from __future__ import annotations

import builtins
from typing import Any

from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend.amp import DEVICE_TYPES


class device(str):  # noqa: N801  (torch's spelling)
    """torch.device(type, index=None), torch.device("cuda:0"), torch.device(device)."""

    def __new__(cls, type: Any = "cpu", index: builtins.int | None = None) -> device:  # noqa: A002
        if isinstance(type, device) and index is None:
            return type
        if isinstance(type, builtins.int) and not isinstance(type, builtins.bool):
            type, index = "cuda", type  # torch.device(0): an accelerator's index
        name = str(type)
        kind, _, number = name.partition(":")
        if kind not in DEVICE_TYPES or number and (not number.isdigit() or index is not None):
            raise DlgValueError(f"device {name!r}: expected one of {', '.join(DEVICE_TYPES)}, "
                                f"with an optional ':index'", engine.caller_span())
        if index is not None:
            if index < 0:
                raise DlgValueError(f"device index must not be negative, got {index}",
                                    engine.caller_span())
            name = f"{kind}:{index}"
        return super().__new__(cls, name)

    @property
    def type(self) -> str:  # noqa: A003
        return str.__str__(self).partition(":")[0]

    @property
    def index(self) -> builtins.int | None:  # type: ignore[override]
        number = str.__str__(self).partition(":")[2]
        return builtins.int(number) if number else None

    def __repr__(self) -> str:
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type={self.type!r}{index})"

    def __reduce__(self) -> tuple[Any, ...]:
        return device, (str(self),)

    def __enter__(self) -> device:
        """`with torch.device("meta"):` (module_load_state_dict_tips): factories in the block
        make their tensors there. Eager dlg has the CPU alone: "cpu" changes nothing and
        "meta" makes CPU tensors (dlg has no meta tensors: the module is made, its state then
        loaded over it with assign=True); any other device is refused."""
        check_device(self)
        _DEFAULT.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _DEFAULT.pop()


def check_device(d: Any) -> None:
    """Where eager tensors can be made: the cpu, and "meta" taken as the cpu (its tensors have
    data here); any other device is a DlgValueError."""
    if d is not None and str(d).split(":")[0] not in ("cpu", "meta"):
        raise DlgValueError(f"device {str(d)!r}: eager dlg tensors live on the CPU; "
                            f"dlg.compile(model, example_input, target=\"cuda\") is the GPU "
                            f"path", engine.caller_span())


_DEFAULT: list[device] = []


def set_default_device(d: Any) -> None:
    """torch.set_default_device: the cpu (or None, or meta taken as the cpu) alone."""
    check_device(d)


def get_default_device() -> device:
    return CPU


CPU = device("cpu")
