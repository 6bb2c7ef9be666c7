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


VAL_FILE = "val.csv"  # validations during training (train.val_every): step, mIoU (0-1)


def write_val(path: Path, points: list[tuple[int, float]]) -> None:
    atomic_write(path, "\n".join(["step,miou"] + [f"{s},{v:.6g}" for s, v in points]) + "\n")


def read_val(path: Path, upto: int | None = None) -> list[tuple[int, float]]:
    """The validations of ``path`` (up to step ``upto``); [] when it is missing or unreadable."""
    if not path.is_file():
        return []
    try:
        points = [(int(s), float(v)) for s, v in (line.split(",") for line in path.read_text().splitlines()[1:])]
    except ValueError:
        return []
    return [(s, v) for s, v in points if upto is None or s <= upto]
