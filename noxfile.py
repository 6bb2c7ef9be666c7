"""Developer sessions: `nox -s tests`, `nox -s lint`."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """Install ablate with its dev extras and run the test suite (CPU only, no downloads)."""
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs, env={"WANDB_MODE": "offline"})


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, the tests and this file."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", "ablate", "tests", "noxfile.py")


@nox.session
def bench_crf(session: nox.Session) -> None:
    """Time the dense CRF over the embedded validation set with 1 worker and with the pool (every core)."""
    session.install("-e", ".")
    session.run("python", "-m", "ablate.train.crf", *session.posargs)
