"""Published numbers beside reproduced ones, in the paper's layout. Torch-free (pandas only).

A study's ``reference:`` block (``ablate.study.spec.Reference``) lists the paper's cells: a row label, optionally a
column label (tables laid out as a grid, e.g. DeepLabv3 Table 3's multi-grid x block4..7), the published value and
``where``, the axis values of the configuration that reproduces the cell. ``join_reference`` matches each cell to
the study's summary (one row per configuration, axis values as ``format_value`` text, ``<metric>_mean``/``_std``
and ``n`` columns, as ``ablate.report.table.summarize`` gives) and returns, in the paper's row order:

    paper row | [paper column] | axis values | published | reproduced | ± | n | Δ | published Δ base | Δ base

- ``Δ`` = reproduced − published (meaningful for full runs on the paper's data);
- ``published Δ base`` / ``Δ base``: each number minus the baseline configuration's number (the study's
  ``baseline``), in the paper and here: the trend, which is what a reduced run on the synthetic data can reproduce.

Cells with an empty ``where`` (settings ablate does not have, e.g. DeepLabv3's output stride 64) and cells whose
configuration has no finished run show their published number and "—".

``paper_layout`` pivots the joined table to the paper's grid when cells have column labels
("published / reproduced (Δ)" in each cell), else returns the long table with text cells.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ablate.core.text import format_value, markdown_table

DASH = "—"


def _get(obj: Any, key: str, default: Any = None) -> Any:
    return obj.get(key, default) if isinstance(obj, dict) else getattr(obj, key, default)


def _match(summary: pd.DataFrame, where: dict[str, Any]) -> pd.DataFrame:
    mask = pd.Series(True, index=summary.index)
    for key, value in where.items():
        if key not in summary.columns:
            return summary.iloc[0:0]
        mask &= summary[key].astype(str) == format_value(value)
    return summary[mask]


def join_reference(
    summary: pd.DataFrame, reference: Any, baseline: dict[str, Any] | None = None, metric: str | None = None
) -> pd.DataFrame:
    """The paper's cells joined to the study's configurations (see the module doc). ``reference`` is a
    ``Reference`` (or its dict); ``metric`` defaults to the reference's."""
    metric = metric or _get(reference, "metric", "miou")
    rows = _get(reference, "rows")
    axes = list(dict.fromkeys(k for row in rows for k in (_get(row, "where") or {})))
    has_columns = any(_get(row, "column") for row in rows)
    mean_col, std_col = f"{metric}_mean", f"{metric}_std"

    def reproduced(where: dict[str, Any]) -> tuple[float | None, float | None, int]:
        if not where:
            return None, None, 0
        hit = _match(summary, where)
        if hit.empty or mean_col not in hit or pd.isna(hit[mean_col].iloc[0]):
            return None, None, 0
        std = hit[std_col].iloc[0] if std_col in hit else None
        n = int(hit["n"].iloc[0]) if "n" in hit else 1
        return float(hit[mean_col].iloc[0]), (None if std is None or pd.isna(std) else float(std)), n

    base_pub = base_rep = None
    if baseline:
        for row in rows:
            where = _get(row, "where") or {}
            if where and all(format_value(where.get(k)) == format_value(v) for k, v in baseline.items()):
                base_pub = _get(row, metric)
                base_rep = reproduced(where)[0]
                break

    out = []
    for row in rows:
        where = _get(row, "where") or {}
        pub = _get(row, metric)
        rep, std, n = reproduced(where)
        rec: dict[str, Any] = {"paper row": _get(row, "label")}
        if has_columns:
            rec["paper column"] = _get(row, "column") or ""
        for key in axes:
            rec[key] = format_value(where[key]) if key in where else DASH
        rec.update(
            published=pub,
            reproduced=rep,
            std=std,
            n=n,
            delta=None if rep is None or pub is None else rep - pub,
            published_vs_base=None if base_pub is None or pub is None else pub - base_pub,
            reproduced_vs_base=None if base_rep is None or rep is None else rep - base_rep,
        )
        out.append(rec)
    return pd.DataFrame(out)


PUBLISHED_METRICS = ("pixel_acc", "mean_acc", "miou", "fwiou", "bf")
TITLES = {"pixel_acc": "G (pixel acc.)", "mean_acc": "C (class acc.)", "miou": "mIoU", "fwiou": "FWIoU", "bf": "BF"}


def published_metrics(reference: Any) -> list[str]:
    """The metrics some row of ``reference`` publishes, the reference's own first."""
    main = _get(reference, "metric", "miou")
    given = [m for m in PUBLISHED_METRICS if any(_get(row, m) is not None for row in _get(reference, "rows"))]
    return list(dict.fromkeys([main, *given])) if main in PUBLISHED_METRICS else given


