"""The study report: results/<study>/report.html (self-contained: plots inline as base64 PNG) and report.md (plots
next to it in report_files/), with matplotlib (Agg) plots.

Contents: the comparison table (and the paper layout); the main metric against each axis with error bars over
seeds; accuracy vs cost; per-class IoU heatmap (configurations x classes); training curves; a qualitative grid
(image, ground truth, prediction of each configuration) on fixed validation images; failed runs with their
errors; the recipe, the study and the exact command to reproduce.

Torch-free at import; the qualitative grid imports ``ablate.train.qualitative`` (torch) when it is drawn.
"""

from __future__ import annotations

import base64
import html
import math
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from ablate.study.grid import Run, format_value
from ablate.study.store import Store, atomic_write
from ablate.study.tables import HTML_STYLE, METRICS, ComparisonTable, short_names, to_html_fragment, to_markdown

FILES = "report_files"
PALETTE = [
    (0.10, 0.10, 0.10),
    (0.90, 0.30, 0.25),
    (0.20, 0.55, 0.90),
    (0.30, 0.75, 0.35),
    (0.95, 0.75, 0.20),
    (0.60, 0.35, 0.80),
    (0.20, 0.80, 0.80),
    (0.90, 0.50, 0.80),
]


@dataclass
class Figure:
    name: str
    title: str
    caption: str
    path: Path | None = None
    error: str = ""


@dataclass
class Report:
    html: Path
    md: Path
    figures: list[Figure] = field(default_factory=list)

    @property
    def images(self) -> dict[str, Path]:
        return {f.name: f.path for f in self.figures if f.path is not None}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 100, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _config_label(row: pd.Series, axes: list[str]) -> str:
    names = short_names(axes)
    return " ".join(f"{names[a]}={row[a]}" for a in axes) or "all"


