"""The v2 recipe's levers and its search (ltmpq.recipe): the one-cycle schedule, augmented stage-2
views, hashes of the v1 runs left as they were, the choice rule, and the validation-size noise."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from ltmpq import plan, recipe
from ltmpq.config import DecoupleConfig, DecoupledRun, Stage1Config, config_hash, get_profile
from ltmpq.decoupling import fit_all
from ltmpq.training import augment, augmented_features, epoch_generator, train_stage1
from ltmpq.uncertainty import ranking_reliability

# ------------------------------------------------------------------ hashes of v1 runs unchanged


def test_new_fields_at_their_default_leave_v1_hashes_as_committed():
    # the committed v1 results are named by these hashes (results/cpu-v1/stage1, decoupled)
    cpu = get_profile("cpu-v1")
    s1 = cpu.stage1_config(0.01, 0)
    assert config_hash(s1) == "a0f9e7edca4d"
    assert config_hash(DecoupledRun(s1, cpu.decouple)) == "688883cca2d5"
    # a changed new field changes the hash (it is part of the run)
    assert config_hash(replace(s1, schedule="onecycle")) != config_hash(s1)
    dec = DecoupledRun(s1, replace(cpu.decouple, augment_views=10))
    assert config_hash(dec) != "688883cca2d5"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("schedule", "linear", "schedule must be one of"), ("schedule", None, "schedule must be one of")],
)
def test_bad_schedule_is_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        Stage1Config(imbalance_factor=0.1, **{field: value})


@pytest.mark.parametrize("views", [-1, 1.5, True, 101])
def test_bad_augment_views_is_refused(views):
    with pytest.raises(ValueError, match="augment_views"):
        DecoupleConfig(augment_views=views)


# ------------------------------------------------------------------ one-cycle schedule


def _lrs(cfg, x, y, path):
    """The learning rate and momentum of every step, recorded from the optimizer."""
    seen = []
    orig = torch.optim.SGD.step

    def spy(self, *a, **k):
        g = self.param_groups[0]
        seen.append((g["lr"], g["momentum"]))
        return orig(self, *a, **k)

    torch.optim.SGD.step = spy
    try:
        out = train_stage1(cfg, x, y, path, progress=False)
    finally:
        torch.optim.SGD.step = orig
    return out, seen


def test_onecycle_follows_torchs_schedule_and_resumes_bitwise(tiny_cfg, tiny_train, tmp_path):
    x, y = tiny_train
    cfg = replace(tiny_cfg, schedule="onecycle", epochs=3, batch_size=16)
    full, seen = _lrs(cfg, x, y, tmp_path / "full")
    steps = math.ceil(len(y) / cfg.batch_size) * cfg.epochs
    assert len(seen) == steps
    # oracle: torch's OneCycleLR on a dummy optimizer, read before each step
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=steps, max_momentum=cfg.momentum
    )
    want = []
    for _ in range(steps):
        want.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
        opt.step()
        sched.step()
    np.testing.assert_allclose(np.array(seen), np.array(want), rtol=1e-12)
    assert max(lr for lr, _ in seen) == pytest.approx(cfg.lr, rel=0.05)  # peaks near max_lr
    assert seen[0][0] == pytest.approx(cfg.lr / 25)  # OneCycleLR's div_factor
    # interrupted after epoch 1 and resumed: the same weights as the uninterrupted run
    with pytest.raises(KeyboardInterrupt):
        train_stage1(cfg, x, y, tmp_path / "cut", progress=False, stop_after_epoch=1)
    assert "scheduler" in torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    resumed = train_stage1(cfg, x, y, tmp_path / "cut", progress=False)
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # and it is another schedule than the cosine one: other weights
    cos = train_stage1(replace(cfg, schedule="cosine"), x, y, tmp_path / "cos", progress=False)
    assert not torch.equal(cos.model.classifier.weight, full.model.classifier.weight)


def test_a_onecycle_checkpoint_without_scheduler_state_is_not_resumed(tiny_cfg, tiny_train, tmp_path):
    x, y = tiny_train
    cfg = replace(tiny_cfg, schedule="onecycle")
    with pytest.raises(KeyboardInterrupt):
        train_stage1(cfg, x, y, tmp_path / "r", progress=False, stop_after_epoch=1)
    state = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    del state["scheduler"]
    torch.save(state, tmp_path / "r" / "checkpoint.pt")
    fresh = train_stage1(cfg, x, y, tmp_path / "fresh", progress=False)
    again = train_stage1(cfg, x, y, tmp_path / "r", progress=False)  # trains from scratch
    assert torch.equal(fresh.model.classifier.weight, again.model.classifier.weight)


# ------------------------------------------------------------------ augmented stage-2 views


def test_augmented_features_are_the_views_through_the_backbone(tiny_cfg, tiny_train, tmp_path):
    x, y = tiny_train
    model = train_stage1(replace(tiny_cfg, epochs=1), x, y, tmp_path / "m", progress=False).model
    f = augmented_features(model, x, views=3, seed=4, batch_size=7)
    assert f.shape == (3 * len(x), model.classifier.in_features)
    # oracle: view v is augment() with the generator of (seed, v, stream 7), the whole set at once
    with torch.inference_mode():
        v1 = model.features(augment(x, epoch_generator(4, 1, stream=7)))
    assert torch.allclose(f[len(x) : 2 * len(x)], v1, atol=1e-5)
    assert torch.equal(f, augmented_features(model, x, views=3, seed=4, batch_size=7))  # fixed by seed
    assert not torch.allclose(f[: len(x)], f[len(x) : 2 * len(x)])  # views differ
    with pytest.raises(ValueError, match="views must be an int >= 1"):
        augmented_features(model, x, views=0, seed=0)


def test_fit_all_trains_crt_and_lws_on_the_augmented_views_only():
    g = torch.Generator().manual_seed(0)
    feats, labels = torch.randn(60, 8, generator=g), torch.arange(60) % 3
    val_f, val_l = torch.randn(30, 8, generator=g), torch.arange(30) % 3
    base = torch.nn.Linear(8, 3)
    aug = (torch.randn(120, 8, generator=g), labels.repeat(2))
    cfg = DecoupleConfig(epochs=2, batch_size=16, tau_grid=(0.0, 1.0), augment_views=2)
    with_aug = fit_all(base, feats, labels, val_f, val_l, cfg, augmented=aug)
    plain = fit_all(base, feats, labels, val_f, val_l, replace(cfg, augment_views=0))
    assert not torch.equal(with_aug["crt"].classifier.weight, plain["crt"].classifier.weight)
    assert not torch.equal(with_aug["lws"].classifier.scales, plain["lws"].classifier.scales)
    # NCM keeps the un-augmented class means, tau-norm needs no training image
    assert torch.equal(with_aug["ncm"].classifier.means, plain["ncm"].classifier.means)
    assert torch.equal(with_aug["tau_norm"].classifier.weight, plain["tau_norm"].classifier.weight)
    with pytest.raises(ValueError, match="augment_views is 2 but augmented features were not given"):
        fit_all(base, feats, labels, val_f, val_l, cfg)
    with pytest.raises(ValueError, match="augment_views is 0 but augmented features were given"):
        fit_all(base, feats, labels, val_f, val_l, replace(cfg, augment_views=0), augmented=aug)


# ------------------------------------------------------------------ the search and its rule


def test_candidates_differ_from_the_base_only_in_their_levers():
    s = recipe.search_for("cpu")
    names = list(s.recipes)
    assert len({config_hash(recipe.config("cpu", n)) for n in names}) == len(names)
    assert recipe.config("cpu", names[0]) == s.base  # the v1 recipe, on the v2 split
    assert s.base.val_per_class == 300 and s.base.imbalance_factor == 0.01
    with pytest.raises(ValueError, match="unknown recipe 'nope'"):
        recipe.config("cpu", "nope")
    with pytest.raises(ValueError, match="profile 'paper' has no recipe search; these do"):
        recipe.search_for("paper")


def test_model_set_images_by_hand():
    # n_max 4700 after holding out 300 per class: int(4700 * IF**(i/9)) summed over classes
    by_hand = sum(sum(int(4700 * f ** (i / 9)) for i in range(10)) for f in (0.1, 0.02, 0.01))
    cfg = recipe.config("cpu", "one-cycle, 40 ep, bf16")
    assert recipe.model_set_images("cpu", cfg) == by_hand * 5 * 40
    assert recipe.projected_seconds("cpu", cfg, 1000.0) == pytest.approx(by_hand * 5 * 40 / 2000)


def _row(name, balanced, minutes):
    return {"recipe": name, "val balanced": balanced, "model set (min)": minutes}


def test_choose_best_within_budget_ties_to_the_cheaper():
    rows = [_row("a", 60.0, 30), _row("b", 62.0, 50), _row("c", 65.0, 120)]
    assert recipe.choose(rows, budget_s=75 * 60) == "b"  # c is better but does not fit
    assert recipe.choose(rows, budget_s=200 * 60) == "c"
    assert recipe.choose([_row("x", 62.0, 50), _row("y", 62.0, 40)], budget_s=3600) == "y"
    with pytest.raises(ValueError, match="no recipe's model set fits 10 min"):
        recipe.choose(rows, budget_s=600)


def test_table_converts_to_points_and_projects_the_model_set():
    name = "one-cycle, 30 ep, bf16"
    metrics = {"overall": 0.6, "head": 0.8, "tail": 0.45, "balanced": 0.61}
    row = recipe.table("cpu", {name: {"val": {"metrics": metrics}, "train_images_per_second": 1500.0}})[0]
    assert (row["val overall"], row["val head"], row["val tail"]) == pytest.approx((60, 80, 45))
    assert row["epochs"] == 30
    images = recipe.model_set_images("cpu", recipe.config("cpu", name))
    assert row["model set (min)"] == pytest.approx(images / 3000 / 60)


def test_stage2_choice_is_the_best_crt_first_on_ties():
    rows = [
        {"stage 2": "a", "method": "crt", "val overall": 67.1},
        {"stage 2": "a", "method": "lws", "val overall": 60.0},
        {"stage 2": "b", "method": "crt", "val overall": 67.0},
        {"stage 2": "b", "method": "lws", "val overall": 70.0},
    ]
    assert recipe.choose_stage2(rows) == "a"  # LWS's better row does not count
    assert recipe.choose_stage2(rows, method="lws") == "b"
    tie = [{"stage 2": n, "method": "crt", "val overall": 50.0} for n in ("x", "y")]
    assert recipe.choose_stage2(tie) == "x"
    with pytest.raises(ValueError, match="no row of method 'ncm'"):
        recipe.choose_stage2(rows, method="ncm")


def test_committed_cpu_search_chose_the_profiles_recipe(monkeypatch):
    """The cpu profile trains what its committed search chose (one model set, not two)."""
    monkeypatch.delenv("LTMPQ_RESULTS", raising=False)
    s = recipe.search_for("cpu")
    chosen = recipe.chosen_config("cpu")  # from the committed results; fails if one is missing
    assert chosen == get_profile("cpu").stage1_config(s.base.imbalance_factor, s.base.seed)
    stored = {n: recipe.stage2_run("cpu", n, compute=False) for n in s.stage2}
    winner = recipe.choose_stage2(recipe.stage2_table(stored))
    assert replace(get_profile("cpu").decouple) == replace(DecoupleConfig(), **s.stage2[winner])


# ------------------------------------------------------------------ validation-size noise


def test_ranking_reliability_matches_simulated_split_to_split_correlation():
    rng = np.random.default_rng(0)
    n_layers, n = 16, 1000
    true_drop = rng.normal(0.02, 0.01, n_layers)  # layers' true sensitivities

    def draw(m):
        f = rng.random(m) < 0.7
        # each layer flips a correct image to wrong with probability p_l (and never the reverse)
        q = f[None, :] & (rng.random((n_layers, m)) >= (true_drop.clip(0.001) / 0.7)[:, None])
        return f, q

    f, q = draw(n)
    est = ranking_reliability(f, q, sizes=[1000, 4000])
    # oracle: the correlation of sensitivities measured on independent splits, by simulation
    corr = {}
    for m in (1000, 4000):
        pairs = []
        for _ in range(150):
            (fa, qa), (fb, qb) = draw(m), draw(m)
            sa, sb = (fa[None, :] * 1.0 - qa).mean(1), (fb[None, :] * 1.0 - qb).mean(1)
            pairs.append(np.corrcoef(sa, sb)[0, 1])
        corr[m] = float(np.mean(pairs))
    assert est["reliability"][1000] == pytest.approx(corr[1000], abs=0.12)
    assert est["reliability"][4000] == pytest.approx(corr[4000], abs=0.08)
    assert est["reliability"][4000] > est["reliability"][1000]
    assert est["n"] == n and est["true_sd"] < est["spread"]


def test_ranking_reliability_limits():
    f = np.array([1, 1, 0, 1, 0, 1, 1, 0] * 10)
    same = np.tile(f, (4, 1))  # no layer changes anything: no noise, no spread
    assert math.isnan(ranking_reliability(f, same, [100])["reliability"][100])
    noisy = np.random.default_rng(1).integers(0, 2, (5, f.size))  # pure noise, no true spread
    r = ranking_reliability(f, noisy, [80])
    assert 0 <= r["reliability"][80] < 0.5
    with pytest.raises(ValueError, match="need float_correct"):
        ranking_reliability(f, f[None, :], [10])
    with pytest.raises(ValueError, match="sizes must be ints >= 1"):
        ranking_reliability(f, same, [0])


def test_committed_cpu_model_set_shares_one_set_of_weights(monkeypatch):
    """Every downstream cpu result names the weights digest of its stage-1 result, the committed
    weights are those digests (one model set, published), and chapter 4's float reference is
    chapter 1's model: its stored float predictions equal chapters 1-2's on every test image."""
    from ltmpq import results, weights
    from ltmpq.paths import results_dir

    monkeypatch.delenv("LTMPQ_RESULTS", raising=False)
    prof = get_profile("cpu")
    by_hash = {}
    for cfg in prof.stage1_configs():
        s1 = results.load(plan.result_path("cpu", "stage1", cfg), cfg)
        assert s1 is not None, f"missing cpu stage-1 result {cfg.tag}: make runs PROFILE=cpu"
        path = results_dir() / "cpu" / s1["weights"]
        weights.load(path, s1["weights_sha256"], "make runs PROFILE=cpu")  # raises on a mismatch
        by_hash[config_hash(cfg)] = s1["weights_sha256"]
        dec = results.load(plan.result_path("cpu", "decoupled", DecoupledRun(cfg, prof.decouple)),
                           DecoupledRun(cfg, prof.decouple))  # fmt: skip
        assert dec is not None and dec["weights_sha256"] == s1["weights_sha256"], cfg.tag
    # the model sets of other models (chapter 6) have stage-1 runs of their own, weights checked too
    for run in plan.unique(plan.grid("cpu", stages=["families"])):
        if run.kind == "stage1" and (s1 := results.load(run.path("cpu"), run.config)) is not None:
            weights.load(results_dir() / "cpu" / s1["weights"], s1["weights_sha256"], "make runs PROFILE=cpu")
            by_hash[config_hash(run.config)] = s1["weights_sha256"]
    downstream = [
        p for kind in ("decoupled", "quantized", "mpq") for p in (results_dir() / "cpu" / kind).glob("*.json")
    ]
    assert downstream

    for p in downstream:
        r = json.loads(p.read_text())
        assert r["stage1_hash"] in by_hash, f"{p.name} comes from no stage-1 run of the profile"
        assert r["weights_sha256"] == by_hash[r["stage1_hash"]], p.name

    from ltmpq.analysis.ch4_mitigation import reference_check
    from ltmpq.config import MPQRun

    mpq_cfgs = [c for c in prof.stage1_configs() if c.imbalance_factor in prof.mpq_ifs]
    assert {c.imbalance_factor for c in mpq_cfgs} == set(prof.imbalance_factors)  # chapter 4 at every IF
    load = {}
    for kind, run_of in (("stage1", lambda c: c), ("decoupled", lambda c: DecoupledRun(c, prof.decouple)),
                         ("mpq", lambda c: MPQRun(c, prof.decouple, prof.quant, prof.mpq))):  # fmt: skip
        load[kind] = {c: results.load(plan.result_path("cpu", kind, run_of(c)), run_of(c)) for c in mpq_cfgs}
        missing = [c.tag for c, r in load[kind].items() if r is None]
        assert not missing, f"missing cpu {kind} results {missing}: make runs PROFILE=cpu"
    check = reference_check(load["mpq"], load["stage1"], load["decoupled"], prof.mpq.rule_heads)
    assert len(check) == len(mpq_cfgs) * len(prof.mpq.rule_heads)
    assert (check["agree"] == 100).all(), check[check["agree"] < 100]


# ------------------------------------------------------------------ chapter 4's Hessian subset


def test_balanced_subset_takes_the_first_images_of_each_class():
    from ltmpq.mpq import balanced_subset

    labels = np.array([2, 0, 1, 0, 2, 1, 1, 0, 2])
    assert balanced_subset(labels, None).tolist() == list(range(9))
    assert balanced_subset(labels, 3).tolist() == [0, 1, 2]  # first 2, first 0, first 1
    assert balanced_subset(labels, 6).tolist() == [0, 1, 2, 3, 4, 5]
    for bad in (4, 12, 0):
        with pytest.raises(ValueError, match=f"multiple of the 3 classes, at most 9 .*got {bad}"):
            balanced_subset(labels, bad)


def test_hessian_images_is_checked_and_leaves_v1_mpq_hashes_alone():
    from ltmpq.config import MPQConfig, MPQRun

    cpu = get_profile("cpu-v1")
    run = MPQRun(cpu.stage1_config(0.01, 0), cpu.decouple, cpu.quant, cpu.mpq)
    assert config_hash(run) == "aecb5b2d951e"  # results/cpu-v1/mpq/if0.01-seed0-aecb5b2d951e.json
    other = MPQRun(run.stage1, run.decouple, run.quant, replace(cpu.mpq, hessian_images=1000))
    assert config_hash(other) != config_hash(run)
    for bad in (0, -10, 2.5, "all"):
        with pytest.raises(ValueError, match="hessian_images"):
            MPQConfig(hessian_images=bad)


def test_hessian_traces_see_the_balanced_subset_only(monkeypatch):
    from ltmpq import mpq as mp
    from ltmpq import runs
    from ltmpq.config import MPQConfig, QuantConfig

    seen = []
    monkeypatch.setattr(
        mp,
        "single_layer_sweep",
        lambda model, heads, x, *a, **k: ({h: torch.zeros(len(x), 3) for h in heads}, {}),
    )
    monkeypatch.setattr(
        mp, "model_traces", lambda model, head, x, y, *a, **k: seen.append((x.clone(), y.clone())) or {}
    )
    yv = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2])
    xv = torch.arange(9.0).view(9, 1, 1, 1).expand(9, 3, 2, 2).contiguous(memory_format=torch.channels_last)
    groups = {"head": [0], "tail": [1, 2]}
    for n, want in ((None, list(range(9))), (6, [0, 1, 2, 3, 4, 5])):
        seen.clear()
        mcfg = MPQConfig(budget_metrics=("hessian",), budget_heads=("crt",), hessian_images=n)
        runs._measure_sensitivity(
            None, {"crt": None}, xv, yv, torch.from_numpy(yv), groups, 3, QuantConfig(), mcfg, 0, False
        )
        ((x, y),) = seen
        assert x[:, 0, 0, 0].tolist() == [float(i) for i in want] and y.tolist() == yv[want].tolist()
        assert x.is_contiguous(memory_format=torch.channels_last)
