"""The report's plots, in the order the report shows them: the one place a plot is registered. Each is a
function ``plot(data: PlotData, out: Path)`` in its own module that draws a PNG (2x) or raises (``Unavailable``:
what the runs did not record) and the report says why in its place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ablate.report.plots import axes, confusion, cost, curves, effects, per_class, qualitative, reach, seeds
from ablate.report.plots.figure import Figure, PlotData, Unavailable

__all__ = ["PLOTS", "Figure", "Plot", "PlotData", "Unavailable"]


@dataclass(frozen=True)
class Plot:
    name: str
    title: str
    caption: str
    draw: Callable[[PlotData, Path], object]


PLOTS = [
    Plot("metric_vs_axes", "Main metric vs each axis",
         "Per axis value the mean over seeds with its ± std, and each seed as a dot beside it (red: an outlier "
         "seed); the other axes' combinations side by side. Lines join points only along a numeric axis.",
         axes.plot),
    Plot("seeds", "Every seed",
         "One row per configuration: a numbered dot per seed (red: more than 3 robust SDs from the row's median), "
         "the mean ± std, the baseline's mean dashed.", seeds.plot),
    Plot("effects", "Which axis matters",
         "Main effects and interactions of a linear model over the runs, with their 95% CIs, ranked by size; an "
         "interval clear of zero is an effect these seeds resolve.", effects.plot),
    Plot("cost", "Accuracy vs cost",
         "Each configuration a numbered point (mean ± std over seeds) against multiply-adds, latency and "
         "parameters; the key names the numbers.", cost.plot),
    Plot("curves", "Training curves",
         "Smoothed training loss (mean over seeds, band: min to max), validation mIoU during training where "
         "train.val_every asks for it and at the final evaluation (◆), and the learning rate.", curves.plot),
    Plot("reach", "Reach",
         "Pixel accuracy by the pixel's distance to the evidence of its class (on the synthetic data: the marker at "
         "its object's centre), one line per configuration: where a line falls to chance, the model's reach ends. "
         "With a data.context_distance axis, the main metric against that distance too.", reach.plot),
    Plot("per_class_iou", "Per-class IoU", "Configurations × classes: mean ± std over finished seeds.",
         per_class.plot),
    Plot("confusion", "Confusion matrix",
         "Rows: ground-truth class (100% each), columns: predicted class; the baseline and the best row, summed "
         "over their seeds.", confusion.plot),
    Plot("qualitative", "Qualitative results",
         "Image, ground truth (white: ignored), and the prediction of each configuration (its first finished "
         "seed) as its evaluation scored it.", qualitative.plot),
]  # fmt: skip
