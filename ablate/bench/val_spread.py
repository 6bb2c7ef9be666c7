"""Where a study's seed-to-seed spread comes from: the validation sample, or the trainings.

``python -m ablate.bench.val_spread results/aspp_rates --baseline model.head.rates=[1] --where
model.output_stride=16 --images 1024`` evaluates every finished run of the store that matches ``--where`` again, on
the first N validation images of its data set (a data set with ``num_val``, such as the synthetic one, makes as many
as asked from the same generator; the first ``num_val`` are the run's own), keeps each image's confusion matrix and
prints, for each row against the baseline (paired by seed), the sd of the paired differences of mIoU on blocks of n
images: on the first block (the runs' own validation set when n is their ``num_val``) and averaged over the disjoint
blocks of n. If the sd falls as n grows, part of the spread is the validation sample's, and a larger one cuts it; if
it stays, the spread is the trainings'. ``--flip`` evaluates with left-right flipped copies too (``eval.flip``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel

from ablate.config.overrides import parse_sets
from ablate.config.schema import Recipe
from ablate.core.errors import ConfigError
from ablate.core.text import format_value


def _values(saved: dict[str, Any], keys: list[str]) -> dict[str, str]:
    """A run's values of ``keys`` (as ``format_value`` writes them): as its study wrote them (an axis; rates before a
    scale rule), else its recipe's, with the defaults (a key newer than the run is not in its config.yaml)."""
    recipe = None
    out = {}
    for key in keys:
        if key in saved["axes"]:
            out[key] = format_value(saved["axes"][key])
            continue
        recipe = recipe or Recipe.model_validate(saved["config"])
        node: Any = recipe
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
        out[key] = format_value(node.model_dump(mode="json") if isinstance(node, BaseModel) else node)
    return out


def miou(confusion: np.ndarray) -> float:
    """mIoU (%) of a confusion matrix: the definition every table uses (``metrics_from_confusion``)."""
    import torch

    from ablate.train.metrics import metrics_from_confusion

    return 100 * float(metrics_from_confusion(torch.from_numpy(confusion))["miou"])


def per_image_confusions(store: Path, where: dict[str, Any], rows: list[str], images: int, flip: bool
                         ) -> tuple[dict[tuple[str, int], Any], int]:  # fmt: skip
    """{(row label, seed): (image, class, class) confusion counts} of the store's finished runs matching ``where``,
    on the first ``images`` validation images, each labelled by its values of the keys ``rows``; and the smallest of
    the runs' own validation sizes."""
    import torch
    from torch.utils.data import DataLoader

    from ablate.config.overrides import apply_overrides
    from ablate.data.loader import build_datasets
    from ablate.train.inference import build_eval_model, predict
    from ablate.train.job import quiet

    quiet()
    out: dict[tuple[str, int], Any] = {}
    smallest = images
    datasets: dict[str, Any] = {}
    for run in sorted((store / "runs").iterdir()):
        try:
            saved = yaml.safe_load((run / "config.yaml").read_text())
            record = json.loads((run / "metrics.json").read_text())
        except (OSError, ValueError):
            continue
        if record.get("status") != "done":
            continue
        values = _values(saved, [*where, *rows])
        if any(values[k] != format_value(v) for k, v in where.items()):
            continue
        config = saved["config"]
        own = config["data"].get("num_val", images)  # the run's own validation images: the first ``own``
        if "num_val" in config["data"]:
            config["data"]["num_val"] = images
        recipe = Recipe.model_validate(apply_overrides(config, {"eval.flip": flip}))
        key = json.dumps(recipe.data.model_dump(mode="json"), sort_keys=True)
        if key not in datasets:
            datasets[key] = build_datasets(recipe.data)
        data = datasets[key]
        k = len(data.classes)
        state = torch.load(store / "trainings" / record["train_id"] / "model.pt", map_location="cpu",
                           weights_only=True)  # fmt: skip
        model = build_eval_model(recipe.model, recipe.eval, k, state).eval()
        confusions = []
        with torch.no_grad():
            for x, labels in DataLoader(data.val, batch_size=recipe.eval.batch_size):
                preds = predict(model, x, recipe.eval).argmax(1)
                for pred, label in zip(preds, labels, strict=True):
                    valid = label != data.ignore_index
                    counts = torch.bincount(label[valid] * k + pred[valid], minlength=k * k)
                    confusions.append(counts.reshape(k, k).numpy())
        label = " ".join(f"{k.split('.')[-1]}={values[k]}" for k in rows)
        out[(label, int(saved["seed"]))] = per_image = np.stack(confusions)
        smallest = min(smallest, own)
        print(f"  {label} seed {saved['seed']}: mIoU {miou(per_image[:own].sum(0)):.2f} on its own {own} validation "
              f"images (its table: {100 * record['metrics']['miou']:.2f})", file=sys.stderr, flush=True)  # fmt: skip
    return out, smallest


