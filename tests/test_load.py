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
