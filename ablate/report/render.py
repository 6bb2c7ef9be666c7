"""The comparison table written out: markdown, CSV (every number at full precision), LaTeX (booktabs) and HTML."""

from __future__ import annotations

import html as _html
import re
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.core.files import atomic_write
from ablate.core.text import markdown_table
from ablate.report.effects import effects_view
from ablate.report.table import COSTS, ComparisonTable, metric_title, seed_table

EFFECTS_TITLE = "Which axis matters: effects on {metric}, ranked by size"
SEEDS_TITLE = "{metric} of every seed (! : more than 3 robust SDs from its row's median)"


def _md_table(df: pd.DataFrame) -> str:
    return markdown_table(df.values.tolist(), list(df.columns))


CONTRASTS_TITLE = "The paper's contrasts: published Δ and reproduced Δ (paired over seeds, ± sd of the differences)"
PER_CLASS_TITLE = "Per-class IoU (%), the paper's rows and class order, then each configuration here"


def paper_sections(t: ComparisonTable) -> list[tuple[str, str, pd.DataFrame, str]]:
    """(title, caption, table, CSS class) of the sections a study with a paper's reference has: published vs
    reproduced, the paper's contrasts, per-class IoU beside the paper's rows."""
    sections = [("Published vs reproduced", t.published_caption, t.published, "published"),
                (CONTRASTS_TITLE, "", t.contrasts, "contrasts"), (PER_CLASS_TITLE, "", t.per_class, "per-class")]
    return [s for s in sections if s[2] is not None]  # fmt: skip


def to_markdown(t: ComparisonTable, heading: str = "#") -> str:
    parts = [f"{heading} {t.title}\n\n", _md_table(t.shown)]
    if t.layout is not None:
        parts.append(f"\n{metric_title(t.metric)} in the study's table layout:\n\n")
        parts.append(_md_table(t.layout))
    for title, caption, frame, _ in paper_sections(t):
        parts.append(f"\n{heading}# {title}\n\n" + (f"{caption}\n\n" if caption else "") + _md_table(frame))
    parts.append("\n" + "".join(f"- {n}\n" for n in t.footnote))
    view = effects_view(t)
    if view is not None:
        parts.append(f"\n{heading}# {EFFECTS_TITLE.format(metric=metric_title(t.metric))}\n\n")
        parts.append(_md_table(view[0]) + "\n" + "".join(f"- {n}\n" for n in view[1]))
    parts.append(f"\n{heading}# {SEEDS_TITLE.format(metric=metric_title(t.metric))}\n\n")
    parts.append(_md_table(seed_table(t)))
    if t.failures:
        parts.append("\nFailed runs:\n\n" + "\n".join(f"- `{i}` {label}: {err}" for i, label, err in t.failures) + "\n")
    if t.missing:
        parts.append("\nMissing runs:\n\n" + "\n".join(f"- `{i}` {label}" for i, label in t.missing) + "\n")
    return "".join(parts)


def to_csv(t: ComparisonTable) -> str:
    """Every number of the summary (one row per configuration), full precision, for scripts."""
    return t.summary.to_csv(index=False)


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: Any) -> str:
    """Escape LaTeX specials; ±, Δ, ×, — as math/text; significance marks (*, **, ***) as superscripts."""

    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    out = out.replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("×", r"$\times$").replace("—", "--")
    return re.sub(r"\*+", lambda m: f"$^{{{m.group(0)}}}$", out)


