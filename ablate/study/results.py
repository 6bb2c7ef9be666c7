"""The study's runs as one table of records: what ``ablate.report`` turns into the comparison table and plots."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ablate.core.text import format_value
from ablate.report.table import BF, COSTS, METRICS, REACH, TRIMAP, metric_keys
from ablate.study.grid import Run
from ablate.study.store import Store


def collect(runs: list[Run], store: Store) -> pd.DataFrame:
    """One row per run: axis values (as text), id, seed, status (done/failed/missing), error, the scalar metrics
    and the trimap bands (in %, columns ``trimap:<width>``), per-class IoU (in %, columns ``iou:<class>``) and the
    cost record (params, macs, latency, memory)."""
    rows = []
    for run in runs:
        record = store.read_metrics(run) or {}
        row: dict[str, Any] = {k: format_value(v) for k, v in run.axes.items()}
        row.update({f"used:{k}": format_value(v) for k, v in run.overrides.items() if k in run.axes})
        status = record.get("status", "missing")
        row.update(run_id=run.id, seed=run.seed, status=status, train_id=run.train_id)
        row["error"] = record.get("error", "") if status == "failed" else ""
        done = status == "done"
        metrics = record.get("metrics", {}) if done else {}
        for key in (*METRICS, BF):
            value = metrics.get(key)
            row[key] = None if value is None or (isinstance(value, float) and math.isnan(value)) else 100.0 * value
        for width, value in (record.get("trimap") or {}).items() if done else ():
            row[f"{TRIMAP}{width}"] = None if value is None or math.isnan(value) else 100.0 * value
        if done and record.get("reach_px") is not None:  # px, not %
            row[REACH] = float(record["reach_px"])
        per_class = record.get("per_class_iou") or {}
        order = [c for c in record.get("classes", []) if c in per_class] + [
            c for c in per_class if c not in record.get("classes", [])
        ]
        for cls, value in ((c, per_class[c]) for c in order) if done else ():
            row[f"iou:{cls}"] = (
                None if value is None or (isinstance(value, float) and math.isnan(value)) else (100.0 * value)
            )
        cost = record.get("cost") or {}
        row["params"] = cost.get("params", record.get("params")) if done else None
        for key in ("macs", "latency_ms", "peak_mem_mb"):
            row[key] = cost.get(key) if done else None
        row["hardware"] = cost.get("hardware", "") if done else ""
        row["initialisation"] = (record.get("comparable") or {}).get("initialisation", "") if done else ""
        evaluated = record.get("eval") or {}
        data = (record.get("comparable") or {}).get("data", "")
        row["eval_split"] = (
            f"{data} {evaluated['split']} ({evaluated['images']} images)" if done and "images" in evaluated else ""
        )
        row["eval_size"] = "×".join(str(s) for s in cost.get("image_size", [])) if done else ""
        rows.append(row)
    df = pd.DataFrame(rows)
    for col in (*metric_keys(df), *COSTS):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    return df
