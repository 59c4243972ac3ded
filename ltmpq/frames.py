"""Stored results as tidy (long) tables: one row per run, method, bit-width, metric...

The chapters summarise, plot and test these frames; nothing here judges. Used by chapters 1-4.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .data import class_groups
from .results import decode_predictions
from .sensitivity import sensitivity_tables
from .uncertainty import mean_ci
from .vocab import DECOUPLED, FLOAT


def pct(v: float | None) -> float:
    """A stored fraction as percent; null (an empty group) becomes NaN."""
    return float("nan") if v is None else 100 * v


def _metric_rows(result: dict, split: str, method: str, cfg) -> list[dict]:
    m = result[split]["metrics"]
    return [
        {
            "imbalance_factor": cfg.imbalance_factor,
            "seed": cfg.seed,
            "method": method,
            "split": split,
            "metric": k,
            "value": pct(v),
        }  # fmt: skip
        for k, v in m.items()
    ]


def metrics_frame(s1: dict, dec: dict | None = None) -> pd.DataFrame:
    """Long table: imbalance_factor, seed, method, split, metric, value (percent)."""
    rows = []
    for cfg, r in s1.items():
        for split in ("val", "test"):
            rows += _metric_rows(r, split, "baseline", cfg)
    for cfg, r in (dec or {}).items():
        for method, mr in r["methods"].items():
            for split in ("val", "test"):
                rows += _metric_rows(mr, split, method, cfg)
    return pd.DataFrame(rows)


def per_class_frame(s1: dict, dec: dict | None = None, split: str = "test") -> pd.DataFrame:
    """Long table of per-class accuracy (percent) with each class's training count."""
    rows = []
    for cfg, r in s1.items():
        entries = {"baseline": r[split]}
        if dec:
            entries |= {m: mr[split] for m, mr in dec[cfg]["methods"].items()}
        for method, e in entries.items():
            for c, acc in enumerate(e["per_class"]):
                rows.append({
                    "imbalance_factor": cfg.imbalance_factor, "seed": cfg.seed, "method": method,
                    "class": c, "train_count": r["train_counts"][c], "accuracy": pct(acc),
                })  # fmt: skip
    return pd.DataFrame(rows)


def summarize(
    df: pd.DataFrame,
    by: Sequence[str] = ("imbalance_factor", "method", "split", "metric"),
    value: str = "value",
) -> pd.DataFrame:
    """Mean, 95% t-interval half-width and number of seeds for each group."""
    out = df.groupby(list(by), sort=False)[value].apply(
        lambda s: pd.Series(mean_ci(s.to_numpy()), index=["mean", "ci", "n"])
    )
    return out.unstack(-1).reset_index()


def bits_order(labels) -> list[str]:
    """Bit-width labels from float down to the fewest bits: ``["float", "8", "6", ...]``."""
    labels = set(labels)
    ints = sorted((int(b) for b in labels if b != FLOAT), reverse=True)
    return ([FLOAT] if FLOAT in labels else []) + [str(b) for b in ints]


def quant_frame(qres: dict[str, dict], split: str = "test") -> pd.DataFrame:
    """Long table: variant, imbalance_factor, seed, method, bits, metric, value (percent)."""
    rows = []
    for variant, by_cfg in qres.items():
        for cfg, r in by_cfg.items():
            for bits, entry in r["entries"].items():
                for method, mr in entry["methods"].items():
                    for k, v in mr[split]["metrics"].items():
                        rows.append({"variant": variant, "imbalance_factor": cfg.imbalance_factor,
                                     "seed": cfg.seed, "method": method, "bits": bits, "metric": k,
                                     "value": pct(v)})  # fmt: skip
    return pd.DataFrame(rows)


def quant_per_class(by_cfg: dict, split: str = "test") -> pd.DataFrame:
    """Long table of per-class accuracy (percent) of one quantizer variant's sweeps."""
    rows = []
    for cfg, r in by_cfg.items():
        for bits, entry in r["entries"].items():
            for method, mr in entry["methods"].items():
                for c, acc in enumerate(mr[split]["per_class"]):
                    rows.append({"imbalance_factor": cfg.imbalance_factor, "seed": cfg.seed,
                                 "method": method, "bits": bits, "class": c,
                                 "accuracy": pct(acc)})  # fmt: skip
    return pd.DataFrame(rows)


