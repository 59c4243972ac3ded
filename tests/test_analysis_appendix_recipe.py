"""The appendix "The v2 model set" (ltmpq.analysis.appendix_recipe).

Every input is a tiny synthetic table or stored result built by hand in the shape the recipe
search, chapter 4's sweeps, ``frames.summarize`` and the stage-1 runs produce, with numbers chosen
so that each expected value below can be worked out on paper. Nothing is trained and no data is
read.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fakes import hand_results

from ltmpq import blog, recipe
from ltmpq.analysis import appendix_recipe as app
from ltmpq.config import Stage1Config
from ltmpq.results import encode_predictions

# ------------------------------------------------------------------ the recipe search

V1 = "v1: cosine, 30 ep, fp32"
COS_BF16 = "cosine, 30 ep, bf16"
OC30 = "one-cycle, 30 ep, bf16"
OC40 = "one-cycle, 40 ep, bf16"
OC60 = "one-cycle, 60 ep, bf16"
OC40_FP32 = "one-cycle, 40 ep, fp32"

#: name -> (val balanced, val tail, img/s, model set (min)); v1 first, as in recipe.SEARCHES.
SEARCH = {
    V1: (60.0, 40.0, 100.0, 100.0),
    COS_BF16: (61.5, 41.0, 250.0, 40.0),
    OC30: (63.7, 45.0, 240.0, 42.0),
    OC40: (64.0, 47.0, 245.0, 55.0),
    OC60: (66.1, 52.3, 250.0, 70.4),
    OC40_FP32: (64.9, 48.0, 110.0, 120.0),
}

#: lever -> the two candidates it is the difference of (first minus second).
LEVERS = {
    "lever_bf16": (COS_BF16, V1),
    "lever_onecycle": (OC30, COS_BF16),
    "lever_bf16_onecycle": (OC40, OC40_FP32),
    "lever_40ep": (OC40, OC30),
    "lever_60ep": (OC60, OC40),
}


def search_table(names=tuple(SEARCH)) -> pd.DataFrame:
    """A frame shaped like search_frame's output (index 'recipe') with the columns facts read."""
    rows = [
        {
            "recipe": n,
            "val balanced": SEARCH[n][0],
            "val tail": SEARCH[n][1],
            "img/s": SEARCH[n][2],
            "model set (min)": SEARCH[n][3],
        }
        for n in names
    ]
    return pd.DataFrame(rows).set_index("recipe")


def cpu_v2_images_per_epoch() -> int:
    """The cpu model set, one epoch: 4700 per class after the 300 held out, exp profile at IFs
    0.1 / 0.02 / 0.01, five seeds."""
    return 5 * sum(sum(int(4700 * f ** (i / 9)) for i in range(10)) for f in (0.1, 0.02, 0.01))


def test_search_frame_points_throughput_and_projected_minutes():
    """search_frame: one row per candidate in stored order, fractions as points, the model set's
    minutes = epochs x images per epoch / (2 processes x img/s) / 60."""
    stored = {
        V1: {"val": {"metrics": {"overall": 0.6, "head": 0.8, "tail": 0.4, "balanced": 0.62}},
             "train_images_per_second": 100.0},
        OC40: {"val": {"metrics": {"overall": 0.7, "head": 0.85, "tail": 0.55, "balanced": 0.705}},
               "train_images_per_second": 250.0},
    }  # fmt: skip
    f = app.search_frame("cpu", stored)
    assert f.index.name == "recipe"
    assert list(f.index) == [V1, OC40]
    assert list(f.columns) == [
        "epochs", "val overall", "val head", "val tail", "val balanced", "img/s", "model set (min)",
    ]  # fmt: skip
    assert list(f["epochs"]) == [30, 40]
    assert f.loc[V1, ["val overall", "val head", "val tail", "val balanced"]].tolist() == pytest.approx(
        [60, 80, 40, 62]
    )
    assert f.loc[OC40, "val balanced"] == pytest.approx(70.5)
    assert f.loc[OC40, "img/s"] == 250.0
    per_epoch = cpu_v2_images_per_epoch()
    assert f.loc[V1, "model set (min)"] == pytest.approx(30 * per_epoch / 200 / 60)
    assert f.loc[OC40, "model set (min)"] == pytest.approx(40 * per_epoch / 500 / 60)


def test_search_facts_by_hand():
    """search_facts: the chosen row's numbers, its gain over the first (v1) row, the levers as
    differences of named candidates, bf16's speedup and the budget in minutes."""
    facts = app.search_facts(search_table(), OC60, 75 * 60)
    assert facts == {
        "recipe_chosen": OC60,
        "bf16_verdict": "no consistent loss",  # +1.5 and -0.9: neither below -1
        "recipe_n": 6,
        "recipe_val": "66.1",
        "recipe_val_tail": "52.3",
        "recipe_v1_val": "60.0",
        "recipe_v1_val_tail": "40.0",
        "recipe_gain": "+6.1",
        "recipe_minutes": "70",
        "recipe_budget": "75",
        "bf16_speedup": "2.5",  # 250 / 100 img/s
        "lever_bf16": "+1.5",  # 61.5 - 60.0
        "lever_onecycle": "+2.2",  # 63.7 - 61.5
        "lever_bf16_onecycle": "-0.9",  # 64.0 - 64.9: a negative lever keeps its sign
        "lever_40ep": "+0.3",  # 64.0 - 63.7
        "lever_60ep": "+2.1",  # 66.1 - 64.0
    }


def test_search_facts_of_another_chosen_row_and_a_loss():
    """The chosen row's facts follow ``chosen``; a chosen recipe worse than v1's has a negative gain."""
    t = search_table()
    t.loc[COS_BF16, "val balanced"] = 58.8  # worse than v1's 60.0
    facts = app.search_facts(t, COS_BF16, 45 * 60 + 29)
    assert facts["recipe_chosen"] == COS_BF16
    assert facts["recipe_val"] == "58.8"
    assert facts["recipe_val_tail"] == "41.0"
    assert facts["recipe_gain"] == "-1.2"
    assert facts["recipe_minutes"] == "40"
    assert facts["recipe_budget"] == "45"  # 45.48 min
    assert facts["recipe_v1_val"] == "60.0"  # v1 is still the first row
    assert facts["lever_bf16"] == "-1.2"
    assert facts["lever_onecycle"] == "+4.9"  # 63.7 - 58.8
    assert facts["lever_40ep"] == "+0.3"  # untouched rows give the same levers


