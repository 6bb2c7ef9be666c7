"""Run the bench's sections and write OUT/bench.json and OUT/bench.md (from the Jinja2 template in ``templates/``)."""

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

from jinja2 import Environment, PackageLoader, StrictUndefined

from ablate.bench import flops, loop, machine_load, metrics, step, study
from ablate.bench.measure import BenchConfig, jsonable, machine
from ablate.core.text import markdown_table

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
    return machine_load.bench_load(cfg, tmp)


def _step_cells(row: dict[str, Any]) -> list[Any]:
    """A row of section 1's table; a peer that could not be built shows its error instead of timings."""
    if "error" in row:
        return [row["model"], "error", row["error"], "", "", ""]
    return [row["model"], row["format"], row["optimizer"], row["step_s"], row["images_per_s"], row["gflop_per_step"]]


def _percent(share: float, digits: int = 0) -> str:
    """``0.824`` -> ``82``: a share written as a percentage (the ``%`` sign is the template's)."""
    return f"{100 * share:.{digits}f}"


_ENV = Environment(
    loader=PackageLoader("ablate.bench"),
    undefined=StrictUndefined,  # a figure bench.json lacks is an error, not a blank in bench.md
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.globals["markdown_table"] = markdown_table
_ENV.filters.update(step_cells=_step_cells, percent=_percent)


def to_markdown(report: dict[str, Any]) -> str:
    """bench.md (less the file's last newline, which ``run_bench`` adds) from ``report`` as bench.json holds it."""
    # every paragraph of the template ends with a blank line: the last one's is not part of the text
    return _ENV.get_template("bench.md.j2").render(report=report).removesuffix("\n")


def run_bench(cfg: BenchConfig, sections: tuple[str, ...] = SECTIONS, log: Callable[[str], None] = print) -> dict:
    started = time.perf_counter()
    report: dict[str, Any] = {"command": cfg.command, "quick": cfg.quick, "config": jsonable(asdict(cfg))}
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
    (cfg.out / "bench.json").write_text(json.dumps(jsonable(report), indent=2) + "\n")
    (cfg.out / "bench.md").write_text(to_markdown(report) + "\n")
    return report
