"""The ``ablate bench`` command (registered by ``ablate.cli``); the measurements import torch only when they run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-s", help="Override a recipe key of the study runs, KEY=VALUE. Repeatable.", show_default=False
    ),
]


def bench(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for bench.md and bench.json.")] = Path(
        "results/bench"
    ),
    quick: Annotated[
        bool, typer.Option("--quick", help="Tiny sizes and one repeat: checks that every section runs (seconds).")
    ] = False,
    batch: Annotated[int | None, typer.Option(help="Images per training step (step and FLOP/s sections).")] = None,
    size: Annotated[int | None, typer.Option(help="Image side in pixels (step and FLOP/s sections).")] = None,
    steps: Annotated[int | None, typer.Option(help="Timed training steps per model.")] = None,
    loop_steps: Annotated[int | None, typer.Option(help="Steps of the whole-loop vs bare-loop comparison.")] = None,
    study: Annotated[
        Path | None, typer.Option(help="Study whose wall time is measured (default studies/aspp_rates.yaml).")
    ] = None,
    no_study: Annotated[bool, typer.Option("--no-study", help="Skip the study sections (the longest).")] = False,
    no_bf16_study: Annotated[bool, typer.Option("--no-bf16-study", help="Do not run the study again in bf16.")] = False,
    no_compile: Annotated[
        bool, typer.Option("--no-compile", help="Do not time the torch.compile'd step (it compiles for ~1 min).")
    ] = False,
    before: Annotated[
        str | None,
        typer.Option(help="Git ref whose code also runs the study, for a before/after wall time (git worktree)."),
    ] = None,
    set_: SetOpt = None,
    only: Annotated[
        list[str] | None, typer.Option(help="Run only these sections: step, flops, loop, study, metrics, crf, load.")
    ] = None,
) -> None:
    """Measure ablate's speed against its peers on this machine; writes OUT/bench.md and OUT/bench.json.

    Training step vs torchvision's and segmentation_models_pytorch's DeepLabv3, the whole loop vs a bare PyTorch
    loop, a study's wall time vs its runs, achieved FLOP/s vs the GEMM peak (fp32, bf16), the metric update vs
    torchmetrics, the dense CRF pool's speed-up, and two studies sharing the machine. About 20 minutes on 2 cores;
    --quick takes about one.
    """
    from ablate.bench.measure import BenchConfig
    from ablate.bench.suite import SECTIONS, run_bench

    kw: dict[str, Any] = {"out": out, "command": "ablate bench " + " ".join(sys.argv[2:])}
    for key, value in (("batch", batch), ("size", size), ("steps", steps), ("loop_steps", loop_steps)):
        if value is not None:
            kw[key] = value
    if study is not None:
        kw["study"] = study.resolve()
    if no_study:
        kw["study"] = None
    if set_:
        kw["study_sets"] = list(set_)
    if no_bf16_study:
        kw["bf16_study"] = False
    if no_compile:
        kw["compiled"] = False
    if before:
        kw["before"] = before
    cfg = BenchConfig.quick_config(**kw) if quick else BenchConfig(**kw)
    sections = tuple(only) if only else SECTIONS
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        err_console.print(f"[red]error:[/red] --only {', '.join(unknown)}: allowed: {', '.join(SECTIONS)}")
        raise typer.Exit(2)
    run_bench(cfg, sections, log=lambda line: console.print(escape(line)))
    console.print(f"wrote {out / 'bench.md'} and {out / 'bench.json'}")