def join_all_metrics(summary: pd.DataFrame, reference: Any, baseline: dict[str, Any] | None = None) -> pd.DataFrame:
    """``join_reference`` for every metric the paper publishes (G, C, mIoU, BF ...), one line per paper row and
    metric (a ``metric`` column), rows without that metric left out."""
    parts = []
    for metric in published_metrics(reference):
        joined = join_reference(summary, reference, baseline, metric)
        joined = joined[joined["published"].notna()].copy()
        joined.insert(1, "metric", TITLES.get(metric, metric))
        parts.append(joined)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def per_class_layout(runs: pd.DataFrame, reference: Any, axes: list[str], label: Any) -> pd.DataFrame | None:
    """Per-class IoU (%) of the paper's rows that publish it, in the paper's class order, and below them every
    configuration in the reference's ``scope`` (mean over its finished seeds); None when no row publishes it.
    ``runs``: ``ablate.study.results.collect``; ``label(config row) -> str`` names a configuration."""
    rows = [r for r in _get(reference, "rows") if _get(r, "per_class_iou")]
    if not rows:
        return None
    classes = list(_get(rows[0], "per_class_iou"))
    out = []
    for row in rows:
        per_class = _get(row, "per_class_iou")
        out.append({"": _get(row, "label"), "n": DASH, **{c: _num(per_class.get(c)) for c in classes},
                    "mIoU": _num(_get(row, "miou"))})  # fmt: skip
    done = runs[runs["status"] == "done"]
    for key, value in (_get(reference, "scope") or {}).items():
        done = done[done[key].astype(str) == format_value(value)] if key in done else done.iloc[0:0]
    keys = [a for a in axes if a in done.columns]
    if not done.empty:
        groups = done.groupby(keys, sort=False) if keys else [((), done)]
        for values, group in groups:
            config = dict(zip(keys, values if isinstance(values, tuple) else (values,), strict=True))
            cells = {c: _num(group[f"iou:{c}"].mean()) if f"iou:{c}" in group else DASH for c in classes}
            out.append({"": f"ablate: {label(config)}", "n": str(len(group)), **cells,
                        "mIoU": _num(group["miou"].mean())})  # fmt: skip
    return pd.DataFrame(out)


