"""Atomic writes (temporary file, fsync, rename: a reader or a crash sees the old file or the new one, never half of
one), the fault points the crash tests kill at, and file digests."""

from __future__ import annotations

import hashlib
import os
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path

FAULT_ENV = "ABLATE_FAULT_KILL_BEFORE_RENAME"


def fault_point(name: str) -> None:
    """Fault injection for the crash tests: SIGKILL this process when ``$ABLATE_FAULT_KILL_BEFORE_RENAME`` names
    the file about to be renamed into place (its temporary copy is written, the rename has not happened)."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def atomic_save(path: str | Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` writes the content to a temporary file beside ``path``, which is then synced to disk and
    renamed into place. Any writer works: text, JSON, ``torch.save``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        fault_point(path.name)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, content: str | bytes) -> None:
    """Write text or bytes atomically (see ``atomic_save``)."""
    data = content.encode() if isinstance(content, str) else content
    atomic_save(path, lambda tmp: tmp.write_bytes(data))


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
