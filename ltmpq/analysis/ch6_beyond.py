"""The chapter "Beyond VGG16 and cRT": the blog's claims judged on each model family and long-tail
method, by the same rules as chapters 1-4 (:func:`ltmpq.claims.column_parts`).

A **column** is one trained model family (a model set of :attr:`ltmpq.config.Profile.families`)
with one classifier on it: the plain cross-entropy one ("CE"), cRT, or post-hoc logit adjustment
("LA"); a set trained with the logit-adjusted loss shows its own classifier ("LA loss"). Every
function takes the stored results :func:`ltmpq.load.family_results` returns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import blog, claims, frames
from ..tables import pm
from ..uncertainty import mean_ci
from ..vocab import DECOUPLED, LOGIT_ADJ
from .ch4_mitigation import rank_agreement

#: The classifiers a column may show, and how the column names them.
COLUMN_METHODS = {"baseline": "CE", DECOUPLED: "cRT", LOGIT_ADJ: "LA"}
#: The family whose models are the book's own (the blog's VGG16): its cells sit beside the blog's.
BLOG_FAMILY = "VGG16"
#: Published ResNet-32 accuracies on CIFAR-10-LT at IF 0.01, original pixels (overall top-1, %):
#: cross-entropy (Cao et al. 2019), cRT (BagofTricks-LT), post-hoc logit adjustment and the
#: logit-adjusted loss (Menon et al. 2021). ``shared/reference/blog.md`` lists the sources.
ANCHORS = {("ResNet-32", "baseline"): 70.4, ("ResNet-32", DECOUPLED): 75.0, ("ResNet-32", LOGIT_ADJ): 77.3}
ANCHOR_LA_LOSS = 77.9
ANCHOR_IF = 0.01
#: The epochs of the anchors' usual recipe (SGD, steps at 160 and 180).
ANCHOR_EPOCHS = 200
#: The claims' short names, as the verdict matrix's rows read.
CLAIM_NAMES = {1: "1 · overall accuracy hides a head–tail gap",
               2: "2 · re-balancing narrows it, >10 points remain",
               3: "3 · lower bits hurt the tail much more",
               4: "4 · tail-driven MPQ wins the tail back"}  # fmt: skip


def loss_of(results: dict) -> str:
    """The stage-1 loss of a model set (``ce`` or ``logit_adjusted``) from its stored models."""
    losses = {cfg.loss for cfg in results["stage1"]}
    if len(losses) != 1:
        raise ValueError(f"a model set trains with one loss, these have {sorted(losses)}")
    return losses.pop()


def columns(fam: dict[str, dict]) -> list[tuple[str, str, str]]:
    """``(label, family, method)`` of every column, in the sets' order: CE, cRT and LA on each
    set trained with cross-entropy, the own classifier of a set trained with the LA loss."""
    out = []
    for family, r in fam.items():
        if loss_of(r) == "logit_adjusted":
            out.append((f"{family.split(',')[0]} LA loss", family, "baseline"))
            continue
        out += [(f"{family} {short}", family, m) for m, short in COLUMN_METHODS.items()]
    return out


def metrics(fam: dict[str, dict]) -> pd.DataFrame:
    """Long table of every column's metrics: column, family, method, imbalance_factor, seed,
    split, metric, value (percent)."""
    parts = []
    for label, family, method in columns(fam):
        f = frames.metrics_frame(fam[family]["stage1"], fam[family]["decoupled"])
        parts.append(f[f["method"] == method].assign(column=label, family=family))
    return pd.concat(parts, ignore_index=True)


def drops(fam: dict[str, dict]) -> pd.DataFrame:
    """Every column's quantizer sweeps as :func:`ltmpq.frames.drop_frame` rows, with its column."""
    parts = []
    for label, family, method in columns(fam):
        q = fam[family]["quantized"]
        if not q:
            continue
        d = frames.drop_frame(frames.quant_frame(q))
        parts.append(d[d["method"] == method].assign(column=label, family=family))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _cell(values) -> str:
    mean, half, n = mean_ci(np.asarray(values, dtype=float))
    return "–" if n == 0 else pm(mean, half)


def reference(family: str, method: str, imbalance_factor: float) -> tuple[float, str]:
    """The published overall accuracy a column sits beside, and whose it is: the blog's Table 1
    for its VGG16 (CE, cRT), the CIFAR-LT literature's ResNet-32 at IF 0.01; NaN and "–" else."""
    if family == BLOG_FAMILY and (imbalance_factor, method) in blog.TABLE1:
        return blog.TABLE1[(imbalance_factor, method)]["overall"], "blog (VGG16)"
    if (family, method) in ANCHORS and imbalance_factor == ANCHOR_IF:
        return ANCHORS[(family, method)], "ResNet-32, original pixels"
    return float("nan"), "–"


