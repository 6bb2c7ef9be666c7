"""Atomic writes (temporary file, fsync, rename: a reader or a crash sees the old file or the new one, never half of
one), the fault points the crash tests kill at, and file digests."""

from __future__ import annotations

import hashlib
import os
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

FAULT_ENV = "ABLATE_FAULT_KILL_BEFORE_RENAME"


def fault_point(name: str) -> None:
    """Fault injection for the crash tests: SIGKILL this process when ``$ABLATE_FAULT_KILL_BEFORE_RENAME`` names
    the file about to be renamed into place (its temporary copy is written, the rename has not happened)."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def atomic_save(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """``write(fh)`` writes the content into a temporary file beside ``path`` (opened for binary writing), which is
    then synced to disk and renamed into place. Any writer works: bytes, ``torch.save`` (given the open file, not
    its name, the archive it writes does not depend on the temporary name: the same state gives the same bytes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        fault_point(path.name)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, content: str | bytes) -> None:
    """Write text or bytes atomically (see ``atomic_save``)."""
    data = content.encode() if isinstance(content, str) else content
    atomic_save(path, lambda fh: fh.write(data))


def remove_stale_temporaries(folder: Path) -> None:
    """Temporary files a process killed mid-write left in ``folder``."""
    for stale in folder.glob(".*.tmp"):
        stale.unlink(missing_ok=True)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
