"""ltmpq.analysis.ch6_beyond: columns, Table 1 beside its published references, Δ and the verdict
matrix, on hand-made results whose verdicts follow from the numbers by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ltmpq import blog
from ltmpq.analysis import ch6_beyond as ch6
from ltmpq.config import Stage1Config
from ltmpq.vocab import LOGIT_ADJ

SEEDS = (0, 1, 2)


def _split(head: float, tail: float) -> dict:
    """A split's metrics (fractions) from head and tail accuracy (points)."""
    return {"metrics": {"overall": (head + tail) / 200, "head": head / 100, "tail": tail / 100,
                        "worst_class": tail / 200, "balanced": (head + tail) / 200}}  # fmt: skip


def _both(head: float, tail: float) -> dict:
    return {"val": _split(head, tail), "test": _split(head, tail)}


def _sweep(cfg, drops: dict) -> dict:
    """A default-quantizer sweep: ``drops[method][bits] = (head drop, tail drop)`` from float
    accuracies head 80, tail 60."""
    entries = {}
    for b in ("float", "6", "4", "3"):
        methods = {}
        for m, by in drops.items():
            dh, dt = (0.0, 0.0) if b == "float" else by[b]
            methods[m] = {"test": _split(80 - dh, 60 - dt)}
        entries[b] = {"methods": methods}
    return {"entries": entries}


def _family(overrides: dict, ifs=(0.1, 0.01), tail_drop=5.0) -> dict:
    """Stage 1 (CE: head 90, tail 50 + seed), cRT (head 80, tail 68 + seed: gap 12 - seed) and
    LA (head 78, tail 74: gap 4) per seed, and at IF 0.01 a sweep where the tail loses
    ``tail_drop`` (+ 0.1 x seed) points at every bit-width and the head 1."""
    fam: dict = {"stage1": {}, "decoupled": {}, "quantized": {"default": {}}, "mpq": {}}
    for f in ifs:
        for s in SEEDS:
            cfg = Stage1Config(imbalance_factor=f, seed=s, **overrides)
            gap_if = 0 if f == 0.01 else 10  # the milder IF: a 10 points smaller gap
            fam["stage1"][cfg] = _both(90, 50 + s + gap_if)
            fam["decoupled"][cfg] = {
                "methods": {"crt": _both(80, 68 + s), LOGIT_ADJ: _both(78, 74 + 0.1 * s)}
            }
            if f == 0.01:
                d = {b: (1.0, tail_drop + 0.1 * s) for b in ("6", "4", "3")}
                fam["quantized"]["default"][cfg] = _sweep(cfg, {"baseline": d, "crt": d, LOGIT_ADJ: d})
    return fam


@pytest.fixture
def fam():
    return {
        "VGG16": _family({}),
        "ResNet-32": _family({"arch": "resnet32", "width": 1.0}, tail_drop=1.5),
        "VGG16, LA loss": _family({"loss": "logit_adjusted"}, ifs=(0.01,)),
    }


def test_columns_name_each_family_and_classifier(fam):
    labels = [c[0] for c in ch6.columns(fam)]
    assert labels == ["VGG16 CE", "VGG16 cRT", "VGG16 LA", "ResNet-32 CE", "ResNet-32 cRT", "ResNet-32 LA",
                      "VGG16 LA loss"]  # fmt: skip
    assert ch6.columns(fam)[-1][1:] == ("VGG16, LA loss", "baseline")
    mixed = {"x": {"stage1": {Stage1Config(0.01): {}, Stage1Config(0.01, loss="logit_adjusted"): {}}}}
    with pytest.raises(ValueError, match="one loss"):
        ch6.columns(mixed)


def test_table1_sits_beside_the_blog_and_the_resnet_anchors(fam):
    t = ch6.table1(ch6.metrics(fam), 0.01)
    assert t.loc["VGG16 CE", "published"] == blog.TABLE1[(0.01, "baseline")]["overall"]
    assert t.loc["ResNet-32 cRT", "published"] == 75.0 and t.loc["ResNet-32 LA", "published"] == 77.3
    assert np.isnan(t.loc["VGG16 LA", "published"]) and t.loc["VGG16 LA", "published by"] == "–"
    # CE overall = (90 + 50 + seed) / 2 -> mean 70.5; minus the blog's 63.2
    assert t.loc["VGG16 CE", "ours − published"] == pytest.approx(70.5 - 63.2)
    assert t.loc["VGG16 CE", "n"] == 3 and t.loc["VGG16 CE", "head"] == "90.0 ± 0.0"


