"""Appendix "The v2 model set": the recipe search on the validation split, the validation split's
size, and Table 1 of v1 and v2 beside the blog's.

Every value the appendix glues or tabulates comes from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields

import numpy as np
import pandas as pd

from .. import frames, recipe
from ..config import Stage1Config
from ..results import decode_predictions
from ..uncertainty import ranking_reliability
from .ch1_evaluation import table1_vs_blog
from .ch2_decoupling import TABLE1_MODELS

# --------------------------------------------------------------------------- the recipe search


def search_frame(profile: str, stored: Mapping[str, dict]) -> pd.DataFrame:
    """One row per candidate (validation numbers in points, projected model-set time)."""
    return pd.DataFrame(recipe.table(profile, dict(stored))).set_index("recipe")


#: The candidate pairs that differ in precision alone (bf16, fp32), and how far below fp32 a
#: bf16 run may land before it counts as a loss (points of validation accuracy; one seed each).
BF16_PAIRS = (
    ("cosine, 30 ep, bf16", "v1: cosine, 30 ep, fp32"),
    ("one-cycle, 40 ep, bf16", "one-cycle, 40 ep, fp32"),
)
BF16_TOLERANCE = 1.0


def search_facts(frame: pd.DataFrame, chosen: str, budget_s: float) -> dict:
    """What the search found: the chosen recipe, its gain over v1's on the same split, and the
    effect of each lever measured as the difference of two candidates that differ only in it."""
    v1 = frame.iloc[0]  # the first candidate is v1's recipe (recipe.RECIPES)
    best = frame.loc[chosen]

    def diff(a: str, b: str) -> str:
        if a not in frame.index or b not in frame.index:
            return "n/a"
        return f"{frame.loc[a, 'val balanced'] - frame.loc[b, 'val balanced']:+.1f}"

    pair = ("cosine, 30 ep, bf16", "v1: cosine, 30 ep, fp32")
    speedup = "n/a"
    if set(pair) <= set(frame.index):
        speedup = f"{frame.loc[pair[0], 'img/s'] / frame.loc[pair[1], 'img/s']:.1f}"
    bf16 = [diff(*BF16_PAIRS[0]), diff(*BF16_PAIRS[1])]
    # judged on the unrounded differences (the text shows them rounded)
    known = [frame.loc[a, "val balanced"] - frame.loc[b, "val balanced"]
             for a, b in BF16_PAIRS if a in frame.index and b in frame.index]  # fmt: skip
    if not known:
        bf16_word = "not measured"
    elif all(d < -BF16_TOLERANCE - 1e-9 for d in known):  # exactly the tolerance is no loss
        bf16_word = "a loss in every comparison"
    else:
        bf16_word = "no consistent loss"
    return {
        "recipe_chosen": chosen,
        "bf16_verdict": bf16_word,
        "recipe_n": len(frame),
        "recipe_val": f"{best['val balanced']:.1f}",
        "recipe_val_tail": f"{best['val tail']:.1f}",
        "recipe_v1_val": f"{v1['val balanced']:.1f}",
        "recipe_v1_val_tail": f"{v1['val tail']:.1f}",
        "recipe_gain": f"{best['val balanced'] - v1['val balanced']:+.1f}",
        "recipe_minutes": f"{best['model set (min)']:.0f}",
        "recipe_budget": f"{budget_s / 60:.0f}",
        "bf16_speedup": speedup,
        "lever_bf16": bf16[0],
        "lever_onecycle": diff("one-cycle, 30 ep, bf16", "cosine, 30 ep, bf16"),
        "lever_bf16_onecycle": bf16[1],
        "lever_40ep": diff("one-cycle, 40 ep, bf16", "one-cycle, 30 ep, bf16"),
        "lever_60ep": diff("one-cycle, 60 ep, bf16", "one-cycle, 40 ep, bf16"),
    }


def stage2_frame(rows: list[dict]) -> pd.DataFrame:
    """Stage 2's candidates as a table indexed by (candidate, method)."""
    return pd.DataFrame(rows).set_index(["stage 2", "method"])