def _latex_tabular(df: pd.DataFrame) -> list[str]:
    align = "".join("r" if pd.api.types.is_numeric_dtype(df[c]) or str(c) in COSTS.values() else "l" for c in df)
    lines = [rf"\begin{{tabular}}{{{align}}}", r"\toprule"]
    lines.append(" & ".join(latex_escape(c) for c in df.columns) + r" \\")
    lines.append(r"\midrule")
    for _, row in df.iterrows():
        lines.append(" & ".join(latex_escape(v) for v in row.tolist()) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return lines


def to_latex(t: ComparisonTable) -> str:
    """booktabs tables (needs ``\\usepackage{booktabs}``): the per-configuration table, then the paper layout."""
    lines = ["% requires \\usepackage{booktabs}", r"\begin{table}[t]", r"\centering", r"\small"]
    lines += _latex_tabular(t.shown)
    if t.layout is not None:
        lines += [r"\vspace{1em}", ""] + _latex_tabular(t.layout)
    caption = " ".join(t.footnote)
    lines += [rf"\caption{{{latex_escape(t.title)}: {latex_escape(caption)}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _html_table(df: pd.DataFrame, cls: str) -> str:
    head = "".join(f"<th>{_html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for _, row in df.iterrows():
        cells = []
        for v in row.tolist():
            text = str(v)
            klass = ' class="failed"' if "FAILED" in text else (' class="missing"' if "missing" in text else "")
            klass = ' class="outlier"' if text.endswith(" !") else klass
            cells.append(f"<td{klass}>{_html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


HTML_STYLE = """
div.scroll { max-width: 100%; overflow-x: auto; }
table.ablate { border-collapse: collapse; font: 12px/1.4 system-ui, sans-serif; margin: 0.5em 0 1em; }
table.ablate th { border-top: 2px solid #222; border-bottom: 1px solid #222; padding: 3px 7px; text-align: left; }
table.ablate td { padding: 3px 7px; border-bottom: 1px solid #eee; }  /* cells may wrap: the table fits the page */
table.ablate td.outlier { color: #b00020; font-weight: 600; }
table.ablate tbody tr:last-child td { border-bottom: 2px solid #222; }
table.ablate td.failed { color: #b00020; font-weight: 600; }
table.ablate td.missing { color: #a06000; }
.footnote { font: 12px/1.4 system-ui, sans-serif; color: #444; max-width: 1100px; }
"""


def _scroll(table: str) -> str:
    return f'<div class="scroll">{table}</div>'  # a wide table scrolls in its box; the page keeps its width


def _notes(notes: list[str]) -> str:
    return '<ul class="footnote">' + "".join(f"<li>{_html.escape(n)}</li>" for n in notes) + "</ul>"


def to_html_fragment(t: ComparisonTable, heading: str = "h3") -> str:
    parts = [_scroll(_html_table(t.shown, "ablate comparison"))]
    if t.layout is not None:
        parts.append(f"<p>{metric_title(t.metric)} in the study's table layout:</p>")
        parts.append(_scroll(_html_table(t.layout, "ablate layout")))
    parts.append(_notes(t.footnote))
    for title, caption, frame, css in paper_sections(t):
        parts.append(f"<{heading}>{_html.escape(title)}</{heading}>" + (f"<p>{_html.escape(caption)}</p>" if caption
                                                                        else ""))  # fmt: skip
        parts.append(_scroll(_html_table(frame, f"ablate {css}")))
    view = effects_view(t)
    if view is not None:
        parts.append(f"<{heading}>{_html.escape(EFFECTS_TITLE.format(metric=metric_title(t.metric)))}</{heading}>")
        parts.append(_scroll(_html_table(view[0], "ablate effects")) + _notes(view[1]))
    parts.append(f"<{heading}>{_html.escape(SEEDS_TITLE.format(metric=metric_title(t.metric)))}</{heading}>")
    parts.append(_scroll(_html_table(seed_table(t), "ablate seeds")))
    if t.failures:
        items = "".join(
            f"<li><code>{_html.escape(i)}</code> {_html.escape(label)}: "
            f"<span class='error'>{_html.escape(err)}</span></li>"
            for i, label, err in t.failures
        )
        parts.append(f'<div class="failures"><b>Failed runs</b><ul>{items}</ul></div>')
    if t.missing:
        items = "".join(f"<li><code>{_html.escape(i)}</code> {_html.escape(label)}</li>" for i, label in t.missing)
        parts.append(f'<div class="missing"><b>Missing runs</b><ul>{items}</ul></div>')
    return "\n".join(parts)


def to_html(t: ComparisonTable) -> str:
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_html.escape(t.title)}</title>"
        f"<style>{HTML_STYLE}</style></head><body><h1>{_html.escape(t.title)}</h1>\n{to_html_fragment(t)}\n</body></html>\n"
    )


FORMATS = {
    "md": ("table.md", to_markdown),
    "csv": ("table.csv", to_csv),
    "latex": ("table.tex", to_latex),
    "html": ("table.html", to_html),
}


def save(t: ComparisonTable, root: Path, formats: tuple[str, ...] = ("md", "csv")) -> dict[str, Path]:
    """Write the table in ``formats`` under ``root`` (table.md, table.csv, table.tex, table.html)."""
    written = {}
    for fmt in formats:
        name, render = FORMATS[fmt]
        atomic_write(root / name, render(t))
        written[fmt] = root / name
    return written
