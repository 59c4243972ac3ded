"""How the book shows numbers: ``mean ± CI`` text, styled tables that fit the page, glue.

Formatting only; every value shown comes from :mod:`ltmpq.frames` or an analysis module.
Used by chapters 0-4.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .io import atomic_write


def pm(mean: float, ci: float) -> str:
    """``"mean ± ci"`` to one decimal (just the mean when the interval is undefined)."""
    return f"{mean:.1f}" if np.isnan(ci) else f"{mean:.1f} ± {ci:.1f}"


def wide(
    summary: pd.DataFrame,
    metrics: Sequence[str],
    split: str = "test",
    index: Sequence[str] = ("imbalance_factor", "method"),
) -> pd.DataFrame:
    """Readable table: one row per (IF, method), one 'mean ± CI' column per metric."""
    s = summary[(summary["split"] == split) & summary["metric"].isin(metrics)].copy()
    s["cell"] = ["—" if np.isnan(m) else pm(m, c) for m, c in zip(s["mean"], s["ci"], strict=True)]
    t = s.pivot_table(index=list(index), columns="metric", values="cell", aggfunc="first", sort=False)
    return t[[m for m in metrics if m in t.columns]]


def table(df: pd.DataFrame, precision: int = 1, scroll: bool = False):
    """How the chapters display a table: fixed decimals, '—' for missing, cells that do not wrap.

    ``scroll``: a table wider than the text column scrolls sideways instead of being clipped.
    """

    def fmt(v):
        if isinstance(v, float | np.floating):
            if np.isnan(v):
                return "—"
            text = f"{v:.0f}" if float(v).is_integer() else f"{v:.{precision}f}"
            return text.lstrip("-") if float(text) == 0 else text  # "-0.0" reads as a loss
        return v

    def fmt_index(v):
        return f"{v:g}" if isinstance(v, float | np.floating) else v  # 0.1, not 0.100000

    styler = df.style.format(fmt).format_index(fmt_index, axis=0).format_index(fmt_index, axis=1)
    styler = styler.set_table_styles(
        [{"selector": "td, th", "props": "white-space: nowrap; padding: 2px 8px;"}]
    )
    if scroll:
        from IPython.display import HTML

        return HTML(scrolling(styler.to_html(), font_size="1em"))
    return styler


def interval(estimate: float, low: float, high: float, digits: int = 1, signed: bool = False) -> str:
    """``"est [low, high]"``, e.g. ``"5.7 [4.9, 6.5]"`` (``signed``: ``"+5.7 [+4.9, +6.5]"``)."""
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    return f"{f.format(estimate)} [{f.format(low)}, {f.format(high)}]"


def ci_text(half: float) -> str:
    """A CI half-width to one decimal, or ``n/a`` when undefined (one seed)."""
    return "n/a" if np.isnan(half) else f"{half:.1f}"


def scrolling(html: str, font_size: str = "0.85em") -> str:
    """Wrap an HTML table so that a page narrower than the table scrolls it instead of clipping."""
    return f'<div style="overflow-x: auto; font-size: {font_size}">{html}</div>'


def download(df: pd.DataFrame, name: str, formats: Sequence[str] = ("csv",)) -> list[Path]:
    """Write a chapter's table as ``data/<name>.csv`` (and ``.parquet`` where ``formats`` asks)
    beside the executed notebook, where the book's ``{download}`` links find it (the folder comes
    from ``LTMPQ_DOWNLOADS``, which :func:`ltmpq.tools.execute.execute_chapter` sets; ``./data``
    otherwise)."""
    if not re.fullmatch(r"[\w.-]+", name):
        raise ValueError(f"a download's name is letters, digits, '_', '.' or '-', got {name!r}")
    unknown = [f for f in formats if f not in WRITERS]
    if unknown or not formats:
        raise ValueError(f"download formats {list(formats)}: allowed are {sorted(WRITERS)} (one or more)")
    paths = []
    for fmt in formats:
        path = Path(os.environ.get("LTMPQ_DOWNLOADS") or "data") / f"{name}.{fmt}"
        atomic_write(path, lambda tmp, fmt=fmt: WRITERS[fmt](df, tmp))
        path.chmod(0o644)  # served with the book: readable by the web server, not only by its writer
        paths.append(path)
    return paths


#: how :func:`download` writes each format (Parquet keeps the column types: pyarrow)
WRITERS = {
    "csv": lambda df, path: df.to_csv(path),
    "parquet": lambda df, path: df.to_parquet(path, index=False),
}


def glue_all(values: Mapping[str, Any]) -> None:
    """Glue every ``name: value`` for the prose (myst-nb's ``glue``, not displayed)."""
    from myst_nb import glue

    for name, value in values.items():
        glue(name, value, display=False)