def stage2_range(rows: list[dict], method: str = "crt") -> str:
    """How far apart the stage-2 candidates' validation accuracies of ``method`` lie (points)."""
    vals = [r["val overall"] for r in rows if r["method"] == method]
    return f"{max(vals) - min(vals):.1f}" if vals else "n/a"


#: How the lever table names a stage-1 setting's values (others: by the value itself).
SETTING_WORDS = {"schedule": {"cosine": "warm-up + cosine", "onecycle": "one-cycle"}}


def _settings(cfg: Stage1Config) -> dict:
    """A stage-1 config's settings, in declaration order."""
    return {f.name: getattr(cfg, f.name) for f in fields(cfg)}


def lever_name(cfg: Stage1Config, reference: Stage1Config) -> str:
    """What ``cfg`` changes from ``reference``, in words: "bf16 instead of fp32", "one-cycle
    instead of warm-up + cosine", "60 instead of 40 epochs", "width 0.5 instead of 0.25" (several
    changes joined by '; ')."""
    parts = []
    for name, old in _settings(reference).items():
        new = getattr(cfg, name)
        if new == old:
            continue
        words = SETTING_WORDS.get(name, {})
        if name == "epochs":
            parts.append(f"{new} instead of {old} epochs")
        elif name in ("precision", *SETTING_WORDS):
            parts.append(f"{words.get(new, new)} instead of {words.get(old, old)}")
        else:
            shown = [f"{v:g}" if isinstance(v, float) else str(v) for v in (new, old)]
            parts.append(f"{name} {shown[0]} instead of {shown[1]}")
    return "; ".join(parts)


def _closer(x, y, base) -> bool:
    """Whether setting value ``x`` is strictly closer to the base recipe's than ``y``: equal to it
    while ``y`` is not, or, for numbers, nearer."""
    if x == base or y == base:
        return x == base and y != base
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y, base))
    return numbers and abs(x - base) < abs(y - base)


def lever_frame(configs: Mapping[str, Stage1Config], frame: pd.DataFrame) -> pd.DataFrame:
    """Every pair of stored candidates (rows of ``frame``) that differ in one setting alone, as
    one lever each: the change (:func:`lever_name`), the candidate with it and the one without,
    and the difference in validation balanced and tail accuracy (points). ``configs``: candidate
    -> its stage-1 config, in the search's order, the base recipe first. Of a pair, the reference
    is the candidate that keeps the base recipe's value, else, for a number, the one closer to it
    (so a lever reads "60 instead of 40 epochs" when the base trains 30), else the one listed
    first. Rows follow the search's order of the candidate with the lever, then of its
    reference."""
    names = [n for n in configs if n in frame.index]
    base = _settings(configs[next(iter(configs))])
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            differ = [f for f, v in _settings(configs[a]).items() if getattr(configs[b], f) != v]
            if len(differ) != 1:
                continue
            ref, new = (b, a) if _closer(getattr(configs[b], differ[0]), getattr(configs[a], differ[0]),
                                         base[differ[0]]) else (a, b)  # fmt: skip
            gain = frame.loc[new] - frame.loc[ref]
            rows.append(
                {
                    "order": (names.index(new), names.index(ref)),
                    "lever": lever_name(configs[new], configs[ref]),
                    "candidate": new,
                    "against": ref,
                    "val balanced (points)": gain["val balanced"],
                    "val tail (points)": gain["val tail"],
                }
            )
    columns = ["lever", "candidate", "against", "val balanced (points)", "val tail (points)"]
    t = pd.DataFrame(rows, columns=["order", *columns])
    return t.sort_values("order", kind="stable")[columns].set_index("lever")


# --------------------------------------------------------------------------- validation split size