def quant_predictions(by_cfg: dict, s1: dict, imbalance_factor: float, method: str, bits: str | int):
    """Test labels and a (seeds, images) array of predictions at one IF, method and bit-width.

    ``bits`` as stored: ``"float"`` or ``"8"`` (an int is read as its text). Seeds are in the order
    of ``by_cfg``; every run is evaluated on the same test images.
    """
    key = str(bits) if isinstance(bits, int) and not isinstance(bits, bool) else bits
    cfgs = [c for c in by_cfg if c.imbalance_factor == imbalance_factor]
    if not cfgs:
        have = sorted({c.imbalance_factor for c in by_cfg})
        raise ValueError(f"no run at imbalance factor {imbalance_factor!r}; the results have {have}")
    labels = np.asarray(s1[cfgs[0]]["test_labels"])
    preds = []
    for c in cfgs:
        if not np.array_equal(s1[c]["test_labels"], labels):
            raise ValueError(f"{c.tag} was tested on other images than {cfgs[0].tag}")
        entries = by_cfg[c]["entries"]
        if key not in entries:
            raise ValueError(f"{c.tag} has no sweep at bits {bits!r}; it has {bits_order(entries)}")
        if method not in entries[key]["methods"]:
            raise ValueError(f"{c.tag} has no method {method!r}; it has {list(entries[key]['methods'])}")
        stored = entries[key]["methods"][method]["test"].get("predictions")
        if stored is None:
            raise ValueError(f"the sweep of {c.tag} did not keep its predictions (keep_predictions)")
        preds.append(decode_predictions(stored))
    return labels, np.stack(preds)


def drop_frame(frame: pd.DataFrame, reference: str = FLOAT) -> pd.DataFrame:
    """Per run: each metric's drop from ``reference`` bits (points; positive = worse), and the
    relative drop (percent of the reference accuracy)."""
    key = ["variant", "imbalance_factor", "seed", "method", "metric"]
    ref = frame[frame["bits"] == reference].set_index(key)["value"].rename("reference")
    out = frame.join(ref, on=key)
    out["drop"] = out["reference"] - out["value"]
    out["relative_drop"] = 100 * out["drop"] / out["reference"]
    return out


#: How each kind of allocation is named in chapter 4's figures and tables.
ALLOCATION_LABELS = {"overall": "norm-driven", "tail": "tail-driven", "kl": "KL-driven",
                     "kl_tail": "tail-KL-driven", "hessian": "Hessian-driven",
                     "hessian_tail": "tail-Hessian-driven",
                     "rule-random": "random", "budget-random": "random", "uniform": "uniform",
                     "float": "float"}  # fmt: skip


def allocation_label(a: dict) -> str:
    """``norm-driven``, ``tail-driven``, ..., ``random``, ``uniform`` or ``float``."""
    return ALLOCATION_LABELS[a["metric"] if a["kind"] in ("rule", "budget") else a["kind"]]


def mpq_frame(mres: dict, split: str = "test") -> pd.DataFrame:
    """Long table of every evaluated allocation: seed, head, kind, allocation, k, budget, draw,
    average_bits, megabytes, metric, value (percent)."""
    rows = []
    for cfg, r in mres.items():
        for a in r["allocations"]:
            base = {"seed": cfg.seed, "head": a["head"], "kind": a["kind"], "allocation": allocation_label(a),
                    "k": a.get("k"), "budget": a.get("budget"), "draw": a.get("draw"),
                    "bits": a.get("bits"), "average_bits": a["average_bits"],
                    "megabytes": a["size"]["total_bytes"] / 1e6}  # fmt: skip
            for k, v in a[split]["metrics"].items():
                rows.append({**base, "metric": k, "value": pct(v)})
    return pd.DataFrame(rows)


def mpq_select(r: dict, **match) -> list[dict]:
    """The allocations of one stored result whose fields equal ``match`` (e.g. kind="rule", k=8)."""
    return [a for a in r["allocations"] if all(a.get(k) == v for k, v in match.items())]


def mpq_correct(mres: dict, **match) -> tuple[np.ndarray, np.ndarray]:
    """Test labels and (seeds, images) correctness of the one allocation per seed matching ``match``."""
    labels, rows = None, []
    for cfg, r in mres.items():
        found = mpq_select(r, **match)
        if len(found) != 1:
            raise ValueError(f"{cfg.tag}: {len(found)} allocations match {match}, expected exactly one")
        lab = decode_predictions(r["test_labels"])
        if labels is not None and not np.array_equal(lab, labels):
            raise ValueError(f"{cfg.tag} was tested on other images than the first run")
        labels = lab
        rows.append(decode_predictions(found[0]["test"]["predictions"]) == lab)
    return labels, np.stack(rows)


def sensitivity_frame(
    mres: dict, head: str, metrics=("overall", "tail"), images_by_seed=None
) -> pd.DataFrame:
    """Long table of per-layer sensitivities (points lost, or KL): seed, metric, layer, bits, value."""
    rows = []
    for cfg, r in mres.items():
        images = None if images_by_seed is None else images_by_seed[cfg.seed]
        groups = {k: tuple(v) for k, v in class_groups(r["train_counts"]).items()}
        tables = sensitivity_tables(
            r["sweep"][head], r["val_labels"], r["train_counts"], groups, metrics, images
        )
        for m, t in tables.items():
            scale = 100 if m not in ("kl", "kl_head", "kl_tail") else 1
            for layer, by_bits in t.iterrows():
                for b, v in by_bits.items():
                    rows.append(
                        {"seed": cfg.seed, "metric": m, "layer": layer, "bits": int(b), "value": scale * v}
                    )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ per-seed quantities of the claims


