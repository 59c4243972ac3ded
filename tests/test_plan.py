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