@pytest.mark.parametrize("missing", [COS_BF16, OC30, OC40, OC60, OC40_FP32])
def test_search_facts_a_missing_candidate_gives_na_for_the_levers_it_is_in(missing):
    """Without a candidate every lever involving it (and the speedup, for cosine bf16) is 'n/a';
    the others keep their values."""
    full = app.search_facts(search_table(), OC40 if missing == OC60 else OC60, 75 * 60)
    facts = app.search_facts(
        search_table([n for n in SEARCH if n != missing]), OC40 if missing == OC60 else OC60, 75 * 60
    )
    assert facts["recipe_n"] == 5
    for lever, pair in LEVERS.items():
        if missing in pair:
            assert facts[lever] == "n/a", lever
        else:
            assert facts[lever] == full[lever] != "n/a", lever
    assert facts["bf16_speedup"] == ("n/a" if missing == COS_BF16 else "2.5")


@pytest.mark.parametrize(
    ("cos_bf16", "oc40_bf16", "verdict"),
    [
        (58.0, 63.0, "a loss in every comparison"),  # -2.0 and -1.9 below fp32
        (58.0, 64.9, "no consistent loss"),  # -2.0 but +0.0
        (58.0, 63.9, "no consistent loss"),  # -2.0 but -1.0: exactly the tolerance is no loss
        (58.9, 63.8, "a loss in every comparison"),  # -1.1 and -1.1
        (61.0, 66.0, "no consistent loss"),  # two gains
    ],
)
def test_search_facts_bf16_verdict(cos_bf16, oc40_bf16, verdict):
    """bf16 is a loss only when every bf16 / fp32 pair (cosine 30 ep vs v1; one-cycle 40 ep) is
    more than BF16_TOLERANCE (1 point) below fp32 (v1 60.0, one-cycle 40 ep fp32 64.9)."""
    assert app.BF16_TOLERANCE == 1.0
    t = search_table()
    t.loc[COS_BF16, "val balanced"] = cos_bf16
    t.loc[OC40, "val balanced"] = oc40_bf16
    assert app.search_facts(t, OC60, 75 * 60)["bf16_verdict"] == verdict


def test_search_facts_bf16_verdict_with_pairs_missing():
    """One pair missing: the verdict rests on the other alone; both missing: 'not measured'."""
    t = search_table([n for n in SEARCH if n != OC40_FP32])
    t.loc[COS_BF16, "val balanced"] = 58.0  # -2.0 against v1
    facts = app.search_facts(t, OC60, 75 * 60)
    assert facts["lever_bf16_onecycle"] == "n/a"
    assert facts["bf16_verdict"] == "a loss in every comparison"
    t.loc[COS_BF16, "val balanced"] = 59.5  # -0.5
    assert app.search_facts(t, OC60, 75 * 60)["bf16_verdict"] == "no consistent loss"
    neither = search_table([n for n in SEARCH if n not in (OC40_FP32, COS_BF16)])
    assert app.search_facts(neither, OC60, 75 * 60)["bf16_verdict"] == "not measured"
    # the other pair alone (the cosine bf16 run missing), a loss of 1.5
    t = search_table([n for n in SEARCH if n != COS_BF16])
    t.loc[OC40, "val balanced"] = 63.4
    assert app.search_facts(t, OC60, 75 * 60)["bf16_verdict"] == "a loss in every comparison"


def test_search_facts_without_v1_row_has_no_speedup_or_bf16_lever():
    """The v1 name missing: no bf16 lever at 30 epochs and no speedup (its pair needs v1)."""
    facts = app.search_facts(search_table([n for n in SEARCH if n != V1]), OC60, 75 * 60)
    assert facts["lever_bf16"] == "n/a"
    assert facts["bf16_speedup"] == "n/a"
    assert facts["lever_60ep"] == "+2.1"


def test_search_facts_smoke_search_has_no_levers_and_an_infinite_budget():
    """The smoke search's candidates carry none of the cpu search's names: every lever is 'n/a'."""
    t = pd.DataFrame(
        [
            {"recipe": "cosine (smoke)", "val balanced": 20.0, "val tail": 10.0, "img/s": 50.0,
             "model set (min)": 1.2},
            {"recipe": "one-cycle (smoke)", "val balanced": 24.44, "val tail": 15.55, "img/s": 60.0,
             "model set (min)": 0.9},
        ]
    ).set_index("recipe")  # fmt: skip
    facts = app.search_facts(t, "one-cycle (smoke)", math.inf)
    assert facts["recipe_n"] == 2
    assert facts["recipe_gain"] == "+4.4"
    assert facts["recipe_val_tail"] == "15.6"  # 15.55 is stored as 15.5500000000000007...
    assert facts["recipe_minutes"] == "1"
    assert facts["recipe_budget"] == "inf"
    assert facts["bf16_speedup"] == "n/a"
    assert facts["bf16_verdict"] == "not measured"
    assert all(facts[lever] == "n/a" for lever in LEVERS)


def test_stage2_frame_is_indexed_by_candidate_and_method():
    """stage2_frame over recipe.stage2_table's rows: (candidate, method) index, values in points."""

    def ev(o, h, t):
        return {"val": {"metrics": {"overall": o, "head": h, "tail": t}}}

    stored = {
        "fixed features (v1)": {"methods": {"crt": ev(0.70, 0.80, 0.60), "lws": ev(0.68, 0.75, 0.61)}},
        "10 augmented views": {"methods": {"crt": ev(0.72, 0.78, 0.66), "lws": ev(0.69, 0.70, 0.67)}},
    }
    f = app.stage2_frame(recipe.stage2_table(stored))
    assert list(f.index.names) == ["stage 2", "method"]
    assert list(f.index) == [
        ("fixed features (v1)", "crt"), ("fixed features (v1)", "lws"),
        ("10 augmented views", "crt"), ("10 augmented views", "lws"),
    ]  # fmt: skip
    assert list(f.columns) == ["val overall", "val head", "val tail"]
    assert f.loc[("10 augmented views", "lws"), "val tail"] == pytest.approx(67.0)
    assert f.loc[("fixed features (v1)", "crt"), "val head"] == pytest.approx(80.0)
    assert f.loc[("10 augmented views", "crt"), "val overall"] == pytest.approx(72.0)


