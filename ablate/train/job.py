"""The one job: train and evaluate one resolved recipe into one run folder."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from ablate.config import ModelConfig, Recipe
from ablate.data.datamodule import DataSets, build_datasets, train_loader
from ablate.models.backbone import BuildError
from ablate.models.segmenter import build_model
from ablate.study.store import atomic_write, fault_point
from ablate.train.evaluate import evaluate
from ablate.train.inference import build_eval_model, eval_model_config
from ablate.train.module import SegmentationModule

MODEL_FILE = "model.pt"
CHECKPOINT_FILE = "last.ckpt"
CHECKPOINT_FORMAT = "ablate-checkpoint-1"


CURVE_FILE = "curve.csv"


class Curve:
    """The training curve: (step, loss, lr) every ``every`` steps and at the last step, forwarded to the study's
    progress printer and written to trainings/<id>/curve.csv. The loss is the one the step computed (its one read
    to the host every ``every`` steps)."""

    def __init__(self, progress: Any, steps: int, every: int, points: list[tuple[int, float, float]] | None = None):
        self.progress, self.steps, self.every = progress, steps, every
        self.points: list[tuple[int, float, float]] = list(points or [])  # a resumed training's earlier points

    def due(self, step: int) -> bool:
        return step == 1 or step % self.every == 0 or step == self.steps

    def add(self, step: int, loss: float, lr: float) -> None:
        self.points.append((step, loss, lr))
        if self.progress is not None:
            self.progress.step(step, self.steps, loss)

    def write(self, path: Path) -> None:
        lines = ["step,loss,lr"] + [f"{s},{loss:.6g},{lr:.6g}" for s, loss, lr in self.points]
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, path)


def _read_curve(path: Path, upto: int) -> list[tuple[int, float, float]]:
    """The points of a partial curve.csv up to step ``upto`` (a resumed training continues it)."""
    if upto == 0 or not path.is_file():
        return []
    points = []
    for line in path.read_text().splitlines()[1:]:
        step, loss, lr = line.split(",")
        if int(step) <= upto:
            points.append((int(step), float(loss), float(lr)))
    return points


def quiet() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "torch.distributed"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    warnings.filterwarnings("ignore", ".*`srun` command is available on your system but is not used.*")


def check_model(cfg: ModelConfig, num_classes: int = 2) -> None:
    """Build the model on the meta device (no memory, no compute) to refuse bad configs before any training.

    Raises ``BuildError`` naming the recipe key to fix.
    """
    try:
        with torch.device("meta"):
            build_model(cfg, num_classes)
    except BuildError:
        raise
    except Exception as exc:  # noqa: BLE001 - any other failure is reported against the head
        raise BuildError("model.head", f"cannot build the model: {type(exc).__name__}: {exc}") from None


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def eval_device(recipe: Recipe) -> torch.device:
    gpu = recipe.train.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return torch.device("cuda" if gpu else "cpu")


def sync_bn(recipe: Recipe) -> bool:
    """SyncBN across processes: when asked, with more than one process, on GPUs (PyTorch's SyncBatchNorm has no
    CPU implementation; CPU DDP keeps per-process BN statistics)."""
    t = recipe.train
    on_gpu = t.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return t.sync_batchnorm and t.devices * t.num_nodes > 1 and on_gpu


def save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    fault_point(path.name)
    os.replace(tmp, path)


_gc_frozen = False


def freeze_gc_once() -> None:
    """The first training in a process moves what is alive by then (torch, timm, Lightning: ~0.5 M objects) out of
    the cyclic garbage collector's view (``gc.freeze``, after one collection, so no garbage is kept). Without it a
    full collection walks all of them, ~200 ms, every few trainings of a study's process; after it, only what later
    runs create."""
    global _gc_frozen
    if not _gc_frozen:
        gc.collect()
        gc.freeze()
        _gc_frozen = True


def checkpoint_state(fabric: L.Fabric, module: SegmentationModule, optimizer: Any, scheduler: Any, step: int
                     ) -> dict[str, Any]:  # fmt: skip
    """What resuming needs: weights (BN statistics included), optimizer and schedule state, step, random state,
    and the fp16 loss scaler's state (``16-mixed`` on GPUs; empty otherwise)."""
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {
        "format": CHECKPOINT_FORMAT,
        "global_step": step,
        "model": module.model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "precision": fabric.strategy.precision.state_dict(),
        "rng": rng,
    }


