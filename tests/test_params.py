"""ltmpq.params: a chapter's parameters cell, checked and frozen."""

from __future__ import annotations

import numpy as np
import pytest

from ltmpq import params
from ltmpq.config import PROFILES, get_profile


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


@pytest.mark.parametrize(
    ("cls", "field", "value", "message"),
    [
        (params.QuantizationParams, "n_boot", 10**9, "n_boot must be an int in [100, 50000], got 1000000000"),
        (params.MitigationParams, "n_boot", 50_001, "n_boot must be an int in [100, 50000], got 50001"),
        (params.MitigationParams, "n_boot", np.int64(10**9),
         "n_boot must be an int in [100, 50000], got np.int64(1000000000)"),
        (params.MitigationParams, "n_splits", 10**9, "n_splits must be an int in [1, 2000], got 1000000000"),
        (params.MitigationParams, "n_splits", 2_001, "n_splits must be an int in [1, 2000], got 2001"),
        (params.ChapterParams, "seeds", [0, 2**32],
         "seeds must be an int in [0, 4294967295], got 4294967296"),
        (params.MitigationParams, "seeds", [10**30],
         "seeds must be an int in [0, 4294967295], got 1000000000000000000000000000000"),
    ],
    ids=["ch3-n_boot", "ch4-n_boot", "ch4-n_boot-numpy", "n_splits", "n_splits-just-above", "seeds",
         "seeds-huge"],
)  # fmt: skip
def test_chapter_parameters_past_their_upper_bound_are_refused(cls, field, value, message):
    """Probe: MitigationParams(n_splits=10**9) or n_boot=10**9 were accepted, and the chapter then
    ran for hours or ran out of memory; a seed past 2**64 failed only inside torch.manual_seed."""
    with pytest.raises(ValueError) as err:
        cls("smoke", **{field: value})
    assert str(err.value) == message
    # the bounds themselves are allowed, numpy ints become plain ints, bools are still refused
    top = {"n_boot": params.MAX_N_BOOT, "n_splits": params.MAX_N_SPLITS, "seeds": params.MAX_SEED}[field]
    ok = cls("smoke", **{field: [np.int64(top)] if field == "seeds" else np.int64(top)})
    assert getattr(ok, field) == ((top,) if field == "seeds" else top)
    assert type(getattr(ok, field)[0] if field == "seeds" else getattr(ok, field)) is int
    with pytest.raises(ValueError, match=rf"^{field} must be an int in \[\d+, \d+\], got True$"):
        cls("smoke", **{field: [True] if field == "seeds" else True})


# ------------------------------------------------------------------ parameters of the wrong type


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"compute": "Flase"}, "compute must be True or False, got 'Flase'"),
        ({"compute": 1}, "compute must be True or False, got 1"),
        ({"seeds": 0}, r"seeds must be a list such as \[0, 1\] or None \(the profile's\), got 0"),
        ({"seeds": [0, -1]}, "seeds must be an int >= 0, got -1"),
        ({"seeds": [0, 0]}, r"seeds must not repeat a seed, got \[0, 0\]"),
        ({"seeds": "01"}, "seeds must be a list"),
        ({"imbalance_factors": 0.01}, r"imbalance_factors must be a list such as \[0.1, 0.01\]"),
        ({"imbalance_factors": [0.1, 2]}, r"imbalance_factors must be numbers in \(0, 1\], got 2"),
        ({"profile": 3}, "profile must be a profile name, got 3"),
    ],
)
def test_chapter_parameters_of_the_wrong_type_are_refused(kwargs, message):
    """Probes: -p compute Flase trained (a non-empty string is truthy); -p seeds 0 failed with
    "'int' object is not iterable"."""
    with pytest.raises(ValueError, match=message):
        params.ChapterParams(**{"profile": "smoke", **kwargs})


def test_chapter_3_and_4_parameters_are_checked_too():
    assert params.QuantizationParams("smoke", variants=["per-tensor"]).variant_names == [
        "default",
        "per-tensor",
    ]
    with pytest.raises(ValueError, match=r"unknown quantizer variants \['nope'\]"):
        params.QuantizationParams("smoke", variants=["nope"])
    with pytest.raises(ValueError, match="variants must be a list"):
        params.QuantizationParams("smoke", variants="default")
    with pytest.raises(ValueError, match="n_boot must be an int >= 100, got 5"):
        params.QuantizationParams("smoke", n_boot=5)
    with pytest.raises(ValueError, match=r"rule_k=4 was not run; the profile's MPQ runs have k in \[8\]"):
        params.MitigationParams("smoke", rule_k=4)
    with pytest.raises(ValueError, match="n_splits must be an int >= 1, got 0"):
        params.MitigationParams("smoke", n_splits=0)
