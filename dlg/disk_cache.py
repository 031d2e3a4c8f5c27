"""dlg's cache folder: entries that spare the next process work (object code, the parser's
tables, the parsed prelude), each written atomically with a hash of its bytes, so a damaged
entry reads as missing and is made again, never used. `DLG_CACHE_DIR` sets the folder (default:
$XDG_CACHE_HOME/dlg or ~/.cache/dlg); `DLG_CACHE_DIR=off` turns the cache off."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from dlg.errors import DlgValueError
from dlg.files import write_bytes


def cache_dir() -> Path | None:
    configured = os.environ.get("DLG_CACHE_DIR")
    if configured == "off":
        return None
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dlg"


def load(key: str, suffix: str = ".o") -> bytes | None:
    """The entry `key`, or None when there is none, it is damaged or the cache is off."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        data = (folder / f"{key}{suffix}").read_bytes()
    except OSError:
        return None
    digest, _, payload = data.partition(b"\n")
    return payload if hashlib.sha256(payload).hexdigest().encode() == digest else None


def store(key: str, payload: bytes, suffix: str = ".o") -> None:
    """Keep `payload` as the entry `key` (nothing when the cache is off or cannot be written)."""
    folder = cache_dir()
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_bytes(folder / f"{key}{suffix}",
                    hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
    except (OSError, DlgValueError):
        pass  # a read-only or full disk only costs the next process the work
