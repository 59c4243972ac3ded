"""ltmpq.blog: the blog's published numbers as the chapters' bar charts read them."""

from __future__ import annotations

import pytest

from ltmpq import blog
from ltmpq.vocab import METHOD_LABELS


def test_table1_bars_one_method_relabelled():
    """table1_bars: {(IF, label, metric): value} for the chosen methods and metrics the blog has."""
    bars = blog.table1_bars(["overall", "tail", "worst_class"], ("baseline",), label=lambda m: "ours")
    assert bars == {
        (0.1, "ours", "overall"): 85.6,
        (0.1, "ours", "tail"): 84.3,
        (0.02, "ours", "overall"): 78.8,
        (0.02, "ours", "tail"): 73.1,
        (0.01, "ours", "overall"): 63.2,
        (0.01, "ours", "tail"): 46.3,
    }


def test_table1_bars_default_methods_with_chapter_labels():
    """table1_bars' defaults: baseline and cRT, labelled as chapter 2 does (METHOD_LABELS)."""
    bars = blog.table1_bars(["head"], label=METHOD_LABELS.get)
    assert bars == {
        (0.1, "baseline (CE)", "head"): 87.5,
        (0.1, "cRT", "head"): 85.8,
        (0.02, "baseline (CE)", "head"): 87.3,
        (0.02, "cRT", "head"): 83.3,
        (0.01, "baseline (CE)", "head"): 88.5,
        (0.01, "cRT", "head"): 81.4,
    }
    assert blog.table1_bars(["head"], ("lws",)) == {}


# ------------------------------------------------------------------ the review's rules


def test_the_blogs_values_of_the_claims_are_computed_from_its_tables():
    assert blog.gap(0.1, "baseline") == pytest.approx(87.5 - 84.3)
    assert blog.gap(0.01, "crt") == pytest.approx(81.4 - 72.0)
    assert blog.gap(0.5, "crt") is None
    # Figs. 7/8: baseline loses 0.5 head and 6.5 tail points at 6 bits; cRT 2.7 and 6.6
    assert blog.drop_delta("baseline", 6) == pytest.approx(6.0)
    assert blog.drop_delta("crt", 6) == pytest.approx(3.9)
    assert blog.drop_delta("crt", 4) is None
