"""Compare two builds of the book number for number: every glued value and every table cell.

A refactoring that must not change the book's numbers (or a rerun that should reproduce them) is
checked by dumping the executed chapters before and after and comparing the dumps::

    python -m ltmpq.tools.gluecheck dump book/chapters before.json   # executed .ipynb folder
    python -m ltmpq.tools.gluecheck compare before.json after.json   # exit 1 if a value differs

A dump holds, per chapter, each myst-nb ``glue`` value (its text form) and the visible text of
each HTML table's cells in output order (pandas Styler ids and CSS are ignored). Keys only in
the second dump are listed as new, not counted as differences.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
from pathlib import Path

from ..io import write_json

_CELL = re.compile(r"<(td|th)\b[^>]*>(.*?)</\1>", flags=re.S)
_TAG = re.compile(r"<[^>]+>")


def table_cells(markup: str) -> list[str]:
    """The visible text of every ``<td>``/``<th>`` of an HTML fragment, in document order."""
    return [html.unescape(" ".join(_TAG.sub("", m.group(2)).split())) for m in _CELL.finditer(markup)]


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else value


def dump_notebook(path: Path) -> dict:
    """``{"glue": {name: text}, "tables": [[cell, ...], ...]}`` of one executed notebook."""
    nb = json.loads(Path(path).read_text())
    glue, tables = {}, []
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            record = out.get("metadata", {}).get("scrapbook")
            if record:  # myst-nb's glue: the value under "<mime prefix>text/plain"
                prefix = record.get("mime_prefix", "")
                glue[record["name"]] = _text(data.get(prefix + "text/plain", data.get("text/plain")))
            elif "<table" in _text(data.get("text/html", "")):
                tables.append(table_cells(_text(data["text/html"])))
    return {"glue": glue, "tables": tables}


def dump(folder: Path) -> dict:
    """:func:`dump_notebook` of every ``*.ipynb`` in ``folder``, keyed by chapter name."""
    found = sorted(Path(folder).glob("*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no executed notebooks (*.ipynb) in {folder}")
    return {p.stem: dump_notebook(p) for p in found}


def compare(before: dict, after: dict) -> tuple[list[str], dict]:
    """Differences (one line each) of ``after`` against ``before``, and counts of what was compared."""
    lines, counts = [], {"glue": 0, "tables": 0, "new_keys": 0}
    for chapter, b in before.items():
        a = after.get(chapter)
        if a is None:
            lines.append(f"{chapter}: missing from the second dump")
            continue
        for name, value in b["glue"].items():
            counts["glue"] += 1
            if a["glue"].get(name, "<missing>") != value:
                lines.append(f"{chapter}: glue {name}: {value!r} -> {a['glue'].get(name, '<missing>')!r}")
        counts["new_keys"] += len(set(a["glue"]) - set(b["glue"]))
        if len(a["tables"]) != len(b["tables"]):
            lines.append(f"{chapter}: {len(b['tables'])} tables -> {len(a['tables'])}")
        for i, (tb, ta) in enumerate(zip(b["tables"], a["tables"], strict=False)):
            counts["tables"] += 1
            if tb != ta:
                diff = next(
                    (j for j, (x, y) in enumerate(zip(tb, ta, strict=False)) if x != y), min(len(tb), len(ta))
                )
                shown = (tb[diff] if diff < len(tb) else "<end>", ta[diff] if diff < len(ta) else "<end>")
                lines.append(f"{chapter}: table {i + 1} differs at cell {diff}: {shown[0]!r} -> {shown[1]!r}")
    return lines, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltmpq.tools.gluecheck", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="dump the glue values and table cells of executed notebooks")
    d.add_argument("folder", type=Path)
    d.add_argument("output", type=Path)
    c = sub.add_parser("compare", help="compare two dumps; exit 1 when a value differs")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    if args.command == "dump":
        out = dump(args.folder)
        write_json(args.output, out)
        n_glue, n_tables = (
            sum(len(v["glue"]) for v in out.values()),
            sum(len(v["tables"]) for v in out.values()),
        )
        print(f"{len(out)} chapters, {n_glue} glue values, {n_tables} tables -> {args.output}")
        return 0
    lines, counts = compare(json.loads(args.before.read_text()), json.loads(args.after.read_text()))
    print("\n".join(lines))
    print(f"compared {counts['glue']} glue values and {counts['tables']} tables: {len(lines)} differences "
          f"({counts['new_keys']} glue values only in {args.after.name})")  # fmt: skip
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
