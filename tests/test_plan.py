"""ltmpq.plan: the stages a request leaves nothing to do for say so."""

from __future__ import annotations

import pytest

from ltmpq import engine, plan


@pytest.mark.parametrize("stages", [["explain"], ["hypotheses"], ["hypotheses", "explain"]])
def test_chapter_5_stages_outside_the_explain_ifs_have_nothing_to_do(stages):
    with pytest.raises(ValueError, match=r"^nothing to do: .*\[0\.01\].*\[0\.1\]$") as err:
        plan.grid("smoke", [0.1], None, stages)
    assert all(s in str(err.value) for s in stages)  # it says where each asked-for stage runs
    with pytest.raises(ValueError, match="nothing to do"):
        engine.grid("smoke", [0.1], [0], stages)


def test_the_ladder_outside_its_imbalance_factors_or_seeds_is_nothing_to_do():
    with pytest.raises(
        ValueError, match=r"stage ladder runs at imbalance factors \[0.01\].*seeds \[0, 1, 2\]"
    ):
        plan.grid("cpu", imbalance_factors=[0.1], stages=("ladder",))
    with pytest.raises(ValueError, match="nothing to do"):
        plan.grid("cpu", seeds=[4], stages=("ladder",))
    assert sorted({r.stage1.seed for r in plan.grid("cpu", stages=("ladder",))}) == [0, 1, 2]


def test_profiles_without_a_ladder_plan_no_ladder():
    with pytest.raises(ValueError, match="nothing to do"):
        plan.grid("cpu-v1", stages=("ladder",))


# ------------------------------------------------------------------ the model sets (families)


def test_model_sets_share_the_profiles_own_models_and_add_their_stage_2():
    """The "VGG16" set is the profile's own models: its stage-1 runs are theirs (one stored
    result), its stage 2 is another (post-hoc logit adjustment added), named apart; sweeps and
    mixed precision build on that stage 2; every dependency is a run of the grid."""
    from ltmpq.config import get_profile

    prof = get_profile("cpu")
    runs = plan.grid("cpu", stages=("stage1", "decoupled", "families"))
    own = {r.id for r in runs if r.family is None}
    vgg = [r for r in runs if r.family == "VGG16"]
    assert {r.id for r in vgg if r.kind == "stage1"} <= own
    assert not {r.id for r in vgg if r.kind == "decoupled"} & own
    keys = {r.key for r in plan.unique(runs)}
    assert len(keys) == len(plan.unique(runs))  # one name per stored result
    for r in plan.unique(runs):
        assert set(r.deps) <= keys, r.describe()
    # the set's sweeps only at its sweep IFs; ResNet-32 at both of its IFs
    assert {r.stage1.imbalance_factor for r in vgg if r.kind == "quantized"} == {0.01}
    resnet = [r for r in runs if r.family == "ResNet-32"]
    assert {(r.stage1.imbalance_factor, r.stage1.seed) for r in resnet if r.kind == "stage1"} == {
        (0.01, s) for s in range(5)
    } | {(0.1, s) for s in range(3)}
    assert all(r.stage1.arch == "resnet32" and r.stage1.precision == "fp32" for r in resnet)
    assert {r.variant for r in resnet if r.kind == "quantized"} == set(prof.family_variants)
    assert {r.stage1.imbalance_factor for r in resnet if r.kind == "mpq"} == set(prof.family_mpq_ifs)
    dec = next(r for r in resnet if r.kind == "decoupled")
    assert dec.config.decouple.methods[-1] == "logit_adj" and dec.key.endswith("+logit_adj")


def test_family_filter_and_its_errors():
    runs = plan.grid("smoke", stages=("families",), families=["ResNet-32"])
    assert {r.family for r in runs} == {"ResNet-32"}
    assert '--family "ResNet-32"' in runs[0].command("smoke")
    with pytest.raises(ValueError, match="unknown model sets \\['ResNet-50'\\]; profile 'smoke' has"):
        plan.grid("smoke", stages=("families",), families=["ResNet-50"])
    with pytest.raises(ValueError, match="nothing to do"):
        plan.grid("smoke", [0.1], stages=("families",), families=["ResNet-32"])
    assert engine.grid("smoke", stages=("families",), families=["VGG16"])


def test_mitigations_build_on_the_stage_2_with_logit_adjustment():
    from ltmpq.config import MITIGATIONS, get_profile

    runs = plan.grid("cpu", stages=("mitigations",))
    assert {r.variant for r in runs} == set(MITIGATIONS)
    assert {r.stage1.imbalance_factor for r in runs} == set(get_profile("cpu").mitigation_ifs)
    assert all(r.config.decouple == get_profile("cpu").family_decouple and not r.config.keep_predictions
               for r in runs)  # fmt: skip
    assert all(r.deps[0].endswith("+logit_adj") for r in runs)
    # at their own bit-widths; every other sweep keeps the profile's
    assert {r.config.bits for r in runs} == {get_profile("cpu").mitigation_bits}
    others = plan.grid("cpu", stages=("quantized", "hypotheses", "families"))
    assert {r.config.bits for r in others if r.kind == "quantized"} == {get_profile("cpu").quant_bits}
    with pytest.raises(ValueError, match="nothing to do"):
        plan.grid("cpu", [0.1], stages=("mitigations",))