def test_gaps_and_deltas_by_hand(fam):
    g = ch6.gaps(ch6.metrics(fam), 0.01)
    ce = g[g["column"] == "VGG16 CE"].set_index("seed")["gap"]
    assert ce.tolist() == pytest.approx([40, 39, 38])
    dl = ch6.deltas(ch6.drops(fam), 0.01)
    d = dl[(dl["column"] == "VGG16 cRT") & (dl["bits"] == "4")].set_index("seed")["delta"]
    assert d.tolist() == pytest.approx([4.0, 4.1, 4.2])  # tail 5 + 0.1 s minus head 1
    table = ch6.delta_table(dl, "default", ["6", "3"], [c[0] for c in ch6.columns(fam)])
    assert list(table.index)[:2] == ["VGG16 CE", "VGG16 cRT"] and list(table.columns) == ["6 bits", "3 bits"]


def test_verdict_matrix_by_hand(fam):
    matrix, parts = ch6.verdict_matrix(fam, (8, 6, 4, 3), 8, 10, 4, 0.01)
    c1, c2, c3, c4 = (ch6.CLAIM_NAMES[i] for i in (1, 2, 3, 4))
    # a 38-40 point gap at the mildest IF's 28-30 points: exists; grows by 10 in every seed
    assert matrix.loc[c1, "VGG16 CE"] == "supported"
    # cRT narrows 40-38 to 12-10 (by 28) but 12-10 > 10 only inconclusively (gap 10 at seed 2)
    assert matrix.loc[c2, "VGG16 cRT"] == "inconclusive"
    # LA: gap 4: narrows, but no 10 points remain
    assert matrix.loc[c2, "VGG16 LA"] == "not supported"
    assert matrix.loc[c2, "VGG16 CE"] == "not measured" and matrix.loc[c4, "VGG16 CE"] == "not measured"
    # Δ = 4 + 0.1 s on the VGG16s (supported), 0.5 + 0.1 s on the ResNet (below 1: not supported)
    assert matrix.loc[c3, "VGG16 CE"] == "supported" and matrix.loc[c3, "ResNet-32 LA"] == "not supported"
    # blog values only for its VGG16
    assert parts[parts["column"] == "ResNet-32 CE"]["blog"].isna().all()
    assert not parts[parts["column"] == "VGG16 CE"]["blog"].isna().all()
    # the LA-loss set has one IF: claim 1 without 1b
    assert set(parts[(parts["column"] == "VGG16 LA loss") & (parts["claim"] == 1)]["part"]) == {"1a"}


def test_answer_facts_group_columns_by_verdict(fam):
    matrix, _ = ch6.verdict_matrix(fam, (8, 6, 4, 3), 8, 10, 4, 0.01)
    facts = ch6.answer_facts(matrix, fam, {"ResNet-32": "2 of 8 models trained; make the rest with X"})
    assert facts["claim3_across"] == (
        "VGG16 CE, VGG16 cRT, VGG16 LA, VGG16 LA loss: supported · "
        "ResNet-32 CE, ResNet-32 cRT, ResNet-32 LA: not supported"
    )
    assert (
        facts["missing_text"] == "Not computed yet: ResNet-32: 2 of 8 models trained; make the rest with X."
    )
    assert facts["sets_text"].startswith("VGG16: 6 models (IF 0.1, 0.01)")
    assert ch6.answer_facts(matrix, fam, {})["missing_text"] == "Every model set here is complete."


def test_column_parts_names_unknown_columns_and_missing_ifs(fam):
    with pytest.raises(ValueError, match="unknown column 'VGG CE'"):
        ch6.column_parts(fam, "VGG CE", (6, 4), 8, 10, 4, 0.01)
    with pytest.raises(ValueError, match="no model at IF 0.02"):
        ch6.column_parts(fam, "VGG16 CE", (6, 4), 8, 10, 4, 0.02)
    assert isinstance(ch6.delta_table(pd.DataFrame(columns=["variant", "column", "bits", "delta"]), "default",
                                      ["6"], ["VGG16 CE"]), pd.DataFrame)  # fmt: skip


def test_mpq_parts_table_per_column():
    parts = pd.DataFrame(
        [
            {
                "column": c,
                "part": p,
                "measured": f"m{p}",
                "estimate [95% CI]": f"+{i}.00",
                "verdict": "supported",
            }
            for c in ("ResNet-32 CE", "VGG16 CE")
            for i, p in enumerate(("3a", "4b", "4d"))
        ]
    )
    t = ch6.mpq_parts(parts)
    assert list(t.index) == ["ResNet-32 CE", "VGG16 CE"] and list(t.columns) == ["4b m4b", "4d m4d"]
    assert t.loc["VGG16 CE", "4d m4d"] == "+2.00 · supported"
    assert ch6.mpq_parts(parts[parts["part"] == "3a"]).empty


def test_anchor_facts_are_the_published_resnet32_numbers():
    """shared/reference/blog.md: CE 70.4 (Cao et al.), cRT 75.0, post-hoc LA 77.3, LA loss 77.9."""
    assert ch6.anchor_facts() == {"anchor_ce": "70.4", "anchor_crt": "75.0", "anchor_la": "77.3",
                                  "anchor_la_loss": "77.9", "anchor_epochs": "200"}  # fmt: skip
