"""Chapter 5's scale ladder: the classic VGG16 classifier (ltmpq.models), the stage-1 fields and
profile settings that name the ladder's models (ltmpq.config), its tasks (ltmpq.engine) and its
analysis (ltmpq.analysis.ch5_six_bits.ladder_*), the latter on a synthetic store whose drops are
worked out by hand in the comments."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sps

from ltmpq import engine, plan
from ltmpq.analysis import ch5_six_bits as ch5
from ltmpq.config import PROFILES, Profile, Stage1Config, config_hash, get_profile
from ltmpq.models import VGG16
from ltmpq.training import build_model

# ------------------------------------------------------------------ the classic classifier


def test_classic_classifier_shapes_and_parameters():
    m = VGG16(width=0.25, hidden=4096, dropout=0.5)
    assert m.feature_dim == 4096
    assert m.layers["L14"].weight.shape == (4096, 128)  # 512 x 0.25 conv channels in
    assert m.layers["L15"].weight.shape == (4096, 4096)
    assert m.classifier.weight.shape == (10, 4096)
    fc = (128 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 10 + 10)
    conv = sum(p.numel() for p in VGG16(width=0.25).parameters()) - (2 * (128 * 128 + 128) + 128 * 10 + 10)
    assert sum(p.numel() for p in m.parameters()) == conv + fc


def test_dropout_acts_in_training_only_and_is_absent_by_default():
    m = VGG16(width=1 / 16, hidden=64, dropout=0.5)
    x = torch.randn(4, 3, 32, 32)
    m.train()
    torch.manual_seed(0)
    a = m.features(x)
    # half the units dropped, the others scaled by 1 / (1 - p) = 2
    assert 0.3 < (a == 0).float().mean().item() < 0.8
    assert not torch.equal(a, m.features(x))  # another draw
    m.eval()
    with torch.no_grad():
        assert torch.equal(m.features(x), m.features(x))
    assert isinstance(VGG16(width=1 / 16).drop, torch.nn.Identity)


def test_without_dropout_a_model_draws_no_random_numbers_in_training():
    # so the models trained before the classic classifier existed stay reproducible
    x = torch.randn(2, 3, 32, 32)

    def draw_after_features(model) -> torch.Tensor:
        model.train()
        torch.manual_seed(5)
        model.features(x)
        return torch.rand(1)

    torch.manual_seed(5)
    untouched = torch.rand(1)
    assert torch.equal(draw_after_features(build_model(Stage1Config(0.1, width=1 / 16))), untouched)
    classic = build_model(Stage1Config(0.1, width=1 / 16, hidden=32, dropout=0.5))
    assert not torch.equal(draw_after_features(classic), untouched)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"hidden": 0}, "hidden"), ({"hidden": 4.5}, "hidden"), ({"hidden": True}, "hidden"),
     ({"dropout": 1.0}, "dropout"), ({"dropout": -0.1}, "dropout")],
)  # fmt: skip
def test_model_and_config_reject_bad_classifier_shapes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VGG16(width=0.25, **kwargs)
    with pytest.raises(ValueError, match=match):
        Stage1Config(0.01, **kwargs)


def test_build_model_follows_the_config_classifier():
    m = build_model(Stage1Config(0.01, width=1 / 16, hidden=96, dropout=0.25))
    assert m.feature_dim == 96 and m.drop.p == 0.25


# ------------------------------------------------------------------ names of the ladder's models


def test_the_new_fields_leave_every_stored_name_as_it_was():
    assert config_hash(Stage1Config(imbalance_factor=0.01)) == "a0f9e7edca4d"  # results/cpu-v1/stage1/
    assert get_profile("cpu").stage1_config(0.01, 0).key == "6d41e14d1fd8"  # results/cpu/stage1/
    assert Stage1Config(0.01).tag == "if0.01-seed0"
    assert Stage1Config(0.1, seed=1, width=1 / 16).tag == "if0.1-seed1"  # the smoke models


def test_ladder_models_say_how_they_differ():
    base = get_profile("cpu").stage1_config(0.01, 2)
    assert replace(base, width=0.5).tag == "if0.01-seed2-w0.5"
    assert replace(base, hidden=4096, dropout=0.5).tag == "if0.01-seed2-fc4096-drop0.5"
    assert replace(base, width=1.0, hidden=4096).tag == "if0.01-seed2-w1-fc4096"
    assert len({base.key, replace(base, width=0.5).key, replace(base, dropout=0.5).key}) == 3


def test_profile_rungs():
    prof = get_profile("cpu")
    assert prof.ladder_base == "width 0.25"
    base = prof.stage1_config(0.01, 1)
    wide = prof.rung_config(base, "width 0.5")
    assert wide == replace(base, width=0.5) and wide.epochs == 60 and wide.schedule == "onecycle"
    assert prof.rung_config(base, "classic classifier").hidden == 4096
    classic = replace(base, hidden=4096, dropout=0.5)
    assert prof.ladder_rungs(base) == {
        "width 0.25": base,
        "width 0.5": wide,
        "width 1.0": replace(base, width=1.0),
        "classic classifier": classic,
    }
    assert prof.on_ladder(base) and not prof.on_ladder(prof.stage1_config(0.01, 3))
    assert not prof.on_ladder(prof.stage1_config(0.1, 0))
    with pytest.raises(ValueError, match="unknown ladder rung 'width 2'.*'width 0.5'"):
        prof.rung_config(base, "width 2")


@pytest.mark.parametrize(
    ("ladder", "variants", "match"),
    [({"w": {"widht": 0.5}}, ("default",), "unknown stage-1 fields \\['widht'\\]"),
     ({"w": {"seed": 3}}, ("default",), "unknown stage-1 fields \\['seed'\\]"),
     ({"w": {"width": 0.25}}, ("default",), "must change the profile's model"),
     ({"w": {}}, ("default",), "must change the profile's model"),
     ({"w": {"width": -1.0}}, ("default",), "width must be in"),
     ({"w": {"width": 0.5}}, ("nope",), "unknown quantizer variants \\['nope'\\]")],
)  # fmt: skip
def test_bad_ladders_are_refused(ladder, variants, match):
    with pytest.raises(ValueError, match=match):
        Profile("x", (0.01,), (0,), stage1={"width": 0.25}, ladder=ladder, ladder_variants=variants)


# ------------------------------------------------------------------ the ladder's tasks


def test_the_ladder_tasks_train_decouple_and_quantize_each_rung_after_what_it_needs():
    prof = get_profile("cpu")
    tasks = engine.grid("cpu", seeds=[1], stages=["ladder"])
    keys = [t.key for t in tasks]
    assert (
        len(keys) == len(set(keys)) == 2 + 3 * (2 + 2)
    )  # base sweeps, then 3 rungs x (train, stage 2, 2 sweeps)
    by_key = {t.key: t for t in tasks}
    for t in tasks:
        assert t.stage1.imbalance_factor == 0.01 and t.stage1.seed == 1
        # what it builds on comes first when the grid makes it (the base model's stage 2 is made on demand)
        assert all(keys.index(d) < keys.index(t.key) for d in t.deps if d in keys)
    wide = prof.rung_config(prof.stage1_config(0.01, 1), "width 0.5")
    assert by_key["stage1-if0.01-seed1-w0.5"].stage1 == wide
    assert by_key["quantized-if0.01-seed1-w0.5-default"].deps == ("decoupled-if0.01-seed1-w0.5",)
    assert {t.variant for t in tasks if t.kind == "quantized"} == set(prof.ladder_variants)
    # asked with chapter 3's sweeps, the base rung's default sweep is listed once
    both = [
        t.key for t in engine.grid("cpu", seeds=[1], imbalance_factors=[0.01], stages=["quantized", "ladder"])
    ]
    assert both.count("quantized-if0.01-seed1-default") == 1


def test_the_ladder_outside_its_imbalance_factors_or_seeds_is_nothing_to_do():
    with pytest.raises(
        ValueError, match=r"stage ladder runs at imbalance factors \[0.01\].*seeds \[0, 1, 2\]"
    ):
        plan.grid("cpu", imbalance_factors=[0.1], stages=("ladder",))
    with pytest.raises(ValueError, match="nothing to do"):
        plan.grid("cpu", seeds=[4], stages=("ladder",))
    assert sorted({r.stage1.seed for r in plan.grid("cpu", stages=("ladder",))}) == [0, 1, 2]


def test_profiles_without_a_ladder_plan_no_ladder():
    assert not PROFILES["cpu-v1"].ladder
    with pytest.raises(ValueError, match="nothing to do"):
        plan.grid("cpu-v1", stages=("ladder",))


# ------------------------------------------------------------------ the ladder's analysis

RUNGS = ("width 0.25", "width 0.5")
SEEDS = (0, 1, 2)
#: (rung, variant, method) -> (head drop, tail drop) at 6 and 4 bits, seed 1; seed s adds
#: 0.1 * (s - 1) to the head and 0.4 * (s - 1) to the tail, so Δ = tail - head moves by 0.3 * (s - 1)
MEANS = {
    ("width 0.25", "default", "baseline"): {"6": (0.0, 1.0), "4": (1.0, 4.0)},
    ("width 0.25", "default", "crt"): {"6": (0.0, 0.0), "4": (1.0, 1.0)},
    ("width 0.5", "default", "baseline"): {"6": (0.0, 1.2), "4": (0.0, 9.0)},
    ("width 0.5", "default", "crt"): {"6": (0.0, 0.0), "4": (1.0, -2.0)},
}


def _sweep(rung: str, variant: str, seed: int) -> dict:
    entries = {}
    for b in ("float", "8", "4", "6"):  # stored fewest bits first: the tables must put 6 first
        methods = {}
        for m in ("baseline", "crt", "lws"):  # LWS is never shown
            h, t = (0.0, 0.0) if b in ("float", "8") or m == "lws" else MEANS[(rung, variant, m)][b]
            h, t = (h + 0.1 * (seed - 1), t + 0.4 * (seed - 1)) if b in ("6", "4") and m != "lws" else (h, t)
            methods[m] = {
                "test": {"metrics": {"overall": 0.6, "head": (80 - h) / 100, "tail": (50 - t) / 100}}
            }
        entries[b] = {"methods": methods}
    return {"entries": entries}


@pytest.fixture
def deltas() -> pd.DataFrame:
    qres = {
        r: {"default": {replace(Stage1Config(0.01, seed=s), width=w): _sweep(r, "default", s) for s in SEEDS}}
        for r, w in zip(RUNGS, (0.25, 0.5), strict=True)
    }
    drops = ch5.ladder_drops(qres)
    assert list(dict.fromkeys(drops["rung"])) == list(RUNGS)
    return ch5.ladder_deltas(drops)


def test_ladder_deltas_per_seed(deltas):
    d = deltas.set_index(["rung", "variant", "method", "bits", "seed"])
    assert len(d) == 2 * 2 * 2 * 3  # rungs x methods x bits x seeds; no LWS, no 8 bits
    r = d.loc[("width 0.5", "default", "baseline", "4", 2)]
    assert (r["head"], r["tail"], r["delta"]) == pytest.approx((0.1, 9.4, 9.3))  # seed 2: +0.1, +0.4


def test_ladder_table_cells(deltas):
    t = ch5.ladder_table(deltas)
    half = sps.t.ppf(0.975, 2) / math.sqrt(3)  # the t half-width of three values with sd 1
    cell = t.loc[("default", "baseline (CE)", "4 bits"), ("width 0.5", "Δ")]
    assert cell == f"9.0 ± {0.3 * half:.1f}"  # Δ = 9 - 0 = 9 at seed 1, sd 0.3
    assert t.loc[("default", "cRT", "6 bits"), ("width 0.25", "head / tail")] == (
        f"0.0 ± {0.1 * half:.1f} / 0.0 ± {0.4 * half:.1f}"
    )
    assert list(t.columns.get_level_values(0).unique()) == list(RUNGS)
    assert [i[2] for i in t.index] == ["6 bits", "4 bits"] * 2 and [i[1] for i in t.index][::2] == [
        "baseline (CE)",
        "cRT",
    ]


def test_ladder_trend_is_a_welch_interval_of_the_difference(deltas):
    tr = ch5.ladder_trend(deltas, "width 0.25").set_index(["method", "bits"])
    assert set(tr["rung"]) == {"width 0.5"}
    # baseline at 4 bits: Δ 3 -> 9, both with sd 0.3 over three seeds: the Welch interval is the
    # pooled one, 6 ± t(0.975, df 4) * 0.3 * sqrt(2 / 3)
    r = tr.loc[("baseline", "4")]
    half = sps.t.ppf(0.975, 4) * 0.3 * math.sqrt(2 / 3)
    assert (r["base_delta"], r["rung_delta"], r["difference"]) == pytest.approx((3.0, 9.0, 6.0))
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((6 - half, 6 + half))
    assert r["change"] == "grows"
    assert tr.loc[("crt", "4"), "change"] == "shrinks"  # 0 -> -3
    assert tr.loc[("baseline", "6"), "change"] == "no detectable change"  # 1.0 -> 1.2, half 0.68
    with pytest.raises(ValueError, match="base rung 'width 1' not in the ladder's rungs"):
        ch5.ladder_trend(deltas, "width 1")


def test_ladder_facts_sentences(deltas):
    facts = ch5.ladder_facts(ch5.ladder_trend(deltas, "width 0.25"), ["default", "absent"])
    assert facts["ladder_trend_0"].startswith("at 6 bits, width 0.5: Δ +1.0 → +1.2 (no detectable change")
    assert "at 4 bits, width 0.5: Δ +3.0 → +9.0 (grows; difference +6.0 [" in facts["ladder_trend_0"]
    assert facts["ladder_trend_1"] == "nothing to compare (no wider rung computed)"
    assert (facts["ladder_detected"], facts["ladder_cells"]) == ("1", 2)  # baseline: 4 bits grows
    assert facts["ladder_comparison"] == "Of 2 comparisons, 1 show a change the seeds can detect."


def test_ladder_trend_without_spread_has_no_interval():
    d = pd.DataFrame(
        {"rung": ["a", "a", "b", "b"], "variant": "v", "method": "baseline", "bits": "6",
         "seed": [0, 1, 0, 1], "head": 0.0, "tail": 0.0, "delta": [1.0, 1.0, 2.0, 2.0]}
    )  # fmt: skip
    r = ch5.ladder_trend(d, "a").iloc[0]
    assert r["difference"] == 1.0 and np.isnan(r["ci_low"]) and r["change"] == "no detectable change"


def test_macs_per_image_counts_the_classic_classifiers_layers():
    # width 1 by hand: tests/test_paper.py; here what the 4096-wide layers add
    classic = VGG16(width=0.25, hidden=4096)
    assert classic.macs_per_image() - VGG16(width=0.25).macs_per_image() == (
        128 * 4096 + 4096 * 4096 + 4096 * 10 - (128 * 128 * 2 + 128 * 10)
    )


def _s1(cfgs):
    metrics = {c: {"overall": 0.5 + 0.1 * c.seed, "head": 0.8, "tail": 0.3} for c in cfgs}
    return {c: {"test": {"metrics": metrics[c]}, "train_seconds": 600.0 * (1 + c.seed)} for c in cfgs}


def test_ladder_models_table():
    base = [Stage1Config(0.01, seed=s) for s in (0, 1)]
    classic = [replace(c, hidden=4096, dropout=0.5) for c in base]
    wide = replace(base[0], width=0.5)
    s1 = {"width 0.25": _s1(base), "classic": _s1(classic)}
    t = ch5.ladder_models(s1, {"width 0.25": base[0], "classic": classic[0], "width 0.5": wide},
                          {"width 0.5": "0 of 2 models trained"})  # fmt: skip
    assert list(t.index) == ["width 0.25", "classic", "width 0.5"]
    assert t.loc["classic", "L14/L15 width"] == 4096 and t.loc["width 0.25", "L14/L15 width"] == 128
    assert t.loc["classic", "dropout"] == "0.5"
    assert t.loc["width 0.25", "parameters (M)"] == pytest.approx(0.956154)
    half = sps.t.ppf(0.975, 1) * np.std([50, 60], ddof=1) / math.sqrt(2)
    assert t.loc["classic", "float overall"] == f"55.0 ± {half:.1f}"
    assert t.loc["classic", "trained min / model"] == pytest.approx(15.0)  # (600 + 1200) / 2 s
    ratio = VGG16(width=0.5).macs_per_image() / VGG16(width=0.25).macs_per_image()  # 3.96
    assert t.loc["width 0.5", "× first rung"] == pytest.approx(ratio)
    assert t.loc["width 0.5", "projected min / model"] == pytest.approx(15.0 * ratio)  # the base's 15 min
    assert t.loc["width 0.5", "status"] == "0 of 2 models trained"
    assert pd.isna(t.loc["width 0.5", "float tail"]) and t.loc["classic", "status"] == "2 seeds"
    with pytest.raises(ValueError, match="first rung 'width 0.5' has no stage-1 results"):
        ch5.ladder_models(s1, {"width 0.5": wide, "width 0.25": base[0]})


def test_ladder_summary_says_what_can_be_compared(deltas):
    empty = ch5.ladder_trend(deltas[deltas["rung"] == "width 0.25"], "width 0.25")
    assert empty.empty and "change" in empty.columns
    facts = ch5.ladder_facts(empty, ["default", "naive"])  # what the book says with one rung computed
    nothing = "nothing to compare (no wider rung computed)"
    assert facts == {
        "ladder_trend_0": nothing,
        "ladder_trend_1": nothing,
        "ladder_detected": "none",
        "ladder_cells": 0,
        "ladder_comparison": "With no wider rung computed there is no comparison yet.",
    }
    s = ch5.ladder_summary(empty, {"width 0.5": "…"}, "width 0.25")
    assert "Only the first rung (width 0.25)" in s and "missing: width 0.5" in s and "cannot say" in s
    trend = ch5.ladder_trend(deltas, "width 0.25")
    assert "not computed: classic" in ch5.ladder_summary(trend, {"classic": "…"}, "width 0.25")
    assert ch5.ladder_summary(trend, {}, "width 0.25").startswith("Every rung is computed")


def test_ladder_results_leave_out_an_incomplete_rung_only_when_asked():
    from fakes import save_fake

    from ltmpq import load, results
    from ltmpq.params import ChapterParams

    prof = get_profile("cpu")
    trained = {prof.stage1_config(0.01, s) for s in prof.ladder_seeds}
    trained |= {prof.rung_config(c, "classic classifier") for c in list(trained)}
    for run in plan.unique(plan.grid("cpu", [0.01], list(prof.ladder_seeds), ["stage1", "ladder"])):
        if run.stage1 in trained and run.kind in ("stage1", "quantized"):
            save_fake(run, "cpu")
    params = ChapterParams("cpu", False, (0.01,), None)
    with pytest.raises(results.MissingResultError, match="w0.5"):
        load.ladder_results(params)
    quant, s1, missing = load.ladder_results(params, allow_missing=True)
    assert list(s1) == list(quant) == ["width 0.25", "classic classifier"]
    assert list(missing) == ["width 0.5", "width 1.0"]
    assert [c.seed for c in s1["classic classifier"]] == [0, 1, 2]
    assert set(quant["width 0.25"]) == set(prof.ladder_variants)

    assert "0 of 3 models trained" in missing["width 0.5"] and "--stage ladder" in missing["width 0.5"]
    # the first rung is never optional
    plan.result_path("cpu", "stage1", prof.stage1_config(0.01, 0)).unlink()
    with pytest.raises(results.MissingResultError, match="if0.01-seed0"):
        load.ladder_results(params, allow_missing=True)
    with pytest.raises(ValueError, match="ladder of profile 'cpu' runs at imbalance factors \\[0.01\\]"):
        load.ladder_results(ChapterParams("cpu", False, (0.1,), None))


def test_ladder_variant_check():
    assert "is the closest" in ch5.ladder_variant_check("naive", ["default", "naive"])
    msg = ch5.ladder_variant_check("logits", ["default", "naive"])
    assert "ran naive, but the closest" in msg and "now logits" in msg and "--stage ladder" in msg


def test_ladder_drops_refuses_an_empty_ladder():
    with pytest.raises(ValueError, match="no rungs"):
        ch5.ladder_drops({})
