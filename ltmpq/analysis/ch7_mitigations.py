"""The chapter "Winning the tail back": every mitigation of the quantization process against the
book's quantizer (rounding to nearest, per-channel min-max weights) at the same bits, by the rule
of claim 4 (:func:`ltmpq.verdicts.dominates`: the tail gains, overall accuracy loses less than
:data:`~ltmpq.verdicts.ALMOST_NO_COST`), per seed, paired on the same models.

The sweeps are :data:`ltmpq.config.MITIGATIONS` (stronger quantizers, calibration sets, stage 2
refitted after quantization) beside the default quantizer's; mixed precision comes from the
model set's chapter-4 runs. The classifier compared is the blog's decoupled one (cRT) unless asked.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import frames, verdicts
from ..vocab import DECOUPLED, FLOAT
from .ch1_evaluation import interval_text

#: The reference every mitigation is compared with: the book's quantizer.
REFERENCE = "default"
REFERENCE_LABEL = "round to nearest"
#: The sweep whose stage 2 is refitted after quantization, and the suffix of its refitted heads.
REBALANCED = "re-balanced after quantization"
AFTER = "_after"
METRICS = ("overall", "tail", "worst_class", "head")
#: The sweep that checks our quantizer against Brevitas's own rounding: the same quantizer, not a lever.
CROSS_CHECK = "Brevitas min-max"


def label(variant: str) -> str:
    """How the chapter names a sweep: the reference as "round to nearest", the others as named."""
    return REFERENCE_LABEL if variant == REFERENCE else variant


def frame(qres: dict[str, dict], head: str = DECOUPLED) -> pd.DataFrame:
    """Long table of every sweep's test metrics of one classifier: mitigation, seed, bits,
    average_bits, metric, value (percent). The re-balanced sweep shows its refitted classifier."""
    rows = []
    for variant, by_cfg in qres.items():
        method = head + AFTER if variant == REBALANCED else head
        for cfg, r in by_cfg.items():
            for bits, entry in r["entries"].items():
                avg = 32.0 if bits == FLOAT else float(entry["size"]["average_bits"])
                mr = entry["methods"].get(method)
                if mr is None:
                    raise ValueError(f"{variant} of {cfg.tag} has no classifier {method!r}")
                for k in METRICS:
                    rows.append({"mitigation": label(variant), "seed": cfg.seed, "bits": bits,
                                 "average_bits": avg, "metric": k,
                                 "value": frames.pct(mr["test"]["metrics"][k])})  # fmt: skip
    return pd.DataFrame(rows)


def paired(f: pd.DataFrame) -> pd.DataFrame:
    """Per mitigation, bits and seed: each metric minus the reference's at the same bits on the
    same model (points)."""
    wide = f.pivot_table(index=["mitigation", "bits", "seed"], columns="metric", values="value").reset_index()
    ref = wide[wide["mitigation"] == REFERENCE_LABEL].drop(columns="mitigation").set_index(["bits", "seed"])
    out = wide[wide["mitigation"] != REFERENCE_LABEL].set_index(["bits", "seed"])
    diff = out[list(METRICS)] - ref.reindex(out.index)[list(METRICS)]
    diff = diff.assign(mitigation=out["mitigation"]).reset_index()
    order = [m for m in dict.fromkeys(f["mitigation"]) if m != REFERENCE_LABEL]  # the sweeps' order
    return diff.sort_values("mitigation", key=lambda s: s.map(order.index), kind="stable").reset_index(
        drop=True
    )


def interval(values) -> str:
    """Per-seed values as ``mean [two-sided 95% interval]`` (points, signed): chapter 1's text."""
    return interval_text(values, signed=True)


def verdict_table(p: pd.DataFrame, bits: Sequence[str]) -> pd.DataFrame:
    """Per mitigation (rows) and bit-width: tail and overall change against rounding to nearest
    (mean [two-sided 95% interval] over seeds) and whether it wins the tail back at almost no
    overall cost (:func:`ltmpq.verdicts.dominates`)."""
    rows = []
    for m in dict.fromkeys(p["mitigation"]):
        row: dict = {"mitigation": m}
        for b in bits:
            d = p[(p["mitigation"] == m) & (p["bits"] == b)].sort_values("seed")
            if d.empty:
                continue
            wins = verdicts.dominates(d["tail"].to_numpy(), d["overall"].to_numpy())
            row[f"{b} bits: tail"] = interval(d["tail"])
            row[f"{b} bits: overall"] = interval(d["overall"])
            row[f"{b} bits: wins?"] = "yes" if wins else "no"
        rows.append(row)
    return pd.DataFrame(rows).set_index("mitigation")