def test_stage2_frame_of_hand_rows():
    rows = [{"stage 2": "a", "method": "crt", "val overall": 1.0},
            {"stage 2": "a", "method": "lws", "val overall": 2.0},
            {"stage 2": "b", "method": "crt", "val overall": 3.0}]  # fmt: skip
    f = app.stage2_frame(rows)
    assert f["val overall"].to_dict() == {("a", "crt"): 1.0, ("a", "lws"): 2.0, ("b", "crt"): 3.0}


# ------------------------------------------------------------------ validation split size

#: Four validation images, labels 0 1 2 3. Per (head, bits): the float predictions and each layer's.
#: Worked by hand with ranking_reliability's definitions (d = float correct - layer correct):
#:   baseline, 4 bits: d_A = 0001, d_B = 0111 -> sens .25/.75, var(sens) 1/8, noise (.25/4) = 1/16,
#:       true 1/16: spread 35.36, noise 25, true 25 points; r(m) = m / (m + 4).
#:   baseline, 6 bits: d_A = 0000, d_B = 0011 -> sens 0/.5, var 1/8, noise (0 + 1/12) / 2 = 1/24,
#:       true 1/12: spread 35.36, noise 20.41, true 28.87; r(m) = m / (m + 2).
#:   crt (float "0121", wrong on image 3), 4 bits: d_A = 000(-1), d_B = 0110 -> sens -.25/.5,
#:       var 9/32, noise (1/16 + 1/12) / 2 = 7/96, true 5/24; r(m) = 5m / (5m + 7).
#:   crt, 6 bits: both layers equal the float model: no spread and no noise, r = NaN.
LABELS = "0123"
SWEEP = {
    "baseline": {
        "float": "0123",
        "layers": {"L1": {"4": "0120", "6": "0123"}, "L2": {"4": "0000", "6": "0100"}},
    },
    "crt": {"float": "0121", "layers": {"L1": {"4": "0123", "6": "0121"}, "L2": {"4": "0000", "6": "0121"}}},
}
SIZES = (4, 12, 36)


def mpq_result(reverse: bool = False, swap_layers: bool = False) -> dict:
    """A stored mpq result in chapter 4's shape (predictions encoded as digit strings). ``reverse``
    reverses the image order, ``swap_layers`` the layer order: neither changes the statistics."""

    def enc(s: str) -> str:
        arr = np.array([int(c) for c in s])
        return encode_predictions(arr[::-1] if reverse else arr)

    sweep = {}
    for head, s in SWEEP.items():
        names = list(s["layers"])[::-1] if swap_layers else list(s["layers"])
        layers = {
            n: {b: {"predictions": enc(p), "kl": [0.0] * 10} for b, p in s["layers"][n].items()}
            for n in names
        }
        sweep[head] = {"float": enc(s["float"]), "layers": layers}
    return {"val_labels": enc(LABELS), "sweep": sweep, "train_counts": [5] * 10}


def mres_of(*seeds) -> dict:
    return {
        Stage1Config(imbalance_factor=0.01, seed=s): mpq_result(reverse=i % 2 == 1, swap_layers=i % 2 == 1)
        for i, s in enumerate(seeds)
    }


#: (head, bits) -> spread, noise, true (points) and r at SIZES, by hand (see above).
EXPECTED = {
    ("baseline", 4): (100 * math.sqrt(1 / 8), 25.0, 25.0, [m / (m + 4) for m in SIZES]),
    ("baseline", 6): (100 * math.sqrt(1 / 8), 100 * math.sqrt(1 / 24), 100 * math.sqrt(1 / 12),
                      [m / (m + 2) for m in SIZES]),
    ("crt", 4): (100 * math.sqrt(9 / 32), 100 * math.sqrt(7 / 96), 100 * math.sqrt(5 / 24),
                 [5 * m / (5 * m + 7) for m in SIZES]),
}  # fmt: skip


def test_split_reliability_by_hand():
    """One row per (seed, head, bits) in that order, spread / noise / true in points and the
    reliability at each size as a column named by the size."""
    f = app.split_reliability(mres_of(3), ["baseline", "crt"], [4, 6], list(SIZES))
    assert list(f.columns) == ["seed", "head", "bits", "spread", "noise", "true", *SIZES]
    assert list(zip(f["seed"], f["head"], f["bits"], strict=True)) == [
        (3, "baseline", 4), (3, "baseline", 6), (3, "crt", 4), (3, "crt", 6),
    ]  # fmt: skip
    rows = f.set_index(["head", "bits"])
    for key, (spread, noise, true, rel) in EXPECTED.items():
        row = rows.loc[key]
        assert row[["spread", "noise", "true"]].tolist() == pytest.approx([spread, noise, true]), key
        assert row[list(SIZES)].tolist() == pytest.approx(rel), key
    assert rows.loc[("baseline", 4), 4] == pytest.approx(0.5)  # r(n) with true = noise
    assert rows.loc[("baseline", 6), 36] == pytest.approx(18 / 19)
    # crt at 6 bits: every layer predicts as the float model -> nothing to rank
    nothing = rows.loc[("crt", 6)]
    assert nothing[["spread", "noise", "true"]].tolist() == [0.0, 0.0, 0.0]
    assert all(math.isnan(nothing[m]) for m in SIZES)


def test_split_reliability_reliability_grows_with_size_and_true_is_below_spread():
    f = app.split_reliability(mres_of(0), ["baseline", "crt"], [4], [4, 40, 400])
    for _, row in f.iterrows():
        assert row[4] < row[40] < row[400] < 1
        assert row["true"] <= row["spread"]
        assert row["spread"] ** 2 == pytest.approx(row["true"] ** 2 + row["noise"] ** 2)  # true = obs - noise


def test_split_reliability_seeds_heads_and_bits_as_asked():
    """Every seed of the mapping (keys' .seed), only the heads and bits asked for; the image and
    layer order of a seed's result does not change its numbers."""
    f = app.split_reliability(mres_of(0, 7), ["crt"], [4], [12])
    assert list(f["seed"]) == [0, 7]
    assert set(f["head"]) == {"crt"} and set(f["bits"]) == {4}
    assert list(f.columns) == ["seed", "head", "bits", "spread", "noise", "true", 12]
    spread, noise, true, rel = EXPECTED[("crt", 4)]
    for _, row in f.iterrows():
        assert [row["spread"], row["noise"], row["true"], row[12]] == pytest.approx(
            [spread, noise, true, rel[1]]
        )