def table1(m: pd.DataFrame, imbalance_factor: float) -> pd.DataFrame:
    """Test accuracy of every column at one IF (mean ± 95% half-width over seeds, ``n`` seeds):
    overall, head, tail and worst class, and overall beside its published reference (the blog's
    VGG16 or the ResNet-32 anchor) with ours minus it."""
    d = m[(m["split"] == "test") & (m["imbalance_factor"] == imbalance_factor)]
    rows = []
    for (label, family, method), g in d.groupby(["column", "family", "method"], sort=False):
        by = {
            k: g[g["metric"] == k].set_index("seed")["value"]
            for k in ("overall", "head", "tail", "worst_class")
        }
        ref, whose = reference(family, method, imbalance_factor)
        ours = float(by["overall"].mean())
        rows.append({"model": label, "n": len(by["overall"]), "overall": _cell(by["overall"]),
                     "head": _cell(by["head"]), "tail": _cell(by["tail"]),
                     "worst class": _cell(by["worst_class"]),
                     "published": ref, "ours − published": ours - ref, "published by": whose})  # fmt: skip
    return pd.DataFrame(rows).set_index("model")


def gaps(m: pd.DataFrame, imbalance_factor: float) -> pd.DataFrame:
    """Head minus tail test accuracy per column and seed at one IF (points)."""
    g = frames.gap_frame(m.drop(columns="method").rename(columns={"column": "method"}))
    return g[g["imbalance_factor"] == imbalance_factor].rename(columns={"method": "column"})


def deltas(d: pd.DataFrame, imbalance_factor: float) -> pd.DataFrame:
    """Tail drop minus head drop (Δ, points; positive: the tail pays more) per column, quantizer,
    bits and seed at one IF (chapter 3's measure)."""
    if d.empty:
        return pd.DataFrame(columns=["column", "variant", "bits", "seed", "delta"])
    out = frames.delta_per_seed(d.drop(columns="method").rename(columns={"column": "method"}))
    out = out[out["imbalance_factor"] == imbalance_factor].rename(columns={"method": "column"})
    return out[["column", "variant", "bits", "seed", "head", "tail", "delta"]]


def delta_table(dl: pd.DataFrame, variant: str, bits: Sequence[str], order: Sequence[str]) -> pd.DataFrame:
    """Δ per column (rows, in ``order``; those without sweeps left out) at each of ``bits``
    (columns) under one quantizer, mean ± half-width over seeds."""
    d = dl[dl["variant"] == variant]
    order = [c for c in order if c in set(d["column"])]
    return pd.DataFrame(
        {
            f"{b} bits": {c: _cell(d[(d["column"] == c) & (d["bits"] == b)]["delta"]) for c in order}
            for b in bits
        }
    )


def column_parts(fam: dict[str, dict], label: str, quant_bits: Sequence[int], k: int, n_splits: int,
                 low_bits: int, imbalance_factor: float) -> list[claims.Part]:  # fmt: skip
    """The claims' parts for one column at ``imbalance_factor`` (claim 1b over the set's IFs)."""
    cols = {c[0]: c[1:] for c in columns(fam)}
    if label not in cols:
        raise ValueError(f"unknown column {label!r}; the model sets give {list(cols)}")
    family, method = cols[label]
    r = fam[family]
    acc = frames.metrics_frame(r["stage1"], r["decoupled"])
    q = {
        v: {c: x for c, x in by.items() if c.imbalance_factor == imbalance_factor}
        for v, by in r["quantized"].items()
    }
    d = frames.drop_frame(frames.quant_frame(q)) if q.get("default") else None
    mres = {c: x for c, x in r["mpq"].items() if c.imbalance_factor == imbalance_factor}
    rank_gap = mpq = None
    if mres and method in next(iter(mres.values()))["mpq"]["rule_heads"]:
        agreement = rank_agreement(mres, method, low_bits, n_splits)
        rank_gap = agreement["per_seed"].set_index("seed")["gap"]
        mpq = frames.mpq_frame(mres)
    if imbalance_factor not in set(acc["imbalance_factor"]):
        have = sorted(set(acc["imbalance_factor"]))
        raise ValueError(f"{label}: no model at IF {imbalance_factor:g}; the set has {have}")
    # claims 1 and 2 over every IF the set ran (1b compares them), 3 and 4 at ``imbalance_factor``
    acc = acc[acc["imbalance_factor"] >= imbalance_factor]
    return claims.column_parts(acc, d, quant_bits, method, rank_gap=rank_gap, mpq=mpq, k=k,
                               blog_values=family == BLOG_FAMILY)  # fmt: skip


