"""Section 6: sharing the machine. Two one-run studies started together (two users, or one user with two terminals)
against one alone, and a study's wall time with ``-j 2`` against ``-j 1``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ablate.bench.measure import BenchConfig
from ablate.bench.study import _python_env, _run_study, _study_records


def _one_run_study(folder: Path, recipe: Path, steps: int, name: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        json.dumps({"name": name, "recipe": str(recipe.resolve()), "set": {"train.steps": steps}, "seeds": [0]})
    )
    return path


def _start(study: Path, results: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ablate.cli", "run", str(study), "--results", str(results), "--no-report"]
    return subprocess.Popen(cmd, env=_python_env(None), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _train_s(results: Path) -> float:
    return sum(r.get("train_time_s", 0.0) for r in _study_records(results))


def bench_load(cfg: BenchConfig, tmp: Path) -> dict[str, Any]:
    steps = 20 if cfg.quick else cfg.loop_steps
    solo_study = _one_run_study(tmp, cfg.recipe, steps, "alone")
    started = time.perf_counter()
    proc = _start(solo_study, tmp / "alone")
    if proc.wait() != 0:
        raise RuntimeError(f"the one-run study failed: {proc.stderr.read()[-2000:]}")
    solo_wall, solo_train = time.perf_counter() - started, _train_s(tmp / "alone")
    pair = [_one_run_study(tmp, cfg.recipe, steps, f"together{i}") for i in (1, 2)]
    started = time.perf_counter()
    procs = [_start(study, tmp / study.stem) for study in pair]
    walls = []
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError(f"a study run together failed: {p.stderr.read()[-2000:]}")
        walls.append(time.perf_counter() - started)
    trains = [_train_s(tmp / study.stem) for study in pair]
    out: dict[str, Any] = {
        "steps": steps,
        "alone_train_s": round(solo_train, 2),
        "alone_wall_s": round(solo_wall, 2),
        "together_train_s": [round(t, 2) for t in trains],
        "together_wall_s": [round(w, 2) for w in walls],
        "train_ratio": round(max(trains) / solo_train, 2),
        "wall_ratio": round(max(walls) / solo_wall, 2),
        "target": "each of two together <= 2.5x one alone",
    }
    if cfg.study is not None:
        for jobs in (1, 2):
            extra = ["-j", str(jobs)]
            wall, _ = _run_study(None, cfg.study.resolve(), tmp / f"j{jobs}", [*cfg.study_sets], extra=extra)
            out[f"study_j{jobs}_s"] = round(wall, 1)
        out["study"] = str(cfg.study)
        out["j2_over_j1"] = round(out["study_j2_s"] / out["study_j1_s"], 3)
    return out
