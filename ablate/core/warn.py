"""Warnings in ablate's words: one line on stderr (``warning: ...``), no file and line, each once; library chatter
that says nothing about the run is dropped. Installed by the CLI and by every worker process."""

from __future__ import annotations

import re
import sys
import warnings
from typing import Any, TextIO

# library messages that say nothing a user of ablate can act on
DROP = [
    re.compile(p)
    for p in (
        r"does not have many workers",  # Lightning: the loader is sized on purpose
        r"LeafSpec",  # torch's pytree deprecation, inside Lightning
        r"`srun` command is available on your system but is not used",  # Lightning on a SLURM login node
        r"Precision loss occurred in moment calculation",  # scipy on equal values; ablate marks those untestable
        r"The given NumPy array is not writable",  # torch: the arrays are copied before any write
        r"TypedStorage is deprecated",
        r"torch\.meshgrid: in an upcoming release",
    )
]


def _show(seen: set[tuple[str, str]], stream: TextIO):
    def show(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None):
        text = (str(message).strip().splitlines() or [""])[0]
        if any(p.search(text) for p in DROP) or (category.__name__, text) in seen:
            return
        seen.add((category.__name__, text))
        print(f"warning: {text}", file=stream, flush=True)

    return show


def install(stream: TextIO | None = None) -> None:
    """Show this process's warnings (those Python's filters let through) in ablate's words, each message once."""
    warnings.showwarning = _show(set(), stream or sys.stderr)
