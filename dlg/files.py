"""Every file dlg writes is written atomically: into a temporary file beside the real one,
flushed and fsync'ed, then renamed over the real name (and the folder fsync'ed), so a crash, a
Ctrl-C or a full disk leaves either the old file or the new one, never a truncated one under the
real name. On any failure the temporary file is removed; an OSError (ENOSPC and EDQUOT said in
words) becomes a DlgValueError naming the path.

A top-level module (only dlg.errors below it) because the compiler's disk cache writes through
it as well as the runtime's weights, artifacts and checkpoints.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from dlg.errors import DlgValueError

_UMASK = os.umask(0)  # read once, at import (os.umask can only be read by setting it)
os.umask(_UMASK)

_FULL = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded"}


def write_error(path: str | Path, error: OSError) -> DlgValueError:
    """The DlgValueError for an OSError while writing `path`: the path and the cause."""
    cause = error.strerror or str(error) or type(error).__name__
    if error.errno in _FULL:
        cause = f"{_FULL[error.errno]} ({cause})"
    return DlgValueError(f"cannot write {path}: {cause}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary name in `path`'s folder for a writer that takes a file name; when the block
    ends without an error, the file there becomes `path` (fsync, rename, folder fsync)."""
    path = Path(path)
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as e:
        raise write_error(path, e) from None
    temp = Path(name)
    try:
        os.chmod(temp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a written file gets the usual mode
        yield temp
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            temp.unlink()
        if isinstance(e, OSError):
            raise write_error(path, e) from None
        raise
    _sync_folder(path.parent)


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb", **open_args: Any) -> Iterator[IO[Any]]:
    """`open(temp, mode)` for the block; the file becomes `path` when the block succeeds."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_write writes a new file (mode 'w...'), not {mode!r}")
    with atomic_path(path) as temp, open(temp, mode, **open_args) as f:
        yield f
        f.flush()


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_write(path) as f:
        f.write(data)


def write_text(path: str | Path, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable; some file systems cannot fsync a folder, and the file is
    already in place, so a refusal is no error."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