def split_reliability(
    mres: Mapping, heads: Sequence[str], bits: Sequence[int], sizes: Sequence[int]
) -> pd.DataFrame:
    """Per (seed, head, bits): the spread of chapter 4's single-layer sensitivities on its
    validation split, their noise, and the reliability of the layer ranking on splits of ``sizes``
    images (:func:`ltmpq.uncertainty.ranking_reliability`); accuracy in points."""
    rows = []
    for cfg, r in mres.items():
        y = decode_predictions(r["val_labels"])
        for h in heads:
            s = r["sweep"][h]
            f = decode_predictions(s["float"]) == y
            for b in bits:
                layers = s["layers"].values()
                q = np.stack([decode_predictions(v[str(b)]["predictions"]) == y for v in layers])
                est = ranking_reliability(f, q, sizes)
                row = {"seed": cfg.seed, "head": h, "bits": b, "spread": 100 * est["spread"],
                       "noise": 100 * est["noise_sd"], "true": 100 * est["true_sd"]}  # fmt: skip
                row |= {m: est["reliability"][m] for m in sizes}
                rows.append(row)
    return pd.DataFrame(rows)


def reliability_table(frame: pd.DataFrame, sizes: Sequence[int]) -> pd.DataFrame:
    """Mean over seeds per (head, bits): spread, noise, true spread (points) and the reliability
    at each split size (as 'per class' columns of a 10-class split)."""
    t = frame.groupby(["head", "bits"])[["spread", "noise", "true", *sizes]].mean()
    return t.rename(columns={m: f"r at {m // 10}/class" for m in sizes})


def split_facts(frame: pd.DataFrame, current: int, chosen: int, bits_clear: int, bits_noisy: int) -> dict:
    """The numbers the split-size decision rests on: the mean reliability of the layer ranking
    at ``bits_clear`` and ``bits_noisy`` on the current and the chosen split."""

    def mean(b: int, m: int) -> str:
        return f"{frame.loc[frame['bits'] == b, m].mean():.2f}"

    noisy = frame[frame["bits"] == bits_noisy]
    return {
        "val_current": current // 10,
        "val_chosen": chosen // 10,
        "rel_clear_now": mean(bits_clear, current),
        "rel_clear_chosen": mean(bits_clear, chosen),
        "rel_noisy_now": mean(bits_noisy, current),
        "rel_noisy_chosen": mean(bits_noisy, chosen),
        "noisy_true_sd": f"{noisy['true'].mean():.2f}",
        "noisy_noise_sd": f"{noisy['noise'].mean():.2f}",
        "bits_clear": bits_clear,
        "bits_noisy": bits_noisy,
    }


def measured_reliability(frame: pd.DataFrame, size: int, bits_clear: int, bits_noisy: int) -> dict:
    """The check of the split-size decision on the model set trained with it: the mean
    reliability at ``size`` images (the split's own) at both bit-widths of :func:`split_facts`,
    and the true spread and noise (points) at ``bits_noisy``."""
    noisy = frame[frame["bits"] == bits_noisy]
    return {
        "val_measured": size // 10,
        "rel_measured_clear": f"{frame.loc[frame['bits'] == bits_clear, size].mean():.2f}",
        "rel_measured_noisy": f"{noisy[size].mean():.2f}",
        "true_measured_noisy": f"{noisy['true'].mean():.2f}",
        "noise_measured_noisy": f"{noisy['noise'].mean():.2f}",
    }


# --------------------------------------------------------------------------- Table 1, v1 and v2


def table1_versions(summary_v1: pd.DataFrame | None, summary_v2: pd.DataFrame) -> pd.DataFrame:
    """Table 1 cells (IF, model, metric): the blog's, v1's and v2's mean and their differences
    from the blog (points). Without ``summary_v1`` (a profile with no predecessor) its columns are
    NaN."""
    methods = tuple(TABLE1_MODELS)
    v2 = table1_vs_blog(summary_v2, methods).rename(columns={"ours": "v2", "difference": "v2 - blog"})
    keys = ["imbalance_factor", "method", "metric"]
    out = v2[[*keys, "blog", "v2", "v2 - blog"]]
    if summary_v1 is None:
        out = out.assign(v1=np.nan, **{"v1 - blog": np.nan})
    else:
        v1 = table1_vs_blog(summary_v1, methods).rename(columns={"ours": "v1", "difference": "v1 - blog"})
        out = out.merge(v1[[*keys, "v1", "v1 - blog"]], on=keys, how="left")
    out["method"] = out["method"].map(TABLE1_MODELS)
    return out[[*keys, "blog", "v1", "v2", "v1 - blog", "v2 - blog"]]


