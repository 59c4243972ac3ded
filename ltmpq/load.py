"""Load the stored results a chapter shows: every run of its parameters, from ``results/``.

Without ``compute`` a missing result fails with the command that produces it (the book never
trains); with it, the run is made and stored (:mod:`ltmpq.runs`). Used by chapters 0-5.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import plan, results
from .params import ChapterParams


def stored(run: plan.Run, params: ChapterParams) -> dict:
    """One run's stored result; with ``params.compute`` a missing one is made (and stored)."""
    if not params.compute:
        return results.fetch(run, params.profile)
    from . import runs  # torch, only when the chapter may compute

    return runs.make(run, params.profile, compute=True)


def _runs(params: ChapterParams, stage: str, variants=None) -> list[plan.Run]:
    """The chapter's runs of one stage (the plan says at which IFs and seeds a stage runs), in the
    order of the chapter's parameters (imbalance factor, then seed): the order of its tables."""
    runs = plan.grid(params.profile, params.ifs, params.seed_list, (stage,), variants)
    ifs, seeds = list(params.ifs), list(params.seed_list)
    return sorted(runs, key=lambda r: (ifs.index(r.stage1.imbalance_factor), seeds.index(r.stage1.seed)))


def _by_model(params: ChapterParams, stage: str, what: str) -> dict:
    try:
        runs = _runs(params, stage)
    except ValueError:
        prof, where = params.prof, {"mpq": "mpq_ifs", "explain": "explain_ifs"}[stage]
        raise ValueError(
            f"{what} runs at imbalance factors {list(getattr(prof, where))}; the parameters ask for "
            f"{list(params.ifs)}"
        ) from None
    return {r.stage1: stored(r, params) for r in runs}


def stage1_results(params: ChapterParams) -> dict:
    """``{config: stored stage-1 result}`` for the chapter's runs (computing only if allowed)."""
    return {r.stage1: stored(r, params) for r in _runs(params, "stage1")}


def decoupled_results(params: ChapterParams, logit_adjustment: bool = False) -> dict:
    """``{config: stored decoupled result}`` for the chapter's runs.

    ``logit_adjustment``: each result also holds post-hoc logit adjustment (method
    ``logit_adj``), from the stage 2 of the model set that is the profile's own models (its
    ``families`` entry without stage-1 overrides), where the profile has one; that stage 2 refits
    the same four methods beside it (the results carry both, the chapter's come first)."""
    out = {r.stage1: stored(r, params) for r in _runs(params, "decoupled")}
    own = [n for n, ms in params.prof.families.items() if not ms.stage1]
    if not logit_adjustment or not own:
        return out
    from .vocab import LOGIT_ADJ

    extra = {r.stage1: r for r in _runs(params, "families") if r.family == own[0] and r.kind == "decoupled"}
    for cfg, r in out.items():
        if cfg not in extra:
            raise results.MissingResultError(
                f"post-hoc logit adjustment of {cfg.tag} is not in the plan: model set {own[0]!r} of profile "
                f"{params.profile!r} has IFs {list(params.prof.families[own[0]].seeds)}"
            )
        la = stored(extra[cfg], params)["methods"][LOGIT_ADJ]
        out[cfg] = r | {"methods": r["methods"] | {LOGIT_ADJ: la}}
    return out


def quantized_results(params: ChapterParams, variants: Sequence[str] | None = None) -> dict[str, dict]:
    """``{variant: {config: stored quantized sweep}}``: chapter 3's quantizer variants (default: all),
    or chapter 5's hypotheses where ``variants`` names them (at the IFs they ran at)."""
    hyps = [v for v in variants or () if v in plan.variant_names("hypotheses", params.profile)]
    names = list(variants or plan.variant_names("quantized", params.profile))
    runs = _runs(params, "quantized", [v for v in names if v not in hyps]) if len(hyps) < len(names) else []
    runs += _runs(params, "hypotheses", hyps) if hyps else []
    out: dict[str, dict] = {v: {} for v in names}
    for r in runs:
        out[r.variant][r.stage1] = stored(r, params)
    return out


def mpq_results(params: ChapterParams) -> dict:
    """``{config: stored chapter-4 result}`` for the runs at the profile's MPQ imbalance factors."""
    return _by_model(params, "mpq", "chapter 4")


def explain_results(params: ChapterParams) -> dict:
    """``{config: stored chapter-5 result}`` (integer runtime, curvature) at the profile's
    ``explain_ifs``."""
    return _by_model(params, "explain", "chapter 5")


