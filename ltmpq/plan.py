"""The one list of runs: every result a profile stores, as a value that knows its kind, the stage
that makes it and what it builds on. Without torch.

A :class:`Run` wraps the frozen config that names its result (its content hash is the file name);
:func:`grid` enumerates a profile's runs (stages x imbalance factors x seeds x quantizer variants,
the scale ladder's rungs included). The engine schedules them, ``ltmpq status`` checks them, the
chapters read them (:mod:`ltmpq.load`), the tests and the appendix's cost table iterate them, and
:func:`ltmpq.runs.make` makes any of them. A new stage or model family is one entry here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import (
    MITIGATIONS,
    QUANT_ABLATIONS,
    QUANT_HYPOTHESES,
    DecoupledRun,
    ExplainRun,
    MPQRun,
    QuantizedRun,
    Stage1Config,
    config_hash,
    get_profile,
)
from .paths import results_dir

#: What ``make runs --stage`` accepts, in dependency order (each stage makes what it builds on
#: first): stage-1 training (chapter 1), stage 2 (chapter 2), chapter 3's quantizer sweeps,
#: chapter 4's mixed precision, chapter 5's quantizer hypotheses (sweeps of another quantizer),
#: its integer-runtime and curvature measurements, its scale ladder (wider models, swept), and the
#: model sets of the chapter "Beyond VGG16 and cRT" (other families and losses: trained, stage 2
#: with post-hoc logit adjustment, swept, mixed precision) and the sweeps of the chapter "Winning
#: the tail back" (stronger quantizers, calibration sets, stage 2 refitted after quantization).
STAGES = (
    "stage1",
    "decoupled",
    "quantized",
    "mpq",
    "hypotheses",
    "explain",
    "ladder",
    "families",
    "mitigations",
)
#: The kinds of stored result (a folder of ``results/<profile>/`` each), by the config that names them.
KIND_OF = {Stage1Config: "stage1", DecoupledRun: "decoupled", QuantizedRun: "quantized", MPQRun: "mpq",
           ExplainRun: "explain"}  # fmt: skip
KINDS = tuple(KIND_OF.values())
#: The version of each kind's numbers. Bump one when a change of code would make its stored results
#: come out differently: ``ltmpq status`` then calls them outdated, chapters refuse them and
#: ``make runs ... --remake`` remakes them. The golden test (tests/test_stage_versions.py) fails
#: when the numbers change without a bump.
STAGE_VERSIONS = {"stage1": 1, "decoupled": 1, "quantized": 1, "mpq": 1, "explain": 1}


def result_path(profile: str, kind: str, cfg: Any) -> Path:
    """``results/<profile>/<kind>/<tag>-<hash>.json``: where the result of a run config lives."""
    return results_dir() / profile / kind / f"{cfg.tag}-{config_hash(cfg)}.json"


@dataclass(frozen=True)
class Run:
    """One stored result: its ``config`` (which names it), the ``stage`` that makes it, and for a
    sweep its quantizer ``variant``; ``rung`` is the scale-ladder rung of a wider model (None: the
    profile's own models); ``family`` the model set of the chapter "Beyond VGG16 and cRT"."""

    config: Any
    stage: str
    variant: str | None = None
    rung: str | None = None
    family: str | None = None

    @property
    def kind(self) -> str:
        return KIND_OF[type(self.config)]

    @property
    def stage1(self) -> Stage1Config:
        """The stage-1 run (the trained model) this run is made from."""
        return self.config if isinstance(self.config, Stage1Config) else self.config.stage1

    @property
    def key(self) -> str:
        """Readable and unique per name: ``quantized-if0.01-seed0-per-tensor`` (``+logit_adj``
        where stage 2 fits more than the five published methods)."""
        dec = getattr(self.config, "decouple", None)
        extra = "".join(f"+{m}" for m in dec.extra_methods) if dec is not None else ""
        return f"{self.kind}-{self.stage1.tag}{extra}" + (f"-{self.variant}" if self.variant else "")

    @property
    def id(self) -> str:
        """Unique per stored result: two names of one quantizer share it (and its result)."""
        return f"{self.kind}/{config_hash(self.config)}"

    @property
    def deps(self) -> tuple[str, ...]:
        """The keys of the runs this one builds on: stage 1 for stage 2, stage 2 for the rest."""
        if self.kind == "stage1":
            return ()
        if self.kind == "decoupled":
            return (Run(self.stage1, "stage1").key,)
        return (Run(DecoupledRun(self.stage1, self.config.decouple), "decoupled").key,)

    def payload(self, profile: str) -> dict:
        """What every stored result of this run starts with (the stages and the tests' fake results
        build theirs on it): its kind, the version of its stage's numbers, profile, IF and seed."""
        c = self.stage1
        head = {"kind": self.kind, "stage_version": STAGE_VERSIONS[self.kind], "profile": profile,
                "imbalance_factor": c.imbalance_factor, "seed": c.seed}  # fmt: skip
        return head if self.kind == "stage1" else head | {"stage1_hash": config_hash(c)}

    def path(self, profile: str) -> Path:
        return result_path(profile, self.kind, self.config)

    def command(self, profile: str, *flags: str) -> str:
        """The shell command that makes this run's result (named in error messages)."""
        c = self.stage1
        args = [f"--if {c.imbalance_factor:g}", f"--seed {c.seed}"] if self.rung is None else []
        args += [f"--stage {self.stage}"] + ([f'--variant "{self.variant}"'] if self.variant else [])
        args += [f'--family "{self.family}"'] if self.family else []
        return f"make runs PROFILE={profile} RUN_ARGS='{' '.join([*args, *flags])}'"

    def describe(self) -> str:
        """The run and its config, as a failure report names it."""
        what = f"{self.kind}{f' ({self.variant})' if self.variant else ''} of {self.stage1.tag}"
        where = f", ladder rung {self.rung!r}" if self.rung else ""
        where += f", model set {self.family!r}" if self.family else ""
        c, name = self.stage1, type(self.config).__name__
        return f"{what} [{name} {config_hash(self.config)}: IF {c.imbalance_factor:g}, seed {c.seed}{where}]"


def variant_names(stage: str, profile: str) -> tuple[str, ...]:
    """The quantizer variants a sweep stage makes: chapter 3's ablations, chapter 5's hypotheses,
    or the scale ladder's."""
    if stage == "quantized":
        return tuple(QUANT_ABLATIONS)
    if stage == "hypotheses":
        return tuple(QUANT_HYPOTHESES)
    if stage == "ladder":
        return get_profile(profile).ladder_variants
    if stage == "families":
        return get_profile(profile).family_variants
    if stage == "mitigations":
        return tuple(MITIGATIONS)
    raise ValueError(f"stage {stage!r} makes no quantizer sweeps")


def _stage_ifs(profile: str) -> dict[str, tuple[float, ...]]:
    """The stages that run at some imbalance factors only, and those factors."""
    p = get_profile(profile)
    family_ifs = tuple(sorted({f for s in p.families.values() for f in s.seeds}, reverse=True))
    return {"mpq": p.mpq_ifs, "hypotheses": p.hypothesis_ifs, "explain": p.explain_ifs,
            "ladder": p.ladder_ifs if p.ladder else (), "families": family_ifs,
            "mitigations": p.mitigation_ifs}  # fmt: skip


def _model_runs(profile: str, cfg: Stage1Config, stage: str, variants: Sequence[str] | None,
                rung: str | None = None) -> list[Run]:  # fmt: skip
    """Stage ``stage``'s runs of one model (a stage-1 config)."""
    p = get_profile(profile)
    if stage == "stage1":
        return [Run(cfg, stage, rung=rung)]
    if stage == "decoupled":
        return [Run(DecoupledRun(cfg, p.decouple), stage, rung=rung)]
    if stage == "mpq":
        return [Run(MPQRun(cfg, p.decouple, p.quant, p.mpq), stage)]
    if stage == "explain":
        return [Run(ExplainRun(cfg, p.decouple, p.quant, p.explain), stage)]
    names = [v for v in variant_names(stage, profile) if variants is None or v in variants]
    qcfgs = p.quant_configs(names)
    # the mitigations build on the stage 2 with post-hoc logit adjustment (re-balancing after
    # quantization refits it too); only the default quantizer keeps its test predictions (paired
    # tests and flips need them)
    dcfg = p.family_decouple if stage == "mitigations" else p.decouple
    bits = (p.mitigation_bits or p.quant_bits) if stage == "mitigations" else p.quant_bits
    return [Run(QuantizedRun(cfg, dcfg, qcfgs[v], bits, v == "default"), stage, v, rung)
            for v in names]  # fmt: skip


def family_runs(
    profile: str, name: str, cfg: Stage1Config, variants: Sequence[str] | None = None
) -> list[Run]:
    """Every run of model set ``name`` at ``cfg``'s IF and seed (``cfg``: its stage-1 config):
    stage 1, stage 2 with the profile's ``family_methods``, and at the set's ``sweep_ifs`` the
    ``family_variants`` sweeps and, at ``family_mpq_ifs``, mixed precision."""
    p = get_profile(profile)
    dcfg = p.family_decouple
    names = [v for v in p.family_variants if variants is None or v in variants]
    qcfgs = p.quant_configs(names)
    out = [Run(cfg, "stage1", family=name), Run(DecoupledRun(cfg, dcfg), "decoupled", family=name)]
    sweeps = p.families[name].sweep_ifs
    if sweeps is not None and cfg.imbalance_factor not in sweeps:
        return out
    out += [Run(QuantizedRun(cfg, dcfg, qcfgs[v], p.quant_bits, v == "default"), "families", v, family=name)
            for v in names]  # fmt: skip
    if cfg.imbalance_factor in p.family_mpq_ifs and variants is None:
        out.append(Run(MPQRun(cfg, dcfg, p.quant, p.family_mpq), "families", family=name))
    return out


def grid(profile: str, imbalance_factors=None, seeds=None, stages: Sequence[str] = STAGES,
         variants: Sequence[str] | None = None, families: Sequence[str] | None = None,
         ) -> list[Run]:  # fmt: skip
    """Every run of a profile's ``stages`` at the given imbalance factors and seeds (default: the
    profile's), seed-major so that one full seed lands first, each run after what it builds on.

    ``variants`` keeps only the quantizer sweeps of these names (chapter 3's ablations, chapter 5's
    hypotheses or the ladder's); ``families`` only the runs of these model sets (stage
    ``families``). A name that two stages share (a hypothesis equal to an ablation)
    appears under each; :func:`unique` keeps one run per stored result. An unknown stage or
    variant, or a request that leaves nothing to do, is an error naming what is possible.
    """
    if isinstance(stages, str):
        stages = (stages,)
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise ValueError(f"unknown stages {unknown or list(stages)}; choose from {list(STAGES)}")
    prof = get_profile(profile)
    if variants is not None:
        prof.quant_configs(variants)  # unknown names fail here
    unknown = [f for f in families or () if f not in prof.families]
    if unknown or (families is not None and not families):
        raise ValueError(f"unknown model sets {unknown or []}; profile {profile!r} has {list(prof.families)}")
    cfgs = sorted(prof.stage1_configs(imbalance_factors, seeds), key=lambda c: (c.seed, -c.imbalance_factor))
    some_ifs = _stage_ifs(profile)
    out: list[Run] = []
    for cfg in cfgs:
        for stage in (s for s in STAGES if s in stages):
            if cfg.imbalance_factor not in some_ifs.get(stage, (cfg.imbalance_factor,)):
                continue
            if stage == "families":
                for name, ms in prof.families.items():
                    if families is not None and name not in families:
                        continue
                    if cfg.seed in ms.seeds.get(cfg.imbalance_factor, ()):
                        fcfg = prof.family_config(name, cfg.imbalance_factor, cfg.seed)
                        out += family_runs(profile, name, fcfg, variants)
            elif stage != "ladder":
                out += _model_runs(profile, cfg, stage, variants)
            elif cfg.seed in prof.ladder_seeds:  # the profile's model swept alike, then each wider rung
                out += _model_runs(profile, cfg, "ladder", variants)
                for rung, rcfg in list(prof.ladder_rungs(cfg).items())[1:]:
                    out += [
                        run
                        for s in ("stage1", "decoupled")
                        for run in _model_runs(profile, rcfg, s, None, rung)
                    ]
                    out += _model_runs(profile, rcfg, "ladder", variants, rung)
    if not out:
        asked = sorted({c.imbalance_factor for c in cfgs}, reverse=True)
        where = "; ".join(f"stage {s} runs at imbalance factors {list(some_ifs[s])} only"
                          for s in stages if s in some_ifs and not set(asked) & set(some_ifs[s]))  # fmt: skip
        if "ladder" in stages and prof.ladder:
            where += f"; the ladder at seeds {list(prof.ladder_seeds)}"
        if where.strip("; "):
            raise ValueError(
                f"nothing to do: {where.strip('; ')} (profile {profile!r}), and the request is for {asked}"
            )
        raise ValueError(f"nothing to do: no run for stages {list(stages)} and variants {variants}")
    return out


def unique(runs: Iterable[Run]) -> list[Run]:
    """One run per stored result (the first name of each), in order."""
    seen: dict[str, Run] = {}
    for r in runs:
        seen.setdefault(r.id, r)
    return list(seen.values())


def select(runs: Iterable[Run], *, stage: str | None = None, kind: str | None = None,
           rung: str | None | bool = False) -> list[Run]:  # fmt: skip
    """The runs of one stage or kind; ``rung``: only those of this ladder rung (None: the profile's
    own models; False: any)."""
    return [r for r in runs if (stage is None or r.stage == stage) and (kind is None or r.kind == kind)
            and (rung is False or r.rung == rung)]  # fmt: skip
