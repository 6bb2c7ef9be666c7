"""Developer sessions: `nox -s tests`, `nox -s lint`."""

from __future__ import annotations

import os
import shutil

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """Install ablate with its dev extras and run the test suite (CPU only, no downloads).

    The report test opens report.html in headless Chromium: when it is missing and this runs as root (CI
    containers), Debian's ``chromium`` package is installed here. Without it the test fails under CI=true and is
    skipped elsewhere (with a message saying how to install it)."""
    _ensure_chromium(session)
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs, env={"WANDB_MODE": "offline"})


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, the tests and this file."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", "ablate", "tests", "noxfile.py")


def _ensure_chromium(session: nox.Session) -> None:
    if any(shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")):
        return
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("apt-get"):
        session.warn("chromium not found and not root: the report's browser test will skip (fail under CI=true)")
        return
    session.run(
        "sh",
        "-c",
        "apt-get install -y -q chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)",
        external=True,
        env={"DEBIAN_FRONTEND": "noninteractive"},
    )
