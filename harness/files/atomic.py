"""The one atomic file writer: a reader (a CI uploader, a second `chatload report`, a crash's
survivor) sees the old file or the whole new one, never half of one.

The bytes go to a temporary file in the same directory (a rename is atomic only within one file
system), are flushed and fsynced (the rename must not reach the disk before the bytes do), get the
file's intended mode (mkstemp makes 0600, which would hide a report from an artifact uploader
running as another user), and the temporary file is renamed over the path. On any error, the
temporary file is removed and the old file, if any, stays as it was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

MODE = 0o644  # a results or report file: the owner writes, everyone may read


def write_atomic(path: str | os.PathLike, write: Callable[[IO], object], *, binary: bool = False,
                 mode: int = MODE) -> Path:
    """Call `write(file)` on a temporary file next to `path` (text, UTF-8; bytes with `binary`), then
    put it in place of `path` with `mode`; the directory is made if missing. Returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path