def test_split_reliability_uses_each_heads_own_float_model():
    """The crt head's float model is wrong on image 3: a layer that gets it right has a negative
    sensitivity. Judged against the labels' own 'float' (all correct) the numbers would differ."""
    r = mres_of(0)
    f = app.split_reliability(r, ["crt"], [4], [4])
    assert f.loc[0, 4] == pytest.approx(20 / 27)
    # the same layers judged against a perfect float model: d_A = 0000, d_B = 0111
    for res in r.values():
        res["sweep"]["crt"]["float"] = res["val_labels"]
    g = app.split_reliability(r, ["crt"], [4], [4])
    # noise (0 + .25 / 4) / 2 = 1/32, var(sens) 9/32, true 1/4: r(4) = (1/4) / (1/4 + 1/32) = 8/9
    assert g.loc[0, "noise"] == pytest.approx(100 * math.sqrt(1 / 32))
    assert g.loc[0, "true"] == pytest.approx(50.0)
    assert g.loc[0, 4] == pytest.approx(8 / 9)


def test_split_reliability_reads_the_labels():
    """Other labels, same predictions: correctness (and so every number) follows the labels."""
    r = mres_of(0)
    for res in r.values():
        res["val_labels"] = encode_predictions(np.array([0, 1, 2, 0]))  # image 3 is class 0
    f = app.split_reliability(r, ["baseline"], [4], [4]).set_index("bits")
    # float "0123" is now wrong on image 3, L1 "0120" right, L2 "0000" right there too:
    # d_A = 000(-1), d_B = 011(-1): sens -.25 / .25, var(sens) 1/8; noise (1/16 + 11/48) / 2 = 7/48
    # exceeds it, so the true spread is clamped to 0 and so is the reliability
    assert f.loc[4, "spread"] == pytest.approx(100 * math.sqrt(1 / 8))
    assert f.loc[4, "noise"] == pytest.approx(100 * math.sqrt(7 / 48))
    assert f.loc[4, "true"] == 0.0
    assert f.loc[4, 4] == 0.0


def test_reliability_table_means_over_seeds_and_renames_sizes():
    """reliability_table: mean over seeds per (head, bits); a size m becomes 'r at m/10/class'."""
    cols = ["seed", "head", "bits", "spread", "noise", "true", 500, 3000]
    frame = pd.DataFrame(
        [
            (0, "crt", 4, 1.0, 2.0, 0.5, 0.1, 0.4),
            (1, "crt", 4, 3.0, 4.0, 1.5, 0.3, 0.6),
            (0, "crt", 3, 5.0, 1.0, 4.0, 0.8, 0.9),
            (1, "crt", 3, 7.0, 3.0, 6.0, 0.6, 0.95),
            (0, "baseline", 4, 9.0, 9.0, 0.0, 0.0, 0.0),
        ],
        columns=cols,
    )
    t = app.reliability_table(frame, [500, 3000])
    assert list(t.index.names) == ["head", "bits"]
    assert list(t.index) == [("baseline", 4), ("crt", 3), ("crt", 4)]
    assert list(t.columns) == ["spread", "noise", "true", "r at 50/class", "r at 300/class"]
    assert t.loc[("crt", 4)].tolist() == pytest.approx([2.0, 3.0, 1.0, 0.2, 0.5])
    assert t.loc[("crt", 3)].tolist() == pytest.approx([6.0, 2.0, 5.0, 0.7, 0.925])
    assert t.loc[("baseline", 4)].tolist() == pytest.approx([9.0, 9.0, 0.0, 0.0, 0.0])
    assert "seed" not in t.columns


def test_reliability_table_of_split_reliability():
    """Two seeds with the same statistics: the table's means are the one seed's hand values."""
    sizes = [4, 12]
    t = app.reliability_table(app.split_reliability(mres_of(0, 1), ["baseline"], [4, 6], sizes), sizes)
    assert list(t.columns) == ["spread", "noise", "true", "r at 0/class", "r at 1/class"]
    assert t.loc[("baseline", 4)].tolist() == pytest.approx([100 * math.sqrt(1 / 8), 25, 25, 0.5, 0.75])
    assert t.loc[("baseline", 6), "r at 1/class"] == pytest.approx(12 / 14)


def test_measured_reliability_reads_the_splits_own_size():
    """The check on the model set trained with the split: means over seeds and heads at the split's
    own size; the noisy bit-width's true spread and noise."""
    frame = pd.DataFrame(
        [
            {"seed": 0, "head": "crt", "bits": 3, "true": 2.0, "noise": 0.4, 3000: 0.80},
            {"seed": 1, "head": "crt", "bits": 3, "true": 2.0, "noise": 0.4, 3000: 0.90},
            {"seed": 0, "head": "crt", "bits": 4, "true": 0.10, "noise": 0.30, 3000: 0.20},
            {"seed": 1, "head": "baseline", "bits": 4, "true": 0.30, "noise": 0.50, 3000: 0.40},
        ]
    )  # fmt: skip
    assert app.measured_reliability(frame, 3000, 3, 4) == {
        "val_measured": 300,
        "rel_measured_clear": "0.85",
        "rel_measured_noisy": "0.30",
        "true_measured_noisy": "0.20",
        "noise_measured_noisy": "0.40",
    }
    assert app.measured_reliability(frame, 3000, 4, 3)["rel_measured_clear"] == "0.30"


def test_split_facts_by_hand():
    """split_facts: the mean reliability over every row at a bit-width (seeds and heads), per
    split size, two decimals; the noisy bit-width's mean true spread and noise."""
    frame = pd.DataFrame(
        [
            {"seed": 0, "head": "baseline", "bits": 3, "true": 2.0, "noise": 1.0, 1000: 0.80, 3000: 0.90},
            {"seed": 0, "head": "crt", "bits": 3, "true": 4.0, "noise": 1.5, 1000: 0.70, 3000: 0.92},
            {"seed": 1, "head": "baseline", "bits": 3, "true": 3.0, "noise": 2.0, 1000: 0.75, 3000: 0.95},
            {"seed": 0, "head": "baseline", "bits": 4, "true": 0.10, "noise": 0.50, 1000: 0.05, 3000: 0.10},
            {"seed": 1, "head": "crt", "bits": 4, "true": 0.30, "noise": 0.70, 1000: 0.25, 3000: 0.50},
        ]
    )  # fmt: skip
    facts = app.split_facts(frame, current=1000, chosen=3000, bits_clear=3, bits_noisy=4)
    assert facts == {
        "val_current": 100,
        "val_chosen": 300,
        "rel_clear_now": "0.75",  # (0.80 + 0.70 + 0.75) / 3
        "rel_clear_chosen": "0.92",  # (0.90 + 0.92 + 0.95) / 3 = 0.9233
        "rel_noisy_now": "0.15",  # (0.05 + 0.25) / 2
        "rel_noisy_chosen": "0.30",
        "noisy_true_sd": "0.20",
        "noisy_noise_sd": "0.60",
        "bits_clear": 3,
        "bits_noisy": 4,
    }
    # the roles of the bit-widths and sizes swapped: the facts follow their arguments
    swapped = app.split_facts(frame, current=3000, chosen=1000, bits_clear=4, bits_noisy=3)
    assert swapped["val_current"] == 300 and swapped["val_chosen"] == 100
    assert (swapped["rel_clear_now"], swapped["rel_clear_chosen"]) == ("0.30", "0.15")
    assert (swapped["rel_noisy_now"], swapped["rel_noisy_chosen"]) == ("0.92", "0.75")
    assert (swapped["noisy_true_sd"], swapped["noisy_noise_sd"]) == ("3.00", "1.50")