def verdict_matrix(fam: dict[str, dict], quant_bits: Sequence[int], k: int, n_splits: int, low_bits: int,
                   imbalance_factor: float) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """The claims (rows) x columns: each cell the claim's verdict with the conditions it holds
    under (:func:`ltmpq.claims.claim_conditions`), "not measured" where a column has no such
    part (claim 2 of a CE classifier, claim 4 without mixed precision); and every part's row
    (:func:`ltmpq.claims.verdict_table` with a ``column`` column)."""
    cells, rows = {}, []
    for label, *_ in columns(fam):
        parts = column_parts(fam, label, quant_bits, k, n_splits, low_bits, imbalance_factor)
        table = claims.verdict_table(parts)
        rows.append(table.assign(column=label))
        by = claims.claim_conditions(table)
        cells[label] = {CLAIM_NAMES[c]: by.get(c, "not measured") for c in CLAIM_NAMES}
    matrix = pd.DataFrame(cells).reindex(list(CLAIM_NAMES.values()))
    matrix.index.name = "claim"
    return matrix, pd.concat(rows, ignore_index=True)


def sets_text(fam: dict[str, dict]) -> str:
    """How many models each set has, at which IFs: "VGG16: 15 (IF 0.1, 0.02, 0.01); ..."."""
    out = []
    for name, r in fam.items():
        ifs = sorted({c.imbalance_factor for c in r["stage1"]}, reverse=True)
        out.append(f"{name}: {len(r['stage1'])} models (IF {', '.join(f'{f:g}' for f in ifs)})")
    return "; ".join(out)


def across(matrix: pd.DataFrame) -> dict[int, str]:
    """Each claim's row of the verdict matrix in words, columns grouped by their cell:
    ``"VGG16 CE, VGG16 cRT: supported · VGG16 LA: inconclusive"``."""
    out = {}
    for c, name in CLAIM_NAMES.items():
        groups: dict[str, list[str]] = {}
        for col, cell in matrix.loc[name].items():
            groups.setdefault(cell, []).append(col)
        out[c] = " · ".join(f"{', '.join(cols)}: {cell}" for cell, cols in groups.items())
    return out


def answer_facts(matrix: pd.DataFrame, fam: dict[str, dict], missing: dict[str, str]) -> dict[str, str]:
    """The chapter's answer in words, from the verdict matrix: for each claim the columns grouped
    by their cell (``claim3_across``: "VGG16 CE, VGG16 cRT: inconclusive · ResNet-32 CE: not
    supported"), the columns, the model sets and what is not computed yet."""
    out = {"n_columns": str(matrix.shape[1]), "columns_text": ", ".join(matrix.columns),
           "sets_text": sets_text(fam)}  # fmt: skip
    out |= {f"claim{c}_across": text for c, text in across(matrix).items()}
    return out | {"missing_text": missing_text(missing)}


def missing_text(missing: dict[str, str]) -> str:
    """What :func:`ltmpq.load.family_results` says is not computed yet, in one paragraph."""
    if not missing:
        return "Every model set here is complete."
    return "Not computed yet: " + " ".join(f"{k}: {v}." for k, v in missing.items())


def mpq_parts(parts: pd.DataFrame) -> pd.DataFrame:
    """Claim 4's parts 4b-4d per column (rows) from the verdict matrix's part rows: each the
    estimate [95% CI] and its verdict; empty where no column has mixed-precision results."""
    d = parts[parts["part"].isin(["4b", "4c", "4d"])]
    if d.empty:
        return pd.DataFrame()
    d = d.assign(cell=d["estimate [95% CI]"] + " · " + d["verdict"], what=d["part"] + " " + d["measured"])
    order = list(dict.fromkeys(d["column"]))
    return d.pivot_table(index="column", columns="what", values="cell", aggfunc="first").reindex(order)


def anchor_facts() -> dict[str, str]:
    """The published ResNet-32 numbers the chapter cites, for its prose."""
    return {
        "anchor_ce": f"{ANCHORS[('ResNet-32', 'baseline')]:.1f}",
        "anchor_crt": f"{ANCHORS[('ResNet-32', DECOUPLED)]:.1f}",
        "anchor_la": f"{ANCHORS[('ResNet-32', LOGIT_ADJ)]:.1f}",
        "anchor_la_loss": f"{ANCHOR_LA_LOSS:.1f}",
        "anchor_epochs": str(ANCHOR_EPOCHS),
    }


def matrix_html(matrix: pd.DataFrame) -> str:
    """The verdict matrix as the chapter shows it: one row per model and classifier, one column
    per claim, cells that wrap (they name the conditions a claim holds under)."""
    shown = matrix.T
    shown.index.name = "model"
    styles = [{"selector": "td, th", "props": "white-space: normal; padding: 3px 8px; vertical-align: top;"},
              {"selector": "td", "props": "min-width: 9em;"}]  # fmt: skip
    return shown.style.set_table_styles(styles).to_html()
