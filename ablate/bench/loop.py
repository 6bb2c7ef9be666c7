"""Section 2: ablate's whole training (its loop on Lightning Fabric, checkpoints, curve) vs a bare PyTorch loop over
the same model, data, optimiser and schedule: block-interleaved runs (the check's ratio), back-to-back runs, and a
per-step probe that says where the difference goes."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ablate.bench.measure import BenchConfig, best_of


def bench_loop(cfg: BenchConfig, tmp: Path) -> dict[str, Any]:
    """ablate's ``train`` vs a bare loop: same recipe, model, data, optimiser, schedule, batches."""
    from ablate.config.yaml_io import load_recipe
    from ablate.data.loader import build_datasets, train_loader
    from ablate.models.segmenter import build_model
    from ablate.train.cpu_speed import prepare_for_device
    from ablate.train.job import quiet
    from ablate.train.loop import train
    from ablate.train.module import make_optimizer, poly_lambda

    quiet()
    recipe = load_recipe(cfg.recipe)
    recipe = recipe.model_copy(update={"train": recipe.train.model_copy(update={"steps": cfg.loop_steps})})
    if cfg.quick:
        recipe = recipe.model_copy(update={"data": recipe.data.model_copy(update={"num_train": 64})})
    data = build_datasets(recipe.data)
    t = recipe.train

    def bare_steps():  # the bare loop, one step per next() (the interleaved probe runs it step by step)
        torch.manual_seed(recipe.seed)
        model = prepare_for_device(build_model(recipe.model, len(data.classes)), "cpu")  # as ``train`` on CPU
        if t.channels_last:
            model.to(memory_format=torch.channels_last)
        model.train()
        opt = make_optimizer(model.parameters(), t)  # the same optimizer: the loop is what is compared
        sched = torch.optim.lr_scheduler.LambdaLR(opt, poly_lambda(t.steps, t.poly_power, t.warmup_steps))
        for images, labels in train_loader(data, t.batch_size, recipe.seed, t.steps):
            if t.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(model(images), labels, ignore_index=data.ignore_index)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            yield

    def bare() -> None:
        for _ in bare_steps():
            pass

    def whole() -> None:
        run_dir = Path(tempfile.mkdtemp(dir=tmp))
        train(recipe, data, run_dir)

    warm = recipe.model_copy(update={"train": t.model_copy(update={"steps": 3})})
    train(warm, data, Path(tempfile.mkdtemp(dir=tmp)))  # first-call costs (kernels, imports) off the clock
    times: dict[str, list[float]] = {"bare": [], "ablate": []}
    for i in range(cfg.loop_pairs):  # back to back, alternating which goes first
        for name in ("bare", "ablate") if i % 2 == 0 else ("ablate", "bare"):
            times[name].append(best_of(bare if name == "bare" else whole, 1))
    pairs = [a / b for a, b in zip(times["ablate"], times["bare"], strict=True)]

    def with_hook(hook: Callable[[int], None]) -> None:
        train(recipe, data, Path(tempfile.mkdtemp(dir=tmp)), hooks=[hook])

    block = min(cfg.loop_blocks, t.steps)
    blocks = [_block_interleaved(with_hook, bare_steps(), block) for _ in range(cfg.loop_interleaved)]
    probe = _interleaved_probe(with_hook, bare_steps(), t.checkpoint_every)
    return {
        "recipe": str(cfg.recipe),
        "steps": t.steps,
        "ratio": round(statistics.median(b["ratio"] for b in blocks), 3),
        "block_steps": block,
        "blocks": blocks,
        "bare_s": round(statistics.median(times["bare"]), 3),
        "ablate_s": round(statistics.median(times["ablate"]), 3),
        "pairs_ratio": round(statistics.median(pairs), 3),
        "pair_ratios": [round(r, 3) for r in pairs],
        "ratio_of_best": round(min(times["ablate"]) / min(times["bare"]), 3),
        "all_s": {k: [round(v, 3) for v in vs] for k, vs in times.items()},
        "interleaved": probe,
        "target": "<= 1.05",
    }


def _block_interleaved(
    run: Callable[[Callable[[int], None]], Any], bare: Any, block: int, clock: Callable[[], float] = time.perf_counter
) -> dict[str, Any]:
    """One whole ablate training that, after each ``block`` of its steps, runs the next ``block`` steps of the bare
    loop (its model build at the first). Both whole loops, fixed costs included, are timed in the same stretches of
    the machine's time, so its speed changes (±10-15% over seconds on a shared 2-core VM) cancel; each side finds the
    caches cold once per block, alike. ablate's time is the training's wall time less the bare blocks run inside it."""
    inside: list[float] = []

    def run_block() -> None:
        started = clock()
        for _ in range(block):
            if next(bare, StopIteration) is StopIteration:
                break
        inside.append(clock() - started)

    def after_step(step: int) -> None:
        if step % block == 0:
            run_block()

    started = clock()
    run(after_step)
    total = clock() - started
    run_block()  # what the bare loop has left (steps not a multiple of the block), and its end
    bare_s = sum(inside)
    ablate_s = total - sum(inside[:-1])
    return {"ablate_s": round(ablate_s, 3), "bare_s": round(bare_s, 3), "ratio": round(ablate_s / bare_s, 4)}


def _interleaved_probe(
    run: Callable[[Callable[[int], None]], Any], bare: Any, checkpoint_every: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:  # fmt: skip
    """One ablate training with one bare-loop step run right after each of its steps (own model, optimiser and
    batches): both are timed in the same moments of the machine, so its speed changes cancel. ablate's step ``s``
    is the time from the hook after step ``s - 1`` to the hook after step ``s`` (the loop's own work, a checkpoint
    when one is due) less the bare step run inside it."""
    marks: list[float] = []
    bare_s: list[float] = []

    def after_step(step: int) -> None:
        marks.append(clock())
        started = clock()
        next(bare, None)
        bare_s.append(clock() - started)

    run(after_step)
    steps = len(marks)
    ours = {s: marks[s - 1] - marks[s - 2] - bare_s[s - 2] for s in range(2, steps + 1)}  # step s (1-based)
    if not ours:
        return {}
    saves = [s for s in ours if s % checkpoint_every == 0 and s < steps]
    step = statistics.median(ours[s] for s in ours if s not in saves)
    plain = statistics.median(bare_s)
    return {
        "ablate_step_ms": round(step * 1e3, 3),
        "bare_step_ms": round(plain * 1e3, 3),
        "overhead_ms_per_step": round((step - plain) * 1e3, 3),
        "overhead_share": round(step / plain - 1, 4),
        "checkpoint_ms": round((statistics.mean(ours[s] for s in saves) - step) * 1e3, 1) if saves else None,
        "checkpoints": len(saves),
    }