def mean_abs_difference(cells: pd.DataFrame, column: str) -> float:
    """Mean |ours - blog| over the Table 1 cells (NaN cells skipped)."""
    return float(cells[column].abs().mean())


def table1_versions_facts(cells: pd.DataFrame) -> dict:
    """Mean |difference| of v1 and v2 over Table 1's cells, and how many cells v2 has (v1 has
    the same ones whenever its profile ran the same imbalance factors)."""
    v1 = mean_abs_difference(cells, "v1 - blog")
    v2 = mean_abs_difference(cells, "v2 - blog")
    return {"mad_v1": "n/a" if np.isnan(v1) else f"{v1:.1f}", "mad_v2": f"{v2:.1f}",
            "mad_cells": int(cells["v2 - blog"].notna().sum())}  # fmt: skip


def table1_versions_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Rows (IF, metric), columns (model, blog | v1 | v2 | v1 - blog | v2 - blog)."""
    values = ["blog", "v1", "v2", "v1 - blog", "v2 - blog"]
    t = cells.pivot_table(index=["imbalance_factor", "metric"], columns="method", values=values,
                          aggfunc="first", dropna=False)  # fmt: skip
    t = t.swaplevel(axis=1)[[(m, v) for m in TABLE1_MODELS.values() for v in values]]
    order = {"overall": 0, "head": 1, "tail": 2}
    return t.sort_index(
        level=[0, 1], ascending=[False, True], key=lambda i: i.map(order.get) if i.name == "metric" else i
    )


# --------------------------------------------------------------------------- what training cost


def training_cost(s1: Mapping, processes: int = 2) -> dict:
    """The model set's training: summed per-process seconds, its wall time on ``processes``
    one-thread processes (perfectly shared), and the mean throughput."""
    seconds = sum(r["train_seconds"] for r in s1.values())
    images = sum(sum(h["images"] for h in r["history"]) for r in s1.values())
    return {
        "train_models": len(s1),
        "train_cpu_min": f"{seconds / 60:.0f}",
        "train_wall_min": f"{seconds / processes / 60:.0f}",
        "train_img_s": f"{images / seconds:.0f}",
        "train_processes": processes,
    }


def rebuild_cost(parts: Mapping[str, Mapping], processes: int = 2) -> tuple[pd.DataFrame, dict]:
    """Where a rebuild of the profile's results goes, from the seconds each stored result records
    (:func:`ltmpq.frames.cost_frame`).

    ``parts``: part name -> ``{key: stored result}`` (e.g. "training" -> stage-1 results,
    "chapter 4" -> mpq results). Training counts its training seconds, chapter 4 its measured
    sweep / Hessian traces / allocations, every other part its wall time. Wall time on
    ``processes`` one-thread processes is the summed process time divided by them (the grid keeps
    both busy; the last, lone task of a stage makes it a lower bound). A result that two parts
    share is counted once, in the first."""
    f = frames.cost_frame(parts)
    f = f.merge(f.drop_duplicates("result")[["result", "group"]])  # a shared result: its first part only
    split = {"sweep": "single-layer sweep", "hessian": "Hessian traces", "evaluation": "allocations"}
    f = f[(f["kind"] != "mpq") | f["part"].isin(list(split))]
    # in the order of the parts asked for, chapter 4's as listed in ``split``
    rank, group = {p: i for i, p in enumerate(split)}, {g: i for i, g in enumerate(parts)}
    f = f.iloc[np.lexsort([f["part"].map(rank).fillna(-1), f["group"].map(group)])]
    f["part"] = [
        f"{g}: {split[p]}" if k == "mpq" else g for g, k, p in f[["group", "kind", "part"]].to_numpy()
    ]
    rows = []
    for part, g in f.groupby("part", sort=False):
        made = g.drop_duplicates("result")["machine"].value_counts(sort=False)
        rows.append({"part": part, "runs": g["result"].nunique(), "seconds": g["seconds"].sum(),
                     "machines": ", ".join(f"{m} × {n}" for m, n in made.items())})  # fmt: skip
    t = pd.DataFrame(rows)
    t["process-min"] = t["seconds"] / 60
    t[f"wall-min on {processes}"] = t["process-min"] / processes
    wall = t[f"wall-min on {processes}"]
    cold = float(wall.sum())
    weights = float(wall[t["part"] != "training"].sum())
    facts = {
        "rebuild_cold_h": f"{cold / 60:.1f}",
        "rebuild_weights_min": f"{weights:.0f}",
        "rebuild_largest": t.loc[t["seconds"].idxmax(), "part"],
        "rebuild_machines": f["machine"].nunique(),
    }
    return t.drop(columns="seconds").set_index("part"), facts


def head_counts(s1_v1: Mapping | None, s1_v2: Mapping) -> dict:
    """Training images of the largest class in v1 and v2 (what the larger split costs it)."""

    def largest(s1: Mapping | None) -> str:
        return "n/a" if not s1 else f"{max(max(r['train_counts']) for r in s1.values()):,}"

    return {"head_count_v1": largest(s1_v1), "head_count_v2": largest(s1_v2)}


def tail_counts(s1_v1: Mapping | None, s1_v2: Mapping) -> dict:
    """What the larger split costs the rarest class: its training images at the strongest
    imbalance in v1 and v2, and the share (percent) of its v1 images that every class keeps in v2
    (the long tail's counts are fractions of the largest class's, so all shrink alike). Without v1
    the v1 values say so."""

    def rarest(s1: Mapping) -> int:
        most = min(c.imbalance_factor for c in s1)
        return min(min(r["train_counts"]) for c, r in s1.items() if c.imbalance_factor == most)

    def largest(s1: Mapping) -> int:
        return max(max(r["train_counts"]) for r in s1.values())

    if not s1_v1:
        none = "none (no earlier model set)"
        return {"tail_count_v1": none, "tail_count_v2": f"{rarest(s1_v2):,}", "count_kept": none}
    return {"tail_count_v1": f"{rarest(s1_v1):,}", "tail_count_v2": f"{rarest(s1_v2):,}",
            "count_kept": f"{100 * largest(s1_v2) / largest(s1_v1):.0f}"}  # fmt: skip


def distance_facts(cells: pd.DataFrame, n_largest: int = 3) -> dict:
    """Where v2's distance from the blog's Table 1 lies: the mean |v2 - blog| (points) over the
    overall, head and tail cells, how many cells v2 is below the blog in, and the ``n_largest``
    cells furthest from the blog's (ties: the first listed)."""
    d = cells.dropna(subset=["v2 - blog"])
    by_metric = {m: float(g.abs().mean()) for m, g in d.groupby("metric")["v2 - blog"]}
    far = d.reindex(d["v2 - blog"].abs().sort_values(ascending=False, kind="stable").index).head(n_largest)
    text = "; ".join(
        f"IF {r['imbalance_factor']:g} {r['method']} {r['metric']} ({r['v2 - blog']:+.1f})"
        for _, r in far.iterrows()
    )
    facts = {f"mad_v2_{m}": f"{by_metric[m]:.1f}" if m in by_metric else "not computed"
             for m in ("overall", "head", "tail")}  # fmt: skip
    return facts | {"n_below": int((d["v2 - blog"] < 0).sum()), "far_cells": text}
