"""What a finished run records: the evaluation of its trained model (metrics, per-class IoU and accuracy, cost, what
evaluation ran), the facts that make its number comparable with a paper's, and the predictions on a few fixed
validation images that the report's qualitative grid shows (``runs/<id>/predictions.npz``)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ablate.config.schema import Recipe
from ablate.core.files import atomic_write, file_sha256
from ablate.data.loader import DataSets, eval_set
from ablate.models.weights import source_of
from ablate.train.cpu_speed import prepare_for_device
from ablate.train.evaluate import Showcase, evaluate
from ablate.train.inference import build_eval_model, eval_model_config
from ablate.train.loop import MODEL_FILE, sync_bn
from ablate.train.metrics import reach_distance

PREDICTIONS_FILE = "predictions.npz"
SHOWCASE_IMAGES = 4


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def eval_device(recipe: Recipe) -> torch.device:
    gpu = recipe.train.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return torch.device("cuda" if gpu else "cpu")


def evaluate_trained(recipe: Recipe, data: DataSets, train_dir: Path, predictions: Path | None = None
                     ) -> dict[str, Any]:  # fmt: skip
    """Evaluate the model trained in ``train_dir`` with ``recipe.eval`` (inference strategy, eval output stride,
    CRF) on the validation split: metrics, per-class IoU/accuracy, params, cost and what evaluation ran. With
    ``predictions``, the showcase images' RGB, labels and predictions and the class colours are saved there (npz)."""
    state = torch.load(Path(train_dir) / MODEL_FILE, map_location="cpu", weights_only=True)
    model = build_eval_model(recipe.model, recipe.eval, len(data.classes), state)
    if recipe.train.channels_last:
        model.to(memory_format=torch.channels_last)
    device = eval_device(recipe)
    prepare_for_device(model, device)
    split = recipe.eval.split or recipe.data.eval_split()
    dataset = data.val if split == recipe.data.eval_split() else eval_set(recipe.data.for_eval(split))
    showcase = Showcase(SHOWCASE_IMAGES, data.ignore_index) if predictions is not None else None
    m = evaluate(model, dataset, recipe.eval, len(data.classes), data.ignore_index, device, showcase)
    if showcase is not None and showcase.kept:
        buffer = io.BytesIO()
        colours = recipe.data.class_colours()  # the data set's own class colours, for the report's grid
        np.savez_compressed(buffer, classes=np.array(data.classes), palette=colours, split=np.array(split),
                            **showcase.arrays(dataset))
        atomic_write(predictions, buffer.getvalue())
    used = eval_model_config(recipe.model, recipe.eval)
    from ablate.train.cost import measure

    # at the eval size: the image, or the crop it is padded to (the first image's; a data set of mixed sizes pads
    # each to at least the crop)
    size = tuple(dataset[0][0].shape[-2:]) if len(dataset) else recipe.data.crop
    cost = measure(model, size, device)
    return {
        "metrics": {k: m[k] for k in ("pixel_acc", "mean_acc", "miou", "fwiou", "bf")},
        "trimap": m["trimap"],  # {band width: mIoU in the band around label boundaries}
        "classes": list(data.classes),  # the class order (metrics.json sorts its keys)
        "per_class_iou": dict(zip(data.classes, m["per_class_iou"], strict=True)),
        "per_class_acc": dict(zip(data.classes, m["per_class_acc"], strict=True)),
        "confusion": m["confusion"],  # pixels; rows: ground truth, columns: prediction, in ``classes`` order
        **({"reach": m["reach"]} if "reach" in m else {}),  # {"lo-hi" px: accuracy} by distance to the evidence
        **({"reach_px": reach_distance(m["reach"])} if "reach" in m else {}),  # where that accuracy falls below 50%
        "params": count_params(model),
        "cost": cost,
        "eval": {
            "split": split,
            "images": len(dataset),
            "output_stride": used.output_stride,
            "head": used.head.model_dump(mode="json"),
            "eval_time_s": m["eval_time_s"],
            **({"crf_workers": m["crf_workers"]} if "crf_workers" in m else {}),
        },
    }


def initialisation(recipe: Recipe) -> str:
    """Where the backbone's weights came from, as a table says it."""
    m = recipe.model
    source = source_of(m.weights)
    if source is not None:
        return f"{m.backbone}: {source.describe()}"
    if m.weights:
        return f"{m.backbone}: weights file {Path(m.weights).name}"
    return f"{m.backbone}: timm's pretrained weights" if m.pretrained else f"{m.backbone}: random init (from scratch)"


def comparability(recipe: Recipe, threads: int | None = None) -> dict[str, Any]:
    """What makes a number comparable with a paper's: GPUs x images per GPU, SyncBN, precision, crop, iterations,
    learning rate, backbone weights file and its sha256 (and the other recipe facts the papers report), and the CPU
    threads a CPU training summed with."""
    t, d, m = recipe.train, recipe.data, recipe.model
    procs = t.devices * t.num_nodes
    weights = m.weights
    source = source_of(weights)
    return {
        "data": d.name,
        "train_split": getattr(d, "train_split", "train"),
        "crop": d.crop,
        "scale_aug": [d.scale_min, d.scale_max],
        "gpus_x_images": f"{procs} x {t.batch_size}",
        "global_batch": procs * t.batch_size,
        "sync_batchnorm": sync_bn(recipe),
        "freeze_bn": t.freeze_bn,
        "precision": t.precision,
        "iterations": t.steps,
        "lr": t.lr,
        "poly_power": t.poly_power,
        "weight_decay": t.weight_decay,
        "output_stride": m.output_stride,
        "aux_loss": m.aux_loss,
        "backbone": m.backbone,
        "weights": weights,
        "weights_sha256": file_sha256(str(source.path()) if source else weights)
        if weights and (source or Path(weights).is_file())
        else None,
        "initialisation": initialisation(recipe),
        "cpu_threads": threads,
    }
