"""ltmpq.config: every config's checks, hashes (and the golden ones of stored results), tags,
profiles with their quantizer variants and hypotheses, ExplainConfig, and the scale ladder's
models and rungs."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest
from fakes import EXPLICIT_DEFAULTS

from ltmpq.config import (
    PROFILES,
    QUANT_ABLATIONS,
    QUANT_HYPOTHESES,
    DecoupleConfig,
    DecoupledRun,
    ExplainConfig,
    MPQConfig,
    MPQRun,
    Profile,
    QuantConfig,
    QuantizedRun,
    Stage1Config,
    config_hash,
    get_profile,
    with_overrides,
)

SMOKE = get_profile("smoke")


# ------------------------------------------------------------------ configs


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, "0.1", float("nan"), None])
def test_stage1_config_rejects_bad_imbalance_factor(bad):
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        Stage1Config(imbalance_factor=bad)


def test_stage1_config_rejects_bad_fields():
    with pytest.raises(ValueError, match="precision.*'fp16'"):
        Stage1Config(0.1, precision="fp16")
    with pytest.raises(ValueError, match="epochs"):
        Stage1Config(0.1, epochs=0)
    with pytest.raises(ValueError, match="batch_size"):
        Stage1Config(0.1, batch_size=0)
    with pytest.raises(ValueError, match="lt_profile"):
        Stage1Config(0.1, lt_profile="zipf")
    assert Stage1Config(1.0).imbalance_factor == 1.0  # IF = 1 (balanced) is allowed
    assert Stage1Config(0.1, precision="bf16").precision == "bf16"


def test_decouple_config_rejects_bad_fields():
    with pytest.raises(ValueError, match="tau_grid"):
        DecoupleConfig(tau_grid=())
    with pytest.raises(ValueError, match="tau_grid"):
        DecoupleConfig(tau_grid=(0.0, -0.5))
    with pytest.raises(ValueError, match="epochs"):
        DecoupleConfig(epochs=0)


CHANGES = dict(imbalance_factor=0.02, seed=1, lt_profile="step", val_per_class=50, val_seed=1, n_max=300,
               test_per_class=100, width=0.5, epochs=31, batch_size=64, lr=0.1, momentum=0.8,
               weight_decay=1e-4, warmup_epochs=2, precision="bf16")  # fmt: skip


def test_config_hash_stable_and_sensitive_to_every_field():
    base = Stage1Config(imbalance_factor=0.01, seed=2)
    h = config_hash(base)
    assert re.fullmatch(r"[0-9a-f]{12}", h)
    assert h == config_hash(Stage1Config(imbalance_factor=0.01, seed=2)) == base.key
    seen = {h}
    for name, value in CHANGES.items():
        changed = config_hash(replace(base, **{name: value}))
        assert changed not in seen, name
        seen.add(changed)
    assert base.tag == "if0.01-seed2"


def test_config_hash_nested_and_typed():
    s1 = Stage1Config(0.1)
    a = DecoupledRun(s1, DecoupleConfig())
    assert config_hash(a) == config_hash(DecoupledRun(Stage1Config(0.1), DecoupleConfig()))
    assert config_hash(a) != config_hash(DecoupledRun(s1, DecoupleConfig(epochs=5)))
    assert config_hash(a) != config_hash(DecoupledRun(replace(s1, seed=3), DecoupleConfig()))
    assert config_hash(a) != config_hash(s1)
    assert a.tag == s1.tag


def test_equal_configs_have_equal_hashes():
    # Stage1Config(1) == Stage1Config(1.0), so they are the same run and must share results;
    # the hash of json.dumps(1) and json.dumps(1.0) differ unless the factor is normalised.
    assert Stage1Config(1) == Stage1Config(1.0)
    assert config_hash(Stage1Config(1)) == config_hash(Stage1Config(1.0))


def test_get_profile_and_profiles():
    with pytest.raises(ValueError, match="nope") as err:
        get_profile("nope")
    for name in ("cpu", "paper", "smoke"):
        assert repr(name) in str(err.value)
    smoke = get_profile("smoke")
    assert smoke is PROFILES["smoke"] and smoke.name == "smoke"
    cfgs = smoke.stage1_configs()
    assert [(c.imbalance_factor, c.seed) for c in cfgs] == [(0.1, 0), (0.1, 1), (0.01, 0), (0.01, 1)]
    assert [c.seed for c in smoke.stage1_configs(imbalance_factors=[0.02], seeds=[7])] == [7]
    for prof in PROFILES.values():
        for cfg in prof.stage1_configs():  # every profile builds valid, distinct configs
            assert isinstance(cfg, Stage1Config)
        assert len({c.key for c in prof.stage1_configs()}) == len(prof.imbalance_factors) * len(prof.seeds)


def test_with_overrides():
    cfg = Stage1Config(0.1)
    assert with_overrides(cfg, epochs=3).epochs == 3
    assert cfg.epochs == 30  # frozen original untouched
    with pytest.raises(ValueError, match=r"\['nope'\]"):
        with_overrides(cfg, nope=1)
    with pytest.raises(ValueError, match="precision"):
        with_overrides(cfg, precision="int8")  # validation runs again


# ------------------------------------------------------------------ every field checked when constructed


def test_numpy_scalars_are_accepted_as_the_plain_numbers_they_are():
    cfg = Stage1Config(imbalance_factor=np.float32(0.5), seed=np.int64(3))
    assert cfg.imbalance_factor == 0.5 and type(cfg.imbalance_factor) is float
    assert cfg.seed == 3 and type(cfg.seed) is int
    assert cfg == Stage1Config(imbalance_factor=0.5, seed=3) and cfg.key == Stage1Config(0.5, 3).key


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("width", 0, r"width must be in \(0, 4\], got 0.0"),
        ("seed", -1, r"seed must be in \[0, inf\], got -1"),
        ("seed", 1.5, "seed must be an int, got 1.5"),
        ("epochs", True, "epochs must be an int, got True"),
        ("lr", float("nan"), "lr must be a finite number, got nan"),
        ("momentum", 1.0, r"momentum must be in \[0, 1\), got 1.0"),
        ("n_max", 0, r"n_max must be in \[1, inf\], got 0"),
        ("warmup_epochs", 40, r"warmup_epochs \(40\) must not exceed epochs \(30\)"),
        ("precision", "fp16", r"precision must be one of \('fp32', 'bf16'\), got 'fp16'"),
    ],
)
def test_stage1_config_checks_every_field_when_constructed(field, value, message):
    """Probe: Stage1Config(width=0) was accepted until the model was built, after the data load."""
    with pytest.raises(ValueError, match=message):
        Stage1Config(imbalance_factor=0.1, **{field: value})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MPQConfig(rule_bits=(4, 6)), r"rule_bits must be \(high, low\) with high > low bits"),
        (lambda: MPQConfig(rule_heads=("nope",)), r"unknown rule_heads \['nope'\]; choose from \['baseline'"),
        (lambda: MPQConfig(budget_heads=("crt", "x")), r"unknown budget_heads \['x'\]"),
        (lambda: MPQConfig(random_tolerance=0), r"random_tolerance must be in \(0, inf\]"),
        (lambda: DecoupleConfig(tau_grid="0.5"), "tau_grid must be a non-empty sequence of numbers"),
        (lambda: DecoupleConfig(lr=-1), r"lr must be in \(0, inf\]"),
        (lambda: QuantConfig(fold_bn="no"), "fold_bn must be True or False, got 'no'"),
        (lambda: QuantConfig(calibration_seed=-2), r"calibration_seed must be in \[0, inf\]"),
    ],
)
def test_stage2_quantizer_and_mpq_configs_check_their_fields(make, message):
    """Probe: MPQConfig(rule_bits=(4, 6)) and rule_heads=("nope",) were accepted."""
    with pytest.raises(ValueError, match=message):
        make()


# ------------------------------------------------------------------ chapter 5's quantizer fields


#: Recorded before the new fields were added (commit cf75aae): the names of every stored result.
RECORDED_HASHES = {
    "default": "37e3fa724dce",
    "per-tensor": "0509f2cec6f3",
    "BN not folded": "ed9744ca198a",
    "per-tensor, BN not folded": "fec5ca2dd87d",
    "MSE clipping": "771f721722d8",
    "+ 8-bit act., LT calib.": "5dfb5430a68a",
    "+ 8-bit act., balanced calib.": "5ba730c759a0",
    "+ 8-bit act., tail calib.": "f0e7a00c3789",
}


RECORDED_SMOKE_HASHES = {
    "default": "d91ae395c541",
    "per-tensor": "d681e5f4e720",
    "BN not folded": "7a9fefce6598",
    "per-tensor, BN not folded": "a2c84563089f",
    "MSE clipping": "f7fa496bae3b",
    "+ 8-bit act., LT calib.": "83a3373643c5",
    "+ 8-bit act., balanced calib.": "484cb97667c2",
    "+ 8-bit act., tail calib.": "2953c86b9a59",
}


def test_existing_configs_hash_as_before():
    assert config_hash(QuantConfig()) == "37e3fa724dce"
    assert config_hash(QuantConfig(**EXPLICIT_DEFAULTS)) == "37e3fa724dce"
    assert set(RECORDED_HASHES) == set(QUANT_ABLATIONS)
    for name, overrides in QUANT_ABLATIONS.items():
        assert config_hash(replace(QuantConfig(), **overrides)) == RECORDED_HASHES[name], name
    for profile in ("cpu", "cpu-v1", "paper"):
        got = {n: config_hash(q) for n, q in PROFILES[profile].quant_configs().items()}
        assert got == RECORDED_HASHES, profile
    assert {n: config_hash(q) for n, q in PROFILES["smoke"].quant_configs().items()} == RECORDED_SMOKE_HASHES
    every = QuantConfig(granularity="tensor", clipping="mse", fold_bn=False, act_bits=4, calibration="tail",
                        calibration_size=100, calibration_seed=3)  # fmt: skip
    assert config_hash(every) == "dd8bf5a2374e"
    s1, dcfg = Stage1Config(imbalance_factor=0.01), DecoupleConfig()
    assert config_hash(QuantizedRun(s1, dcfg, QuantConfig(), (8, 6, 5, 4, 3))) == "469d15e79f8b"
    assert config_hash(QuantizedRun(s1, dcfg, QuantConfig(act_bits=8), (8, 6, 5, 4, 3))) == "ec55501c0a6d"
    assert config_hash(MPQRun(s1, dcfg, QuantConfig(), MPQConfig())) == "aecb5b2d951e"


@pytest.mark.parametrize(
    "overrides, field, bad",
    [({"act_bits": "matched"}, "act_bits", "matched"), ({"act_bits": 1}, "act_bits", 1),
     ({"act_bits": 17}, "act_bits", 17), ({"act_bits": 8.0}, "act_bits", 8.0),
     ({"act_bits": True}, "act_bits", True),
     ({"logit_bits": "same"}, "logit_bits", "same"), ({"logit_bits": 1}, "logit_bits", 1),
     ({"logit_bits": 4.5}, "logit_bits", 4.5), ({"first_last_bits": "match"}, "first_last_bits", "match"),
     ({"first_last_bits": 1}, "first_last_bits", 1), ({"first_last_bits": True}, "first_last_bits", True),
     ({"weight_scheme": "asymmetric"}, "weight_scheme", "asymmetric"),
     ({"act_bits": 8, "act_scheme": "signed"}, "act_scheme", "signed"),
     ({"act_bits": 8, "act_clipping": "kl"}, "act_clipping", "kl"),
     ({"act_bits": 8, "act_clipping": None}, "act_clipping", None),
     ({"act_bits": 8, "act_clipping": "percentile", "act_percentile": 100.5}, "act_percentile", 100.5),
     ({"act_bits": 8, "act_clipping": "percentile", "act_percentile": 50}, "act_percentile", 50),
     ({"act_bits": 8, "act_clipping": "percentile", "act_percentile": np.nan}, "act_percentile", np.nan),
     # settings that would change nothing
     ({"act_scheme": "affine"}, "act_scheme", "affine"),
     ({"act_clipping": "histogram"}, "act_clipping", "histogram"),
     ({"act_bits": 8, "act_percentile": 99.9}, "act_percentile", 99.9)],
)  # fmt: skip
def test_bad_quant_config_values_are_errors_naming_them(overrides, field, bad):
    with pytest.raises(ValueError, match=field) as err:
        QuantConfig(**overrides)
    assert repr(bad) in str(err.value)
    assert "\n" not in str(err.value)


def test_good_new_values_are_accepted():
    q = QuantConfig(act_bits="match", logit_bits="match", act_scheme="affine", act_clipping="percentile",
                    act_percentile=np.float64(99.9), first_last_bits=np.int64(8),
                    weight_scheme="affine")  # fmt: skip
    assert type(q.act_percentile) is float and type(q.first_last_bits) is int
    assert QuantConfig(logit_bits=6, act_clipping="minmax").logit_bits == 6  # clipping of the logits alone


# ------------------------------------------------------------------ ExplainConfig


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"engine": "cuda"}, "engine must be one of x86, fbgemm, got 'cuda'"),
        ({"heads": ["ncm"]}, "heads: NCM is not a linear classifier on the features"),
        ({"heads": []}, r"heads must be a non-empty list of \['baseline', 'crt', .*\], got \[\]"),
        ({"heads": ("baseline", "svm")}, r"heads must be a non-empty list of .*got \['baseline', 'svm'\]"),
        ({"bits": (1,)}, r"bits must be an int in \[2, 16\], got 1"),
        ({"bits": (4, 17)}, r"bits must be an int in \[2, 16\], got 17"),
        ({"bits": (4.0,)}, r"bits must be an int in \[2, 16\], got 4.0"),
        ({"val_images": 5}, r"val_images must be in \[10, inf\], got 5"),
        ({"samples": 1}, r"samples must be in \[2, inf\], got 1"),
        ({"train_per_class": 0}, r"train_per_class must be in \[1, inf\], got 0"),
        ({"seed": -1}, r"seed must be in \[0, inf\], got -1"),
        ({"reduce_range": "yes"}, "reduce_range must be True or False, got 'yes'"),
    ],
)
def test_bad_explain_config_values_are_errors_naming_them(overrides, message):
    with pytest.raises(ValueError, match=message):
        ExplainConfig(**overrides)


def test_good_explain_configs_are_accepted():
    assert ExplainConfig(engine="fbgemm", reduce_range=True, heads=("crt",), bits=(2, 16)).bits == (2, 16)


# ------------------------------------------------------------------ Profile.quant_configs


def test_profile_quant_configs_change_one_thing_each():
    prof = get_profile("smoke")
    qcfgs = prof.quant_configs()
    assert list(qcfgs) == list(QUANT_ABLATIONS)
    assert qcfgs["default"] == prof.quant
    for name, q in qcfgs.items():
        assert q == replace(prof.quant, **QUANT_ABLATIONS[name]), name
        changed = {k for k in ("granularity", "clipping", "fold_bn", "act_bits", "calibration")
                   if getattr(q, k) != getattr(prof.quant, k)}  # fmt: skip
        assert changed <= set(QUANT_ABLATIONS[name]), name
        assert bool(changed) == (name != "default"), name
    with pytest.raises(ValueError, match="unknown quantizer variants"):
        prof.quant_configs(["default", "nope"])


def test_quant_configs_accepts_hypotheses_and_both_families_at_once():
    hyp = SMOKE.quant_configs(list(QUANT_HYPOTHESES))
    assert list(hyp) == list(QUANT_HYPOTHESES)
    for name, overrides in QUANT_HYPOTHESES.items():
        assert hyp[name] == replace(SMOKE.quant, **overrides)
    mixed = SMOKE.quant_configs(["default", "W=A, LT calib."])
    assert mixed["default"] == SMOKE.quant and mixed["W=A, LT calib."].act_bits == "match"
    assert list(SMOKE.quant_configs()) == list(QUANT_ABLATIONS)  # the default: chapter 3's only


def test_quant_configs_rejects_an_unknown_name_listing_both_families():
    with pytest.raises(ValueError) as err:
        SMOKE.quant_configs(["default", "W4A4 magic"])
    msg = str(err.value)
    assert msg.startswith("unknown quantizer variants ['W4A4 magic']; choose from chapter 3's [")
    assert "chapter 5's [" in msg and "or chapter 7's [" in msg
    assert all(repr(n) in msg for n in [*QUANT_ABLATIONS, *QUANT_HYPOTHESES])


# ------------------------------------------------------------------ the scale ladder's models and rungs


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
    base = prof.stage1_config(0.01, 1)
    wide = prof.rung_config(base, "width 0.5")
    assert wide == replace(base, width=0.5)
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


# ------------------------------------------------------------------ model families and losses


def test_arch_and_loss_leave_the_published_hashes_and_name_their_runs():
    from ltmpq.config import Stage1Config, config_hash

    base = Stage1Config(imbalance_factor=0.01)
    assert config_hash(Stage1Config(imbalance_factor=0.01, arch="vgg16", loss="ce")) == config_hash(base)
    resnet = Stage1Config(imbalance_factor=0.01, arch="resnet32", width=1.0)
    la = Stage1Config(imbalance_factor=0.01, loss="logit_adjusted")
    assert len({config_hash(base), config_hash(resnet), config_hash(la)}) == 3
    assert resnet.tag == "if0.01-seed0-resnet32-w1" and la.tag == "if0.01-seed0-la"
    with pytest.raises(ValueError, match="loss must be one of \\('ce', 'logit_adjusted'\\), got 'focal'"):
        Stage1Config(imbalance_factor=0.01, loss="focal")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stage1": [], "seeds": {0.01: (0,)}}, "stage1 must be a dict"),
        ({"stage1": {}, "seeds": {}}, "seeds must map"),
        ({"stage1": {}, "seeds": {0.01: [0]}}, "non-empty tuple of distinct seeds"),
        ({"stage1": {}, "seeds": {0.01: (0, 0)}}, "non-empty tuple of distinct seeds"),
        ({"stage1": {}, "seeds": {2.0: (0,)}}, "imbalance_factor must be in"),
        ({"stage1": {}, "seeds": {0.01: (0,)}, "sweep_ifs": (0.1,)}, "must be among the set's IFs"),
    ],
)
def test_model_sets_are_checked(kwargs, match):
    from ltmpq.config import ModelSet

    with pytest.raises(ValueError, match=match):
        ModelSet(**kwargs)


def test_a_profiles_model_sets_name_real_fields_and_values():
    from dataclasses import replace

    from ltmpq.config import ModelSet, get_profile

    smoke = get_profile("smoke")
    with pytest.raises(ValueError, match="model set 'x': unknown stage-1 fields \\['depth'\\]"):
        replace(smoke, families={"x": ModelSet({"depth": 3}, {0.01: (0,)})})
    with pytest.raises(ValueError, match="arch must be one of"):
        replace(smoke, families={"x": ModelSet({"arch": "vit"}, {0.01: (0,)})})
    with pytest.raises(ValueError, match="unknown quantizer variants"):
        replace(smoke, family_variants=("nope",))
    with pytest.raises(ValueError, match="unknown model set 'y'"):
        smoke.family_config("y", 0.01, 0)
    assert smoke.family_decouple.methods == (*smoke.decouple.methods, "logit_adj")


def test_strong_ptq_fields_are_checked_and_leave_earlier_hashes():
    from ltmpq.config import MITIGATIONS, QuantConfig, config_hash, get_profile

    assert config_hash(QuantConfig(ptq="rtn", bias_correction=False)) == config_hash(QuantConfig())
    with pytest.raises(ValueError, match="ptq must be one of"):
        QuantConfig(ptq="adaround")
    with pytest.raises(ValueError, match="bias_correction must be True or False"):
        QuantConfig(bias_correction="yes")
    with pytest.raises(ValueError, match="this QuantConfig sets \\{'clipping': 'mse'\\}"):
        QuantConfig(ptq="gptq", clipping="mse")
    qs = get_profile("smoke").quant_configs(list(MITIGATIONS))
    assert qs["Brevitas min-max"].brevitas and not QuantConfig().brevitas
    assert (
        qs["GPTQ, tail calib."].calibration == "tail" and qs["re-balanced after quantization"].rebalance_after
    )
    assert len({config_hash(q) for q in qs.values()}) == len(MITIGATIONS)
