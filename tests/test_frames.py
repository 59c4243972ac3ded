"""ltmpq.frames: stored results as tidy tables (chapters 1-3), from results built by hand in the shape
the stages store (fractions, null for an empty group, predictions as strings), so nothing is trained;
the head-tail gaps also on chapters 0-2's hand-computable results (the ``hand_*`` fixtures)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fakes import direct_gap, quant_sweep
from scipy import stats as sps

from ltmpq import blog, frames, load, tables
from ltmpq.analysis import ch1_evaluation as ch1
from ltmpq.analysis import ch4_mitigation as ch4
from ltmpq.config import Stage1Config
from ltmpq.results import encode_predictions
from ltmpq.uncertainty import mcnemar_exact, mean_ci, paired_drop_gap

# ------------------------------------------------------------------ fake stored results

IF = 0.01
SEEDS = (0, 1)
CFGS = [Stage1Config(imbalance_factor=IF, seed=s) for s in SEEDS]
TRAIN_COUNTS = [500, 300, 180, 110, 65, 40, 24, 14, 8, 5]
GROUPS = {"head": [0, 1, 2], "tail": [3, 4, 5, 6, 7, 8, 9], "many": [0, 1, 2], "medium": [3, 4, 5, 6],
          "few": []}  # fmt: skip
SOURCE = {"kind": "imagefolder-jpeg", "path": "/x", "sha256": "abc", "description": "fake"}

#: (method, seed) -> test metrics (fractions). "few" is null: an empty group.
TEST_METRICS = {
    ("baseline", 0): {"overall": 0.60, "head": 0.90, "tail": 0.40, "few": None, "balanced": 0.60},
    ("baseline", 1): {"overall": 0.64, "head": 0.86, "tail": 0.44, "few": None, "balanced": 0.64},
    ("crt", 0): {"overall": 0.76, "head": 0.80, "tail": 0.70, "few": None, "balanced": 0.76},
    ("crt", 1): {"overall": 0.80, "head": 0.82, "tail": 0.74, "few": None, "balanced": 0.80},
    ("lws", 0): {"overall": 0.70, "head": 0.84, "tail": 0.60, "few": None, "balanced": 0.70},
    ("lws", 1): {"overall": 0.72, "head": 0.86, "tail": 0.62, "few": None, "balanced": 0.72},
}


def _per_class(method: str, seed: int) -> list[float | None]:
    base = {"baseline": 0.1, "crt": 0.2, "lws": 0.3}[method]
    # class 9 is absent from the test split of seed 1: stored as null
    return [round(base + 0.05 * c + 0.01 * seed, 4) if (seed, c) != (1, 9) else None for c in range(10)]


def _split(method: str, seed: int, split: str) -> dict:
    m = dict(TEST_METRICS[method, seed])
    if split == "val":  # validation numbers differ from the test ones
        m = {k: None if v is None else v - 0.1 for k, v in m.items()}
    return {"metrics": m, "per_class": _per_class(method, seed), "confusion": [], "predictions": [0, 1, 2]}


def _stage1(cfg: Stage1Config, source: dict = SOURCE) -> dict:
    return {"kind": "stage1", "profile": "cpu", "imbalance_factor": cfg.imbalance_factor, "seed": cfg.seed,
            "train_counts": TRAIN_COUNTS, "groups": GROUPS,
            "val": _split("baseline", cfg.seed, "val"), "test": _split("baseline", cfg.seed, "test"),
            "test_labels": [0, 1, 2], "provenance": {"data_source": dict(source)}}  # fmt: skip


def _decoupled(cfg: Stage1Config, source: dict = SOURCE) -> dict:
    methods = {
        m: {
            "choice": {"epoch": 3},
            "val_curve": [0.1, 0.2],
            "val": _split(m, cfg.seed, "val"),
            "test": _split(m, cfg.seed, "test"),
        }  # fmt: skip
        for m in ("crt", "lws")
    }
    return {"kind": "decoupled", "imbalance_factor": cfg.imbalance_factor, "seed": cfg.seed,
            "methods": methods, "provenance": {"data_source": dict(source)}}  # fmt: skip


@pytest.fixture
def stored():
    return {c: _stage1(c) for c in CFGS}, {c: _decoupled(c) for c in CFGS}


@pytest.fixture
def frame(stored):
    return frames.metrics_frame(*stored)


def _values(df, method, metric, split="test") -> np.ndarray:
    sel = df[(df["method"] == method) & (df["metric"] == metric) & (df["split"] == split)]
    return sel.sort_values("seed")["value"].to_numpy()


# ------------------------------------------------------------------ report


def test_pct():
    assert frames.pct(0.25) == 25.0
    assert math.isnan(frames.pct(None))
    assert frames.pct(0.0) == 0.0


def test_metrics_frame_is_long_in_percent_with_null_as_nan(stored, frame):
    assert list(frame.columns) == ["imbalance_factor", "seed", "method", "split", "metric", "value"]
    # 2 seeds x 3 methods x 2 splits x 5 metrics
    assert len(frame) == 2 * 3 * 2 * 5
    assert set(frame["method"]) == {"baseline", "crt", "lws"}
    assert set(frame["split"]) == {"val", "test"}
    assert (frame["imbalance_factor"] == IF).all()
    for (method, seed), metrics in TEST_METRICS.items():
        for metric, v in metrics.items():
            row = frame[(frame["method"] == method) & (frame["seed"] == seed) & (frame["split"] == "test")
                        & (frame["metric"] == metric)]  # fmt: skip
            assert len(row) == 1
            got = row["value"].iloc[0]
            if v is None:
                assert math.isnan(got)
            else:
                assert got == pytest.approx(100 * v)
    val = _values(frame, "baseline", "overall", "val")
    assert val == pytest.approx([50.0, 54.0])  # the val split's own numbers, not the test ones


def test_metrics_frame_without_decoupled_has_only_the_baseline(stored):
    df = frames.metrics_frame(stored[0])
    assert set(df["method"]) == {"baseline"}
    assert len(df) == 2 * 2 * 5


def test_summarize_is_mean_ci_over_seeds(frame):
    s = frames.summarize(frame)
    assert {"imbalance_factor", "method", "split", "metric", "mean", "ci", "n"} <= set(s.columns)
    # one row per (IF, method, split, metric)
    assert len(s) == 3 * 2 * 5
    assert not s.duplicated(["imbalance_factor", "method", "split", "metric"]).any()
    for (method, _), metrics in TEST_METRICS.items():
        for metric in metrics:
            for split in ("val", "test"):
                row = s[(s["method"] == method) & (s["metric"] == metric) & (s["split"] == split)]
                assert len(row) == 1
                mean, half, n = mean_ci(_values(frame, method, metric, split))
                r = row.iloc[0]
                assert r["n"] == n
                if n == 0:  # the empty group: all seeds null
                    assert math.isnan(r["mean"]) and math.isnan(r["ci"])
                else:
                    assert r["mean"] == pytest.approx(mean) and r["ci"] == pytest.approx(half)
    row = s[(s["method"] == "baseline") & (s["metric"] == "overall") & (s["split"] == "test")].iloc[0]
    assert row["mean"] == pytest.approx(62.0)
    lo, hi = sps.t.interval(0.95, 1, loc=62.0, scale=sps.sem([60.0, 64.0]))
    assert row["ci"] == pytest.approx((hi - lo) / 2)
    assert row["n"] == 2


def test_summarize_by_other_columns(frame):
    s = frames.summarize(frame[frame["metric"] == "overall"], by=("method", "split", "metric"))
    assert set(s["method"]) == {"baseline", "crt", "lws"}
    assert (s["n"] == 2).all()


def test_blog_comparison_signs_and_rows(frame):
    cmp = ch1.table1_vs_blog(frames.summarize(frame))
    assert list(cmp.columns) == ["imbalance_factor", "method", "metric", "blog", "ours", "difference", "n"]
    # only what the blog has: baseline and cRT at IF 0.01, overall / head / tail (no lws, no balanced,
    # no val split)
    keys = set(zip(cmp["method"], cmp["metric"], strict=True))
    assert keys == {(m, k) for m in ("baseline", "crt") for k in ("overall", "head", "tail")}
    assert len(cmp) == 6
    assert (cmp["imbalance_factor"] == IF).all()
    for _, r in cmp.iterrows():
        assert r["blog"] == blog.TABLE1[IF, r["method"]][r["metric"]]
        ours = np.mean([100 * TEST_METRICS[r["method"], s][r["metric"]] for s in SEEDS])
        assert r["difference"] == pytest.approx(ours - r["blog"])  # ours minus the blog
        assert r["n"] == 2
    by = cmp.set_index(["method", "metric"])["difference"]
    assert by["baseline", "overall"] == pytest.approx(62.0 - 63.2)  # below the blog: negative
    assert by["crt", "overall"] == pytest.approx(78.0 - 75.8)  # above the blog: positive
    ours = cmp.set_index(["method", "metric"])["ours"]
    _, half, _ = mean_ci([60.0, 64.0])
    assert ours["baseline", "overall"] == f"62.0 ± {half:.1f}"


def test_blog_comparison_selected_methods(frame):
    cmp = ch1.table1_vs_blog(frames.summarize(frame), methods=("crt",))
    assert set(cmp["method"]) == {"crt"} and len(cmp) == 3


def test_blog_comparison_with_one_seed_has_no_interval(stored):
    one = {c: r for c, r in stored[0].items() if c.seed == 0}
    cmp = ch1.table1_vs_blog(frames.summarize(frames.metrics_frame(one)))
    assert set(cmp["method"]) == {"baseline"}
    ours = cmp.set_index("metric")["ours"]
    assert ours["overall"] == "60.0"  # no '±' for a single seed
    assert (cmp["n"] == 1).all()


def test_wide_has_mean_pm_ci_strings(frame):
    s = frames.summarize(frame)
    t = tables.wide(s, ["tail", "overall", "not_a_metric"])
    assert list(t.columns) == ["tail", "overall"]  # the requested order; unknown metrics dropped
    assert len(t) == 3  # one row per (IF, method)
    for method in ("baseline", "crt", "lws"):
        for metric in ("tail", "overall"):
            mean, half, _ = mean_ci(_values(frame, method, metric))
            assert t.loc[(IF, method), metric] == f"{mean:.1f} ± {half:.1f}"
    assert t.loc[(IF, "baseline"), "overall"].startswith("62.0 ± ")
    # the val split on request
    v = tables.wide(s, ["overall"], split="val")
    assert v.loc[(IF, "baseline"), "overall"].startswith("52.0 ± ")


def test_per_class_frame_rows_and_train_counts(stored):
    s1, dec = stored
    df = frames.per_class_frame(s1, dec)
    assert len(df) == 2 * 3 * 10  # seed x method x class
    assert not df.duplicated(["seed", "method", "class"]).any()
    for _, r in df.iterrows():
        assert r["train_count"] == TRAIN_COUNTS[r["class"]]
        expected = _per_class(r["method"], r["seed"])[r["class"]]
        if expected is None:
            assert math.isnan(r["accuracy"])
        else:
            assert r["accuracy"] == pytest.approx(100 * expected)
    assert df["accuracy"].isna().sum() == 3  # class 9 of seed 1, for each method
    base_only = frames.per_class_frame(s1)
    assert set(base_only["method"]) == {"baseline"} and len(base_only) == 2 * 10


def test_per_class_frame_val_split(stored):
    s1, _ = stored
    s1 = {c: r | {"val": r["val"] | {"per_class": [0.5] * 10}} for c, r in s1.items()}
    df = frames.per_class_frame(s1, split="val")
    assert (df["accuracy"] == 50.0).all()


def test_data_sources_deduplicates(stored):
    s1, dec = stored
    assert load.data_sources(s1, dec) == [SOURCE]
    other = dict(SOURCE, sha256="def")
    extra = {Stage1Config(imbalance_factor=0.1, seed=0): _stage1(CFGS[0], other)}
    got = load.data_sources(s1, dec, extra)
    assert len(got) == 2
    assert {s["sha256"] for s in got} == {"abc", "def"}
    assert load.data_sources() == []


# ------------------------------------------------------------------ bits_order


def test_bits_order_float_first_then_fewer_bits():
    assert frames.bits_order({"4", "float", "8", "6"}) == ["float", "8", "6", "4"]
    assert frames.bits_order(["2", "16", "float", "8", "8"]) == ["float", "16", "8", "2"]  # numeric


def test_bits_order_without_float():
    assert frames.bits_order(["4", "16", "8", "2"]) == ["16", "8", "4", "2"]  # not "8" > "4" > "2" > "16"
    assert frames.bits_order([]) == []


# ------------------------------------------------------------------ stored quantized sweeps

BITS = ("float", "8", "4")
METHODS = ("crt", "lws")
N_CLASSES = 4
LABELS = [0, 1, 2, 3, 0, 1, 2, 3, 3, 0]
#: fractions at float; each bit-width loses LOSS[bits] (and the "ablate" variant 0.01 more)
FLOAT_METRICS = {"overall": 0.80, "head": 0.90, "tail": 0.50, "few": None}
LOSS = {"float": 0.0, "8": 0.02, "4": 0.30}


def metric(variant: str, seed: int, method: str, bits: str, name: str) -> float | None:
    v = FLOAT_METRICS[name]
    if v is None:
        return None
    return round(
        v + 0.01 * seed + (0.05 if method == "lws" else 0) - LOSS[bits] - (variant == "ablate") * 0.01, 6
    )


def per_class(seed: int, method: str, bits: str) -> list[float | None]:
    return [round(0.9 - 0.2 * c - LOSS[bits] + 0.01 * seed, 6) if c != 3 or bits != "4" else None
            for c in range(N_CLASSES)]  # fmt: skip


def predictions(seed: int, method: str, bits: str) -> np.ndarray:
    rng = np.random.default_rng([seed, METHODS.index(method), BITS.index(bits)])
    return rng.integers(0, N_CLASSES, len(LABELS))


def quant_result(cfg: Stage1Config, variant: str = "default", keep: bool = True) -> dict:
    """A stored quantized sweep (the quantized stage's shape) of float, 8 and 4 bits."""

    def test(m: str, bits: str) -> dict:
        ev = {"metrics": {k: metric(variant, cfg.seed, m, bits, k) for k in FLOAT_METRICS},
              "per_class": per_class(cfg.seed, m, bits)}  # fmt: skip
        return ev | ({"predictions": encode_predictions(predictions(cfg.seed, m, bits))} if keep else {})

    val = {"metrics": {k: 0.1 for k in FLOAT_METRICS}, "per_class": [0.1] * N_CLASSES}
    header = {"profile": "cpu", "train_counts": [50, 20, 8, 2], "calibration_counts": None}
    return quant_sweep(cfg, BITS, test, methods=METHODS, val=val, **header)


def stage1_result(cfg: Stage1Config, labels=LABELS) -> dict:
    return {"kind": "stage1", "imbalance_factor": cfg.imbalance_factor, "seed": cfg.seed,
            "test_labels": list(labels)}  # fmt: skip


@pytest.fixture
def qres() -> dict[str, dict]:
    return {v: {c: quant_result(c, v, keep=v == "default") for c in CFGS} for v in ("default", "ablate")}


def test_quant_frame_rows_and_values(qres):
    df = frames.quant_frame(qres)
    assert list(df.columns) == ["variant", "imbalance_factor", "seed", "method", "bits", "metric", "value"]
    assert len(df) == 2 * len(CFGS) * len(BITS) * len(METHODS) * len(FLOAT_METRICS)
    assert not df.duplicated(["variant", "seed", "method", "bits", "metric"]).any()
    assert set(df["bits"]) == set(BITS) and set(df["variant"]) == {"default", "ablate"}
    assert (df["imbalance_factor"] == IF).all()
    for row in df.itertuples():
        v = metric(row.variant, row.seed, row.method, row.bits, row.metric)
        if v is None:
            assert math.isnan(row.value)
        else:
            assert row.value == pytest.approx(100 * v)
    one = df[(df.variant == "ablate") & (df.seed == 1) & (df.method == "lws") & (df.bits == "4")]
    assert one.set_index("metric")["value"]["overall"] == pytest.approx(55.0)  # 80 + 1 + 5 - 30 - 1


def test_quant_frame_val_split(qres):
    df = frames.quant_frame(qres, split="val")
    assert len(df) == 2 * len(CFGS) * len(BITS) * len(METHODS) * len(FLOAT_METRICS)
    assert df["value"].to_numpy() == pytest.approx(10.0)


def test_quant_per_class_rows_and_values(qres):
    df = frames.quant_per_class(qres["default"])
    assert list(df.columns) == ["imbalance_factor", "seed", "method", "bits", "class", "accuracy"]
    assert len(df) == len(CFGS) * len(BITS) * len(METHODS) * N_CLASSES
    for seed, method, bits, c, acc in df[["seed", "method", "bits", "class", "accuracy"]].itertuples(
        index=False
    ):
        v = per_class(seed, method, bits)[c]
        if v is None:
            assert math.isnan(acc)
        else:
            assert acc == pytest.approx(100 * v)
    assert df["accuracy"].isna().sum() == len(CFGS) * len(METHODS)  # class 3 at 4 bits


def test_drop_frame_against_the_float_row_of_the_same_run(qres):
    frame = frames.quant_frame(qres)
    out = frames.drop_frame(frame)
    assert len(out) == len(frame)
    pd.testing.assert_frame_equal(out[frame.columns], frame)
    ref = {
        (r.variant, r.seed, r.method, r.metric): r.value for r in frame[frame.bits == "float"].itertuples()
    }
    for row in out.itertuples():
        base = ref[row.variant, row.seed, row.method, row.metric]
        if math.isnan(row.value):
            assert math.isnan(row.drop) and math.isnan(row.relative_drop)
            continue
        assert row.reference == pytest.approx(base)
        assert row.drop == pytest.approx(base - row.value)
        assert row.relative_drop == pytest.approx(100 * (base - row.value) / base)
        assert row.drop == pytest.approx(100 * LOSS[row.bits])  # by construction
    fl = out[out.bits == "float"]
    assert (fl["drop"].dropna() == 0).all()
    one = out[(out.variant == "default") & (out.seed == 0) & (out.method == "crt") & (out.bits == "4")]
    one = one.set_index("metric")
    assert one.loc["tail", "drop"] == pytest.approx(30.0)
    assert one.loc["tail", "relative_drop"] == pytest.approx(60.0)  # 30 of 50 points
    assert one.loc["head", "relative_drop"] == pytest.approx(100 * 30 / 90)


def test_drop_frame_other_reference(qres):
    out = frames.drop_frame(frames.quant_frame(qres), reference="8")
    row = out[(out.variant == "default") & (out.seed == 1) & (out.method == "lws") & (out.bits == "4")]
    row = row.set_index("metric").loc["overall"]
    assert row["reference"] == pytest.approx(84.0)  # 80 + 1 + 5 - 2
    assert row["drop"] == pytest.approx(28.0)
    assert row["relative_drop"] == pytest.approx(100 * 28 / 84)


def test_quant_predictions_decodes_the_stored_strings(qres):
    s1 = {c: stage1_result(c) for c in CFGS}
    labels, preds = frames.quant_predictions(qres["default"], s1, IF, "lws", "4")
    np.testing.assert_array_equal(labels, LABELS)
    assert preds.shape == (len(SEEDS), len(LABELS))
    for i, s in enumerate(SEEDS):
        np.testing.assert_array_equal(preds[i], predictions(s, "lws", "4"))
    assert not np.array_equal(preds[0], preds[1])


def test_quant_predictions_keeps_by_cfg_order_and_filters_the_imbalance_factor():
    other = Stage1Config(imbalance_factor=0.1, seed=0)
    cfgs = [CFGS[1], other, CFGS[0]]
    by_cfg = {c: quant_result(c) for c in cfgs}
    s1 = {c: stage1_result(c, labels=[1, 1] if c is other else LABELS) for c in cfgs}
    labels, preds = frames.quant_predictions(by_cfg, s1, IF, "crt", "float")
    assert preds.shape == (2, len(LABELS))
    np.testing.assert_array_equal(preds[0], predictions(1, "crt", "float"))
    np.testing.assert_array_equal(preds[1], predictions(0, "crt", "float"))


def test_quant_predictions_reads_list_encoded_predictions():
    """More than 10 classes: predictions are stored as a list of ints."""
    labels = np.arange(12)
    pred = np.array([11, 10, 2, 3, 4, 5, 6, 7, 8, 9, 1, 0])
    assert isinstance(encode_predictions(pred), list)
    by_cfg = {c: quant_result(c) for c in CFGS}
    for c in CFGS:
        by_cfg[c]["entries"]["8"]["methods"]["crt"]["test"]["predictions"] = encode_predictions(pred)
    s1 = {c: stage1_result(c, labels) for c in CFGS}
    got_labels, preds = frames.quant_predictions(by_cfg, s1, IF, "crt", "8")
    np.testing.assert_array_equal(got_labels, labels)
    np.testing.assert_array_equal(preds, np.stack([pred, pred]))


def test_quant_predictions_without_kept_predictions_raises(qres):
    s1 = {c: stage1_result(c) for c in CFGS}
    with pytest.raises(ValueError, match="keep_predictions"):
        frames.quant_predictions(qres["ablate"], s1, IF, "crt", "8")
    mixed = {CFGS[0]: quant_result(CFGS[0]), CFGS[1]: quant_result(CFGS[1], keep=False)}
    with pytest.raises(ValueError, match="did not keep its predictions"):
        frames.quant_predictions(mixed, s1, IF, "crt", "8")


def test_quant_predictions_on_different_test_labels_raises(qres):
    s1 = {CFGS[0]: stage1_result(CFGS[0]), CFGS[1]: stage1_result(CFGS[1], labels=LABELS[::-1])}
    with pytest.raises(ValueError, match="other images"):
        frames.quant_predictions(qres["default"], s1, IF, "crt", "8")


def test_quant_predictions_feed_the_paired_tests(qres):
    """From stored sweeps to McNemar and the drop gap: correctness is prediction == label."""
    s1 = {c: stage1_result(c) for c in CFGS}
    labels, ref = frames.quant_predictions(qres["default"], s1, IF, "crt", "float")
    _, new = frames.quant_predictions(qres["default"], s1, IF, "crt", "4")
    ok_ref, ok_new = ref == labels, new == labels
    got = paired_drop_gap(labels, ok_ref, ok_new, [0, 1], [2, 3], n_boot=100)
    assert got["estimate"] == pytest.approx(direct_gap(labels, ok_ref, ok_new, [0, 1], [2, 3])[0])
    mc = mcnemar_exact(ok_ref[0], ok_new[0])
    assert mc["a_only"] == int(np.sum(ok_ref[0] & ~ok_new[0]))
    assert mc["b_only"] == int(np.sum(~ok_ref[0] & ok_new[0]))


# ------------------------------------------------------------------ gaps


def test_gap_frame_is_head_minus_tail_per_test_run(hand_frame):
    """gap_frame: one row per (IF, method, seed), gap = head - tail of the test split."""
    g = frames.gap_frame(hand_frame)
    assert list(g.columns) == ["imbalance_factor", "method", "seed", "gap"]
    assert len(g) == 3 * 5 * 3
    base = g[(g["imbalance_factor"] == 0.01) & (g["method"] == "baseline")].sort_values("seed")
    assert base["gap"].tolist() == pytest.approx([40, 38, 36])
    lws = g[(g["imbalance_factor"] == 0.1) & (g["method"] == "lws")].sort_values("seed")
    assert lws["gap"].tolist() == pytest.approx([-8, -9, -10])


def test_gap_frame_other_split_and_groups(hand_frame):
    """gap_frame reads the split and the two groups asked for (val is 5 wider; overall - tail = 0.4 gap)."""
    g = frames.gap_frame(hand_frame, split="val").set_index(["imbalance_factor", "method", "seed"])["gap"]
    assert g.loc[(0.01, "baseline", 0)] == pytest.approx(45)
    g = frames.gap_frame(hand_frame, high="overall", low="tail").set_index(
        ["imbalance_factor", "method", "seed"]
    )
    assert g.loc[(0.01, "baseline", 0), "gap"] == pytest.approx(0.4 * 40)


def test_gap_per_seed_is_indexed_by_seed(hand_frame):
    """gap_per_seed: one IF and method's gaps as a Series indexed by seed."""
    g = frames.gap_per_seed(hand_frame, 0.02, "crt")
    assert list(g.index) == [0, 1, 2]
    assert g.tolist() == pytest.approx([20, 23, 20])


@pytest.mark.parametrize(("f", "method", "named"), [(0.01, "focal", "'focal'"), (0.5, "baseline", "0.5")])
def test_gap_per_seed_unknown_method_or_if_raises_naming_it(hand_frame, f, method, named):
    """gap_per_seed raises ValueError naming a method or imbalance factor that has no runs."""
    with pytest.raises(ValueError, match=named):
        frames.gap_per_seed(hand_frame, f, method)


# ------------------------------------------------------------------ bad input


def test_bits_that_a_stored_sweep_lacks_get_a_clear_error():
    """Probe: quant_predictions(..., 8) and layer_losses(..., 7) raised a bare KeyError."""
    cfg = Stage1Config(imbalance_factor=0.1)
    entry = {"methods": {"crt": {"test": {"predictions": "0123456789"}}}}
    by_cfg = {cfg: {"entries": {"float": entry, "8": entry}}}
    s1 = {cfg: {"test_labels": list(range(10))}}
    assert frames.quant_predictions(by_cfg, s1, 0.1, "crt", 8)[1].shape == (1, 10)  # 8 reads as "8"
    with pytest.raises(ValueError, match=r"if0.1-seed0 has no sweep at bits 4; it has \['float', '8'\]"):
        frames.quant_predictions(by_cfg, s1, 0.1, "crt", 4)
    with pytest.raises(ValueError, match=r"has no method 'lws'; it has \['crt'\]"):
        frames.quant_predictions(by_cfg, s1, 0.1, "lws", 8)
    r = {"sweep": {"crt": {"float": "01", "layers": {"L1": {"4": {}}, "L2": {"4": {}, "6": {}}}}}}
    with pytest.raises(ValueError, match=r"no layer quantized at 7 bits; it has \[4, 6\]"):
        ch4.layer_losses(r, "crt", 7)
    with pytest.raises(ValueError, match=r"no head 'lws'; it has \['crt'\]"):
        ch4.layer_losses(r, "lws", 4)