def ladder_results(
    params: ChapterParams, *, allow_missing: bool = False
) -> tuple[dict[str, dict], dict[str, dict], dict[str, str]]:
    """Chapter 5's scale ladder at the chapter's IFs and seeds that it ran at: ``({rung: {variant:
    {config: stored sweep}}}, {rung: {config: stored stage-1 result}}, {rung: what is missing})``,
    the profile's own models first (rung :attr:`~ltmpq.config.Profile.ladder_base`), then each rung
    of ``Profile.ladder`` (configs are the rung's own).

    A missing result fails with the command that makes it, as everywhere; ``allow_missing`` instead
    leaves out a wider rung that is not complete and says so in the third dict (the first rung is
    always required): the book can state which rungs a machine could not afford."""
    prof = params.prof
    try:
        runs = _runs(params, "ladder")
    except ValueError:
        raise ValueError(
            f"the scale ladder of profile {params.profile!r} runs at imbalance factors "
            f"{list(prof.ladder_ifs)} and seeds {list(prof.ladder_seeds)}; the parameters ask for "
            f"{list(params.ifs)} and {list(params.seed_list)}"
        ) from None
    base = [r.stage1 for r in runs if r.rung is None and r.kind == "quantized"]
    base_runs = [plan.Run(c, "stage1") for c in dict.fromkeys(base)]
    quant, stage1, missing = {}, {}, {}
    for rung in prof.ladder_rungs(base[0]):
        key = None if rung == prof.ladder_base else rung
        mine = [r for r in runs if r.rung == key]
        models = base_runs if key is None else [r for r in mine if r.kind == "stage1"]
        try:
            s1 = {r.stage1: stored(r, params) for r in models}
            q: dict[str, dict] = {}
            for r in (r for r in mine if r.kind == "quantized"):
                q.setdefault(r.variant, {})[r.stage1] = stored(r, params)
        except results.MissingResultError as exc:
            if not allow_missing or key is None:
                raise
            missing[rung] = _missing_rung(params, models, exc)
            continue
        stage1[rung], quant[rung] = s1, q
    return quant, stage1, missing


def _missing_rung(params: ChapterParams, models: list[plan.Run], exc: Exception) -> str:
    """What a reader is told of a rung that is not complete: how many of its models are trained,
    and the command that makes the rest."""
    done = sum(results.run_state(r, params.profile) == "ok" for r in models)
    command = f"make runs PROFILE={params.profile} RUN_ARGS='--stage ladder --jobs 2'"
    if isinstance(exc, results.ResultError):
        return str(exc)
    return f"{done} of {len(models)} models trained; make the rest with {command}"


def data_sources(*stored: dict) -> list[dict]:
    """Distinct data sources recorded in the provenance of stored results."""
    seen = {}
    for group in stored:
        for r in group.values():
            src = r["provenance"]["data_source"]
            seen[(src["kind"], src.get("sha256"))] = src
    return list(seen.values())


def data_note(*stored: dict) -> str:
    """What the book says the numbers were computed on (the JPEG copy is lossy: say so)."""
    lossy = any(src["lossy"] for src in data_sources(*stored))
    return "the lossy JPEG copy (quality 75) of CIFAR-10" if lossy else "the original CIFAR-10"


def data_source_lines(*stored: dict) -> str:
    """The data copies behind stored results, as the book lists them (kind, note, folder, digest)."""
    from pathlib import Path

    lines = []
    for src in data_sources(*stored):
        folder = src.get("name") or Path(src["path"]).name  # results made before names were recorded
        lines += [f"- {src['kind']}: {src['note']}", f"  folder: {folder}"]
        if src.get("sha256"):
            lines.append(f"  content sha256: {src['sha256']}")
    return "\n".join(lines)


def test_images(cfg):
    """The images of a stage-1 run's test split, in the order its predictions are stored
    (chapter 3's exemplars), or None with a printed note when CIFAR-10 is not on this machine
    (the book still reads without the pictures)."""
    from . import artifacts
    from .data import DataNotFoundError

    try:
        data = artifacts.dataset()
    except DataNotFoundError as exc:
        print(f"CIFAR-10 not found, exemplar images not shown ({exc})")
        return None
    return data.test_x[artifacts.splits_for(cfg, data).test]


