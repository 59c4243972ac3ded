"""ltmpq.correlation: rank and partial rank correlations over seeds and classes, with bootstrap
intervals, on constructed data; predictor comparisons; and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ltmpq import correlation as co


def seed_class_frame(n_seeds: int, n_classes: int, make) -> pd.DataFrame:
    """One row per (seed, class); ``make(rng, classes) -> dict of columns`` per seed."""
    rng = np.random.default_rng(0)
    parts = []
    for s in range(n_seeds):
        classes = np.arange(n_classes)
        parts.append(pd.DataFrame({"seed": s, "class": classes, **make(rng, classes)}))
    return pd.concat(parts, ignore_index=True)


def test_rank_correlation_recovers_a_monotone_relation():
    frame = seed_class_frame(4, 10, lambda rng, c: {"x": c + 0.01 * rng.standard_normal(c.size),
                                                    "y": np.exp(c), "z": -(c**3)})  # fmt: skip
    up = co.rank_correlation(frame, "x", "y", n_boot=500)
    assert up["estimate"] == pytest.approx(1.0) and up["ci_low"] > 0.95 and up["ci_high"] <= 1 + 1e-12
    assert up["n"] == 10 and up["n_seeds"] == 4 and len(up["per_seed"]) == 4
    down = co.rank_correlation(frame, "x", "z", n_boot=500)
    assert down["estimate"] == pytest.approx(-1.0) and down["ci_high"] < -0.95


def test_rank_correlation_of_independent_noise_is_near_zero_with_a_ci_around_it():
    frame = seed_class_frame(5, 30, lambda rng, c: {"x": rng.standard_normal(c.size),
                                                    "y": rng.standard_normal(c.size)})  # fmt: skip
    r = co.rank_correlation(frame, "x", "y", n_boot=1000, seed=1)
    assert abs(r["estimate"]) < 0.2
    assert r["ci_low"] < 0 < r["ci_high"]
    assert r["ci_high"] - r["ci_low"] < 0.8  # an interval, not [-1, 1]
    assert r["pvalue"] > 0.05
    # the classes are the same classes in every seed: with class-level noise shared by all seeds,
    # the seeds agree exactly, yet the interval must still reflect the classes' sampling noise
    shared = seed_class_frame(4, 30, lambda rng, c: {})
    noise = np.random.default_rng(3).standard_normal((2, 30))
    shared["x"], shared["y"] = noise[0][shared["class"]], noise[1][shared["class"]]
    r = co.rank_correlation(shared, "x", "y", n_boot=1000)
    assert r["per_seed"] == [r["per_seed"][0]] * 4
    assert r["ci_low"] < 0 < r["ci_high"] and r["ci_high"] - r["ci_low"] > 0.4, r


def test_rank_correlation_ci_reflects_disagreeing_seeds():
    # two seeds see rho = +1, two rho = -1: the mean is 0 on every class resample, so only the
    # resampling of seeds can (and must) make the interval wide
    frame = seed_class_frame(4, 10, lambda rng, c: {"x": c * 1.0})
    frame["y"] = np.where(frame["seed"] < 2, 1, -1) * frame["x"]
    r = co.rank_correlation(frame, "x", "y", n_boot=500)
    assert r["per_seed"] == pytest.approx([1, 1, -1, -1])
    assert r["estimate"] == pytest.approx(0.0, abs=1e-12)
    assert r["ci_low"] <= -0.5 and r["ci_high"] >= 0.5, r


def test_rank_correlation_averages_within_seed_correlations():
    # each seed shifts every class by the same amount: ranks pooled across seeds would see rho ~ 1,
    # the documented estimator (mean of per-seed rhos) sees the within-seed independence
    frame = seed_class_frame(4, 12, lambda rng, c: {"x": rng.standard_normal(c.size),
                                                    "y": rng.standard_normal(c.size)})  # fmt: skip
    frame["x"] += 100 * frame["seed"]
    frame["y"] += 100 * frame["seed"]
    r = co.rank_correlation(frame, "x", "y", n_boot=200)
    from scipy import stats

    per_seed = [stats.spearmanr(g["x"], g["y"]).statistic for _, g in frame.groupby("seed")]
    assert r["estimate"] == pytest.approx(np.mean(per_seed))
    assert stats.spearmanr(frame["x"], frame["y"]).statistic > 0.8
    assert abs(r["estimate"]) < 0.5


def test_rank_correlation_ci_is_reproducible_and_depends_on_the_seed():
    frame = seed_class_frame(3, 10, lambda rng, c: {"x": c + rng.standard_normal(c.size) * 3, "y": c * 1.0})
    a = co.rank_correlation(frame, "x", "y", n_boot=300, seed=0)
    b = co.rank_correlation(frame, "x", "y", n_boot=300, seed=0)
    c = co.rank_correlation(frame, "x", "y", n_boot=300, seed=1)
    assert a == b
    assert (a["ci_low"], a["ci_high"]) != (c["ci_low"], c["ci_high"])
    assert a["ci_low"] < a["estimate"] < a["ci_high"]


def confounded(rng, c, n_classes: int = 40, direct: float = 0.0) -> dict:
    """Training count drives both the drop and the trace; ``direct`` adds a trace -> drop path."""
    count = np.round(np.geomspace(5000, 50, n_classes))
    trace = 1e4 / count * np.exp(0.4 * rng.standard_normal(c.size))
    drop = -np.log(count) + 0.4 * rng.standard_normal(c.size) + direct * np.log(trace)
    return {"count": count, "neg_log_count": -np.log(count), "trace": trace, "drop": drop}


def test_partial_correlation_removes_a_confounder():
    frame = seed_class_frame(5, 40, confounded)
    raw = co.rank_correlation(frame, "trace", "drop", n_boot=500)
    part = co.partial_rank_correlation(frame, "trace", "drop", "count", n_boot=500)
    assert raw["estimate"] > 0.6 and raw["ci_low"] > 0.4  # the confounded association is strong
    assert abs(part["estimate"]) < 0.15, part
    assert part["ci_low"] < 0 < part["ci_high"]
    # ... and keeps a real one: with a direct trace -> drop effect the partial rho stays large
    frame = seed_class_frame(5, 40, lambda rng, c: confounded(rng, c, direct=1.0))
    kept = co.partial_rank_correlation(frame, "trace", "drop", "count", n_boot=500)
    assert kept["estimate"] > 0.4 and kept["ci_low"] > 0.2


def test_compare_predictors_partial_and_paired_difference():
    frame = seed_class_frame(5, 40, confounded)
    table = co.compare_predictors(frame, "drop", {"trace": "trace", "-log count": "neg_log_count"},
                                  control="-log count", reference="-log count", n_boot=500)  # fmt: skip
    assert list(table.columns) == ["kind", "predictor", "versus", "estimate", "ci_low", "ci_high", "pvalue",
                                   "n", "n_seeds"]  # fmt: skip
    rows = table.set_index(["kind", "predictor"])
    assert list(rows.index) == [("spearman", "trace"), ("spearman", "-log count"), ("partial", "trace"),
                                ("difference", "trace")]  # fmt: skip
    # the same numbers as the one-at-a-time functions with the same bootstrap seed
    single = co.rank_correlation(frame, "trace", "drop", n_boot=500)
    for k in ("estimate", "ci_low", "ci_high"):
        assert rows.loc[("spearman", "trace"), k] == pytest.approx(single[k])
    part = co.partial_rank_correlation(frame, "trace", "drop", "neg_log_count", n_boot=500)
    assert rows.loc[("partial", "trace"), "estimate"] == pytest.approx(part["estimate"])
    assert rows.loc[("partial", "trace"), "ci_low"] == pytest.approx(part["ci_low"])
    # the count drives the drop here: it predicts it better than the trace, significantly
    diff = rows.loc[("difference", "trace")]
    rho = rows["estimate"]
    assert diff["estimate"] == pytest.approx(
        abs(rho[("spearman", "trace")]) - abs(rho[("spearman", "-log count")])
    )
    assert diff["ci_high"] < 0
    # reversed roles: the drop is a function of the trace alone; now the trace wins
    frame["drop"] = np.log(frame["trace"])
    flipped = co.compare_predictors(frame, "drop", {"trace": "trace", "count": "count"}, reference="count",
                                    n_boot=500).set_index(["kind", "predictor"])  # fmt: skip
    assert flipped.loc[("spearman", "trace"), "estimate"] == pytest.approx(1.0)
    assert flipped.loc[("difference", "trace"), "ci_low"] > 0


def test_correlations_reject_bad_input():
    frame = seed_class_frame(3, 6, lambda rng, c: {"x": rng.standard_normal(c.size), "y": c * 1.0})
    with pytest.raises(ValueError, match=r"unknown columns \['trase'\]; the frame has"):
        co.rank_correlation(frame, "trase", "y")
    with pytest.raises(ValueError, match="at least 2 values of 'seed'"):
        co.rank_correlation(frame[frame["seed"] == 0], "x", "y")
    with pytest.raises(ValueError, match=r"unknown columns \['run'\]"):
        co.rank_correlation(frame, "x", "y", group="run")
    with pytest.raises(ValueError, match=r"seed 1 lacks class \[2\]:"):
        co.rank_correlation(
            frame.drop(index=frame.index[(frame["seed"] == 1) & (frame["class"] == 2)]), "x", "y"
        )
    with pytest.raises(ValueError, match=r"\(seed, class\) = \(0, 0\) appears more than once"):
        co.rank_correlation(pd.concat([frame, frame.iloc[:1]]), "x", "y")
    with pytest.raises(ValueError, match="constant over class"):
        co.rank_correlation(frame.assign(y=1.0), "x", "y")
    with pytest.raises(ValueError, match="missing or infinite"):
        co.rank_correlation(frame.assign(y=frame["y"].where(frame["class"] != 1)), "x", "y")
    with pytest.raises(ValueError, match="at least 3"):
        co.rank_correlation(frame[frame["class"] < 2], "x", "y")
    with pytest.raises(ValueError, match="n_boot must be an int >= 10"):
        co.rank_correlation(frame, "x", "y", n_boot=5)
    with pytest.raises(ValueError, match=r"unknown control 'count'; choose one of the predictors \['x'\]"):
        co.compare_predictors(frame, "y", {"x": "x"}, control="count")
    with pytest.raises(ValueError, match=r"unknown columns \['nope'\]"):
        co.compare_predictors(frame, "y", {"x": "nope"})
    with pytest.raises(ValueError, match="predictors must name at least one column"):
        co.compare_predictors(frame, "y", {})
