"""Readable result tables: a markdown table whose columns line up in a terminal as well.

>>> print(table(["rank", "label"], [[1, "Cardiovascular Diseases"], [2, "Neoplasms, Glandular | Other"]]))
| rank | label                         |
|-----:|-------------------------------|
|    1 | Cardiovascular Diseases       |
|    2 | Neoplasms, Glandular \\| Other |
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["shorten", "table"]


def shorten(text: str, width: int = 80) -> str:
    """One line of at most ``width`` characters (an ellipsis marks a cut)."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _cell(value) -> str:
    if isinstance(value, float):
        value = f"{value:.3f}"
    return " ".join(str(value).split()).replace("|", "\\|")


def table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """Markdown table; numeric columns right-aligned, every cell on one line, ``|`` escaped."""
    cells = [[_cell(v) for v in row] for row in rows]
    numeric = [all(isinstance(row[j], (int, float)) for row in rows) if rows else False for j in range(len(headers))]
    widths = [max([len(h)] + [len(r[j]) for r in cells]) for j, h in enumerate(headers)]

    def line(values):
        return "| " + " | ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if n else "-" * (w + 2) for w, n in zip(widths, numeric)) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in cells)])