# ------------------------------------------------------------------ Table 1, v1 and v2

#: Table 1's 18 cells in the blog's order: (IF, method, metric) -> blog value.
BLOG_CELLS = {(r.imbalance_factor, r.method, r.metric): r.blog for r in blog.table1_frame().itertuples()}
CELL_ORDER = list(BLOG_CELLS)


def d_v2(i: int) -> float:
    """v2's difference from the blog at the i-th cell: -8 ... +9 (mean |d| = 81 / 18 = 4.5)."""
    return float(i - 8)


def d_v1(i: int) -> float:
    """v1's: +20 ... -14 in steps of 2 (mean |d| = 2 x 83 / 18 = 9.22)."""
    return 2.0 * (10 - i)


def summary_of(diff, ci: float, skip=(), shuffle: bool = False) -> pd.DataFrame:
    """A frame shaped like ``frames.summarize``'s (imbalance_factor, method, split, metric, mean,
    ci, n): the test mean of every Table 1 cell is blog + diff(i), plus rows Table 1 must ignore
    (validation split, another method, a metric the blog has no value for)."""
    rows = []
    for i, (f, m, k) in enumerate(CELL_ORDER):
        if (f, m, k) in skip:
            continue
        mean = BLOG_CELLS[(f, m, k)] + diff(i)
        rows.append({"imbalance_factor": f, "method": m, "split": "test", "metric": k, "mean": mean,
                     "ci": ci, "n": 3.0})  # fmt: skip
        rows.append({"imbalance_factor": f, "method": m, "split": "val", "metric": k, "mean": 0.0,
                     "ci": ci, "n": 3.0})  # fmt: skip
    for f in (0.1, 0.02, 0.01):
        rows.append({"imbalance_factor": f, "method": "lws", "split": "test", "metric": "overall",
                     "mean": 1.0, "ci": ci, "n": 3.0})  # fmt: skip
        rows.append({"imbalance_factor": f, "method": "baseline", "split": "test", "metric": "balanced",
                     "mean": 2.0, "ci": ci, "n": 3.0})  # fmt: skip
    out = pd.DataFrame(rows)
    return out.sample(frac=1, random_state=0).reset_index(drop=True) if shuffle else out


def test_summary_shape_is_frames_summarize():
    """The hand summaries have the columns frames.summarize gives."""
    from ltmpq import frames

    long = pd.DataFrame([{"imbalance_factor": 0.1, "method": "baseline", "split": "test", "metric": "overall",
                          "seed": s, "value": v} for s, v in enumerate((1.0, 2.0))])  # fmt: skip
    assert list(frames.summarize(long).columns) == list(summary_of(d_v2, 0.5).columns)


COLUMNS = ["imbalance_factor", "method", "metric", "blog", "v1", "v2", "v1 - blog", "v2 - blog"]


def test_table1_versions_with_v1():
    """table1_versions: one row per Table 1 cell, models by their Table 1 labels, v1 / v2 as
    'mean ± CI' and their differences from the blog, aligned by cell (v1's rows in another order)."""
    cells = app.table1_versions(summary_of(d_v1, 1.3, shuffle=True), summary_of(d_v2, 0.5))
    assert list(cells.columns) == COLUMNS
    assert len(cells) == 18
    assert set(cells["method"]) == {"base", "dec (cRT)"}
    by = cells.set_index(["imbalance_factor", "method", "metric"])
    label = {"baseline": "base", "crt": "dec (cRT)"}
    for i, (f, m, k) in enumerate(CELL_ORDER):
        row = by.loc[(f, label[m], k)]
        b = BLOG_CELLS[(f, m, k)]
        assert row["blog"] == b
        assert row["v2 - blog"] == pytest.approx(d_v2(i)), (f, m, k)
        assert row["v1 - blog"] == pytest.approx(d_v1(i)), (f, m, k)
        assert row["v2"] == f"{b + d_v2(i):.1f} ± 0.5"
        assert row["v1"] == f"{b + d_v1(i):.1f} ± 1.3"
    # one cell by hand: IF 0.01, dec (cRT), tail is the last (i = 17): blog 72.0
    row = by.loc[(0.01, "dec (cRT)", "tail")]
    assert (row["blog"], row["v1"], row["v2"]) == (72.0, "58.0 ± 1.3", "81.0 ± 0.5")
    assert (row["v1 - blog"], row["v2 - blog"]) == pytest.approx((-14.0, 9.0))


def test_table1_versions_without_v1_has_nan_columns():
    cells = app.table1_versions(None, summary_of(d_v2, 0.5))
    assert list(cells.columns) == COLUMNS
    assert len(cells) == 18
    assert cells["v1"].isna().all() and cells["v1 - blog"].isna().all()
    row = cells.set_index(["imbalance_factor", "method", "metric"]).loc[(0.1, "base", "overall")]
    assert row["v2"] == "77.6 ± 0.5"  # 85.6 - 8
    assert row["v2 - blog"] == pytest.approx(-8.0)


