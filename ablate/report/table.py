"""Comparison tables: one row per configuration, mean ± std over seeds, n, Δ vs the baseline with a significance
mark (Welch's t-test over seeds), cost columns with the hardware named, failed and missing runs shown as such.

Torch-free (pandas; scipy for the test, imported when a table is built). ``build`` makes a ``ComparisonTable`` from
the per-run records (``ablate.study.results.collect``) and the study; ``ablate.report.render`` writes it out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ablate.core.text import format_value, short_labels, short_names
from ablate.report import compare
from ablate.report.effects import study_effects

METRICS = {"miou": "mIoU", "pixel_acc": "PA", "mean_acc": "mAcc", "fwiou": "FWIoU"}
TRIMAP = "trimap:"  # ``trimap:<width>``: mIoU in the band of that width (pixels) around the label boundaries


REACH = "reach"  # px: where accuracy by distance to the class's evidence falls below 50% (data that know it)
BF = "bf"  # SegNet's boundary F1 score (runs evaluated before it was measured have none)


def metric_title(key: str) -> str:
    """``miou`` -> ``mIoU``; ``trimap:2`` -> ``mIoU@2px`` (in the 2-pixel band around boundaries)."""
    if key == REACH:
        return "reach (px)"
    if key == BF:
        return "BF"
    return f"mIoU@{key[len(TRIMAP):]}px" if key.startswith(TRIMAP) else METRICS[key]


def metric_keys(df: pd.DataFrame) -> list[str]:
    """The metrics a table of runs has: the four scalar ones, the boundary F1 where it was measured, the trimap
    bands by width, then the reach where the data set records it."""
    bands = sorted((c for c in df.columns if str(c).startswith(TRIMAP)), key=lambda c: int(c[len(TRIMAP):]))
    bf = [BF] if BF in df.columns and df[BF].notna().any() else []
    reach = [REACH] if REACH in df.columns and df[REACH].notna().any() else []
    return [*METRICS, *bf, *bands, *reach]
COSTS = {"params": "Params (M)", "macs": "MACs (G)", "latency_ms": "Latency (ms)", "peak_mem_mb": "Memory (MB)"}
MARKS = ((0.001, "***"), (0.01, "**"), (0.05, "*"))


# ------------------------------------------------------------------------------------------------- per configuration
def mark(p: float | None) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    for threshold, symbol in MARKS:
        if p < threshold:
            return symbol
    return ""


def summarize(
    df: pd.DataFrame, axes: list[str], baseline: dict[str, Any] | None = None, metric: str = "miou",
    design: Any = None,
) -> pd.DataFrame:
    """Per configuration (axis values): mean and std over seeds of every metric, n (finished seeds), failed,
    missing, the errors, Δ of ``metric`` vs the baseline with its test, p, Holm's p and bootstrap interval
    (``ablate.report.compare``; with adaptive seeds, ``design``, the group-sequential test, its repeated interval
    and each row's decision), the outlier seeds, cost (mean over seeds)."""
    keys = axes or ["_all"]
    if not axes:
        df = df.assign(_all="all")
    done = df[df["status"] == "done"]
    out = df[keys].drop_duplicates().reset_index(drop=True)
    stats = done.groupby(keys, sort=False)[metric_keys(df)].agg(["mean", "std"])
    stats.columns = [f"{m}_{s}" for m, s in stats.columns]
    out = out.merge(stats.reset_index(), on=keys, how="left")
    for name, mask in (("n", df["status"] == "done"), ("failed", df["status"] == "failed")):
        counts = df[mask].groupby(keys, sort=False).size().rename(name)
        out = out.merge(counts.reset_index(), on=keys, how="left")
        out[name] = out[name].fillna(0).astype(int)
    total = df.groupby(keys, sort=False).size().rename("runs")
    out = out.merge(total.reset_index(), on=keys, how="left")
    out["missing"] = out["runs"] - out["n"] - out["failed"]
    errors = (
        df[df["status"] == "failed"]
        .groupby(keys, sort=False)["error"]
        .agg(lambda s: "; ".join(dict.fromkeys(e for e in s if e)))
        .rename("errors")
    )
    out = out.merge(errors.reset_index(), on=keys, how="left")
    out["errors"] = out["errors"].fillna("")
    cost_cols = [c for c in COSTS if c in done]
    if cost_cols:
        costs = done.groupby(keys, sort=False)[cost_cols].mean()
        out = out.merge(costs.reset_index(), on=keys, how="left")
    hw = done.groupby(keys, sort=False)["hardware"].agg(lambda s: "; ".join(dict.fromkeys(h for h in s if h)))
    out = out.merge(hw.rename("hardware").reset_index(), on=keys, how="left")
    out["hardware"] = out["hardware"].fillna("")
    class_cols = [c for c in df.columns if str(c).startswith("iou:")]
    if class_cols:
        per_class = done.groupby(keys, sort=False)[class_cols].mean()
        out = out.merge(per_class.reset_index(), on=keys, how="left")
    out["baseline"] = False
    if baseline:
        # axes the baseline leaves out are compared within: each combination of their values (e.g. each
        # eval.split) has its own baseline row and its own family of tests (Holm)
        free = [k for k in keys if k not in baseline and k in out]
        groups = [idx for _, idx in out.groupby(free, sort=False).groups.items()] if free else [out.index]
        joined = []
        for idx in groups:
            part = out.loc[idx]
            mask = pd.Series(True, index=part.index)
            for key, value in baseline.items():
                if key in part:
                    mask &= part[key] == format_value(value)
            if not mask.any():
                continue
            base = mask.idxmax()
            out.loc[base, "baseline"] = True
            out.loc[idx, f"delta_{metric}"] = part[f"{metric}_mean"] - part.loc[base, f"{metric}_mean"]
            joined.append(compare.against_baseline(done, keys, part, base, metric, design))
        if joined:
            out = out.join(pd.concat(joined))
    out["outliers"] = [",".join(map(str, seeds)) for seeds in compare.outlier_seeds(done, keys, out, metric)]
    return out.drop(columns=["_all"], errors="ignore")


# ------------------------------------------------------------------------------------------------- text cells
def _pm(mean: float, std: float, n: int) -> str:
    if pd.isna(mean):
        return "—"
    if n < 2 or pd.isna(std):
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {std:.2f}"


def _status(row: pd.Series) -> str:
    parts = []
    if row["failed"]:
        parts.append(f"FAILED {row['failed']}/{row['runs']}")
    if row["missing"]:
        parts.append(f"missing {row['missing']}/{row['runs']}")
    return ", ".join(parts) or "ok"


def _metric_cell(row: pd.Series, key: str) -> str:
    if row["n"] == 0:
        return "FAILED" if row["failed"] else "missing"
    return _pm(row[f"{key}_mean"], row[f"{key}_std"], row["n"])


def _delta_cell(row: pd.Series, metric: str) -> str:
    d = row.get(f"delta_{metric}")
    if row.get("baseline"):
        return "baseline"
    if d is None or pd.isna(d):
        return "—"
    return f"{d:+.2f}{mark(row.get(f'p_holm_{metric}'))}"


def _ci_cell(row: pd.Series, metric: str) -> str:
    low, high = row.get(f"ci_low_{metric}"), row.get(f"ci_high_{metric}")
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return "—"
    return f"[{low:+.2f}, {high:+.2f}]"


def _num(value: Any, scale: float = 1.0, digits: int = 2) -> str:
    if value is None or pd.isna(value):
        return "—"
    return f"{value / scale:.{digits}f}"


def display(summary: pd.DataFrame, axes: list[str], metric: str = "miou") -> pd.DataFrame:
    """The human table, one row per configuration: axis values, 'mean ± std' per metric, n, Δ (with the
    significance mark), cost, and a status column saying which runs failed or are missing."""
    shown = pd.DataFrame({short: summary[axis] for axis, short in short_names(axes).items()})
    means = [f"{BF}_mean"] if f"{BF}_mean" in summary and summary[f"{BF}_mean"].notna().any() else []
    means += [str(c) for c in summary.columns if str(c).startswith(TRIMAP) and str(c).endswith("_mean")]
    means += [f"{REACH}_mean"] if f"{REACH}_mean" in summary else []
    for key in [*METRICS, *(c.removesuffix("_mean") for c in means)]:
        shown[metric_title(key)] = [_metric_cell(row, key) for _, row in summary.iterrows()]
    flagged = [bool(o) for o in summary.get("outliers", pd.Series([""] * len(summary)))]
    shown[metric_title(metric)] = [f"{c} !" if f else c for c, f in zip(shown[metric_title(metric)], flagged,
                                                                         strict=True)]  # fmt: skip
    shown["n"] = summary["n"]
    if f"delta_{metric}" in summary:
        shown[f"Δ {metric_title(metric)}"] = [_delta_cell(row, metric) for _, row in summary.iterrows()]
        shown["Δ 95% CI"] = [_ci_cell(row, metric) for _, row in summary.iterrows()]
    cost_format = {"params": (1e6, 3), "macs": (1e9, 3), "latency_ms": (1, 2), "peak_mem_mb": (1, 2)}
    for key, title in COSTS.items():
        if key in summary:
            scale, digits = cost_format[key]
            shown[title] = [_num(v, scale, digits) for v in summary[key]]
    shown["status"] = [_status(row) for _, row in summary.iterrows()]
    return shown


def seed_table(t: ComparisonTable) -> pd.DataFrame:
    """Every seed's value of the table's metric, one row per configuration (outlier seeds marked !)."""
    axes = list(t.names)
    short = short_names(axes)
    done = t.runs[t.runs["status"] == "done"]
    seeds = sorted({int(s) for s in t.runs["seed"]})
    rows = []
    for _, row in t.summary.iterrows():
        mask = pd.Series(True, index=done.index)
        for axis in axes:
            mask &= done[axis] == row[axis]
        values = dict(zip(done.loc[mask, "seed"].astype(int), done.loc[mask, t.metric], strict=True))
        flagged = {int(x) for x in str(row.get("outliers", "")).split(",") if x}
        cells = {}
        for s in seeds:
            missing = s not in values or pd.isna(values[s])
            cells[f"seed {s}"] = "—" if missing else f"{values[s]:.2f}" + (" !" if s in flagged else "")
        names = {short[a]: t.name(a, row[a]) for a in axes}
        rows.append({**names, **cells, metric_title(t.metric): _metric_cell(row, t.metric)})
    return pd.DataFrame(rows)


def pivot(summary: pd.DataFrame, rows: list[str], columns: list[str], metric: str = "miou") -> pd.DataFrame | None:
    """The paper layout: ``rows`` x ``columns`` (axes), each cell 'mean ± std' of ``metric`` with Δ and its
    significance mark, or FAILED/missing. Axes in neither list become rows, so nothing is averaged away."""
    if not columns:
        return None
    axes = list(summary.columns[: summary.columns.get_loc(f"{metric}_mean")])
    row_keys = [*rows, *(a for a in axes if a not in rows and a not in columns)]
    names = short_names([*row_keys, *columns])
    cells: dict[tuple, dict[str, str]] = {}
    col_labels: list[str] = []
    for _, r in summary.iterrows():
        rk = tuple(r[k] for k in row_keys)
        ck = ", ".join(f"{names[c]}={r[c]}" for c in columns)
        if ck not in col_labels:
            col_labels.append(ck)
        cell = _metric_cell(r, metric)
        if r["n"] and f"delta_{metric}" in summary:
            delta = _delta_cell(r, metric)
            cell += " (baseline)" if delta == "baseline" else f" ({delta})"
        if r["n"] and (r["failed"] or r["missing"]):
            cell += f" [{_status(r)}]"
        cells.setdefault(rk, {})[ck] = cell
    data = []
    for rk, values in cells.items():
        data.append(
            {**{names[k]: v for k, v in zip(row_keys, rk, strict=True)}, **{c: values.get(c, "") for c in col_labels}}
        )
    return pd.DataFrame(data)


# ------------------------------------------------------------------------------------------------- the table
@dataclass
class ComparisonTable:
    title: str
    metric: str
    runs: pd.DataFrame  # collect()
    summary: pd.DataFrame  # summarize()
    shown: pd.DataFrame  # display()
    layout: pd.DataFrame | None  # pivot()
    footnote: list[str] = field(default_factory=list)
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (run id, label, error)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (run id, label)
    published: pd.DataFrame | None = None  # the paper's table: published vs reproduced (studies with reference:)
    published_caption: str = ""
    per_class: pd.DataFrame | None = None  # per-class IoU beside the paper's rows that publish it
    contrasts: pd.DataFrame | None = None  # the paper's contrasts, published and reproduced (paired over seeds)
    names: dict[str, dict[str, str]] = field(default_factory=dict)  # axis -> written value -> short readable name
    effects: Any = None  # ablate.report.stats.Effects of the study's axes (None: no axis or no finished run)

    def name(self, axis: str, value: str) -> str:
        """The readable name of an axis value (as ``format_value`` writes it)."""
        return self.names.get(axis, {}).get(value, value)


def build(study: Any, df: pd.DataFrame, labels: dict[str, str], seeding: Any = None) -> ComparisonTable:
    """The study's comparison table from its per-run records ``df`` (finished, failed and missing runs alike);
    ``study`` is the ``ablate.study.spec.Study``, ``labels`` each run id's label; ``seeding`` the adaptive seeds'
    plan (``ablate.study.adaptive.SeedPlan``: its ``design`` and why it ``stopped``), None for a fixed list."""
    axes = list(study.axes)
    metric = study.table.metric
    names = {a: dict(zip(map(format_value, vs), short_labels(vs), strict=True)) for a, vs in study.axes.items()}
    design = seeding.design if seeding is not None else None
    summary = summarize(df, axes, study.baseline, metric, design)
    shown = display(summary, axes, metric)
    rows = [r for r in study.table.rows if r in axes]
    columns = [c for c in study.table.columns if c in axes]
    layout = pivot(summary, rows, columns, metric) if columns else None
    short = short_names(axes)
    for frame in (shown, layout):  # people read the short names; summary and CSV keep the written values
        for axis in axes:
            if frame is not None and short.get(axis) in frame:
                frame[short[axis]] = frame[short[axis]].map(lambda v, a=axis: names[a].get(v, v))
    published, published_caption, per_class, contrasts = None, "", None, None
    if study.reference is not None:
        from ablate.report import reference as ref

        if len(ref.published_metrics(study.reference)) > 1:  # G, C, mIoU, BF ...: one line per row and metric
            joined = ref.join_all_metrics(summary, study.reference, study.baseline or None)
        else:
            joined = ref.join_reference(summary, study.reference, study.baseline or None)
        published = ref.paper_layout(joined)
        published_caption = " ".join(filter(None, [ref.caption(study.reference), ref.agreement_note(joined)]))
        short_axes = short_names(axes)

        def label(config: dict[str, str]) -> str:
            varying = [a for a in axes if a in config and a not in study.reference.scope]
            return ", ".join(f"{short_axes[a]}={names[a].get(config[a], config[a])}" for a in varying) or "all"

        per_class = ref.per_class_layout(df, study.reference, axes, label)
        contrasts = ref.contrast_table(df, study.reference)
    failures = [(r.run_id, labels[r.run_id], r.error) for r in df.itertuples() if r.status == "failed"]
    missing = [(r.run_id, labels[r.run_id]) for r in df.itertuples() if r.status not in ("done", "failed")]
    return ComparisonTable(
        title=study.name,
        metric=metric,
        runs=df,
        summary=summary,
        shown=shown,
        layout=layout,
        footnote=footnote(study, summary, df, seeding),
        failures=failures,
        missing=missing,
        published=published,
        published_caption=published_caption,
        per_class=per_class,
        contrasts=contrasts,
        names=names,
        effects=study_effects(study, df),
    )


def _row_label(study: Any) -> Any:
    """A summary row's name in notes: ``rates=(6,12,18) output_stride=16`` (the axes' short names and values)."""
    axes = list(study.axes)
    names = short_names(axes)
    readable = {a: dict(zip(map(format_value, vs), short_labels(vs), strict=True)) for a, vs in study.axes.items()}

    def label(row: pd.Series) -> str:
        return " ".join(f"{names[a]}={readable[a].get(row[a], row[a])}" for a in axes) or "all"

    return label


def _seed_notes(study: Any, summary: pd.DataFrame, df: pd.DataFrame) -> list[str]:
    """The outlier seeds (marked ! in the table) and how many seeds the study's smallest effect of interest needs."""
    axes, metric = list(study.axes), study.table.metric
    keys = axes or ["_all"]
    done = df[df["status"] == "done"].assign(**({} if axes else {"_all": "all"}))
    frame = summary.assign(**({} if axes else {"_all": "all"}))
    values = [compare.seed_values(done, keys, row, metric) for _, row in frame.iterrows()]
    flagged = [[int(s) for s in str(o).split(",") if s] for o in summary["outliers"]]
    notes = compare.outlier_notes(frame, flagged, _row_label(study), values)
    base = frame.index[frame["baseline"]][0] if frame["baseline"].any() else None
    needed = compare.seeds_needed_note(done, keys, frame, base, metric, metric_title(metric), study.table.min_effect)
    return notes + ([needed] if needed else [])


def _rule_notes(study: Any, df: pd.DataFrame) -> list[str]:
    """What each coupling rule made of the written values, in the runs (``used:<axis>`` columns of ``collect``)."""
    notes = []
    for rule in study.rules:
        # the axis the rule scales: its key, or the section axis above it (model.head for model.head.rates)
        axis = rule.scale if rule.scale in study.axes else next(
            (a for a in study.axes if rule.scale.startswith(a + ".")), rule.scale)  # fmt: skip
        used = f"used:{axis}"
        if used not in df:
            continue
        others = [a for a in study.axes if a != axis]
        pairs = df[[axis, *others, used]].dropna().drop_duplicates()
        shown = "; ".join(
            f"{row[axis]} → {row[used]}"
            + (f" at {', '.join(f'{short_names(others)[a]}={row[a]}' for a in others)}" if others else "")
            for _, row in pairs.iterrows()
            if row[axis] != row[used]
        )
        if rule.feature_map is not None:
            how = (f"{rule.scale} is written for a {rule.feature_map:g}-px feature map (DeepLabv3 writes its rates "
                   "for 513-px crops at output stride 16: 33 px) and scaled to each run's map, ceil(crop / output "
                   "stride), so each rate keeps its share of the map")  # fmt: skip
        else:
            ref = f"{rule.reference:g}"
            how = f"{rule.scale} is written for {rule.with_} = {ref} and scaled by {ref} / {rule.with_}"
        notes.append(f"Coupled: {how}; the table shows the written values, the runs used: {shown or 'the same'}.")
    return notes


def _readable(study: Any, axis: str, value: Any) -> str:
    """The short name of an axis value (``aspp(rates=(6,12,18))``), as the table's rows show it."""
    values = study.axes.get(axis, [value])
    return dict(zip(map(format_value, values), short_labels(values), strict=True)).get(format_value(value),
                                                                                       format_value(value))


def footnote(study, summary: pd.DataFrame, df: pd.DataFrame, seeding: Any = None) -> list[str]:
    metric = study.table.metric
    seeds = study.initial_seeds
    if seeding is None:
        notes = [f"Metrics in %, mean ± std (sample std) over n finished seeds of {len(seeds)} "
                 f"(seeds {', '.join(map(str, seeds))})."]  # fmt: skip
    else:
        notes = [f"Metrics in %, mean ± std (sample std) over n finished seeds: {len(seeds)} per configuration "
                 f"(seeds {', '.join(map(str, seeds))}), more where its comparison with the baseline was undecided "
                 "(see Seeds below)."]  # fmt: skip
    if f"delta_{metric}" in summary:
        base = ", ".join(f"{k.split('.')[-1]}={_readable(study, k, v)}" for k, v in study.baseline.items())
        tests = set(summary[f"test_{metric}"])
        text = compare.describe(metric_title(metric), compare.PAIRED in tests, compare.WELCH in tests,
                                compare.SEQUENTIAL in tests)  # fmt: skip
        notes.append(text.replace("to the baseline row;", f"to the baseline row ({base});"))
    elif study.baseline:
        notes.append("Δ: the baseline configuration has no finished run, so no Δ is given.")
    if seeding is not None:
        from ablate.report.seeding import seed_notes

        notes += seed_notes(study, summary, df, seeding, metric_title(metric), _row_label(study))
    notes += _rule_notes(study, df)
    notes += _seed_notes(study, summary, df)
    done = df[df["status"] == "done"]
    splits = [s for s in dict.fromkeys(done.get("eval_split", [])) if s]
    if splits:
        notes.append(f"Evaluated on: {', '.join(splits)}.")
    inits = [s for s in dict.fromkeys(done.get("initialisation", [])) if s]
    if inits:
        notes.append(f"Backbone weights: {'; '.join(inits)}.")
    if "macs" in done and done["macs"].notna().any():
        hardware = "; ".join(dict.fromkeys(h for h in done["hardware"] if h)) or "unknown hardware"
        sizes = ", ".join(dict.fromkeys(s for s in done["eval_size"] if s))
        notes.append(
            f"Cost per image (batch 1) at the eval size {sizes}, measured on {hardware}: parameters; "
            "multiply-adds of convolutions and matrix products (torch.utils.flop_counter); latency = median of "
            "10 forward passes after 3 warm-up passes; memory = peak of the tensors the forward pass allocates "
            "(activations, weights not counted)."
        )
    failed, missing = int((df["status"] == "failed").sum()), int((~df["status"].isin(["done", "failed"])).sum())
    if failed or missing:
        notes.append(
            f"{failed} run(s) FAILED and {missing} missing (not run yet); they are counted in the status column "
            "and left out of the means, never dropped: see the list of failed runs."
        )
    return notes


