"""Words per built page: prose, visible tables and collapsed detail counted apart, code never."""

from __future__ import annotations

from ltmpq.tools import wordcount

PAGE = """<html><body><nav>Navigation words here</nav>
<article class="bd-article">
<h1>A title</h1><p>One two three, 4.5 and −1.</p>
<div class="cell tag_hide-input"><details class="hide above-input"><summary>Show code</summary>
<div class="cell_input"><pre>import numpy as np</pre></div></details>
<div class="cell_output"><table><tr><th>bits</th><td>6</td></tr></table></div></div>
<details class="admonition"><summary>More</summary><table><tr><td>hidden cell</td></tr></table></details>
<script>var x = 1;</script>
</article></body></html>"""


def test_a_page_counts_prose_tables_and_collapsed_detail_apart():
    c = wordcount.count_page(PAGE)
    # prose: "A title" (2) + "One two three, 4.5 and −1." (6: numbers are words)
    assert c == {"prose": 8, "tables": 2, "collapsed": 3, "total": 10}


def test_words_are_letters_or_numbers():
    # the en dash joins two words (head, tail); a hyphen keeps one ("re-balanced")
    assert wordcount.words("head–tail gap: 10.1 [7.9, 12.3] points") == 7
    assert wordcount.words("re-balanced") == 1
    assert wordcount.words("— , ; :") == 0


def test_the_cli_lists_each_chapter_and_fails_clearly_without_a_build(tmp_path, capsys):
    (tmp_path / "chapters").mkdir()
    assert wordcount.main([str(tmp_path)]) == 2
    assert "run `make book` first" in capsys.readouterr().err
    (tmp_path / "chapters" / "01_evaluation.html").write_text(PAGE)
    out = tmp_path / "words.json"
    assert wordcount.main([str(tmp_path), "--json", str(out)]) == 0
    assert "01_evaluation" in capsys.readouterr().out and '"total": 10' in out.read_text()
