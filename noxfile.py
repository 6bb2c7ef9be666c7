"""Developer sessions: `nox -s tests`, `nox -s lint`, `nox -s bench`."""

from __future__ import annotations

import os
import shutil

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

# System packages some tests need: a real single-node SLURM (tests/test_slurm.py), headless Chromium (the report
# test). binary -> Debian package.
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
    """Install ablate with its dev extras (and the system services some tests use: SLURM, Chromium), then run the
    test suite. The report test opens report.html in headless Chromium; the SLURM tests start a local cluster.
    Without root/apt they skip elsewhere and fail under CI=true."""
    _install_system_packages(session)
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs, env={"WANDB_MODE": "offline"})


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, the tests and this file; the import contracts between the layers (lint-imports,
    contracts in pyproject.toml)."""
    session.install("ruff>=0.5", "import-linter>=2.1")
    session.run("ruff", "check", "ablate", "tests", "noxfile.py")
    session.run("lint-imports")


@nox.session
def bench_crf(session: nox.Session) -> None:
    """Time the dense CRF over the embedded validation set with 1 worker and with the pool (every core)."""
    session.install("-e", ".")
    session.run("python", "-m", "ablate.bench.crf", *session.posargs)


# The commit this repository's speed work started from: `nox -s bench` also times the embedded study with its code.
BENCH_BEFORE = "6184725"


@nox.session
def bench(session: nox.Session) -> None:
    """Speed side by side with the peers; writes results/bench/bench.md and bench.json (about 10 min on 2 cores).

    Arguments after `--` go to `ablate bench` (e.g. `nox -s bench -- --quick`); by default the embedded study is
    also run by the code of BENCH_BEFORE for the before/after wall time.
    """
    session.install("-e", ".[bench]")
    args = list(session.posargs)
    if "--quick" not in args and "--before" not in args and "--no-study" not in args:
        args += ["--before", BENCH_BEFORE]
    session.run("ablate", "bench", "--out", "results/bench", *args, env={"WANDB_MODE": "offline"})