def test_table1_versions_cells_v1_lacks_are_nan_and_cells_v2_lacks_are_dropped():
    """The cells are v2's: a cell missing in v1 has NaN there; a cell missing in v2 is left out."""
    gap_v1, gap_v2 = (0.02, "crt", "head"), (0.1, "baseline", "tail")
    cells = app.table1_versions(summary_of(d_v1, 1.3, skip=[gap_v1]), summary_of(d_v2, 0.5, skip=[gap_v2]))
    assert len(cells) == 17
    by = cells.set_index(["imbalance_factor", "method", "metric"])
    assert (0.1, "base", "tail") not in by.index
    assert math.isnan(by.loc[(0.02, "dec (cRT)", "head"), "v1 - blog"])
    assert by.loc[(0.02, "dec (cRT)", "head"), "v2 - blog"] == pytest.approx(d_v2(CELL_ORDER.index(gap_v1)))
    assert by["v1 - blog"].notna().sum() == 16


def test_mean_abs_difference_skips_nan():
    cells = pd.DataFrame({"x": [-1.0, 2.0, np.nan, -3.0], "y": [np.nan] * 4})
    assert app.mean_abs_difference(cells, "x") == pytest.approx(2.0)
    assert isinstance(app.mean_abs_difference(cells, "x"), float)
    assert math.isnan(app.mean_abs_difference(cells, "y"))


def test_table1_versions_facts_by_hand():
    """Mean |v1 - blog| and |v2 - blog| to one decimal and the number of v2 cells."""
    cells = app.table1_versions(summary_of(d_v1, 1.3), summary_of(d_v2, 0.5))
    assert app.table1_versions_facts(cells) == {"mad_v1": "9.2", "mad_v2": "4.5", "mad_cells": 18}
    hand = pd.DataFrame({"v1 - blog": [np.nan, -6.0, 2.25], "v2 - blog": [1.0, -0.6, np.nan]})
    assert app.table1_versions_facts(hand) == {"mad_v1": "4.1", "mad_v2": "0.8", "mad_cells": 2}


def test_table1_versions_facts_without_v1():
    cells = app.table1_versions(None, summary_of(d_v2, 0.5))
    assert app.table1_versions_facts(cells) == {"mad_v1": "n/a", "mad_v2": "4.5", "mad_cells": 18}


def test_table1_versions_table_layout_and_values():
    """Rows (IF descending, overall / head / tail); columns (model, blog | v1 | v2 | differences)."""
    cells = app.table1_versions(summary_of(d_v1, 1.3), summary_of(d_v2, 0.5))
    t = app.table1_versions_table(cells)
    values = ["blog", "v1", "v2", "v1 - blog", "v2 - blog"]
    assert list(t.columns) == [(m, v) for m in ("base", "dec (cRT)") for v in values]
    assert list(t.index) == [(f, k) for f in (0.1, 0.02, 0.01) for k in ("overall", "head", "tail")]
    row = t.loc[(0.01, "tail")]
    assert row[("base", "blog")] == 46.3
    assert row[("base", "v2")] == "52.3 ± 0.5"  # i = 14: v2 46.3 + 6, v1 46.3 - 8
    assert row[("base", "v1")] == "38.3 ± 1.3"
    assert row[("base", "v1 - blog")] == pytest.approx(-8.0)
    assert row[("dec (cRT)", "v2 - blog")] == pytest.approx(9.0)
    first = t.loc[(0.1, "overall")]
    assert first[("base", "v2 - blog")] == pytest.approx(-8.0)
    assert first[("dec (cRT)", "blog")] == 86.1
    assert first[("dec (cRT)", "v1")] == "100.1 ± 1.3"  # i = 3: 86.1 + 14


def test_table1_versions_table_without_v1():
    """Without v1 its columns are kept (all NaN) so that the table has the same layout."""
    t = app.table1_versions_table(app.table1_versions(None, summary_of(d_v2, 0.5)))
    values = ["blog", "v1", "v2", "v1 - blog", "v2 - blog"]
    assert list(t.columns) == [(m, v) for m in ("base", "dec (cRT)") for v in values]
    assert t[[("base", "v1"), ("dec (cRT)", "v1 - blog")]].isna().all().all()
    assert t.loc[(0.02, "head"), ("dec (cRT)", "v2")] == "85.3 ± 0.5"  # i = 10: 83.3 + 2
    assert t.loc[(0.02, "head"), ("dec (cRT)", "v2 - blog")] == pytest.approx(d_v2(10))


# ------------------------------------------------------------------ what training cost


def stage1_runs(seconds, images_per_epoch, counts) -> dict:
    return {
        Stage1Config(imbalance_factor=0.01, seed=i): {
            "train_seconds": s,
            "history": [{"epoch": e, "images": n} for e, n in enumerate(imgs)],
            "train_counts": c,
        }
        for i, (s, imgs, c) in enumerate(zip(seconds, images_per_epoch, counts, strict=True))
    }


def test_training_cost_by_hand():
    """Summed seconds 1500 + 2220 = 3720 = 62 min; 931,000 images / 3720 s = 250.3 img/s."""
    s1 = stage1_runs([1500.0, 2220.0], [[300_000, 301_000], [330_000]], [[10] * 10, [10] * 10])
    assert app.training_cost(s1) == {
        "train_models": 2,
        "train_cpu_min": "62",
        "train_wall_min": "31",
        "train_img_s": "250",
        "train_processes": 2,
    }
    three = app.training_cost(s1, processes=3)
    assert three["train_wall_min"] == "21"  # 20.67
    assert three["train_cpu_min"] == "62" and three["train_processes"] == 3
    assert app.training_cost(s1, processes=1)["train_wall_min"] == "62"


def test_training_cost_throughput_is_pooled_not_a_mean_of_rates():
    """Images over seconds of the whole set: 1000 img in 1 s and 1000 in 9 s give 200 img/s (a
    mean of the runs' rates would be 555.6)."""
    s1 = stage1_runs([1.0, 9.0], [[500, 500], [1000]], [[1] * 10, [1] * 10])
    assert app.training_cost(s1)["train_img_s"] == "200"


def test_head_counts():
    """The largest class's training images over every run, with a thousands separator."""
    v1 = stage1_runs([1.0, 1.0], [[1], [1]], [[4999, 3000, 50], [5000, 2997, 50]])
    v2 = stage1_runs([1.0], [[1]], [[4700, 2817, 47]])
    assert app.head_counts(v1, v2) == {"head_count_v1": "5,000", "head_count_v2": "4,700"}
    assert app.head_counts(None, v2) == {"head_count_v1": "n/a", "head_count_v2": "4,700"}
    assert app.head_counts({}, v1) == {"head_count_v1": "n/a", "head_count_v2": "5,000"}
    small = stage1_runs([1.0], [[1]], [[300, 3]])
    assert app.head_counts(small, small)["head_count_v2"] == "300"