def winners(p: pd.DataFrame, bits: Sequence[str]) -> list[tuple[str, str]]:
    """``(mitigation, bits)`` pairs that win the tail back at almost no overall cost."""
    out = []
    for m in dict.fromkeys(p["mitigation"]):
        for b in bits:
            d = p[(p["mitigation"] == m) & (p["bits"] == b)].sort_values("seed")
            if not d.empty and verdicts.dominates(d["tail"].to_numpy(), d["overall"].to_numpy()):
                out.append((m, b))
    return out


def levers(p: pd.DataFrame) -> list[str]:
    """The levers :func:`paired` compares with rounding to nearest (the cross-check left out)."""
    return [m for m in dict.fromkeys(p["mitigation"]) if m != CROSS_CHECK]


def winners_text(won: list[tuple[str, str]]) -> str:
    """The winners in words: "GPTQ at 3 bits; bias correction at 4 and 3 bits", or "none"."""
    if not won:
        return "none"
    by: dict[str, list[str]] = {}
    for m, b in won:
        by.setdefault(m, []).append(b)
    return "; ".join(f"{m} at {' and '.join(bs)} bits" for m, bs in by.items())


def summary(f: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% half-width over seeds of each mitigation's metric at each bit-width, with its
    average weight bits: what the comparison figure plots."""
    return frames.summarize(f, by=("mitigation", "bits", "metric")).merge(
        f.groupby(["mitigation", "bits"])["average_bits"].mean().reset_index(), on=["mitigation", "bits"]
    )


def mpq_frame(mres: dict, k: int, head: str = DECOUPLED) -> pd.DataFrame:
    """Chapter 4's rule (norm- and tail-driven, ``k`` layers high) and its uniform maps on ``head``,
    in :func:`frame`'s columns (mitigation, seed, bits "mixed", average_bits, metric, value)."""
    rows = []
    for cfg, r in mres.items():
        for a in r["allocations"]:
            if a["head"] != head or not (a["kind"] == "rule" and a["k"] == k):
                continue
            name = f"{frames.allocation_label(a)} MPQ (k={k})"
            for m in METRICS:
                rows.append({"mitigation": name, "seed": cfg.seed, "bits": "mixed",
                             "average_bits": float(a["average_bits"]), "metric": m,
                             "value": frames.pct(a["test"]["metrics"][m])})  # fmt: skip
    return pd.DataFrame(rows)


def costs(qres: dict[str, dict]) -> pd.DataFrame:
    """Seconds per quantized model of each sweep (mean over bit-widths and seeds, quantizing and
    evaluating val and test) and the machine it ran on."""
    rows = []
    for variant, by_cfg in qres.items():
        for r in by_cfg.values():
            secs = [e["seconds"] for b, e in r["entries"].items() if b != FLOAT]
            dev = r["provenance"].get("device") or {}
            machine = f"{dev.get('cpu_model', '?')} ({dev.get('cpu_capability', '?')})"
            rows.append({"mitigation": label(variant), "seconds": float(np.mean(secs)), "machine": machine})
    d = pd.DataFrame(rows)
    return d.groupby(["mitigation", "machine"], sort=False)["seconds"].mean().reset_index()


def change(p: pd.DataFrame, mitigation: str, bits: str, metric: str) -> str:
    """One lever's change of one metric against rounding to nearest at ``bits`` (:func:`interval`)."""
    d = p[(p["mitigation"] == mitigation) & (p["bits"] == bits)]
    if d.empty:
        raise ValueError(f"no {mitigation!r} at {bits} bits; the sweeps have {sorted(set(p['mitigation']))}")
    return interval(d.sort_values("seed")[metric])


def same_as_reference(p: pd.DataFrame, mitigation: str = CROSS_CHECK) -> str:
    """Whether a sweep gives the reference's numbers: "every metric of every seed and bit-width
    equal", or its largest difference."""
    d = p[p["mitigation"] == mitigation][list(METRICS)].abs()
    if d.empty:
        raise ValueError(f"no {mitigation!r} sweep")
    top = float(d.max().max())
    return (
        "every metric of every seed and bit-width equal"
        if top == 0
        else f"largest difference {top:.2f} points"
    )
