"""The training curve file (trainings/<id>/curve.csv: step, loss, lr): written by the training, read by the report,
the W&B sink and a resumed training."""

from __future__ import annotations

from pathlib import Path

from ablate.core.files import atomic_write

CURVE_FILE = "curve.csv"
Point = tuple[int, float, float]  # step, loss, learning rate


def write_curve(path: Path, points: list[Point]) -> None:
    lines = ["step,loss,lr"] + [f"{s},{loss:.6g},{lr:.6g}" for s, loss, lr in points]
    atomic_write(path, "\n".join(lines) + "\n")


def read_curve(path: Path, upto: int | None = None) -> list[Point]:
    """The points of ``path`` (up to step ``upto``); [] when it is missing or unreadable."""
    if not path.is_file():
        return []
    points = []
    try:
        for line in path.read_text().splitlines()[1:]:
            step, loss, lr = line.split(",")
            if upto is None or int(step) <= upto:
                points.append((int(step), float(loss), float(lr)))
    except ValueError:
        return []
    return points