def test_rebuild_cost_splits_chapter_4_and_counts_a_shared_result_once():
    """Training from train_seconds, chapter 4 from its measured seconds, the rest from wall time;
    wall on two processes is half the process time; a result two parts share counts once."""
    s1 = {0: {"kind": "stage1", "config_hash": "a", "train_seconds": 600.0},
          1: {"kind": "stage1", "config_hash": "b", "train_seconds": 1200.0}}  # fmt: skip
    amd = {"cpu_model": "AMD EPYC", "cpu_capability": "AVX2"}
    q = {0: {"kind": "quantized", "config_hash": "q", "provenance": {"wall_seconds": 120.0, "device": amd}}}
    xeon = {"wall_seconds": 60.0, "device": {"cpu_model": "Xeon", "cpu_capability": "AVX512"}}
    shared = {0: q[0], 1: {"kind": "quantized", "config_hash": "h", "provenance": xeon}}
    m = {0: {"kind": "mpq", "config_hash": "m", "allocations": [],
             "seconds": {"sweep": 60.0, "hessian": 240.0, "evaluation": 300.0, "prepare": 1.0}}}  # fmt: skip
    t, f = app.rebuild_cost({"training": s1, "ch3": q, "ch4": m, "ch5": shared})
    assert list(t.index) == ["training", "ch3", "ch4: single-layer sweep", "ch4: Hessian traces",
                             "ch4: allocations", "ch5"]  # fmt: skip
    assert t.loc["training", "process-min"] == 30 and t.loc["training", "wall-min on 2"] == 15
    assert t.loc["ch5", "runs"] == 1 and t.loc["ch5", "process-min"] == 1  # q counted in ch3 only
    assert t.loc["ch4: Hessian traces", "wall-min on 2"] == 2
    # cold: (1800 + 120 + 600 + 60) / 2 s = 21.5 min; from weights: (120 + 600 + 60) / 2 s = 6.5 min
    assert f["rebuild_cold_h"] == "0.4" and f["rebuild_weights_min"] == "6"  # 6.5 rounds to even
    assert f["rebuild_largest"] == "training"
    # which machines made each part's seconds (the shared result counts in ch3, as its seconds do)
    assert (
        t.loc["ch3", "machines"] == "AMD EPYC (AVX2) × 1" and t.loc["ch5", "machines"] == "Xeon (AVX512) × 1"
    )
    assert t.loc["training", "machines"] == "unrecorded CPU (?) × 2" and f["rebuild_machines"] == 3
    slow = {0: {"kind": "stage1", "config_hash": "a", "train_seconds": 400 * 60.0}}
    g = app.rebuild_cost({"training": slow, "ch3": {0: {**q[0], "provenance": {"wall_seconds": 6000.0}}}})[1]
    # (400 + 100) process-minutes on two processes: 250 minutes cold, 50 from the weights
    assert g["rebuild_cold_h"] == "4.2" and g["rebuild_weights_min"] == "50"


BASE = Stage1Config(imbalance_factor=0.01, width=0.25, val_per_class=300)


def hand_search(names, vals):
    """A search table: name -> (val balanced, val tail)."""
    rows = [{"recipe": n, "val balanced": vals[n][0], "val tail": vals[n][1]} for n in names]
    return pd.DataFrame(rows).set_index("recipe")


CONFIGS = {
    "base": BASE,
    "bf16": Stage1Config(0.01, width=0.25, val_per_class=300, precision="bf16"),
    "oc bf16": Stage1Config(0.01, width=0.25, val_per_class=300, precision="bf16", schedule="onecycle"),
    "oc 60 bf16": Stage1Config(0.01, width=0.25, val_per_class=300, precision="bf16", schedule="onecycle",
                               epochs=60),
    "oc 40 fp32": Stage1Config(0.01, width=0.25, val_per_class=300, schedule="onecycle", epochs=40),
    "oc 40 bf16": Stage1Config(0.01, width=0.25, val_per_class=300, precision="bf16", schedule="onecycle",
                               epochs=40),
}  # fmt: skip


VALS = {"base": (50.0, 30.0), "bf16": (49.0, 28.0), "oc bf16": (54.0, 36.0), "oc 60 bf16": (58.5, 43.0),
        "oc 40 fp32": (55.0, 37.5), "oc 40 bf16": (56.25, 40.0)}  # fmt: skip


def hand_cells(diffs):
    """Table 1 cells: (IF, model, metric, v2 - blog)."""
    return pd.DataFrame(
        [
            {
                "imbalance_factor": f,
                "method": m,
                "metric": k,
                "blog": 1.0,
                "v1": "a",
                "v2": "b",
                "v1 - blog": 0.0,
                "v2 - blog": d,
            }
            for f, m, k, d in diffs
        ]  # fmt: skip
    )


def runs(counts_by_if: dict) -> dict:
    return {Stage1Config(imbalance_factor=f, seed=s): {"train_counts": c}
            for f, by_seed in counts_by_if.items() for s, c in enumerate(by_seed)}  # fmt: skip


def test_lever_name_in_words():
    bf16 = Stage1Config(0.01, precision="bf16")
    onecycle = Stage1Config(0.01, schedule="onecycle")
    assert app.lever_name(bf16, Stage1Config(0.01)) == "bf16 instead of fp32"
    assert app.lever_name(Stage1Config(0.01), bf16) == "fp32 instead of bf16"
    assert app.lever_name(onecycle, Stage1Config(0.01)) == "one-cycle instead of warm-up + cosine"
    assert (
        app.lever_name(Stage1Config(0.01, epochs=60), Stage1Config(0.01, epochs=40))
        == "60 instead of 40 epochs"
    )
    assert (
        app.lever_name(Stage1Config(0.01, width=0.5), BASE)
        == "val_per_class 100 instead of 300; width 0.5 instead of 0.25"
    )
    assert (
        app.lever_name(Stage1Config(0.01, hidden=4096), Stage1Config(0.01)) == "hidden 4096 instead of None"
    )
    both = Stage1Config(0.01, epochs=40, schedule="onecycle")
    assert (
        app.lever_name(both, Stage1Config(0.01))
        == "40 instead of 30 epochs; one-cycle instead of warm-up + cosine"
    )
    assert app.lever_name(BASE, BASE) == ""