# ------------------------------------------------------------------------------------------------- plots
def plot_metric_vs_axes(t: ComparisonTable, axes: list[str], values: dict[str, list[str]], out: Path) -> None:
    plt = _plt()
    s, metric = t.summary, t.metric
    fig, panels = plt.subplots(1, max(1, len(axes)), figsize=(4.6 * max(1, len(axes)), 3.4), squeeze=False)
    names = short_names(axes)
    for ax, axis in zip(panels[0], axes or ["_"], strict=False):
        if not axes:
            break
        order = values[axis]
        others = [a for a in axes if a != axis]
        groups = s.groupby(others, sort=False) if others else [((), s)]
        for i, (key, g) in enumerate(groups):
            key = key if isinstance(key, tuple) else (key,)
            label = " ".join(f"{names[o]}={k}" for o, k in zip(others, key, strict=True)) or METRICS[metric]
            g = g.set_index(axis).reindex(order)
            x = list(range(len(order)))
            color = PALETTE[(i + 1) % len(PALETTE)]
            ax.errorbar(
                x,
                g[f"{metric}_mean"],
                yerr=g[f"{metric}_std"].fillna(0),
                marker="o",
                capsize=3,
                label=label,
                color=color,
            )
            failed = [j for j, n in enumerate(g["n"].fillna(0)) if n == 0]
            for j in failed:
                ax.annotate(
                    "failed",
                    (j, 0),
                    xycoords=("data", "axes fraction"),
                    color="#b00020",
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
        ax.set_xticks(range(len(order)), order, rotation=20 if max(map(len, order)) > 8 else 0)
        ax.set_xlabel(names[axis])
        ax.set_ylabel(f"{METRICS[metric]} (%)")
        ax.grid(alpha=0.3)
        if others:
            ax.legend(fontsize=7, frameon=False)
    fig.suptitle(f"{METRICS[metric]} vs each axis (mean ± std over seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def plot_cost(t: ComparisonTable, axes: list[str], out: Path) -> None:
    plt = _plt()
    s, metric = t.summary, t.metric
    keys = [("macs", 1e9, "GMACs"), ("latency_ms", 1, "latency (ms)"), ("params", 1e6, "parameters (M)")]
    keys = [k for k in keys if k[0] in s]
    fig, panels = plt.subplots(1, max(1, len(keys)), figsize=(4.4 * max(1, len(keys)), 3.4), squeeze=False)
    ok = s[s["n"] > 0]
    for ax, (key, scale, label) in zip(panels[0], keys, strict=False):
        for i, (_, row) in enumerate(ok.iterrows()):
            ax.errorbar(
                row[key] / scale,
                row[f"{metric}_mean"],
                yerr=0 if pd.isna(row[f"{metric}_std"]) else row[f"{metric}_std"],
                marker="o",
                capsize=3,
                color=PALETTE[(i + 1) % len(PALETTE)],
            )
            ax.annotate(
                _config_label(row, axes),
                (row[key] / scale, row[f"{metric}_mean"]),
                fontsize=6,
                xytext=(3, 3),
                textcoords="offset points",
            )
        ax.set_xlabel(label)
        ax.set_ylabel(f"{METRICS[metric]} (%)")
        ax.locator_params(axis="x", nbins=4)
        ax.ticklabel_format(axis="x", useOffset=False, style="plain")
        ax.grid(alpha=0.3)
    hw = "; ".join(dict.fromkeys(h for h in s.get("hardware", []) if h))
    fig.suptitle(f"{METRICS[metric]} vs cost (batch 1 at the eval size; {hw})", fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def plot_per_class(t: ComparisonTable, axes: list[str], out: Path) -> None:
    plt = _plt()
    s = t.summary
    cols = [c for c in s.columns if str(c).startswith("iou:")]
    labels = [_config_label(r, axes) for _, r in s.iterrows()]
    data = s[cols].astype(float).to_numpy()
    fig, ax = plt.subplots(figsize=(1.2 * len(cols) + 3, 0.38 * len(labels) + 1.4))
    im = ax.imshow(data, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(cols)), [c.split(":", 1)[1] for c in cols])
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            v = data[i, j]
            text = "failed" if s.iloc[i]["n"] == 0 and s.iloc[i]["failed"] else ("—" if math.isnan(v) else f"{v:.1f}")
            dark = math.isnan(v) or v > 60  # NaN cells are blank (white): dark text
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=7,
                color="#b00020" if text == "failed" else ("black" if dark else "white"),
            )
    fig.colorbar(im, ax=ax, label="IoU (%)")
    ax.set_title("Per-class IoU (mean over seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def read_curve(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        df = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        return None
    return df if len(df) else None


def plot_curves(t: ComparisonTable, axes: list[str], store: Store, out: Path) -> bool:
    plt = _plt()
    df = t.runs
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    drawn = False
    keys = axes or []
    groups = df.groupby(keys, sort=False) if keys else [((), df)]
    for i, (key, g) in enumerate(groups):
        key = key if isinstance(key, tuple) else (key,)
        label = " ".join(f"{short_names(keys)[a]}={v}" for a, v in zip(keys, key, strict=True)) or "all"
        color = PALETTE[(i + 1) % len(PALETTE)]
        first = True
        for row in g.itertuples():
            curve = read_curve(store.trainings_dir / row.train_id / "curve.csv")
            if curve is None:
                continue
            loss = curve["loss"].where(curve["loss"].apply(lambda v: math.isfinite(v) and v > 0))
            failed = row.status == "failed"
            ax.plot(
                curve["step"],
                loss,
                color=color,
                lw=1,
                ls="--" if failed else "-",
                alpha=0.85,
                label=(label + (" (failed)" if failed else "")) if first else None,
            )
            first, drawn = False, True
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (log)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, frameon=False, ncol=2)
    ax.set_title("Training curves (one line per seed; dashed: failed)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return drawn


def plot_qualitative(
    t: ComparisonTable, axes: list[str], runs: list[Run], store: Store, out: Path, count: int = 4
) -> None:
    from ablate.train.qualitative import predictions

    by_id = {r.id: r for r in runs}
    configs = []
    for _key, g in t.runs.groupby(axes, sort=False) if axes else [((), t.runs)]:
        done = g[g["status"] == "done"].sort_values("seed")
        row = g.iloc[0] if done.empty else done.iloc[0]
        run = by_id[row["run_id"]]
        label = " ".join(f"{short_names(axes)[a]}={format_value(run.axes[a])}" for a in axes) or "model"
        if done.empty:
            label += " (failed)" if (g["status"] == "failed").any() else " (missing)"
        configs.append(
            (label, run.config, store.trainings_dir / run.train_id if not done.empty else Path("/nonexistent"))
        )
    result = predictions(configs, count)
    plt = _plt()
    import numpy as np

    classes, ignore = result["classes"], result["ignore_index"]
    palette = np.array([PALETTE[i % len(PALETTE)] for i in range(len(classes))])

    def colour(mask):
        img = np.ones((*mask.shape, 3))
        valid = mask != ignore
        img[valid] = palette[np.clip(mask[valid], 0, len(classes) - 1)]
        return img

    n = len(result["indices"])
    cols = 2 + len(configs)
    fig, grid = plt.subplots(n, cols, figsize=(1.7 * cols, 1.75 * n + 0.6), squeeze=False)
    for r in range(n):
        panels = [("image", result["images"][r]), ("ground truth", colour(result["labels"][r]))]
        for label, _, _ in configs:
            pred = result["predictions"][label]
            panels.append((label, None if pred is None else colour(pred[r])))
        for c, (title, img) in enumerate(panels):
            ax = grid[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if img is None:
                ax.text(0.5, 0.5, "no model", ha="center", va="center", color="#b00020", fontsize=8)
            else:
                ax.imshow(img, interpolation="nearest")
            if r == 0:
                ax.set_title(title, fontsize=7)
        grid[r][0].set_ylabel(f"val #{result['indices'][r]}", fontsize=7)
    handles = [plt.Rectangle((0, 0), 1, 1, color=palette[i]) for i in range(len(classes))]
    fig.legend(handles, classes, loc="lower center", ncol=len(classes), fontsize=7, frameon=False)
    fig.suptitle("Predictions on fixed validation images (first finished seed of each configuration)", fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(out)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------- provenance
def git_state(path: Path) -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=path,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit + (" (uncommitted changes)" if dirty else "")) if commit else "unknown"


def reproduce_command(loaded, results: Path, command: str = "run") -> str:
    parts = ["ablate", command, loaded.path]
    if str(results) != "results":
        parts += ["--results", str(results)]
    for key, value in loaded.overrides.items():
        text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
        parts += ["--set", f"'{key}={text}'"]
    return " ".join(parts)


# ------------------------------------------------------------------------------------------------- the report
PLOTS = [
    ("metric_vs_axes", "Main metric vs each axis", "Mean ± std over seeds; one line per value of the other axes."),
    ("cost", "Accuracy vs cost", "Mean ± std of the main metric against multiply-adds, latency and parameters."),
    ("per_class_iou", "Per-class IoU", "Configurations × classes, mean over finished seeds."),
    ("curves", "Training curves", "Training loss per step, one line per seed; dashed lines are failed runs."),
    ("qualitative", "Qualitative results", "Image, ground truth (white: ignored), prediction of each configuration."),
]

CHECK_SCRIPT = """
<script>
// For automated checks (tests open this page headless): counts images and broken ones after load.
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  document.body.setAttribute('data-images', String(imgs.length));
  document.body.setAttribute('data-broken-images', String(broken.length));
  document.body.setAttribute('data-table-rows',
    String(document.querySelectorAll('table.comparison tbody tr').length));
});
</script>
"""


def write_report(
    loaded, runs: list[Run], store: Store, table: ComparisonTable, results: Path, qualitative_images: int = 4
) -> Report:
    """Draw every plot into results/<study>/report_files/ and write report.html (self-contained) and report.md.

    A plot that cannot be drawn (e.g. no finished run) is replaced by a note saying why; the report is always
    written."""
    study = loaded.study
    axes = list(study.axes)
    values = {a: [format_value(v) for v in vals] for a, vals in study.axes.items()}
    files = store.root / FILES
    files.mkdir(parents=True, exist_ok=True)
    any_done = bool((table.runs["status"] == "done").any())
    figures: list[Figure] = []
    for name, title, caption in PLOTS:
        fig = Figure(name, title, caption)
        path = files / f"{name}.png"
        try:
            if name == "curves":
                if not plot_curves(table, axes, store, path):
                    raise RuntimeError("no training curve recorded")
            elif not any_done:
                raise RuntimeError("no finished run")
            elif name == "metric_vs_axes":
                plot_metric_vs_axes(table, axes, values, path)
            elif name == "cost":
                if "macs" not in table.summary or table.summary["macs"].isna().all():
                    raise RuntimeError("no cost recorded (runs finished before cost measurement existed)")
                plot_cost(table, axes, path)
            elif name == "per_class_iou":
                if not any(str(c).startswith("iou:") for c in table.summary.columns):
                    raise RuntimeError("no per-class IoU recorded")
                plot_per_class(table, axes, path)
            elif name == "qualitative":
                plot_qualitative(table, axes, runs, store, path, qualitative_images)
            fig.path = path
        except Exception as exc:  # noqa: BLE001 - a missing plot must not cost the whole report
            fig.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            path.unlink(missing_ok=True)
        figures.append(fig)

    command = reproduce_command(loaded, results) + "\n" + reproduce_command(loaded, results, "report")
    recipe_text = yaml.safe_dump(loaded.recipe, sort_keys=False)
    study_text = Path(loaded.path).read_text() if Path(loaded.path).is_file() else ""
    provenance = _provenance()
    counts = table.runs["status"].value_counts().to_dict()
    status_line = ", ".join(f"{v} {k}" for k, v in counts.items())

    md = [f"# Study `{study.name}`\n", f"{study.description}\n" if study.description else "", f"Runs: {status_line}.\n"]
    md.append(to_markdown(table, heading="##").replace(f"## {table.title}\n", "## Comparison table\n", 1))
    for f in figures:
        md.append(f"\n## {f.title}\n\n{f.caption}\n\n")
        md.append(f"![{f.title}]({FILES}/{f.name}.png)\n" if f.path else f"_Not drawn: {f.error}._\n")
    md.append(f"\n## Reproduce\n\n```bash\n{command}\n```\n")
    md.append(f"\n{provenance}\n\n### Study ({loaded.path})\n\n```yaml\n{study_text}```\n")
    md.append(f"\n### Resolved recipe (before axes; {loaded.recipe_path})\n\n```yaml\n{recipe_text}```\n")
    md_path = store.root / "report.md"
    atomic_write(md_path, "".join(md))

    body = [f"<h1>Study <code>{html.escape(study.name)}</code></h1>"]
    if study.description:
        body.append(f"<p>{html.escape(study.description)}</p>")
    body.append(f"<p>Runs: {html.escape(status_line)}.</p>")
    body.append("<h2>Comparison table</h2>")
    body.append(to_html_fragment(table))
    for f in figures:
        body.append(f"<h2>{html.escape(f.title)}</h2><p class='caption'>{html.escape(f.caption)}</p>")
        if f.path:
            data = base64.b64encode(f.path.read_bytes()).decode()
            body.append(f'<img class="plot" alt="{html.escape(f.title)}" src="data:image/png;base64,{data}">')
        else:
            body.append(f"<p class='missing'>Not drawn: {html.escape(f.error)}.</p>")
    body.append("<h2>Reproduce</h2>")
    body.append(f"<pre>{html.escape(command)}</pre>")
    body.append(f"<p>{html.escape(provenance)}</p>")
    body.append(f"<h3>Study ({html.escape(loaded.path)})</h3><pre>{html.escape(study_text)}</pre>")
    body.append(f"<h3>Resolved recipe (before axes; {html.escape(loaded.recipe_path)})</h3>")
    body.append(f"<pre>{html.escape(recipe_text)}</pre>")
    style = (
        HTML_STYLE
        + """
body { font: 14px/1.5 system-ui, sans-serif; margin: 24px 32px; color: #111; max-width: 1400px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
img.plot { max-width: 100%; border: 1px solid #eee; }
pre { background: #f6f8fa; padding: 8px 12px; overflow-x: auto; font-size: 12px; }
.caption { color: #555; font-size: 13px; } .missing { color: #a06000; } .error { color: #b00020; }
.failures { color: #b00020; font-size: 13px; }
"""
    )
    page = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>ablate: {html.escape(study.name)}</title>"
        f"<style>{style}</style>{CHECK_SCRIPT}</head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    html_path = store.root / "report.html"
    atomic_write(html_path, page)
    return Report(html=html_path, md=md_path, figures=figures)


def _provenance() -> str:
    import importlib.metadata as md

    versions = []
    for pkg in ("ablate", "torch", "timm", "lightning"):
        try:
            versions.append(f"{pkg} {md.version(pkg)}")
        except md.PackageNotFoundError:
            pass
    code = git_state(Path(__file__).resolve().parent)
    return f"Code: git {code}; Python {platform.python_version()}; {', '.join(versions)}."
