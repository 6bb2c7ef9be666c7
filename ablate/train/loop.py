"""The training loop: plain PyTorch on Lightning Fabric (devices, DDP, precision); per step it adds to a bare loop
only a copy of the loss into a device buffer. It checkpoints every ``train.checkpoint_every`` steps and when asked
to stop (Ctrl-C, SIGTERM: ``ablate.core.signals``), and resumes from ``last.ckpt`` with the same result as training
without interruption."""

from __future__ import annotations

import contextlib
import gc
import json
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from ablate.config.schema import Recipe
from ablate.core import signals
from ablate.core.curve import CURVE_FILE, VAL_FILE, Point, read_curve, read_val, write_curve, write_val
from ablate.core.files import atomic_save, atomic_write
from ablate.data.balance import class_weights
from ablate.data.loader import DataSets, train_loader
from ablate.train.checkpoint import CHECKPOINT_FILE, checkpoint_state, read_checkpoint, restore_rng, save_checkpoint
from ablate.train.cpu_speed import prepare_for_device
from ablate.train.ema import WeightAverage
from ablate.train.evaluate import validate
from ablate.train.module import SegmentationModule

MODEL_FILE = "model.pt"
TRAIN_RECORD = "train.json"


class Curve:
    """The training curve: (step, loss, lr) every ``every`` steps and at the last step, forwarded to the study's
    progress printer and written to trainings/<id>/curve.csv. The loss is the one the step computed (its one read
    to the host every ``every`` steps)."""

    def __init__(self, progress: Any, steps: int, every: int, points: list[Point] | None = None):
        self.progress, self.steps, self.every = progress, steps, every
        self.points: list[Point] = list(points or [])  # a resumed training's earlier points

    def due(self, step: int) -> bool:
        return step == 1 or step % self.every == 0 or step == self.steps

    def add(self, step: int, loss: float, lr: float) -> None:
        self.points.append((step, loss, lr))
        if self.progress is not None:
            self.progress.step(step, self.steps, loss)


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


def sync_bn(recipe: Recipe) -> bool:
    """SyncBN across processes: when asked, with more than one process, on GPUs (PyTorch's SyncBatchNorm has no
    CPU implementation; CPU DDP keeps per-process BN statistics)."""
    t = recipe.train
    on_gpu = t.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return t.sync_batchnorm and t.devices * t.num_nodes > 1 and on_gpu


def _stop_children(fabric: L.Fabric) -> None:
    """Kill the DDP processes this one launched (a failure on rank 0 must not leave them waiting in a collective)."""
    for proc in getattr(fabric.strategy.launcher, "procs", None) or []:
        with contextlib.suppress(OSError):
            proc.kill()


def train(
    recipe: Recipe, data: DataSets, train_dir: Path, progress: Any = None,
    hooks: Sequence[Callable[[int], None]] = (),
) -> dict | None:  # fmt: skip
    """Train ``recipe`` and save the model's state dict to ``train_dir/model.pt`` (atomically), the loss curve to
    ``train_dir/curve.csv`` and the training record to ``train.json``; ``hooks`` are called with the step count
    after every step (the bench's timers). Returns the record, None on DDP ranks other than 0. Raises
    ``Interrupted`` after writing a checkpoint when a signal asks it to stop."""
    freeze_gc_once()
    t = recipe.train
    fabric = L.Fabric(accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, precision=t.precision)
    fabric.launch()  # DDP: starts the other local processes (they re-run this command) unless SLURM started them
    try:
        with signals.deferred() as stop:
            return _train(fabric, recipe, data, train_dir, progress, hooks, stop)
    except BaseException:
        _stop_children(fabric)
        raise


def _restore(fabric: L.Fabric, module: SegmentationModule, optimizer: Any, scheduler: Any, state: dict,
             progress: Any, ema: WeightAverage | None) -> None:  # fmt: skip
    module.model.load_state_dict(state["model"])
    if ema is not None:
        ema.load_state_dict(state["ema"])
    optimizer.load_state_dict(state["optimizer"])  # its state lands on the parameters' device
    scheduler.load_state_dict(state["scheduler"])
    if state["precision"]:
        fabric.strategy.precision.load_state_dict(state["precision"])
    if state["threads"] != torch.get_num_threads():  # another thread count sums in another order
        if progress is not None and fabric.is_global_zero:
            progress.note(f"resuming with the {state['threads']} CPU thread(s) the training started with")
        torch.set_num_threads(state["threads"])
    restore_rng(state)


def _stop_requested(fabric: L.Fabric, stop: Any) -> int | None:
    """The signal every process of the training agrees to stop on (one all-reduce under DDP), or None."""
    if fabric.world_size == 1:
        return stop.pending
    flag = torch.tensor([stop.pending or 0], device=fabric.device)
    return int(fabric.all_reduce(flag, reduce_op="max").item()) or None


