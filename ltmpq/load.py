"""Load the stored results a chapter shows: every run of its parameters, from ``results/``.

Without ``compute`` a missing result fails with the command that produces it (the book never
trains); with it, the run is made and stored (:mod:`ltmpq.runs`). Used by chapters 0-5.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import results, runs
from .params import ChapterParams


def stage1_results(params: ChapterParams) -> dict:
    """``{config: stored stage-1 result}`` for the chapter's runs (computing only if allowed)."""
    return {c: runs.stage1(c, params.profile, compute=params.compute) for c in params.configs()}


def decoupled_results(params: ChapterParams) -> dict:
    """``{config: stored decoupled result}`` for the chapter's runs."""
    d = params.prof.decouple
    return {c: runs.decoupled(c, d, params.profile, compute=params.compute) for c in params.configs()}


def quantized_results(params: ChapterParams, variants: Sequence[str] | None = None) -> dict[str, dict]:
    """``{variant: {config: stored quantized sweep}}`` for chapter 3's quantizer variants."""
    prof = params.prof
    return {
        name: {
            c: runs.quantized(
                c,
                prof.decouple,
                q,
                prof.quant_bits,
                params.profile,
                keep_predictions=keep,
                compute=params.compute,
            )
            for c in params.configs()
        }
        for name, (q, keep) in runs.quant_variants_for(params.profile, variants).items()
    }


def mpq_results(params: ChapterParams) -> dict:
    """``{config: stored chapter-4 result}`` for the runs at the profile's MPQ imbalance factors."""
    prof = params.prof
    cfgs = [c for c in params.configs() if c.imbalance_factor in prof.mpq_ifs]
    if not cfgs:
        raise ValueError(
            f"chapter 4 runs at imbalance factors {list(prof.mpq_ifs)}; "
            f"the parameters ask for {list(params.ifs)}"
        )
    return {
        c: runs.mixed_precision(
            c, prof.decouple, prof.quant, prof.mpq, params.profile, compute=params.compute
        )
        for c in cfgs
    }


def explain_results(params: ChapterParams) -> dict:
    """``{config: stored chapter-5 result}`` (integer runtime, curvature) at the profile's
    ``explain_ifs``."""
    prof = params.prof
    cfgs = [c for c in params.configs() if c.imbalance_factor in prof.explain_ifs]
    if not cfgs:
        raise ValueError(
            f"chapter 5 runs at imbalance factors {list(prof.explain_ifs)}; "
            f"the parameters ask for {list(params.ifs)}"
        )
    return {
        c: runs.explain(c, prof.decouple, prof.quant, prof.explain, params.profile, compute=params.compute)
        for c in cfgs
    }


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
    base = [c for c in params.configs() if prof.on_ladder(c)]
    if not prof.ladder or not base:
        raise ValueError(
            f"the scale ladder of profile {params.profile!r} runs at imbalance factors "
            f"{list(prof.ladder_ifs)} and seeds {list(prof.ladder_seeds)}; the parameters ask for "
            f"{list(params.ifs)} and {list(params.seed_list)}"
        )
    variants = runs.quant_variants_for(params.profile, prof.ladder_variants)
    command = f"make runs PROFILE={params.profile} RUN_ARGS='--stage ladder --jobs 2'"
    quant, stage1, missing = {}, {}, {}
    for rung in prof.ladder_rungs(base[0]):
        cfgs = [prof.ladder_rungs(c)[rung] for c in base]
        try:
            s1 = {c: runs.stage1(c, params.profile, compute=params.compute) for c in cfgs}
            q = {
                name: {
                    c: runs.quantized(
                        c,
                        prof.decouple,
                        qc,
                        prof.quant_bits,
                        params.profile,
                        keep_predictions=keep,
                        compute=params.compute,
                    )  # fmt: skip
                    for c in cfgs
                }
                for name, (qc, keep) in variants.items()
            }
        except results.MissingResultError:
            if not allow_missing or rung == prof.ladder_base:
                raise
            done = sum(results.result_path(params.profile, "stage1", c).is_file() for c in cfgs)
            missing[rung] = f"{done} of {len(cfgs)} models trained; make the rest with {command}"
            continue
        stage1[rung], quant[rung] = s1, q
    return quant, stage1, missing


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
