"""W&B: one run per study run (started and ended by the worker around the job: the training loss at the curve's
points, then the final metrics, per-class IoU and cost), grouped by study, and one summary run at the end of a study
with the comparison table and the report's plots.

Torch-free; ``wandb`` is imported only when something is logged.

Mode (``wandb: {mode: ...}`` in the study or the recipe, or ``ablate run --wandb MODE``):
- ``auto`` (default): ``$WANDB_MODE`` if set, else ``online`` when an API key is configured (``$WANDB_API_KEY``
  or a netrc entry for api.wandb.ai), else ``offline``;
- ``online``: needs a key; if W&B cannot be reached within ``init_timeout`` seconds the run falls back to
  offline with a warning (never a hang, never a prompt);
- ``offline``: files only, under results/<study>/wandb/ (sync later with ``wandb sync``);
- ``disabled``: nothing.

The CLI hands the settings to the workers through the environment variable ``ABLATE_WANDB`` (JSON), which local
processes and SLURM jobs inherit. The training itself knows nothing of W&B: the worker forwards the loss points the
job reports to its progress printer (``LoggingProgress``) and logs the record the job returns.
"""

from __future__ import annotations

import json
import netrc
import os
import warnings
from pathlib import Path
from typing import Any

ENV = "ABLATE_WANDB"
INIT_TIMEOUT_S = 30


def has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
        return netrc.netrc(path).authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(requested: str | None) -> str:
    mode = (requested or "auto").lower()
    if mode == "auto":
        env = os.environ.get("WANDB_MODE", "").lower()
        if env in ("online", "offline", "disabled"):
            return env
        if env == "dryrun":
            return "offline"
        return "online" if has_api_key() else "offline"
    return mode


def settings(study_name: str, results_root: Path, cfg: Any, mode_override: str | None = None) -> dict[str, Any]:
    """The W&B context for a study's jobs: mode, project, entity, group and where files go."""
    mode = resolve_mode(mode_override or getattr(cfg, "mode", None))
    return {
        "mode": mode,
        "project": getattr(cfg, "project", None) or "ablate",
        "entity": getattr(cfg, "entity", None),
        "group": study_name,
        "dir": str((Path(results_root) / study_name).resolve()),  # wandb.init writes to <dir>/wandb/
    }


def export(ctx: dict[str, Any]) -> None:
    """Hand ``ctx`` to the jobs of this process and its children."""
    os.environ[ENV] = json.dumps(ctx)


def current() -> dict[str, Any] | None:
    """The context exported by the CLI, or None (no W&B) when there is none or it is disabled."""
    raw = os.environ.get(ENV)
    if not raw:
        return None
    try:
        ctx = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return None if ctx.get("mode") == "disabled" else ctx


def prepare_env(ctx: dict[str, Any]) -> None:
    """Keep every W&B file under the study's wandb/ folder (not ~/.cache, ~/.config or /tmp) and stay quiet."""
    base = Path(ctx["dir"]) / "wandb"
    base.mkdir(parents=True, exist_ok=True)
    for var, sub in (("WANDB_CACHE_DIR", ".cache"), ("WANDB_DATA_DIR", ".data"), ("WANDB_CONFIG_DIR", ".config")):
        os.environ.setdefault(var, str(base / sub))
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_DISABLE_GIT", "true")


def init_kwargs(ctx: dict[str, Any], mode: str | None = None) -> dict[str, Any]:
    import wandb

    return {
        "project": ctx["project"],
        "entity": ctx.get("entity"),
        "group": ctx["group"],
        "dir": ctx["dir"],
        "mode": mode or ctx["mode"],
        "settings": wandb.Settings(
            init_timeout=INIT_TIMEOUT_S, console="off", silent=True, x_disable_stats=True, disable_git=True
        ),
    }


def init_run(ctx: dict[str, Any], **kwargs: Any):
    """``wandb.init`` that never hangs: online failures fall back to offline with a warning."""
    import wandb

    prepare_env(ctx)
    try:
        return wandb.init(**init_kwargs(ctx), **kwargs)
    except Exception as exc:  # noqa: BLE001 - e.g. no network or a bad key: log offline instead
        if ctx["mode"] != "online":
            raise
        warnings.warn(f"W&B online init failed ({exc}); logging offline under {ctx['dir']}/wandb", stacklevel=2)
        return wandb.init(**init_kwargs(ctx, mode="offline"), **kwargs)


def start_run(spec: dict[str, Any], run_dir: Path) -> Any:
    """A W&B run for this study run (None without a W&B context): group = study, tags = axis values. A failure to
    start is a warning: logging never costs a run."""
    from ablate.core.text import format_value

    ctx = current()
    if ctx is None:
        return None
    axes, seed, run_id = spec.get("axes") or {}, spec.get("seed"), spec.get("id", run_dir.name)
    label = " ".join(f"{k.split('.')[-1]}={format_value(v)}" for k, v in axes.items())
    try:
        return init_run(
            ctx,
            name=f"{run_id} {label} seed={seed}".strip(),
            job_type="run",
            tags=tags_for(axes, seed),
            config={**spec["config"], "ablate": {"run_id": run_id, "study": ctx["group"], "axes": axes, "seed": seed}},
        )
    except Exception as exc:  # noqa: BLE001 - logging must never cost a run
        warnings.warn(f"W&B run not started ({type(exc).__name__}: {exc}); the run goes on without it", stacklevel=2)
        return None


