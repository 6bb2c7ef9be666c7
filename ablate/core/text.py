"""How values and counts are written for people: axis values in tables and labels, plurals."""

from __future__ import annotations

import re
from typing import Any


def format_value(value: Any) -> str:
    """``[6, 12, 18]`` -> ``(6,12,18)``; ``{name: aspp, rates: [6, 12]}`` -> ``{name=aspp,rates=(6,12)}``."""
    if isinstance(value, list | tuple):
        return "(" + ",".join(format_value(v) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def short_labels(values: list[Any]) -> list[str]:
    """Readable names for an axis's values. A dict value (a whole head, say) is its ``name`` and, in brackets,
    only the keys whose values differ between the axis's dicts that have them: ``aspp``, ``ppm(bins=(1),
    pooling=max)``. Other values are written by ``format_value``."""
    dicts = [v for v in values if isinstance(v, dict)]
    varying = {
        key
        for d in dicts
        for key in d
        if key != "name" and len({format_value(o.get(key)) for o in dicts if key in o}) > 1
    }
    labels = []
    for v in values:
        if not isinstance(v, dict):
            labels.append(format_value(v))
            continue
        shown = ",".join(f"{k}={format_value(x)}" for k, x in v.items() if k in varying)
        name = str(v.get("name", ""))
        if not name:  # nothing names it: the keys that differ, or all of them where none do
            labels.append("{" + shown + "}" if shown else format_value(v))
            continue
        labels.append(f"{name}({shown})" if shown else name)
    # two values that would read alike are written out in full
    return [format_value(v) if labels.count(label) > 1 else label for v, label in zip(values, labels, strict=True)]


def short_names(axes: list[str]) -> dict[str, str]:
    """Last part of each dotted axis key, or the whole key where two axes share a last part."""
    last = [a.split(".")[-1] for a in axes]
    return {a: (n if last.count(n) == 1 else a) for a, n in zip(axes, last, strict=True)}


def plural(n: int, word: str, many: str | None = None) -> str:
    """``plural(1, "training")`` -> ``1 training``; ``plural(2, "run")`` -> ``2 runs``."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def markdown_table(rows: list[list], columns: list[str]) -> str:
    """A GitHub markdown table (pandas' ``to_markdown``, via tabulate: columns aligned in the raw text too);
    cells are written as given (no number parsing), ``|`` in a cell escaped."""
    import pandas as pd

    cells = [[str(v).replace("|", "\\|") for v in row] for row in rows]
    return pd.DataFrame(cells, columns=[str(c) for c in columns]).to_markdown(index=False, disable_numparse=True) + "\n"


def parse_duration(text: str) -> float:
    """``90s``, ``10m``, ``1h30m``, ``1.5h`` -> seconds (a unit is required)."""
    match = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*", str(text))
    if not text or not str(text).strip() or match is None or not any(match.groups()):
        raise ValueError(f"{text!r}: expected a duration with its unit, e.g. 90s, 10m, 1h30m")
    h, m, s = (float(g) if g else 0.0 for g in match.groups())
    return 3600 * h + 60 * m + s
