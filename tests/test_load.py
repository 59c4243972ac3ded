"""ltmpq.load: what the chapters load beside the stored results (test images, data sources) and the
scale ladder's results."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import save_fake

from ltmpq import load, plan, results
from ltmpq.config import Stage1Config, get_profile
from ltmpq.params import ChapterParams


def test_test_images_follow_the_stored_test_split(patched_data, tiny_cifar):
    """Chapter 3's exemplar pictures: position i of the stored predictions is image i of the split."""
    from ltmpq import artifacts

    cfg = Stage1Config(imbalance_factor=0.5, val_per_class=5, n_max=15, test_per_class=2, width=1 / 16)
    images = load.test_images(cfg)
    split = artifacts.splits_for(cfg, tiny_cifar).test
    assert len(images) == 20 and not np.array_equal(split, np.arange(20))  # a subsample, not the first 20
    np.testing.assert_array_equal(images, tiny_cifar.test_x[split])


def test_test_images_without_data_say_so_and_return_none(capsys):
    assert load.test_images(Stage1Config(imbalance_factor=0.1)) is None
    assert "CIFAR-10 not found, exemplar images not shown" in capsys.readouterr().out


def test_data_source_lines_name_kind_folder_and_digest():
    src = {
        "kind": "imagefolder-jpeg",
        "note": "lossy",
        "path": "/x/y/cifar10-jpeg",
        "lossy": True,
        "sha256": "ab",
    }
    stored = {"cfg": {"provenance": {"data_source": src}}}
    assert (
        load.data_source_lines(stored)
        == "- imagefolder-jpeg: lossy\n  folder: cifar10-jpeg\n  content sha256: ab"
    )
    assert load.data_note(stored) == "the lossy JPEG copy (quality 75) of CIFAR-10"


def test_ladder_results_leave_out_an_incomplete_rung_only_when_asked():
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


def test_family_results_show_the_models_a_set_has_and_say_what_is_missing():
    """A model shows with its stage 1 and stage 2 or not at all; a quantizer's sweeps only when
    every model shown has one; what is missing is counted, with the command; strict loading fails."""
    from ltmpq.params import FamiliesParams

    runs = plan.unique(plan.grid("smoke", [0.01], None, ["families"]))
    for run in runs:
        if run.family == "VGG16" and run.kind != "mpq":
            save_fake(run, "smoke")
        if run.family == "ResNet-32" and run.stage1.seed == 0 and run.kind in ("stage1", "decoupled", "mpq"):
            save_fake(run, "smoke")
        if run.family == "ResNet-32" and run.stage1.seed == 1 and run.kind == "stage1":
            save_fake(run, "smoke")  # trained, no stage 2 yet: not shown
    params = FamiliesParams("smoke", False, (0.01,), None)
    fam, missing = load.family_results(params)
    assert list(fam) == ["VGG16", "ResNet-32"]
    assert set(fam["VGG16"]["quantized"]) == set(get_profile("smoke").family_variants)
    assert fam["VGG16"]["mpq"] == {}
    assert missing["VGG16"].startswith(
        "0 of 2 mixed-precision runs; make the rest with make runs PROFILE=smoke"
    )
    assert [c.seed for c in fam["ResNet-32"]["stage1"]] == [0]
    assert fam["ResNet-32"]["quantized"] == {} and [c.seed for c in fam["ResNet-32"]["mpq"]] == [0]
    assert missing["ResNet-32"].startswith(
        "1 of 2 models with stage 2, 0 of 4 sweeps, 1 of 2 mixed-precision runs"
    )
    assert '--family "ResNet-32"' in missing["ResNet-32"]
    assert "VGG16, LA loss" not in fam and missing["VGG16, LA loss"].startswith("0 of 2 models trained")
    with pytest.raises(results.MissingResultError):
        load.family_results(params, allow_missing=False)
    # the VGG16 set also has models at IF 0.1 (stage 2 only: no sweeps planned there); its sweeps
    # at IF 0.01 still cover every model the plan sweeps
    for run in plan.grid("smoke", [0.1], None, ["families"], families=["VGG16"]):
        save_fake(run, "smoke")
    fam, _ = load.family_results(FamiliesParams("smoke"))
    assert len(fam["VGG16"]["stage1"]) == 4 and all(len(by) == 2 for by in fam["VGG16"]["quantized"].values())


def test_decoupled_results_add_logit_adjustment_from_the_own_model_set():
    params = ChapterParams("smoke", False, (0.01,), (0,))
    own = [r for r in plan.grid("smoke", [0.01], [0], ["stage1", "decoupled"])]
    for run in own:
        save_fake(run, "smoke")
    assert "logit_adj" not in load.decoupled_results(params)[own[0].stage1]["methods"]
    with pytest.raises(results.MissingResultError, match="--family"):
        load.decoupled_results(params, logit_adjustment=True)
    fam = next(
        r for r in plan.grid("smoke", [0.01], [0], ["families"], families=["VGG16"]) if r.kind == "decoupled"
    )
    stored = save_fake(fam, "smoke", seed=3)
    merged = load.decoupled_results(params, logit_adjustment=True)[own[0].stage1]
    assert merged["methods"]["logit_adj"] == stored["methods"]["logit_adj"]
    assert merged["methods"]["crt"] == load.decoupled_results(params)[own[0].stage1]["methods"]["crt"]


def test_family_results_without_any_model_fail_with_the_commands():
    from ltmpq.params import FamiliesParams

    with pytest.raises(
        results.MissingResultError, match="no model set has a model yet: VGG16: 0 of 4 models"
    ) as err:
        load.family_results(FamiliesParams("smoke"))
    assert 'make runs PROFILE=smoke RUN_ARGS=\'--stage families --family "ResNet-32"' in str(err.value)
