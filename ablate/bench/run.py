"""Run the bench's sections and write OUT/bench.json and OUT/bench.md."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ablate.bench import flops, load, loop, metrics, step, study
from ablate.bench.common import BenchConfig, _jsonable, machine

SECTIONS = ("step", "flops", "loop", "study", "metrics", "crf", "load")


def _measure(name: str, cfg: BenchConfig, report: dict[str, Any], tmp: Path) -> dict[str, Any]:
    if name == "step":
        return step.bench_step(cfg)
    if name == "flops":
        return flops.bench_flops(cfg, report["step"])
    if name == "loop":
        return loop.bench_loop(cfg, tmp)
    if name == "study":
        return study.bench_study(cfg, tmp)
    if name == "metrics":
        return metrics.bench_metrics(cfg)
    if name == "crf":
        return metrics.bench_crf(cfg)
    return load.bench_load(cfg, tmp)


def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# ablate bench",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), torch {m['torch']}, "
        f"{m['torch_threads']} threads, GPU: {m['gpu'] or 'none'}, AVX-512 BF16: {m['avx512_bf16']}  ",
        f"Load average at start {tuple(round(x, 2) for x in m['load_avg_start'])}, "
        f"at end {tuple(round(x, 2) for x in report['load_avg_end'])}; total {report['total_s']} s"
        + (" (quick mode: figures are not meaningful)" if report["quick"] else ""),
        "",
    ]
    for section in (step, loop, study, flops, metrics, load):
        if report.get(section.NAME):
            lines += section.markdown(report[section.NAME], report)
    return "\n".join(lines)


def run_bench(cfg: BenchConfig, sections: tuple[str, ...] = SECTIONS, log: Callable[[str], None] = print) -> dict:
    started = time.perf_counter()
    report: dict[str, Any] = {"command": cfg.command, "quick": cfg.quick, "config": _jsonable(asdict(cfg))}
    report["machine"] = machine()
    cfg.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="ablate-bench-"))
    try:
        for name in sections:
            if (name == "study" and cfg.study is None) or (name == "flops" and "step" not in report):
                continue
            log(f"bench: {name} ...")
            t0 = time.perf_counter()
            report[name] = _measure(name, cfg, report, tmp)
            log(f"bench: {name} done in {time.perf_counter() - t0:.1f} s: {json.dumps(report[name])[:300]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report["load_avg_end"] = os.getloadavg()
    report["total_s"] = round(time.perf_counter() - started, 1)
    (cfg.out / "bench.json").write_text(json.dumps(_jsonable(report), indent=2) + "\n")
    (cfg.out / "bench.md").write_text(to_markdown(report) + "\n")
    return report
