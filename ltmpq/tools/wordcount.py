"""Words per page of the built book: prose, visible tables and collapsed detail (tables or text a
reader opens on demand), so a chapter's length is measured, not guessed.

    python -m ltmpq.tools.wordcount book/_build/html [--json OUT]

Code cells (shown or hidden) are not counted; math counts as the words of its TeX.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from bs4 import BeautifulSoup

WORD = re.compile(r"[^\W_]+(?:[-'’.][^\W_]+)*|[-+]?\d+(?:\.\d+)?")
#: the elements a reader must click open (myst-nb's hide-output / hide-cell toggles, <details>)
COLLAPSED = ("details", ".toggle-details", ".tag_hide-output .cell_output", ".tag_hide-cell .cell_output")


def words(text: str) -> int:
    """How many words ``text`` has (numbers count as words, punctuation does not)."""
    return len(WORD.findall(text))


def count_page(html: str) -> dict[str, int]:
    """``{"prose": n, "tables": n, "collapsed": n, "total": prose + tables}`` of one built page:
    its article only (no navigation), without code cells."""
    soup = BeautifulSoup(html, "html.parser")
    article = soup.select_one("article.bd-article") or soup.select_one("main") or soup
    for junk in article.select("script, style, .cell_input, details.above-input, .headerlink, nav"):
        junk.decompose()
    collapsed = 0
    for el in article.select(", ".join(COLLAPSED)):
        if el.decomposed:  # inside an element already counted
            continue
        collapsed += words(el.get_text(" "))
        el.decompose()
    tables = 0
    for t in article.select("table"):
        tables += words(t.get_text(" "))
        t.decompose()
    prose = words(article.get_text(" "))
    return {"prose": prose, "tables": tables, "collapsed": collapsed, "total": prose + tables}


def count_site(site: Path) -> dict[str, dict[str, int]]:
    """Words of every chapter page under ``site`` (the built HTML), by page name."""
    pages = sorted((site / "chapters").glob("*.html"))
    if not pages:
        raise FileNotFoundError(f"no chapter pages under {site / 'chapters'}: run `make book` first")
    return {p.stem: count_page(p.read_text(encoding="utf-8")) for p in pages}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltmpq.tools.wordcount", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("site", type=Path, help="the built book, e.g. book/_build/html")
    parser.add_argument("--json", type=Path, help="also write the counts to this file")
    args = parser.parse_args(argv)
    try:
        counts = count_site(args.site)
    except FileNotFoundError as e:
        print(f"wordcount: {e}", file=sys.stderr)
        return 2
    print(f"{'page':<22} {'prose':>7} {'tables':>7} {'total':>7} {'collapsed':>9}")
    for name, c in counts.items():
        print(f"{name:<22} {c['prose']:>7} {c['tables']:>7} {c['total']:>7} {c['collapsed']:>9}")
    if args.json:
        args.json.write_text(json.dumps(counts, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