def test_lever_frame_pairs_that_differ_in_one_setting_by_hand():
    """Pairs differing in one setting: bf16-base (precision), oc-bf16 (schedule), oc60-oc (epochs),
    oc40bf16-oc (epochs), oc40bf16-oc40fp32 (precision), oc60-oc40bf16 (epochs). base-oc40fp32
    differs in two (schedule, epochs) and is left out. The reference keeps the base's value
    (fp32 for 'oc 40 bf16' vs 'oc 40 fp32', though the bf16 one is listed later), else is the
    nearer number (oc 60 vs oc 40: 40 is nearer the base's 30, though listed later). Rows follow
    the candidate with the lever (search order), then its reference."""
    t = app.lever_frame(CONFIGS, hand_search(list(CONFIGS), VALS))
    assert t.index.name == "lever"
    assert list(t.columns) == ["candidate", "against", "val balanced (points)", "val tail (points)"]
    got = list(zip(t.index, t["candidate"], t["against"], strict=True))
    assert got == [
        ("bf16 instead of fp32", "bf16", "base"),
        ("one-cycle instead of warm-up + cosine", "oc bf16", "bf16"),
        ("60 instead of 30 epochs", "oc 60 bf16", "oc bf16"),
        ("60 instead of 40 epochs", "oc 60 bf16", "oc 40 bf16"),  # listed after 'oc 60 bf16'
        ("40 instead of 30 epochs", "oc 40 bf16", "oc bf16"),
        ("bf16 instead of fp32", "oc 40 bf16", "oc 40 fp32"),
    ]
    assert t["val balanced (points)"].tolist() == pytest.approx([-1.0, 5.0, 4.5, 2.25, 2.25, 1.25])
    assert t["val tail (points)"].tolist() == pytest.approx([-2.0, 8.0, 7.0, 3.0, 4.0, 2.5])


def test_lever_frame_skips_candidates_not_stored_and_can_be_empty():
    stored = ["base", "oc bf16", "oc 40 bf16"]  # no pair among them differs in one setting but the epochs one
    t = app.lever_frame(CONFIGS, hand_search(stored, VALS))
    assert list(t.index) == ["40 instead of 30 epochs"]
    assert t.iloc[0]["val balanced (points)"] == pytest.approx(2.25)
    empty = app.lever_frame(CONFIGS, hand_search(["base", "oc 40 fp32"], VALS))
    assert empty.empty and empty.index.name == "lever"
    assert list(empty.columns) == ["candidate", "against", "val balanced (points)", "val tail (points)"]


def test_distance_facts_by_hand():
    """|d| by metric: overall (1 + 3) / 2 = 2.0, head 4.0, tail (9 + 0.5) / 2 = 4.75 -> '4.8'
    (4.75 is exact in binary and rounds half to even); below the blog: -1, -9, -3 = 3 cells."""
    cells = hand_cells([
        (0.1, "base", "overall", -1.0), (0.01, "dec (cRT)", "tail", -9.0), (0.02, "base", "head", 4.0),
        (0.02, "base", "overall", -3.0), (0.1, "base", "tail", 0.5), (0.01, "base", "head", np.nan),
    ])  # fmt: skip
    f = app.distance_facts(cells, n_largest=2)
    assert f == {
        "mad_v2_overall": "2.0", "mad_v2_head": "4.0", "mad_v2_tail": "4.8", "n_below": 3,
        "far_cells": "IF 0.01 dec (cRT) tail (-9.0); IF 0.02 base head (+4.0)",
    }  # fmt: skip
    assert app.distance_facts(cells)["far_cells"].endswith("; IF 0.02 base overall (-3.0)")


def test_distance_facts_ties_keep_the_listed_order_and_a_missing_metric_says_so():
    cells = hand_cells(
        [(0.1, "base", "tail", 2.0), (0.02, "base", "tail", -2.0), (0.01, "base", "tail", 1.0)]
    )
    f = app.distance_facts(cells, n_largest=2)
    assert f["far_cells"] == "IF 0.1 base tail (+2.0); IF 0.02 base tail (-2.0)"
    assert f["mad_v2_tail"] == "1.7" and f["n_below"] == 1
    assert f["mad_v2_head"] == "not computed" and f["mad_v2_overall"] == "not computed"


def test_rebuild_cost_facts_are_measured_costs_only():
    """Cold: (1800 + 120) / 2 s = 16 min = 0.27 h; from weights 120 / 2 s = 1 min."""
    s1 = {0: {"kind": "stage1", "config_hash": "a", "train_seconds": 600.0},
          1: {"kind": "stage1", "config_hash": "b", "train_seconds": 1200.0}}  # fmt: skip
    q = {0: {"kind": "quantized", "config_hash": "q", "provenance": {"wall_seconds": 120.0}}}
    t, f = app.rebuild_cost({"training": s1, "ch3": q})
    assert f == {"rebuild_cold_h": "0.3", "rebuild_weights_min": "1", "rebuild_largest": "training",
                 "rebuild_machines": 1}  # fmt: skip
    three = app.rebuild_cost({"training": s1, "ch3": q}, processes=3)
    assert three[1]["rebuild_weights_min"] == "1" and "wall-min on 3" in three[0].columns  # 40 s


def test_tail_counts_by_hand():
    """Rarest class at the strongest IF: 49 (v1) and 47 (v2); every class keeps 4700 / 4900 =
    95.9% -> '96'."""
    v1 = runs({0.1: [[4900, 490]], 0.01: [[4900, 49], [4900, 50]]})
    v2 = runs({0.1: [[4700, 470]], 0.01: [[4700, 47]]})
    assert app.tail_counts(v1, v2) == {"tail_count_v1": "49", "tail_count_v2": "47", "count_kept": "96"}
    big = runs({0.5: [[3000, 1500]]})
    assert app.tail_counts(big, big) == {
        "tail_count_v1": "1,500",
        "tail_count_v2": "1,500",
        "count_kept": "100",
    }


def test_tail_counts_without_an_earlier_model_set():
    v2 = runs({0.01: [[4700, 47]]})
    none = "none (no earlier model set)"
    assert app.tail_counts(None, v2) == {"tail_count_v1": none, "tail_count_v2": "47", "count_kept": none}
    assert app.tail_counts({}, v2)["tail_count_v1"] == none


def test_tail_counts_of_the_hand_results():
    s1, _ = hand_results()
    assert app.tail_counts(s1, s1)["tail_count_v2"] == "30"  # truck at IF 0.01
