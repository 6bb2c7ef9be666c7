"""Ctrl-C and SIGTERM (what SLURM sends before preemption or a time limit) as users expect: a training finishes its
step, writes a final checkpoint and stops; anything else stops at once. A second Ctrl-C stops at once too; a
repeated SIGTERM is ignored: the kernel's parent-death signal (``PR_SET_PDEATHSIG``, how a local worker learns
that ``ablate run`` was killed) comes once for every thread of the parent that exits, several within a
millisecond. Either way ``Interrupted`` propagates (never recorded as a failed run) and the command exits with 128
+ the signal's number (130, 143)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):  # noqa: N818 - not an error: a stop the user asked for
    """A stop asked for by a signal. ``where`` says what stopped (a run and its step), ``resume`` how to go on."""

    def __init__(self, signum: int, where: str = "", resume: str = ""):
        super().__init__(signum, where)
        self.signum, self.where, self.resume = signum, where, resume

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


class _State:
    deferring = 0  # training loops running in this process that stop at their next step
    pending: int | None = None  # the signal they were asked to stop by
    terminated = False  # a SIGTERM came: this process is stopping, repeats of it change nothing


def _handler(signum: int, frame: object) -> None:
    if signum == signal.SIGTERM:
        if _State.terminated:
            return
        _State.terminated = True
    if _State.deferring and _State.pending is None:
        _State.pending = signum
        return
    raise Interrupted(signum)


def install() -> None:
    """Route SIGINT and SIGTERM through ``Interrupted`` in this process (main thread only; idempotent)."""
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            signal.signal(sig, _handler)


@contextmanager
def deferred() -> Iterator[_State]:
    """Inside: a signal only sets ``state.pending`` (a second one stops at once); the loop checks it between
    steps, checkpoints and raises ``Interrupted`` itself."""
    install()
    _State.deferring += 1
    try:
        yield _State
    finally:
        _State.deferring -= 1
        pending, _State.pending = _State.pending, (_State.pending if _State.deferring else None)
    if pending is not None:  # asked to stop after the loop's last check: stop now that its work is saved
        raise Interrupted(pending)
