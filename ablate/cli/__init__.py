"""The ``ablate`` command line: parse arguments, call the study session, print. Heavy imports (torch, lightning,
timm) happen only inside commands that train or evaluate."""

from ablate.bench.command import bench
from ablate.cli import browse, data, listing, run  # noqa: F401 - each registers its commands on ``app``
from ablate.cli.app import app, reflow_help
from ablate.core import warn

app.command()(bench)
reflow_help()


def main() -> None:  # pragma: no cover - the console script
    warn.install()
    app()


__all__ = ["app", "main"]
