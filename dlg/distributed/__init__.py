"""`dlg.distributed`: dlg trains in one process, so there is no process group. Scripts that ask
(`if dist.is_available() and dist.is_initialized(): ...`) take their single-process path; a
call that needs a group is refused, as torch refuses it before `init_process_group`."""

from __future__ import annotations

from typing import Any, NoReturn

from dlg.errors import DlgValueError

__all__ = ["get_rank", "get_world_size", "init_process_group", "is_available",
           "is_initialized"]


def is_available() -> bool:
    """False: dlg has no distributed backend."""
    return False


def is_initialized() -> bool:
    """False: no default process group is ever made."""
    return False


def _no_group(what: str) -> NoReturn:
    raise DlgValueError(f"dlg.distributed.{what}: dlg runs in one process and has no process "
                        f"group (dlg.distributed.is_available() is False)")


def init_process_group(*args: Any, **kwargs: Any) -> None:
    _no_group("init_process_group")


def get_rank(group: Any = None) -> int:
    """torch's call without a process group is an error; so is dlg's."""
    _no_group("get_rank")


def get_world_size(group: Any = None) -> int:
    """torch's call without a process group is an error; so is dlg's."""
    _no_group("get_world_size")