def _train(fabric: L.Fabric, recipe: Recipe, data: DataSets, train_dir: Path, progress: Any, hooks: Any, stop: Any
           ) -> dict | None:  # fmt: skip
    t = recipe.train
    L.seed_everything(recipe.seed, workers=True, verbose=False)
    checkpoint = train_dir / CHECKPOINT_FILE
    resumed = read_checkpoint(checkpoint, progress if fabric.is_global_zero else None)
    start = resumed["global_step"] if resumed else 0
    weights = class_weights(recipe.data, recipe.train.class_weights)
    module = SegmentationModule(recipe, len(data.classes), data.ignore_index, weights)
    prepare_for_device(module.model, fabric.device)  # the CPU's atrous convs on CPU; elsewhere PyTorch's own
    if sync_bn(recipe):
        module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    model = fabric.setup_module(module)  # on the device; DDP-wrapped with more than one process
    optimizers = module.configure_optimizers()  # fused SGD and the per-step poly schedule, on the device's params
    optimizer, scheduler = optimizers["optimizer"], optimizers["lr_scheduler"]["scheduler"]
    ema = WeightAverage(module.model, t.ema) if t.ema is not None else None  # on the model's device
    if resumed:
        _restore(fabric, module, optimizer, scheduler, resumed, progress, ema)
    opt = fabric.setup_optimizers(optimizer)
    curve = Curve(progress, t.steps, t.log_every, read_curve(train_dir / CURVE_FILE, start) if start else [])
    validations = read_val(train_dir / VAL_FILE, start) if start else []  # (step, mIoU) every train.val_every
    loader = train_loader(data, t.batch_size, recipe.seed, t.steps, start, recipe.data.num_workers)
    to_device = fabric.device.type != "cpu"

    def save_state(step: int) -> None:
        """Rank 0 writes the checkpoint (atomically) and the curve so far; the other processes wait for it."""
        if fabric.is_global_zero:
            state = checkpoint_state(module.model, optimizer, scheduler, fabric.strategy.precision.state_dict(), step,
                                     ema.state_dict() if ema is not None else None)  # fmt: skip
            save_checkpoint(state, checkpoint)
            write_curve(train_dir / CURVE_FILE, curve.points)
            if t.val_every:
                write_val(train_dir / VAL_FILE, validations)
        fabric.barrier()

    started = time.monotonic()
    model.train()
    step = start
    data_s = 0.0  # waiting for the loader: reading, decoding and augmenting (all of it, without loader workers)
    try:
        mark = time.perf_counter()
        for batch in loader:
            data_s += time.perf_counter() - mark
            images, labels = fabric.to_device(batch) if to_device else batch
            loss = module.loss(model(images), labels)  # the forward through Fabric's wrapper: autocast, DDP
            opt.zero_grad(set_to_none=True)
            fabric.backward(loss)
            opt.step()
            scheduler.step()
            module.track_loss(loss.detach(), step)
            step += 1
            if ema is not None:
                ema.update(module.model, step)
            if fabric.is_global_zero and curve.due(step):
                curve.add(step, loss.item(), optimizer.param_groups[0]["lr"])
            if step % t.log_every == 0:
                module.check_finite()
            if t.val_every and step % t.val_every == 0 and step < t.steps:
                if fabric.is_global_zero:  # the other processes wait at the barrier
                    batch = recipe.eval.batch_size
                    shown = ema.averaged if ema is not None and ema.started else module  # what is evaluated
                    miou = validate(shown, data.val, len(data.classes), data.ignore_index, batch, fabric.device)
                    validations.append((step, miou))
                    if hasattr(progress, "validated"):  # the W&B sink logs it
                        progress.validated(step, miou)
                fabric.barrier()
            signum = _stop_requested(fabric, stop) if step < t.steps else None
            if signum is not None or (step % t.checkpoint_every == 0 and step < t.steps):
                module.check_finite()  # never checkpoint a diverged run
                save_state(step)
            if signum is not None:
                raise signals.Interrupted(signum, f"step {step}/{t.steps}")
            for hook in hooks:
                hook(step)
            mark = time.perf_counter()
        module.check_finite()
    finally:
        if fabric.is_global_zero:  # a failed or stopped training keeps its curve up to the failure
            try:
                write_curve(train_dir / CURVE_FILE, curve.points)
                if t.val_every:
                    write_val(train_dir / VAL_FILE, validations)
            except OSError as exc:
                warnings.warn(f"training curve not written: {exc}", stacklevel=2)
    if not fabric.is_global_zero:  # other DDP ranks: rank 0 saves and evaluates
        return None
    weights = ema.weights() if ema is not None and ema.started else module.model.state_dict()
    atomic_save(train_dir / MODEL_FILE, lambda fh: torch.save(weights, fh))
    record = {
        "steps": step,
        "train_time_s": round(time.monotonic() - started, 2),
        "data_time_s": round(data_s, 2),  # of train_time_s, this run's part (since a resume)
        "resumed_from": start,
        "threads": torch.get_num_threads(),
    }
    atomic_write(train_dir / TRAIN_RECORD, json.dumps(record))
    return record