def read_checkpoint(path: Path, progress: Any = None) -> dict[str, Any] | None:
    """The checkpoint an interrupted training left, or None (none there, or not one this version wrote: the
    training then starts again from step 0; a checkpoint is never a finished result)."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        if progress is not None:
            progress.note(f"{path} is not an ablate checkpoint of this version: training from step 0")
        return None
    if progress is not None:
        progress.note(f"resuming from step {state['global_step']} ({path})")
    return state


def _stop_children(fabric: L.Fabric) -> None:
    """Kill the DDP processes this one launched (a failure on rank 0 must not leave them waiting in a collective)."""
    for proc in getattr(fabric.strategy.launcher, "procs", None) or []:
        with contextlib.suppress(OSError):
            proc.kill()


def train(
    recipe: Recipe, data: DataSets, train_dir: Path, progress: Any = None,
    log: Callable[[dict[str, float], int], None] | None = None, hooks: Sequence[Callable[[int], None]] = (),
) -> dict | None:  # fmt: skip
    """Train ``recipe`` and save the model's state dict to ``train_dir/model.pt`` (atomically), the loss curve to
    ``train_dir/curve.csv``. ``log(metrics, step)``: where the training loss goes at the curve's points (W&B);
    ``hooks``: called with the step count after every step (the bench's timers). Returns None on DDP ranks
    other than 0.

    The loop is plain PyTorch on Lightning Fabric (devices, DDP, precision); per step it adds to a bare loop only
    a copy of the loss into a device buffer. It resumes from ``train_dir/last.ckpt`` when an earlier attempt left
    one; the result is the same as training without interruption (batches are a function of seed and step, the
    random state is checkpointed)."""
    freeze_gc_once()
    t = recipe.train
    fabric = L.Fabric(accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, precision=t.precision)
    fabric.launch()  # DDP: starts the other local processes (they re-run this command) unless SLURM started them
    try:
        return _train(fabric, recipe, data, train_dir, progress, log, hooks)
    except BaseException:
        _stop_children(fabric)
        raise


def _train(fabric: L.Fabric, recipe: Recipe, data: DataSets, train_dir: Path, progress: Any, log: Any, hooks: Any
           ) -> dict | None:  # fmt: skip
    t = recipe.train
    L.seed_everything(recipe.seed, workers=True, verbose=False)
    checkpoint = train_dir / CHECKPOINT_FILE
    resumed = read_checkpoint(checkpoint, progress if fabric.is_global_zero else None)
    start = resumed["global_step"] if resumed else 0
    module = SegmentationModule(recipe, num_classes=len(data.classes), ignore_index=data.ignore_index)
    if sync_bn(recipe):
        module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    model = fabric.setup_module(module)  # on the device; DDP-wrapped with more than one process
    optimizers = module.configure_optimizers()  # fused SGD and the per-step poly schedule, on the device's params
    optimizer, scheduler = optimizers["optimizer"], optimizers["lr_scheduler"]["scheduler"]
    if resumed:
        module.model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])  # its state lands on the parameters' device
        scheduler.load_state_dict(resumed["scheduler"])
        if resumed["precision"]:
            fabric.strategy.precision.load_state_dict(resumed["precision"])
        torch.set_rng_state(resumed["rng"]["torch"])
        if "cuda" in resumed["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(resumed["rng"]["cuda"])
    opt = fabric.setup_optimizers(optimizer)
    curve = Curve(progress, t.steps, t.log_every, _read_curve(train_dir / CURVE_FILE, start))
    loader = train_loader(data, t.batch_size, recipe.seed, t.steps, start, recipe.data.num_workers)
    to_device = fabric.device.type != "cpu"
    started = time.monotonic()
    model.train()
    step = start
    try:
        for batch in loader:
            images, labels = fabric.to_device(batch) if to_device else batch
            loss = module.loss(model(images), labels)  # the forward through Fabric's wrapper: autocast, DDP
            opt.zero_grad(set_to_none=True)
            fabric.backward(loss)
            opt.step()
            scheduler.step()
            module.track_loss(loss.detach(), step)
            step += 1
            if fabric.is_global_zero and curve.due(step):
                value = loss.item()
                curve.add(step, value, optimizer.param_groups[0]["lr"])
                if log is not None:
                    log({"train/loss": value}, step)
            if step % t.log_every == 0:
                module.check_finite()
            if step % t.checkpoint_every == 0 and step < t.steps:
                module.check_finite()  # never checkpoint a diverged run
                state = checkpoint_state(fabric, module, optimizer, scheduler, step)
                _save_checkpoint(fabric, state, checkpoint, curve, train_dir / CURVE_FILE)
            for hook in hooks:
                hook(step)
        module.check_finite()
    finally:
        if fabric.is_global_zero:  # a failed training keeps its curve up to the failure
            try:
                curve.write(train_dir / CURVE_FILE)
            except OSError as exc:
                warnings.warn(f"training curve not written: {exc}", stacklevel=2)
    if not fabric.is_global_zero:  # other DDP ranks: rank 0 saves and evaluates
        return None
    save_atomic(module.model.state_dict(), train_dir / MODEL_FILE)
    record = {"steps": step, "train_time_s": round(time.monotonic() - started, 2), "resumed_from": start}
    atomic_write(train_dir / "train.json", json.dumps(record))
    return record


def _save_checkpoint(fabric: L.Fabric, state: dict[str, Any], path: Path, curve: Curve, curve_path: Path) -> None:
    """Rank 0 writes a temporary file and renames it (a kill at any moment leaves the previous checkpoint or the
    new one), then the curve so far; the other processes wait for it."""
    if fabric.is_global_zero:
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(state, tmp)
        fault_point(path.name)
        os.replace(tmp, path)
        curve.write(curve_path)
    fabric.barrier()


def file_sha256(path: str | Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def comparability(recipe: Recipe) -> dict[str, Any]:
    """What makes a number comparable with a paper's: GPUs x images per GPU, SyncBN, precision, crop, iterations,
    learning rate, backbone weights file and its sha256 (and the other recipe facts the papers report)."""
    t, d, m = recipe.train, recipe.data, recipe.model
    procs = t.devices * t.num_nodes
    weights = m.weights
    return {
        "data": d.name,
        "train_split": getattr(d, "train_split", "train"),
        "crop": getattr(d, "crop_size", getattr(d, "image_size", None)),
        "scale_aug": [d.scale_min, d.scale_max] if hasattr(d, "scale_min") else None,
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
        "weights_sha256": file_sha256(weights) if weights and Path(weights).is_file() else None,
    }


def run_job(config: dict[str, Any], run_dir: Path, train_dir: Path, progress: Any = None) -> dict[str, Any]:
    """Train ``config`` (a resolved recipe) into ``train_dir`` unless a finished model is there, then evaluate it
    with ``config["eval"]`` on the validation split and measure its cost. Returns the metrics record.

    When the CLI exported a W&B context (``ablate.study.wandb_sink``), the run is logged as one W&B run: the
    training loss at the curve's points, then the final metrics (summary), the per-class IoU table and cost.
    """
    quiet()
    recipe = Recipe.model_validate(config)
    train_dir = Path(train_dir)
    wb = _wandb_run(config, Path(run_dir))
    try:
        record = _run(recipe, train_dir, progress, wb)
    except BaseException as exc:
        if wb is not None:
            wb.summary.update({"status": "failed", "error": f"{type(exc).__name__}: {exc}".splitlines()[0]})
            wb.finish(exit_code=1)
        raise
    if wb is not None:
        try:
            _wandb_finish(wb, record, train_dir)
        except Exception as exc:  # noqa: BLE001 - logging must never cost a finished run
            warnings.warn(f"W&B run not completed: {type(exc).__name__}: {exc}", stacklevel=2)
            wb.finish(exit_code=1)
    return record


def _run(recipe: Recipe, train_dir: Path, progress: Any, wb: Any) -> dict[str, Any]:
    data = build_datasets(recipe.data)
    trained = not (train_dir / "train.json").is_file() or not (train_dir / MODEL_FILE).is_file()
    if trained:
        log = (lambda metrics, step: wb.log(metrics, step=step)) if wb is not None else None
        if train(recipe, data, train_dir, progress, log) is None:
            return {"status": "worker"}
    training = json.loads((train_dir / "train.json").read_text())
    record = {**evaluate_trained(recipe, data, train_dir), "trained": trained, **training}
    return {**record, "comparable": comparability(recipe)}


def evaluate_trained(recipe: Recipe, data: DataSets, train_dir: Path) -> dict[str, Any]:
    """Evaluate the model trained in ``train_dir`` with ``recipe.eval`` (inference strategy, eval output stride,
    CRF) on the validation split: metrics, per-class IoU/accuracy, params, cost and what evaluation ran."""
    state = torch.load(Path(train_dir) / MODEL_FILE, map_location="cpu", weights_only=True)
    model = build_eval_model(recipe.model, recipe.eval, len(data.classes), state)
    if recipe.train.channels_last:
        model.to(memory_format=torch.channels_last)
    device = eval_device(recipe)
    m = evaluate(model, data.val, recipe.eval, len(data.classes), data.ignore_index, device)
    used = eval_model_config(recipe.model, recipe.eval)
    from ablate.train.cost import measure

    size = getattr(recipe.data, "image_size", None) or recipe.data.crop_size  # the eval size: image or crop
    cost = measure(model, size, device)
    return {
        "metrics": {k: m[k] for k in ("pixel_acc", "mean_acc", "miou", "fwiou")},
        "classes": list(data.classes),  # the class order (metrics.json sorts its keys)
        "per_class_iou": dict(zip(data.classes, m["per_class_iou"], strict=True)),
        "per_class_acc": dict(zip(data.classes, m["per_class_acc"], strict=True)),
        "params": count_params(model),
        "cost": cost,
        "eval": {
            "output_stride": used.output_stride,
            "head": used.head.model_dump(mode="json"),
            "eval_time_s": m["eval_time_s"],
            **({"crf_workers": m["crf_workers"]} if "crf_workers" in m else {}),
        },
    }


def _wandb_run(config: dict[str, Any], run_dir: Path) -> Any:
    """A W&B run for this study run (None without a W&B context): group = study, tags = axis values."""
    from ablate.study import wandb_sink
    from ablate.study.worker import global_rank

    ctx = wandb_sink.current()
    if ctx is None or global_rank() != 0:  # one W&B run per training: DDP ranks > 0 log nothing
        return None
    try:
        return _init(wandb_sink, ctx, config, run_dir)
    except Exception as exc:  # noqa: BLE001 - logging must never cost a run
        warnings.warn(f"W&B run not started ({type(exc).__name__}: {exc}); the run goes on without it", stacklevel=2)
        return None


def _init(wandb_sink: Any, ctx: dict[str, Any], config: dict[str, Any], run_dir: Path) -> Any:
    import yaml

    from ablate.study.grid import format_value

    info_path = run_dir / "config.yaml"
    info = yaml.safe_load(info_path.read_text()) if info_path.is_file() else {}
    axes, seed, run_id = info.get("axes") or {}, info.get("seed", config.get("seed")), info.get("id", run_dir.name)
    label = " ".join(f"{k.split('.')[-1]}={format_value(v)}" for k, v in axes.items())
    return wandb_sink.init_run(
        ctx,
        name=f"{run_id} {label} seed={seed}".strip(),
        job_type="run",
        tags=wandb_sink.tags_for(axes, seed),
        config={**config, "ablate": {"run_id": run_id, "study": ctx["group"], "axes": axes, "seed": seed}},
    )


def _wandb_finish(wb: Any, record: dict[str, Any], train_dir: Path) -> None:
    import wandb

    if not record["trained"] and (train_dir / CURVE_FILE).is_file():  # reused training: log its curve
        for line in (train_dir / CURVE_FILE).read_text().splitlines()[1:]:
            step, loss, _lr = line.split(",")
            wb.log({"train/loss": float(loss)}, step=int(step))
    classes = list(record["per_class_iou"])
    wb.log(
        {
            "per_class_iou": wandb.Table(
                columns=["class", "iou", "acc"],
                data=[[c, record["per_class_iou"][c], record["per_class_acc"][c]] for c in classes],
            )
        }
    )
    cost = record.get("cost") or {}
    wb.summary.update(
        {
            **record["metrics"],
            **{f"iou/{c}": v for c, v in record["per_class_iou"].items()},
            **{f"cost/{k}": cost[k] for k in ("params", "macs", "latency_ms", "peak_mem_mb", "hardware") if k in cost},
            "status": "done",
            "trained": record["trained"],
            "steps": record.get("steps"),
        }
    )
    wb.finish()
