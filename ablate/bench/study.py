"""Section 3: a study's wall time (``ablate run`` in a fresh process, as a user runs it) vs its runs' own training
and evaluation time; the fixed cost per run and its parts; optionally the same study run by an earlier commit."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ablate.bench.measure import BenchConfig, best_of


def _python_env(src: Path | None) -> dict[str, str]:
    """The environment of a study run by the code in ``src`` (None: the installed ablate)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    env.pop("WANDB_MODE", None)
    env["WANDB_MODE"] = "offline"
    return env


def _run_study(src: Path | None, study: Path, results: Path, sets: list[str], extra: list[str] = ()
               ) -> tuple[float, int]:  # fmt: skip
    cmd = [sys.executable, "-m", "ablate.cli", "run", str(study), "--results", str(results), *extra]
    for s in sets:
        cmd += ["--set", s]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=src, env=_python_env(src), capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return wall, proc.returncode


def _study_records(results: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(results.glob("*/runs/*/metrics.json")):
        rec = json.loads(path.read_text())
        cfg = path.with_name("config.yaml")
        rec["_config"] = cfg.read_text() if cfg.is_file() else ""
        out.append(rec)
    return out


def _cold_import_s() -> float:
    code = "import ablate.train.job, ablate.study.session"
    return best_of(lambda: subprocess.run([sys.executable, "-c", code], env=_python_env(None), check=True), 2)


def _miou_by_config(records: list[dict[str, Any]]) -> dict[str, list[float]]:
    import yaml

    groups: dict[str, list[float]] = {}
    for rec in records:
        if rec.get("status") != "done":
            continue
        conf = yaml.safe_load(rec["_config"]) or {}
        key = json.dumps(conf.get("axes", {}), sort_keys=True)
        groups.setdefault(key, []).append(100 * rec["metrics"]["miou"])
    return groups


def git_top() -> Path:
    """The git checkout of the working folder (``--before`` runs an earlier commit of it)."""
    out = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("--before needs a git checkout of ablate as the working folder")
    return Path(out.stdout.strip())


def bench_study(cfg: BenchConfig, tmp: Path) -> dict[str, Any]:
    from ablate.config.yaml_io import load_recipe
    from ablate.data.synthetic import _generate
    from ablate.models.segmenter import build_model

    assert cfg.study is not None
    out: dict[str, Any] = {"study": str(cfg.study), "sets": cfg.study_sets}
    results = tmp / "study"
    wall, rc = _run_study(None, cfg.study.resolve(), results, cfg.study_sets)
    records = _study_records(results)
    train_s = sum(r.get("train_time_s", 0.0) for r in records)
    eval_s = sum(r.get("eval", {}).get("eval_time_s", 0.0) for r in records)
    n = max(1, len(records))
    out.update(
        runs=len(records),
        failed=sum(r.get("status") != "done" for r in records),
        wall_s=round(wall, 2),
        train_s=round(train_s, 2),
        eval_s=round(eval_s, 2),
        overhead_s=round(wall - train_s - eval_s, 2),
        fixed_cost_per_run_s=round((wall - train_s - eval_s) / n, 3),
        wall_over_runs=round(wall / max(1e-9, train_s + eval_s), 3),
        target="fixed cost per run <= 3 s",
    )
    # the parts of the fixed cost
    recipe = load_recipe(cfg.recipe)
    out["cold_start_and_imports_s"] = round(_cold_import_s(), 2)
    out["model_build_s"] = round(best_of(lambda: build_model(recipe.model, 5), 3), 3)
    d = recipe.data
    _generate.cache_clear()
    out["data_setup_s_first"] = round(best_of(lambda: _generate("train", d.num_train, d.image_size, d.seed), 1), 3)
    out["data_setup_s_cached"] = round(best_of(lambda: _generate("train", d.num_train, d.image_size, d.seed), 1), 5)
    fp32 = _miou_by_config(records)
    out["miou_fp32"] = {k: [round(v, 2) for v in vs] for k, vs in fp32.items()}
    if cfg.before:
        src, repo = tmp / "before", git_top()
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", "-f", str(src), cfg.before], check=True,
                       capture_output=True)  # fmt: skip
        try:
            before_wall, _ = _run_study(src, cfg.study.resolve(), tmp / "study_before", cfg.study_sets)
            out["before"] = {"ref": cfg.before, "wall_s": round(before_wall, 2)}
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(src)], capture_output=True)
    if cfg.bf16_study:
        started = time.perf_counter()
        _run_study(None, cfg.study.resolve(), tmp / "study_bf16", [*cfg.study_sets, "train.precision=bf16-mixed"])
        bf16 = _miou_by_config(_study_records(tmp / "study_bf16"))
        out["bf16"] = {"wall_s": round(time.perf_counter() - started, 2), **_compare_miou(fp32, bf16)}
    return out


def _compare_miou(fp32: dict[str, list[float]], bf16: dict[str, list[float]]) -> dict[str, Any]:
    all32 = [v for vs in fp32.values() for v in vs]
    all16 = [v for vs in bf16.values() for v in vs]
    spreads = [statistics.stdev(vs) for vs in fp32.values() if len(vs) > 1]
    spread = statistics.mean(spreads) if spreads else float("nan")
    delta = (statistics.mean(all16) - statistics.mean(all32)) if all16 and all32 else float("nan")
    return {
        "miou_fp32_mean": round(statistics.mean(all32), 2) if all32 else None,
        "miou_bf16_mean": round(statistics.mean(all16), 2) if all16 else None,
        "delta": round(delta, 2),
        "fp32_seed_std_mean": round(spread, 2),
        "within_seed_spread": bool(abs(delta) <= spread),
        "miou_bf16": {k: [round(v, 2) for v in vs] for k, vs in bf16.items()},
    }