def spread(confusions: dict[tuple[str, int], Any], baseline: str, sizes: list[int]) -> list[dict[str, Any]]:
    """For each row other than ``baseline`` and block size n: the mean and sd of the paired differences of mIoU
    on the first n images, and the sd averaged over the disjoint blocks of n."""
    rows = sorted({label for label, _ in confusions} - {baseline})
    out = []
    for row in rows:
        seeds = sorted(s for label, s in confusions if label == row and (baseline, s) in confusions)
        if len(seeds) < 2:
            continue
        total = min(len(confusions[(row, s)]) for s in seeds)
        for n in sizes:
            if n > total:
                continue
            blocks = []
            for start in range(0, total - n + 1, n):
                blocks.append([miou(confusions[(row, s)][start : start + n].sum(0))
                               - miou(confusions[(baseline, s)][start : start + n].sum(0)) for s in seeds])  # fmt: skip
            sds = [statistics.stdev(b) for b in blocks]
            out.append({"row": row, "images": n, "seeds": len(seeds), "mean": statistics.mean(blocks[0]),
                        "sd_first": sds[0], "sd_blocks": statistics.mean(sds), "blocks": len(blocks)})  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", type=Path, help="a study's results folder, e.g. results/aspp_rates")
    parser.add_argument("--baseline", nargs="+", required=True, help="KEY=VALUE: the row the others pair with")
    parser.add_argument("--where", nargs="*", default=[], help="KEY=VALUE: only the runs with these axis values")
    parser.add_argument("--images", type=int, default=1024, help="validation images to evaluate on (default 1024)")
    parser.add_argument("--flip", action="store_true", help="evaluate with flipped copies too (eval.flip)")
    args = parser.parse_args(argv)
    try:
        where, base = parse_sets(args.where, "--where"), parse_sets(args.baseline, "--baseline")
        if not (args.store / "runs").is_dir():
            raise ConfigError(f"{args.store}: no runs/ folder; expected a study's results folder")
        confusions, own = per_image_confusions(args.store, where, list(base), args.images, args.flip)
        label = " ".join(f"{k.split('.')[-1]}={format_value(v)}" for k, v in base.items())
        if not any(lab == label for lab, _ in confusions):
            raise ConfigError(f"--baseline {' '.join(args.baseline)}: no finished run matches ({label})")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sizes = sorted({min(args.images, own * 2**i) for i in range(16)})
    print(f"sd of the paired differences of mIoU against {label} ({'flip' if args.flip else 'plain'} inference)\n")
    print("| row | images | seeds | mean Δ | sd, first block | sd, mean over blocks | blocks |")
    print("|---|---|---|---|---|---|---|")
    for r in spread(confusions, label, sizes):
        print(f"| {r['row']} | {r['images']} | {r['seeds']} | {r['mean']:+.2f} | {r['sd_first']:.2f} | "
              f"{r['sd_blocks']:.2f} | {r['blocks']} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
