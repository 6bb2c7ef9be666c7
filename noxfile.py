"""Developer sessions: `nox -s tests`, `nox -s lint`."""

from __future__ import annotations

import os
import shutil

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

# System packages some tests need: a real single-node SLURM (tests/test_slurm.py); headless Chromium to open the
# report (tests/test_results.py: without it that test fails under CI=true and skips elsewhere, saying why).
SYSTEM_PACKAGES = {"slurmctld": "slurm-wlm", "munged": "munge", "chromium": "chromium"}


def _install_system_packages(session: nox.Session) -> None:
    """apt-get install what is missing, when we may (root with apt); otherwise the tests that need it say why."""
    missing = sorted({pkg for binary, pkg in SYSTEM_PACKAGES.items() if shutil.which(binary) is None})
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        session.warn(f"not root or no apt-get: cannot install {', '.join(missing)}; those tests will skip")
        return
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", "-qq", external=True, env=env)
    session.run("apt-get", "install", "-y", "-qq", *missing, external=True, env=env)


@nox.session
def tests(session: nox.Session) -> None:
    """Install ablate with its dev extras (and the system services some tests use), then run the test suite."""
    _install_system_packages(session)
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs, env={"WANDB_MODE": "offline"})


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, the tests and this file."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", "ablate", "tests", "noxfile.py")
