"""ltmpq.stats, ltmpq.report (tables from stored results), results.status and ``ltmpq status``.

The stored results are built by hand in the shape ltmpq.experiments.stage1 / decoupled store
(fractions, null for an empty group), so nothing is trained.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from ltmpq import blog, frames, load, params, results, tables
from ltmpq.analysis import ch1_evaluation as ch1
from ltmpq.cli import main
from ltmpq.config import (
    PROFILES,
    QUANT_HYPOTHESES,
    DecoupledRun,
    ExplainRun,
    MPQRun,
    QuantizedRun,
    Stage1Config,
    get_profile,
)
from ltmpq.data import DataSource
from ltmpq.runs import quant_variants_for
from ltmpq.uncertainty import binomial_half_width, mean_ci

# ------------------------------------------------------------------ stats


@pytest.mark.parametrize("confidence", [0.95, 0.9, 0.5])
def test_mean_ci_matches_scipy_t_interval(confidence):
    v = np.array([61.0, 63.5, 60.25, 64.0, 62.2])
    mean, half, n = mean_ci(v, confidence)
    lo, hi = sps.t.interval(confidence, len(v) - 1, loc=v.mean(), scale=sps.sem(v))
    assert n == 5
    assert mean == pytest.approx(v.mean())
    assert half == pytest.approx((hi - lo) / 2)
    assert mean - half == pytest.approx(lo) and mean + half == pytest.approx(hi)


def test_mean_ci_two_values_by_hand():
    # t(0.975, 1) = 12.706; std(ddof=1) of (60, 64) = 2 sqrt(2); / sqrt(2) -> 2
    mean, half, n = mean_ci([60.0, 64.0])
    assert (mean, n) == (62.0, 2)
    assert half == pytest.approx(12.7062 * 2, abs=1e-3)


def test_mean_ci_ignores_nans():
    with_nan = mean_ci([1.0, float("nan"), 2.0, 4.0, float("nan")])
    assert with_nan == pytest.approx(mean_ci([1.0, 2.0, 4.0]))
    assert with_nan[2] == 3


def test_mean_ci_single_value_has_nan_half_width():
    mean, half, n = mean_ci([0.7])
    assert mean == 0.7 and math.isnan(half) and n == 1
    mean, half, n = mean_ci([float("nan"), 0.7])  # one value left after dropping NaN
    assert mean == 0.7 and math.isnan(half) and n == 1


@pytest.mark.parametrize("values", [[], [float("nan"), float("nan")], np.array([])])
def test_mean_ci_empty_gives_nan_nan_0(values):
    mean, half, n = mean_ci(values)
    assert math.isnan(mean) and math.isnan(half) and n == 0


@pytest.mark.parametrize("confidence", [0, 1, -0.5, 1.5, 95])
def test_mean_ci_rejects_bad_confidence(confidence):
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1.0, 2.0, 3.0], confidence)


def test_binomial_half_width_is_the_wilson_interval_by_hand():
    """Wilson: centre (k + z²/2) / (n + z²), half-width z / (n + z²) * sqrt(k (n - k) / n + z² / 4)."""
    z = sps.norm.ppf(0.975)
    for acc, n in ((0.8, 10_000), (0.563, 1000), (0.39, 6000), (0.1, 40)):
        k = round(acc * n)
        wilson = z / (n + z**2) * math.sqrt(k * (n - k) / n + z**2 / 4)
        assert binomial_half_width(acc, n) == pytest.approx(wilson, rel=1e-9)
    got = binomial_half_width(0.8, 10_000)
    assert got == pytest.approx(0.00784, abs=1e-5)  # ~0.78 points, as the normal approximation says here
    # wider at a lower n, not zero at a perfect accuracy (unlike the normal approximation)
    assert binomial_half_width(0.8, 100) > 9 * got
    assert 0 < binomial_half_width(1.0, 100) < 0.025
    assert binomial_half_width(0.8, 10_000, confidence=0.9) < got


@pytest.mark.parametrize(("acc", "n"), [(1.2, 100), (-0.1, 100), (0.5, 0)])
def test_binomial_half_width_rejects_impossible_inputs(acc, n):
    with pytest.raises(ValueError, match="accuracy must be in"):
        binomial_half_width(acc, n)


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


def test_chapter_params_rejects_unknown_profile_listing_allowed():
    with pytest.raises(ValueError) as err:
        params.ChapterParams(profile="nope")
    msg = str(err.value)
    assert "nope" in msg
    for name in PROFILES:
        assert name in msg


def test_chapter_params_lists_become_tuples():
    p = params.ChapterParams("smoke", False, [0.01], [3, 4])
    assert p.imbalance_factors == (0.01,) and isinstance(p.imbalance_factors, tuple)
    assert p.seeds == (3, 4) and isinstance(p.seeds, tuple)
    hash(p)  # frozen and hashable once converted


@pytest.mark.parametrize("field", ["seeds", "imbalance_factors"])
@pytest.mark.parametrize("empty", [[], ()])
def test_chapter_params_rejects_empty(field, empty):
    with pytest.raises(ValueError, match=field):
        params.ChapterParams("smoke", **{field: empty})


def test_chapter_params_checks_the_converted_tuple():
    # an array holding only seed 0 is non-empty (ValueError "must be ... non-empty" today) ...
    assert params.ChapterParams("smoke", seeds=np.array([0])).seeds == (0,)
    # ... and an exhausted iterable is empty (today silently the profile's seeds)
    with pytest.raises(ValueError, match="seeds"):
        params.ChapterParams("smoke", seeds=iter([]))


def test_chapter_params_configs_are_the_profile_product():
    prof = get_profile("smoke")
    p = params.ChapterParams("smoke")
    assert p.ifs == prof.imbalance_factors and p.seed_list == prof.seeds
    cfgs = p.configs()
    assert len(cfgs) == len(prof.imbalance_factors) * len(prof.seeds)
    assert {(c.imbalance_factor, c.seed) for c in cfgs} == {
        (f, s) for f in prof.imbalance_factors for s in prof.seeds
    }
    for c in cfgs:
        assert c == prof.stage1_config(c.imbalance_factor, c.seed)  # the profile's run settings
        assert c.width == prof.stage1["width"]
    # overrides restrict the product
    q = params.ChapterParams("smoke", imbalance_factors=[0.01], seeds=[5, 6, 7])
    assert [(c.imbalance_factor, c.seed) for c in q.configs()] == [(0.01, 5), (0.01, 6), (0.01, 7)]
    # only seeds overridden: the profile's IFs
    r = params.ChapterParams("cpu", seeds=[9])
    assert [c.imbalance_factor for c in r.configs()] == list(get_profile("cpu").imbalance_factors)
    assert {c.seed for c in r.configs()} == {9}


def test_data_sources_deduplicates(stored):
    s1, dec = stored
    assert load.data_sources(s1, dec) == [SOURCE]
    other = dict(SOURCE, sha256="def")
    extra = {Stage1Config(imbalance_factor=0.1, seed=0): _stage1(CFGS[0], other)}
    got = load.data_sources(s1, dec, extra)
    assert len(got) == 2
    assert {s["sha256"] for s in got} == {"abc", "def"}
    assert load.data_sources() == []


# ------------------------------------------------------------------ results.status

SRC = DataSource("synthetic", "memory", False, "synthetic test data")


def _save(cfg, profile="smoke", kind="stage1"):
    from conftest import minimal_result

    path = results.result_path(profile, kind, cfg)
    results.save(path, cfg, minimal_result(kind), SRC, 0.1)
    return path


def test_status_missing():
    cfg = Stage1Config(imbalance_factor=0.1, seed=0)
    assert results.status(results.result_path("smoke", "stage1", cfg), cfg) == "missing"


def test_status_unreadable_for_another_config_or_corrupt_file():
    a, b = Stage1Config(imbalance_factor=0.1, seed=0), Stage1Config(imbalance_factor=0.1, seed=1)
    path = _save(a)
    assert results.status(path, b) == "unreadable (another run's result (config hash differs))"
    bad = path.with_name("corrupt.json")
    bad.write_text("{not json")
    assert results.status(bad, a) == "unreadable (JSONDecodeError)"


def test_status_is_ok_when_the_stage_version_matches_and_outdated_when_not():
    """Not "code changed since ..." for every edit: only a bumped stage version makes a result outdated."""
    cfg = Stage1Config(imbalance_factor=0.1, seed=0)
    path = _save(cfg)  # made before versions were recorded: version 1
    assert results.status(path, cfg) == "ok"
    assert results.status(path, cfg, versions={"stage1": 1}) == "ok"
    assert results.status(path, cfg, versions={"stage1": 2}) == (
        "outdated (stage1 v1; today's code is v2: rerun to update)"
    )
    assert results.status(path, cfg, versions={"decoupled": 5}) == "ok"  # another stage's version


def test_runs_record_the_stage_version_of_their_numbers(tiny_cfg, patched_data):
    from ltmpq import runs

    out = runs.stage1(tiny_cfg, "smoke", compute=True, progress=False)
    assert out["stage_version"] == runs.STAGE_VERSIONS["stage1"]
    # "hypotheses" is chapter 3's sweep with chapter 5's quantizers and "ladder" stages 1-3 of
    # other models: their numbers carry the versions of the stages they run
    assert set(runs.STAGE_VERSIONS) == set(runs.STAGES) - {"hypotheses", "ladder"}


# ------------------------------------------------------------------ CLI


def test_cli_status_on_empty_results_reports_missing(capsys, isolated_dirs):
    assert main(["status", "--profile", "smoke"]) == 1
    out = capsys.readouterr().out
    header, *lines = out.strip().splitlines()
    assert header == "data here: not decoded yet (results not checked against it)"
    prof = get_profile("smoke")
    ladder = [c for c in prof.stage1_configs() if prof.on_ladder(c)]
    assert len(lines) == len(prof.stage1_configs()) + len(ladder) * len(prof.ladder)
    for line in lines:
        assert "stage1: missing" in line and "decoupled: missing" in line
    # the scale ladder's rungs: named, with their own models
    assert sum("(width 0.125)" in line and "-w0.125 " in line for line in lines) == len(ladder)
    assert not isolated_dirs["results"].exists()  # status writes nothing


def test_cli_status_returns_0_when_all_present(capsys, monkeypatch):
    prof = get_profile("smoke")
    cfg = prof.stage1_config(0.01, 0)
    _save(cfg, "smoke", "stage1")
    _save(DecoupledRun(cfg, prof.decouple), "smoke", "decoupled")
    monkeypatch.setattr(results, "_git", lambda *a: "")
    variants = list(quant_variants_for("smoke").values())
    for qcfg, keep in variants[:-1]:
        _save(QuantizedRun(cfg, prof.decouple, qcfg, prof.quant_bits, keep), "smoke", "quantized")
    # one quantizer variant short: still incomplete
    assert main(["status", "--profile", "smoke", "--if", "0.01", "--seed", "0"]) == 1
    assert f"quantized: {len(variants) - 1}/{len(variants)} ok" in capsys.readouterr().out
    qcfg, keep = variants[-1]
    _save(QuantizedRun(cfg, prof.decouple, qcfg, prof.quant_bits, keep), "smoke", "quantized")
    # chapter 4's run (IF 0.01 is one of the smoke profile's mpq_ifs) still missing
    assert main(["status", "--profile", "smoke", "--if", "0.01", "--seed", "0"]) == 1
    assert "mpq: missing" in capsys.readouterr().out
    _save(MPQRun(cfg, prof.decouple, prof.quant, prof.mpq), "smoke", "mpq")
    # chapter 5's (IF 0.01 is one of its explain_ifs): the hypotheses' sweeps and the explain run
    assert main(["status", "--profile", "smoke", "--if", "0.01", "--seed", "0"]) == 1
    assert "hypotheses: 1/10 ok" in capsys.readouterr().out  # one is chapter 3's per-tensor run
    for qcfg, keep in quant_variants_for("smoke", list(QUANT_HYPOTHESES)).values():
        _save(QuantizedRun(cfg, prof.decouple, qcfg, prof.quant_bits, keep), "smoke", "quantized")
    assert main(["status", "--profile", "smoke", "--if", "0.01", "--seed", "0"]) == 1
    assert "explain: missing" in capsys.readouterr().out
    _save(ExplainRun(cfg, prof.decouple, prof.quant, prof.explain), "smoke", "explain")
    # the scale ladder's wider models (the run is on the ladder) still missing
    assert main(["status", "--profile", "smoke", "--if", "0.01", "--seed", "0"]) == 1
    out = capsys.readouterr().out
    assert "explain: ok" in out and out.count("stage1: missing") == len(prof.ladder)
    for rcfg in list(prof.ladder_rungs(cfg).values())[1:]:
        _save(rcfg, "smoke", "stage1")
        _save(DecoupledRun(rcfg, prof.decouple), "smoke", "decoupled")
        for qcfg, keep in quant_variants_for("smoke", prof.ladder_variants).values():
            _save(QuantizedRun(rcfg, prof.decouple, qcfg, prof.quant_bits, keep), "smoke", "quantized")
    assert main(["status", "--profile", "smoke", "--if", "0.01", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "missing" not in out and out.count(": ok") == 6 + 2 * len(prof.ladder)
    # the other seed has nothing yet
    assert main(["status", "--profile", "smoke", "--if", "0.01", "--seed", "0", "1"]) == 1
    assert "missing" in capsys.readouterr().out
