"""How values and counts are written for people: axis values in tables and labels, plurals."""

from __future__ import annotations

from typing import Any


def format_value(value: Any) -> str:
    """``[6, 12, 18]`` -> ``(6,12,18)``; ``{name: aspp, rates: [6, 12]}`` -> ``{name=aspp,rates=(6,12)}``."""
    if isinstance(value, list | tuple):
        return "(" + ",".join(format_value(v) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``plural(1, "training")`` -> ``1 training``; ``plural(2, "run")`` -> ``2 runs``."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def markdown_table(rows: list[list], columns: list[str]) -> str:
    """A GitHub markdown table (pandas' ``to_markdown``, via tabulate: columns aligned in the raw text too);
    cells are written as given (no number parsing), ``|`` in a cell escaped."""
    import pandas as pd

    cells = [[str(v).replace("|", "\\|") for v in row] for row in rows]
    return pd.DataFrame(cells, columns=[str(c) for c in columns]).to_markdown(index=False, disable_numparse=True) + "\n"