class LoggingProgress:
    """The job's progress printer, with each training loss point also logged to the W&B run."""

    def __init__(self, progress: Any, wb: Any):
        self.progress, self.wb = progress, wb

    def step(self, step: int, steps: int, loss: float) -> None:
        if self.wb is not None:
            self.wb.log({"train/loss": loss}, step=step)
        if self.progress is not None:
            self.progress.step(step, steps, loss)

    def validated(self, step: int, miou: float) -> None:
        """A validation during training (``train.val_every``), at the step it followed."""
        if self.wb is not None:
            self.wb.log({"val/miou": miou}, step=step)
        if hasattr(self.progress, "validated"):
            self.progress.validated(step, miou)

    def note(self, message: str) -> None:
        if self.progress is not None:
            self.progress.note(message)


def end_run(wb: Any, record: dict[str, Any] | None, train_dir: Path, stopped: bool = False) -> None:
    """Finish the W&B run: the final metrics, per-class IoU and cost of a finished run (the curve too when the run
    reused another's training), the error of a failed one; a stopped one is marked as such."""
    if wb is None:
        return
    try:
        if stopped or record is None:
            wb.summary.update({"status": "interrupted"})
            wb.finish(exit_code=1)
        elif record.get("status") != "done":
            wb.summary.update({"status": "failed", "error": record.get("error", "")})
            wb.finish(exit_code=1)
        else:
            _log_result(wb, record, train_dir)
            wb.finish()
    except Exception as exc:  # noqa: BLE001 - logging must never cost a finished run
        warnings.warn(f"W&B run not completed: {type(exc).__name__}: {exc}", stacklevel=2)
        wb.finish(exit_code=1)


def _log_result(wb: Any, record: dict[str, Any], train_dir: Path) -> None:
    import wandb

    from ablate.core.curve import CURVE_FILE, VAL_FILE, read_curve, read_val

    if not record.get("trained", True):  # reused training: log its curves, in step order as W&B wants them
        points = [(step, {"train/loss": loss}) for step, loss, _lr in read_curve(train_dir / CURVE_FILE)]
        points += [(step, {"val/miou": miou}) for step, miou in read_val(train_dir / VAL_FILE)]
        for step, values in sorted(points, key=lambda p: p[0]):
            wb.log(values, step=step)
    classes = list(record["per_class_iou"])
    rows = [[c, record["per_class_iou"][c], record["per_class_acc"][c]] for c in classes]
    wb.log({"per_class_iou": wandb.Table(columns=["class", "iou", "acc"], data=rows)})
    cost = record.get("cost") or {}
    wb.summary.update(
        {
            **record["metrics"],
            **{f"iou/{c}": v for c, v in record["per_class_iou"].items()},
            **{f"cost/{k}": cost[k] for k in ("params", "macs", "latency_ms", "peak_mem_mb", "hardware") if k in cost},
            "status": "done",
            "trained": record.get("trained", True),
            "steps": record.get("steps"),
        }
    )


def tags_for(axes: dict[str, Any], seed: int | None = None) -> list[str]:
    from ablate.core.text import format_value

    tags = [f"{k.split('.')[-1]}={format_value(v)}"[:64] for k, v in axes.items()]
    if seed is not None:
        tags.append(f"seed={seed}")
    return tags


def log_study_summary(ctx: dict[str, Any], table: Any, images: dict[str, Path], extra: dict[str, Any]) -> str | None:
    """One W&B run (job_type 'summary') with the comparison table, the paper layout, failed runs and the report's
    plots. Returns the run's local folder."""
    import wandb

    run = init_run(ctx, job_type="summary", name=f"{ctx['group']}-summary", tags=["summary"], config=extra)
    try:
        shown = table.shown.astype(str)
        run.log({"comparison_table": wandb.Table(columns=[str(c) for c in shown.columns], data=shown.values.tolist())})
        numeric = table.summary.drop(columns=[c for c in table.summary.columns if str(c).startswith("iou:")])
        numeric = numeric.astype(object).where(numeric.notna(), None).astype(str)
        run.log(
            {"summary_numbers": wandb.Table(columns=[str(c) for c in numeric.columns], data=numeric.values.tolist())}
        )
        if table.layout is not None:
            layout = table.layout.astype(str)
            run.log(
                {"table_layout": wandb.Table(columns=[str(c) for c in layout.columns], data=layout.values.tolist())}
            )
        if table.failures:
            run.log(
                {"failed_runs": wandb.Table(columns=["run", "label", "error"], data=[list(f) for f in table.failures])}
            )
        for name, path in images.items():
            run.log({f"plots/{name}": wandb.Image(str(path))})
        run.summary["footnote"] = " ".join(table.footnote)
        run.summary["failed_runs"] = len(table.failures)
        run.summary["missing_runs"] = len(table.missing)
        return str(Path(run.dir).parent)
    finally:
        run.finish()