def _matches(where: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(format_value(where.get(k)) == format_value(v) for k, v in wanted.items())


def contrast_table(runs: pd.DataFrame, reference: Any) -> pd.DataFrame | None:
    """The paper's contrasts (``reference.contrasts``): for each and each of its metrics, the published Δ (a − b,
    from the rows whose ``where`` are a and b), the reproduced Δ paired over seeds (the mean of the differences
    seed by seed, their sd), the paired t-test's p, Holm's across the table's lines, and whether the signs agree.
    None without contrasts."""
    from ablate.report import stats

    contrasts = _get(reference, "contrasts") or []
    if not contrasts:
        return None
    scope = _get(reference, "scope") or {}
    done = runs[runs["status"] == "done"]

    def seeds(config: dict[str, Any], metric: str) -> dict[int, float]:
        mask = pd.Series(True, index=done.index)
        for key, value in {**scope, **config}.items():
            mask &= done[key].astype(str) == format_value(value) if key in done else False
        picked = done.loc[mask, ["seed", metric]].dropna() if metric in done else done.iloc[0:0]
        return {int(s): float(v) for s, v in zip(picked["seed"], picked[metric], strict=True)}

    lines = []
    for contrast in contrasts:
        a, b = _get(contrast, "a"), _get(contrast, "b")
        row_a = next((r for r in _get(reference, "rows") if _matches(_get(r, "where") or {}, a)), None)
        row_b = next((r for r in _get(reference, "rows") if _matches(_get(r, "where") or {}, b)), None)
        for metric in _get(contrast, "metrics"):
            pa, pb = (_get(row_a, metric) if row_a else None), (_get(row_b, metric) if row_b else None)
            published = None if pa is None or pb is None else pa - pb
            published = (_get(contrast, "published") or {}).get(metric, published)
            va, vb = seeds(a, metric), seeds(b, metric)
            diffs = [va[s] - vb[s] for s in sorted(set(va) & set(vb))]
            test = stats.paired_test(va, vb)  # None with < 2 seeds or differences that never vary
            lines.append({
                "contrast": _get(contrast, "label"), "metric": TITLES.get(metric, metric), "published Δ": published,
                "reproduced Δ": float(sum(diffs) / len(diffs)) if diffs else None,
                "sd": float(pd.Series(diffs).std()) if len(diffs) > 1 else None, "n": len(diffs),
                "p": test.p if test else None,
            })  # fmt: skip
    holm = stats.holm([line["p"] for line in lines])
    out = []
    for line, adjusted in zip(lines, holm, strict=True):
        pub, rep = line["published Δ"], line["reproduced Δ"]
        same = DASH if pub is None or rep is None else ("yes" if (pub > 0) == (rep > 0) and rep != 0 else "no")
        out.append({
            "contrast": line["contrast"], "metric": line["metric"], "published Δ": _num(pub, True),
            "reproduced Δ": _num(rep, True) + (f" ± {line['sd']:.2f}" if line["sd"] is not None else ""),
            "n": line["n"], "paired p": _p(line["p"]), "Holm p": _p(adjusted), "same sign": same,
        })  # fmt: skip
    return pd.DataFrame(out)


def _p(p: float | None) -> str:
    return DASH if p is None or pd.isna(p) else (f"{p:.3f}" if p >= 0.001 else "<0.001")


def _num(v: Any, signed: bool = False) -> str:
    if v is None or pd.isna(v):
        return DASH
    return f"{v:+.2f}" if signed else f"{v:.2f}"


def paper_layout(joined: pd.DataFrame) -> pd.DataFrame:
    """Text table in the paper's layout: a grid (paper rows x paper columns, cells "published / reproduced (Δ)")
    when the reference has column labels, else one line per paper row with published, reproduced, Δ and the
    Δ-vs-baseline columns."""
    if "paper column" in joined.columns:
        rows = list(dict.fromkeys(joined["paper row"]))
        cols = list(dict.fromkeys(joined["paper column"]))
        grid = pd.DataFrame(DASH, index=rows, columns=cols)
        for _, r in joined.iterrows():
            cell = f"{_num(r['published'])} / {_num(r['reproduced'])}"
            if r["reproduced"] is not None and not pd.isna(r["reproduced"]):
                cell += f" ({_num(r['delta'], True)})"
            grid.loc[r["paper row"], r["paper column"]] = cell
        grid.index.name = "published / reproduced (Δ)"
        return grid.reset_index()
    shown = pd.DataFrame({"": joined["paper row"]})
    if "metric" in joined.columns:
        shown["metric"] = joined["metric"]
    shown["published"] = [_num(v) for v in joined["published"]]
    shown["reproduced"] = [
        _num(rep) + (f" ± {std:.2f}" if n > 1 and std is not None and not pd.isna(std) and not pd.isna(rep) else "")
        for rep, std, n in zip(joined["reproduced"], joined["std"], joined["n"], strict=True)
    ]
    shown["n"] = joined["n"]
    shown["Δ"] = [_num(v, True) for v in joined["delta"]]
    if joined["published_vs_base"].notna().any():
        shown["published Δ base"] = [_num(v, True) for v in joined["published_vs_base"]]
        shown["reproduced Δ base"] = [_num(v, True) for v in joined["reproduced_vs_base"]]
    return shown


SIGN_THRESHOLD = 1.0  # points: a published Δ vs the baseline row below this is a tie, not a trend to reproduce


def sign_agreement(joined: pd.DataFrame, threshold: float = SIGN_THRESHOLD) -> tuple[int, int, list[str]]:
    """(agree, counted, disagreeing rows): of the paper rows whose published Δ vs the baseline row is over
    ``threshold`` points and that have a reproduced number, how many reproduce its sign."""
    agree, counted, wrong = 0, 0, []
    for _, r in joined.iterrows():
        pub, rep = r["published_vs_base"], r["reproduced_vs_base"]
        if pub is None or pd.isna(pub) or abs(pub) <= threshold or rep is None or pd.isna(rep):
            continue
        counted += 1
        label = " ".join(str(x) for x in (r["paper row"], r.get("paper column", ""), r.get("metric", "")) if x)
        if (pub > 0) == (rep > 0) and rep != 0:
            agree += 1
        else:
            wrong.append(f"{label} ({pub:+.2f} published, {rep:+.2f} here)")
    return agree, counted, wrong


def agreement_note(joined: pd.DataFrame) -> str:
    agree, counted, wrong = sign_agreement(joined)
    if not counted:
        return ""
    text = (f"Trend: of the {counted} paper rows whose published Δ vs the baseline row is over "
            f"{SIGN_THRESHOLD:g} point, {agree} have a reproduced Δ of the same sign")  # fmt: skip
    return text + (f"; not: {'; '.join(wrong)}." if wrong else ".")


def caption(reference: Any) -> str:
    """'Paper, Table N (dataset), metric in %' — the line a table or report prints above the joined table."""
    parts = [f"{_get(reference, 'paper')}, {_get(reference, 'table')}"]
    if _get(reference, "dataset"):
        parts.append(f"({_get(reference, 'dataset')})")
    text = " ".join(parts) + f"; {_get(reference, 'metric', 'miou')} in %."
    if _get(reference, "note"):
        text += f" {_get(reference, 'note')}"
    return text


def reference_markdown(study: Any, summary: pd.DataFrame) -> str:
    """The ``## Published vs reproduced`` section for ``table.md`` / the report: caption + the paper-layout table.
    ``study`` is an ``ablate.study.spec.Study`` with a ``reference``; ``summary`` as ``table.summarize`` gives it.
    Empty string when the study has no reference."""
    reference = _get(study, "reference")
    if reference is None:
        return ""
    shown = paper_layout(join_reference(summary, reference, _get(study, "baseline") or None))
    table = markdown_table(shown.values.tolist(), list(shown.columns))
    return f"## Published vs reproduced\n\n{caption(reference)}\n\n{table}"