def gap_frame(
    frame: pd.DataFrame, split: str = "test", high: str = "head", low: str = "tail"
) -> pd.DataFrame:
    """Per run (imbalance_factor, method, seed): ``gap`` = accuracy of ``high`` minus ``low`` (points).

    The gap is taken within each run, so its interval over seeds shows how consistently a method
    narrows it (chapters 1, 2 and the verdicts).
    """
    per = frame[(frame["split"] == split) & frame["metric"].isin([high, low])]
    per = per.pivot_table(index=["imbalance_factor", "method", "seed"], columns="metric", values="value")
    return (per[high] - per[low]).rename("gap").reset_index()


def gap_per_seed(frame: pd.DataFrame, imbalance_factor: float, method: str) -> pd.Series:
    """The head-tail gap of each seed's run (indexed by seed) at one imbalance factor and method."""
    g = gap_frame(frame)
    g = g[(g["imbalance_factor"] == imbalance_factor) & (g["method"] == method)]
    if g.empty:
        raise ValueError(f"no {method!r} runs at imbalance factor {imbalance_factor!r}")
    return g.set_index("seed")["gap"].sort_index()


def delta_per_seed(drops: pd.DataFrame) -> pd.DataFrame:
    """Per run (variant, IF, seed, method, bits): head and tail drop and ``delta`` = tail - head
    (points; positive: the tail pays more). Chapter 3's ablations and claim 3's verdict."""
    d = drops[drops["metric"].isin(["head", "tail"]) & (drops["bits"] != FLOAT)]
    d = d.pivot_table(
        index=["variant", "imbalance_factor", "seed", "method", "bits"], columns="metric", values="drop"
    ).reset_index()
    return d.assign(delta=d["tail"] - d["head"])


def rule_frame(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """The float model and the rule's allocations at ``k`` (random: mean over its draws), per seed."""
    d = frame[(frame["kind"] == "float") | (frame["kind"].isin(["rule", "rule-random"]) & (frame["k"] == k))]
    return d.groupby(["head", "allocation", "seed", "metric"])["value"].mean().reset_index()


def rule_metric(
    frame: pd.DataFrame, k: int, allocation: str, metric: str, head: str = DECOUPLED
) -> pd.Series:
    """One allocation's test metric per seed (indexed by seed), of the rule at ``k``."""
    d = rule_frame(frame, k)
    d = d[(d["head"] == head) & (d["allocation"] == allocation) & (d["metric"] == metric)]
    return d.set_index("seed")["value"].sort_index()


# ------------------------------------------------------------------ what the runs cost


def _machine(r: dict) -> str:
    dev = r.get("provenance", {}).get("device") or {}
    return f"{dev.get('cpu_model', 'unrecorded CPU')} ({dev.get('cpu_capability', '?')})"


def cost_frame(groups: Mapping[str, Mapping[Any, dict]]) -> pd.DataFrame:
    """What every stored result cost, from the seconds it records: one row per result and part of
    its work, for every chapter's cost table. ``groups``: a label (a quantizer variant, a part of
    the study) -> ``{key: stored result}``.

    Columns: ``group``, ``result`` (kind and config hash: a result two groups share has one),
    ``kind``, ``imbalance_factor``, ``seed``, ``part``, ``seconds``, ``machine`` (CPU and its
    instruction set: a second is that machine's second), ``device`` and ``threads``. A stage-1
    result's part is ``training`` (its training seconds), a chapter-4 result has one row per part it
    timed (``prepare``, ``sweep``, ``hessian``, ``evaluation``), any other one ``all`` (its wall time).
    """
    rows = []
    for group, stored in groups.items():
        for key, r in stored.items():
            prov = r.get("provenance") or {}
            dev = prov.get("device") or {}
            ident = f"{r['kind']}/{r['config_hash']}" if "config_hash" in r else f"{r['kind']}/{group}/{key}"
            base = {"group": group, "result": ident, "kind": r["kind"],
                    # a chapter's results are keyed by their stage-1 config
                    "imbalance_factor": getattr(key, "imbalance_factor", r.get("imbalance_factor")),
                    "seed": getattr(key, "seed", r.get("seed")),
                    "machine": _machine(r), "device": dev.get("name"),
                    "threads": dev.get("torch_threads")}  # fmt: skip
            if r["kind"] == "stage1":
                parts = {"training": r["train_seconds"]}
            elif r["kind"] == "mpq":
                parts = dict(r["seconds"])
            else:
                parts = {"all": prov["wall_seconds"]}
            rows += [{**base, "part": p, "seconds": float(s)} for p, s in parts.items()]
    cols = ["group", "result", "kind", "imbalance_factor", "seed", "part", "seconds", "machine", "device",
            "threads"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)