def family_results(
    params: ChapterParams, *, allow_missing: bool = True
) -> tuple[dict[str, dict], dict[str, str]]:
    """The model sets of the chapter "Beyond VGG16 and cRT" at the chapter's IFs and seeds:
    ``({name: {"stage1": {cfg: r}, "decoupled": {cfg: r}, "quantized": {variant: {cfg: r}},
    "mpq": {cfg: r}}}, {name: what is missing})``.

    With ``allow_missing`` a set shows the models it has: a model whose stage 1 or stage 2 is not
    stored is left out (with its sweeps and mixed precision), and a quantizer's sweeps or the
    mixed-precision runs unless every model shown has one (intervals over the same models);
    ``missing`` says for each set how many of its models, sweeps and mixed-precision runs are
    stored and the command that makes the rest; a set without any model is left out. Without it
    the first missing result fails with its command, as everywhere."""
    out: dict[str, dict] = {}
    missing: dict[str, str] = {}
    try:
        runs = _runs(params, "families")
    except ValueError:
        raise ValueError(
            f"the model sets of profile {params.profile!r} run at "
            + "; ".join(f"{n}: IFs {list(ms.seeds)}" for n, ms in params.prof.families.items())
            + f"; the parameters ask for {list(params.ifs)} and seeds {list(params.seed_list)}"
        ) from None
    for name in params.prof.families:
        mine = [r for r in runs if r.family == name]
        got: dict = {"stage1": {}, "decoupled": {}, "quantized": {}, "mpq": {}}
        trained = set()  # stage 1 stored, shown or not (a model waiting for its stage 2 is trained)
        for r in mine:
            if r.kind != "stage1" and r.stage1 not in got["stage1"]:
                continue  # its model is not there
            try:
                value = stored(r, params)
            except results.MissingResultError as exc:
                if not allow_missing:
                    raise
                if isinstance(exc, results.ResultError):  # unreadable or outdated: say so as it is
                    missing[f"{name} ({r.stage1.tag})"] = str(exc)
                if r.kind == "decoupled":  # a model shows with its stage 2 or not at all
                    del got["stage1"][r.stage1]
                continue
            if r.kind == "stage1":
                trained.add(r.stage1)
            if r.kind == "quantized":
                got["quantized"].setdefault(r.variant, {})[r.stage1] = value
            else:
                got[r.kind][r.stage1] = value
        shown = set(got["stage1"])

        # a quantizer's sweeps must cover every model shown where the plan sweeps, or their
        # intervals mix other models; likewise mixed precision (claim 4)
        got["quantized"] = {v: by for v, by in got["quantized"].items()
                            if set(by) == _planned(mine, shown, "quantized", v)}  # fmt: skip
        if set(got["mpq"]) != _planned(mine, shown, "mpq"):
            got["mpq"] = {}
        have = {
            "stage1": len(trained),
            "decoupled": len(shown),
            "quantized": sum(map(len, got["quantized"].values())),
            "mpq": len(got["mpq"]),
        }
        total = {k: sum(r.kind == k for r in mine) for k in have}
        if have != total:
            missing[name] = _missing_family(params, name, have, total)
        if shown:
            out[name] = got
    if not out:  # nothing to show: fail as every chapter does, with the commands
        raise results.MissingResultError(
            "no model set has a model yet: " + " ".join(f"{k}: {v}." for k, v in missing.items())
        )
    return out, missing


def _planned(runs: list[plan.Run], shown: set, kind: str, variant: str | None = None) -> set:
    """The models among ``shown`` that ``runs`` give a result of this kind (and variant)."""
    return {r.stage1 for r in runs if r.kind == kind and r.variant == variant} & shown


def _missing_family(params: ChapterParams, name: str, have: dict[str, int], total: dict[str, int]) -> str:
    """What a reader is told of a model set that is not complete: how many of its models, sweeps
    and mixed-precision runs are stored, and the command that makes the rest."""
    command = f"make runs PROFILE={params.profile} RUN_ARGS='--stage families --family \"{name}\" --jobs 2'"
    words = {"stage1": "models trained", "decoupled": "models with stage 2", "quantized": "sweeps",
             "mpq": "mixed-precision runs"}  # fmt: skip
    counts = ", ".join(f"{have[k]} of {total[k]} {w}" for k, w in words.items() if have[k] != total[k])
    return f"{counts}; make the rest with {command}"


def mitigation_results(params: ChapterParams) -> tuple[dict[str, dict], dict]:
    """The chapter "Winning the tail back": ``({variant: {config: stored sweep}}, {config: stored
    mixed precision})`` at the chapter's IFs and seeds, the reference first (``"default"``: the
    book's quantizer on the same stage 2, from the model set that is the profile's own models),
    then every sweep of :data:`ltmpq.config.MITIGATIONS`; mixed precision from that set too."""
    own = [n for n, ms in params.prof.families.items() if not ms.stage1]
    if not own:
        raise ValueError(f"profile {params.profile!r} has no model set of its own models (Profile.families)")
    try:
        runs = _runs(params, "mitigations")
        mine = [r for r in _runs(params, "families") if r.family == own[0]]
    except ValueError:
        raise ValueError(
            f"the mitigations of profile {params.profile!r} run at imbalance factors "
            f"{list(params.prof.mitigation_ifs)}; the parameters ask for {list(params.ifs)}"
        ) from None
    qres: dict[str, dict] = {"default": {}}
    mres: dict = {}
    for r in mine:
        if r.kind == "quantized" and r.variant == "default":
            qres["default"][r.stage1] = stored(r, params)
        elif r.kind == "mpq":
            mres[r.stage1] = stored(r, params)
    for r in runs:
        qres.setdefault(r.variant, {})[r.stage1] = stored(r, params)
    return qres, mres


def study_results(params: ChapterParams) -> tuple[ChapterParams, dict, dict, dict, dict]:
    """What chapter 4's verdict table judges, as the landing page and the conclusion read it:
    chapter 4's mixed-precision runs at ``params``' IF, and for the same seeds at every IF the
    stage-1 and stage-2 results and the default sweeps; with the parameters of those seeds."""
    mres = mpq_results(params)
    every_if = ChapterParams(params.profile, params.compute, None, tuple(c.seed for c in mres))
    qres = quantized_results(every_if, ["default"])["default"]
    return every_if, stage1_results(every_if), decoupled_results(every_if), qres, mres
