"""Chapter 4: does tail-aware mixed precision (MPQ) win the tail back?

Per-layer sensitivity and whether the tail metric ranks layers differently beyond noise (the
blog's Fig. 9), the blog's 6&4 rule on one model (Table 2, Fig. 10), the budget sweep with its
dominance rule, and the cost. The verdicts on all four claims are in :mod:`ltmpq.claims`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from .. import blog, claims, frames, verdicts
from ..config import MPQConfig
from ..data import blog_head_tail, class_groups
from ..frames import ALLOCATION_LABELS, mpq_correct, mpq_frame, mpq_select, pct, rule_frame
from ..results import decode_predictions
from ..sensitivity import sensitivity_tables
from ..tables import pm
from ..uncertainty import benjamini_hochberg, mean_ci, paired_difference, per_class_mcnemar
from ..vocab import CLASSES, DECOUPLED, LAYER_NAMES, METHOD_LABELS

#: Which model chapter 4's figures and the budget sweep show.
HEAD = DECOUPLED
#: The budgeted allocations of the Pareto figure, in legend order.
BUDGET_KINDS = (
    "norm-driven",
    "tail-driven",
    "KL-driven",
    "tail-KL-driven",
    "Hessian-driven",
    "tail-Hessian-driven",
    "random",
)


def pm_of(values) -> str:
    """Mean ± 95% t-interval over seeds, as text."""
    m, h, _ = mean_ci(np.asarray(values, dtype=float))
    return pm(m, h)


def setup_facts(mres: dict, mcfg: MPQConfig, rule_k: int, n_splits: int, n_boot: int) -> dict:
    """The method as stated: the validation split, the metrics' thresholds, the grid and the rule."""
    first = next(iter(mres.values()))
    high, low = mcfg.rule_bits
    val_counts = np.bincount(decode_predictions(first["val_labels"]), minlength=len(first["train_counts"]))
    tail = list(class_groups(first["train_counts"])["tail"])
    balanced_gap = max(
        abs(a["val"]["metrics"]["overall"] - a["val"]["metrics"]["balanced"])
        for r in mres.values()
        for a in r["allocations"]
    )
    return {
        "much_more": f"{verdicts.MUCH_MORE:g}",
        "no_cost": f"{verdicts.ALMOST_NO_COST:g}",
        "no_cost_neg": f"−{verdicts.ALMOST_NO_COST:g}",
        "val_per_class": int(val_counts[0]) if (val_counts == val_counts[0]).all() else "varying",
        "n_tail_half": int((val_counts[tail] // 2).sum()),  # half A of split_halves: floor(n / 2) per class
        "n_layers": len(first["layer_params"]),
        "n_choices": len(mcfg.choices),
        "n_seeds": len(mres),
        "f_mpq": f"{next(iter(mres)).imbalance_factor:g}",
        "n_val": len(first["val_labels"]),
        "rule_k": rule_k,
        "high": high,
        "low": low,
        "choices": ", ".join(map(str, mcfg.choices)),
        "budgets": ", ".join(f"{b:g}" for b in mcfg.budgets),
        "n_probes": mcfg.hessian_samples,
        "n_draws": mcfg.random_draws,
        "n_splits": n_splits,
        "n_boot": n_boot,
        "ks": ", ".join(map(str, mcfg.rule_ks)),
        "tolerance": f"{mcfg.random_tolerance:g}",
        "blog_t2": "{}, {} and {}".format(*blog.TABLE2.values()),
        "blog_top1": blog.FIG9_NORM_ORDER[0],
        # the validation split is balanced: its overall accuracy is its class-balanced accuracy
        "balanced_gap": f"{100 * balanced_gap:.2g}",
    }


def reference_check(mres: dict, s1: dict, dec: dict, heads: Sequence[str]) -> pd.DataFrame:
    """Per run and head: agreement (%) of this chapter's float predictions with chapters 1-2's
    stored ones, and the difference of their overall accuracies (points). Both come from the
    same committed weights, so anything below 100% is a defect (tested on the committed results)."""
    rows = []
    for cfg, r in mres.items():
        labels = decode_predictions(r["test_labels"])
        for h in heads:
            ours = decode_predictions(mpq_select(r, head=h, kind="float")[0]["test"]["predictions"])
            before = s1[cfg]["test"] if h == "baseline" else dec[cfg]["methods"][h]["test"]
            before = decode_predictions(before["predictions"])
            rows.append(
                {
                    "imbalance_factor": cfg.imbalance_factor,
                    "seed": cfg.seed,
                    "head": h,
                    "agree": 100 * np.mean(ours == before),
                    "diff": 100 * (np.mean(ours == labels) - np.mean(before == labels)),
                }
            )
    return pd.DataFrame(rows)


def reference_sentence(check: pd.DataFrame) -> str:
    """What the chapter says about its float reference: chapters 1-2's models, or how far it is."""
    heads = " and ".join(METHOD_LABELS.get(h, h) for h in dict.fromkeys(check["head"]))
    if check["agree"].min() == 100:
        return (
            f"Their float {heads} predictions here equal chapters 1-2's stored ones on every test "
            f"image of all {check[['imbalance_factor', 'seed']].drop_duplicates().shape[0]} runs."
        )
    return (
        f"Their float {heads} predictions here agree with chapters 1-2's stored ones on only "
        f"{check['agree'].min():.1f}-{check['agree'].max():.1f}% of test images (overall accuracy "
        f"{check['diff'].min():+.1f} to {check['diff'].max():+.1f} points): these are not chapter 1's "
        "models, and the chapter's comparisons with chapters 1-3 do not hold."
    )


# --------------------------------------------------------------------------- which layers matter (Fig. 9)


def stored_layers(mres: dict) -> list[str]:
    """The layers of the stored runs in network order (stored JSON keys are sorted as text)."""
    return [n for n in LAYER_NAMES if n in next(iter(mres.values()))["layer_params"]]


def mean_sensitivity(sens: pd.DataFrame, bits: int, layers: Sequence[str]) -> pd.DataFrame:
    """Seed-mean sensitivity at ``bits``: layers (rows, network order) x metrics (columns)."""
    s = sens[sens["bits"] == bits]
    return s.groupby(["metric", "layer"])["value"].mean().unstack(0).loc[list(layers)]


def ranks(mean_sens: pd.DataFrame, metric: str, largest_first: bool = True) -> dict[str, int]:
    """Rank of each layer by its mean loss: 1 = largest loss, or (``largest_first=False``, the
    blog's Fig. 9 convention) 1 = smallest loss; ties keep layer order."""
    order = mean_sens[metric].sort_values(ascending=not largest_first, kind="stable").index
    return {n: i + 1 for i, n in enumerate(order)}


def blog_ranks(figure_ranks: dict[str, int]) -> dict[str, int]:
    """The blog's Fig. 9 ranks in our convention (1 = most sensitive = largest loss): its figure
    ranks its nine layers by accuracy after quantization, 1 = highest (smallest loss), so the
    order reverses among them."""
    n = len(figure_ranks)
    return {layer: n + 1 - r for layer, r in figure_ranks.items()}


def rank_table(mean_sens: pd.DataFrame) -> pd.DataFrame:
    """Each layer's rank by overall ("norm") and tail sensitivity in our convention (1 = the
    largest accuracy loss), ours beside the blog's Fig. 9 converted to it, with our losses."""
    t = pd.DataFrame(
        {
            "ours: norm rank": ranks(mean_sens, "overall"),
            "blog: norm rank": blog_ranks({n: i + 1 for i, n in enumerate(blog.FIG9_NORM_ORDER)}),
            "ours: tail rank": ranks(mean_sens, "tail"),
            "blog: tail rank": blog_ranks(blog.FIG9_TAIL_RANK),
            "ours: norm loss": mean_sens["overall"],
            "ours: tail loss": mean_sens["tail"],
        }
    ).loc[mean_sens.index]
    t.index.name = "layer"
    return t.astype({c: "Int64" for c in t.columns if "rank" in c})


def top_layer_facts(mean_sens: pd.DataFrame, n: int = 3) -> dict:
    """The ``n`` most sensitive layers (largest loss) by overall and by tail accuracy."""
    return {
        "our_top_norm": ", ".join(list(ranks(mean_sens, "overall"))[:n]),
        "our_top_tail": ", ".join(list(ranks(mean_sens, "tail"))[:n]),
    }


def split_halves(labels, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint halves of the images, split within each class.

    Hand-written rather than ``sklearn.model_selection``'s stratified splitters: those draw
    another random stream, and the published rank-stability numbers come from this one.
    """
    labels = np.asarray(labels)
    a, b = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        a.append(idx[: len(idx) // 2])
        b.append(idx[len(idx) // 2 :])
    return np.sort(np.concatenate(a)), np.sort(np.concatenate(b))


def layer_losses(r: dict, head: str, bits: int, metric: str = "overall", images: np.ndarray | None = None):
    """Accuracy points lost by quantizing each layer alone at ``bits`` (one stored chapter-4 run),
    under an accuracy ``metric`` (``overall``, ``tail``, ...) on the validation images ``images``
    (None: all). The same sensitivity as the allocations use
    (:func:`ltmpq.sensitivity.sensitivity_tables`)."""
    if head not in r["sweep"]:
        raise ValueError(f"the stored sweep has no head {head!r}; it has {list(r['sweep'])}")
    swept = sorted({int(b) for by_bits in r["sweep"][head]["layers"].values() for b in by_bits})
    if bits not in swept:
        raise ValueError(f"the stored sweep has no layer quantized at {bits!r} bits; it has {swept}")
    groups = class_groups(r["train_counts"])
    t = sensitivity_tables(
        r["sweep"][head], r["val_labels"], r["train_counts"], groups, [metric], images, [bits]
    )
    return 100 * t[metric][bits]


def rank_stability(r: dict, head: str, bits: int, n_splits: int = 200, seed: int = 0) -> pd.DataFrame:
    """Is the tail metric's layer ranking different beyond measurement noise?

    For each of ``n_splits`` random split-halves (A, B) of the validation images, Kendall's tau-b
    between the tail ranking on B and (i) the tail ranking on A (``same``: agreement of one
    metric with itself on independent images, the noise ceiling) and (ii) the overall ranking on
    A (``cross``). A genuinely different tail ranking shows as ``cross`` below ``same``.
    """
    rng = np.random.default_rng(seed)
    labels = decode_predictions(r["val_labels"])
    rows = []
    for i in range(n_splits):
        a, b = split_halves(labels, rng)
        tail_b = layer_losses(r, head, bits, "tail", b)
        same = kendalltau(layer_losses(r, head, bits, "tail", a), tail_b).statistic
        cross = kendalltau(layer_losses(r, head, bits, "overall", a), tail_b).statistic
        rows.append({"split": i, "same": same, "cross": cross})
    return pd.DataFrame(rows)


def rank_agreement(mres: dict, head: str, bits: int, n_splits: int) -> dict[str, pd.DataFrame]:
    """Rank stability of every seed (``splits``), per seed the full-split τ(overall, tail) and the
    mean ``same``/``cross`` τ (``per_seed``; ``gap`` = same - cross, claim 4a), and the
    pairwise τ between different seeds' rankings (``across``)."""
    per_seed, splits = [], []
    for i, (cfg, r) in enumerate(mres.items()):
        stab = rank_stability(r, head, bits, n_splits=n_splits, seed=i)
        splits.append(stab.assign(seed=cfg.seed))
        full = kendalltau(
            layer_losses(r, head, bits, "overall"), layer_losses(r, head, bits, "tail")
        ).statistic
        per_seed.append(
            {"seed": cfg.seed, "tau_full": full, "same": stab["same"].mean(), "cross": stab["cross"].mean()}
        )
    per_seed = pd.DataFrame(per_seed)
    per_seed["gap"] = per_seed["same"] - per_seed["cross"]
    across = []
    for m in ("overall", "tail"):
        by_seed = [layer_losses(r, head, bits, m) for r in mres.values()]
        across += [
            {"metric": m, "tau": kendalltau(by_seed[i], by_seed[j]).statistic}
            for i in range(len(by_seed))
            for j in range(i + 1, len(by_seed))
        ]
    return {
        "per_seed": per_seed,
        "splits": pd.concat(splits),
        "across": pd.DataFrame(across, columns=["metric", "tau"]),
    }


def rank_facts(agreement: dict[str, pd.DataFrame]) -> dict:
    """The τs the prose quotes (mean ± CI over seeds; the across-seed ones as means)."""
    ps, across = agreement["per_seed"], agreement["across"]

    def mean_tau(metric: str) -> str:  # between different seeds' models: needs two of them
        taus = across[across["metric"] == metric]["tau"]
        return f"{taus.mean():.2f}" if len(taus) else "n/a (needs ≥ 2 seeds)"

    return {
        "tau_full": pm_of(ps["tau_full"]),
        "tau_same": pm_of(ps["same"]),
        "tau_cross": pm_of(ps["cross"]),
        "tau_gap": pm_of(ps["gap"]),
        "tau_seeds_overall": mean_tau("overall"),
        "tau_seeds_tail": mean_tau("tail"),
    }


# --------------------------------------------------------------------------- the 6&4 rule (Table 2, Fig. 10)


def table2(
    frame: pd.DataFrame, k: int, heads: Sequence[str], uniform_bits: Sequence[int] = (6, 4)
) -> pd.DataFrame:
    """The blog's Table 2 analogue: rows (model, allocation): float, uniform weights at the rule's
    bit-widths (``uniform_bits``), the rule's norm- and tail-driven maps and random ones; overall
    (with the blog's value where it gives one: :func:`table2_blog`), head, tail as mean ± CI over
    seeds, and the average weight bits."""
    uni = frame[(frame["kind"] == "uniform") & frame["bits"].isin(list(uniform_bits))]
    uni = uni.assign(allocation=[f"uniform {b:g}-bit" for b in uni["bits"]])
    uni_seed = uni.groupby(["head", "allocation", "seed", "metric"])["value"].mean().reset_index()
    per_seed = pd.concat([rule_frame(frame, k), uni_seed])
    rule = frame[
        (frame["kind"] == "float") | (frame["kind"].isin(["rule", "rule-random"]) & (frame["k"] == k))
    ]
    bits = pd.concat([rule, uni]).groupby(["head", "allocation", "seed"])["average_bits"].mean().reset_index()
    published = table2_blog(uniform_bits)
    rows = []
    for (h, alloc), g in per_seed.groupby(["head", "allocation"], sort=False):
        row = {
            "model": METHOD_LABELS[h],
            "allocation": alloc,
            "overall": pm_of(g[g["metric"] == "overall"]["value"]),
        }
        row["blog"] = published.get(alloc, np.nan) if h == HEAD else np.nan
        for m in ("head", "tail"):
            row[m] = pm_of(g[g["metric"] == m]["value"])
        row["bits"] = bits[(bits["head"] == h) & (bits["allocation"] == alloc)]["average_bits"].mean()
        rows.append(row)
    t = pd.DataFrame(rows).set_index(["model", "allocation"])
    order = ["float", f"uniform {max(uniform_bits):g}-bit", "norm-driven", "tail-driven", "random",
             *(f"uniform {b:g}-bit" for b in sorted(uniform_bits, reverse=True)[1:])]  # fmt: skip
    # rows in Table 2's order; a uniform control the runs did not evaluate is left out, not shown empty
    return t.reindex([(METHOD_LABELS[h], a) for h in (HEAD, "baseline") if h in heads for a in order
                      if a in TABLE2_ALWAYS or (METHOD_LABELS[h], a) in t.index])  # fmt: skip


#: Table 2's rows shown whether or not a run measured them (a missing one reads "—").
TABLE2_ALWAYS = ("float", "norm-driven", "tail-driven", "random")


def table2_blog(uniform_bits: Sequence[int] = (6, 4)) -> dict[str, float]:
    """The blog's overall accuracies of the decoupled model beside our Table 2 rows: its Table 1
    float (75.8) on the float row, and its Table 2 "32bit" (70.7) on the uniform 6-bit row, which
    it equals: 0.4 x head + 0.6 x tail of its Fig. 8's 6-bit model (the head/tail split is 4/6
    classes of a balanced test set); its norm- and tail-driven 6&4 values on theirs."""
    out = {
        "float": blog.TABLE1[(blog.FIG7_8_IF, DECOUPLED)]["overall"],
        "norm-driven": blog.TABLE2["norm-driven 6&4"],
        "tail-driven": blog.TABLE2["tail-driven 6&4"],
    }
    if 6 in uniform_bits:
        out["uniform 6-bit"] = blog.TABLE2["float"]
    return out


def table2_blog_facts() -> dict[str, str]:
    """Why the blog's Table 2 "32bit" row is its uniform 6-bit model: the numbers, for the prose."""
    six = blog.FIG7_8[(DECOUPLED, 6)]
    n_head = len(blog_head_tail()["head"])
    share = n_head / len(CLASSES)
    rebuilt = share * six["head"] + (1 - share) * six["tail"]
    return {
        "blog_t2_32": f"{blog.TABLE2['float']:g}",
        "blog_t1_crt": f"{blog.TABLE1[(blog.FIG7_8_IF, DECOUPLED)]['overall']:g}",
        "blog_u6_rebuilt": f"{share:g} × {six['head']:g} + {1 - share:g} × {six['tail']:g} = {rebuilt:.1f}",
    }


def rule_correctness(mres: dict, k: int, heads: Sequence[str]) -> tuple[np.ndarray, dict]:
    """Test labels and ``{(head, "overall" | "tail" | "float"): (seeds, images) correctness}``."""
    correct = {}
    for h in heads:
        for alloc in ("overall", "tail"):
            labels, correct[h, alloc] = mpq_correct(mres, head=h, kind="rule", metric=alloc, k=k)
        labels, correct[h, "float"] = mpq_correct(mres, head=h, kind="float")
    return labels, correct


def table2_paired(labels, correct: dict, heads: Sequence[str], n_boot: int) -> pd.DataFrame:
    """Tail-driven minus norm-driven accuracy, paired on the same test images and pooled over
    seeds (:func:`ltmpq.uncertainty.paired_difference`), overall, head and tail."""
    groups = blog_head_tail()
    rows = []
    for h in heads:
        for name, classes in (
            ("overall", list(range(len(CLASSES)))),
            ("head", list(groups["head"])),
            ("tail", list(groups["tail"])),
        ):
            res = paired_difference(
                labels, correct[h, "overall"], correct[h, "tail"], classes, n_boot=n_boot, seed=0
            )
            rows.append({"model": METHOD_LABELS[h], "accuracy": name, **res})
    paired = pd.DataFrame(rows)
    paired["tail − norm-driven"] = [
        f"{e:+.2f} [{lo:+.2f}, {hi:+.2f}]"
        for e, lo, hi in paired[["estimate", "ci_low", "ci_high"]].itertuples(index=False)
    ]
    return paired


def table2_facts(t2: pd.DataFrame, paired: pd.DataFrame, mres: dict, k: int) -> dict:
    """The rule's cRT numbers for the prose, and in how many seeds both metrics chose one map."""
    out: dict = {}
    row = paired[paired["model"] == METHOD_LABELS[HEAD]].set_index("accuracy")
    for m in ("overall", "head", "tail"):
        e, lo, hi = row.loc[m, ["estimate", "ci_low", "ci_high"]]
        out[f"t2_{m}"] = f"{e:+.2f} points [{lo:+.2f}, {hi:+.2f}]"
        out[f"t2_{m}_p"] = f"{row.loc[m, 'pvalue']:.3f}"
    crt = t2.loc[METHOD_LABELS[HEAD]]
    out |= {
        "t2_float": crt.loc["float", "overall"],
        "t2_norm": crt.loc["norm-driven", "overall"],
        "t2_tailmpq": crt.loc["tail-driven", "overall"],
        "t2_random": crt.loc["random", "overall"],
        "t2_u6": crt.loc["uniform 6-bit", "overall"] if "uniform 6-bit" in crt.index else "–",
        "t2_bits_norm": f"{crt.loc['norm-driven', 'bits']:.2f}",
        "t2_bits_tail": f"{crt.loc['tail-driven', 'bits']:.2f}",
    }
    same = np.mean(
        [
            mpq_select(r, head=HEAD, kind="rule", metric="overall", k=k)[0]["bit_map"]
            == mpq_select(r, head=HEAD, kind="rule", metric="tail", k=k)[0]["bit_map"]
            for r in mres.values()
        ]
    )
    out["n_same_map"] = int(round(same * len(mres)))
    return out


def fig10_frame(mres: dict, k: int) -> pd.DataFrame:
    """Per seed, rule allocation (norm-/tail-driven) and class: test accuracy (%) of cRT."""
    rows = []
    for cfg, r in mres.items():
        for alloc in ("overall", "tail"):
            a = mpq_select(r, head=HEAD, kind="rule", metric=alloc, k=k)[0]
            rows += [
                {"seed": cfg.seed, "allocation": ALLOCATION_LABELS[alloc], "class": c, "accuracy": pct(acc)}
                for c, acc in enumerate(a["test"]["per_class"])
            ]
    return pd.DataFrame(rows)


def class_tests(labels, correct: dict, seeds: Sequence[int]) -> pd.DataFrame:
    """Per seed and class: tail- minus norm-driven accuracy (``delta``) and an exact McNemar test;
    BH over every (seed, class)."""
    t = per_class_mcnemar(labels, correct[HEAD, "overall"], correct[HEAD, "tail"], len(CLASSES))
    t.insert(0, "seed", [list(seeds)[i] for i in t.pop("run")])
    t["q"] = benjamini_hochberg(t["pvalue"])
    return t


def class_test_facts(tests: pd.DataFrame) -> dict:
    """How many per-class changes survive BH, of how many, and how many have any discordant image;
    and, for each class the blog's Fig. 10 quotes, our change in every seed beside the blog's
    shift, and in how many seeds its sign is the blog's."""
    out = {
        "n_sig_class": int((tests["q"] < 0.05).sum()),
        "n_class_tests": len(tests),
        "n_nonzero_class": int((tests["a_only"] + tests["b_only"] > 0).sum()),
    }
    for c, shift in blog.FIG10.items():
        ours = tests[tests["class"] == c]["delta"].to_numpy()
        theirs = shift["tail-driven"] - shift["norm-driven"]
        out[f"class{c}_ours"] = ", ".join(f"{v:+.1f}" for v in ours)
        out[f"class{c}_blog"] = f"{theirs:+.0f}"
        out[f"class{c}_same_sign"] = f"{int(np.sum(np.sign(ours) == np.sign(theirs)))} of {len(ours)}"
    return out


# --------------------------------------------------------------------------- the budget sweep


def budget_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The budget sweep of cRT: per allocation, budget, bits, seed and metric, the value and the
    average bits actually used (random: mean over its draws)."""
    bud = frame[(frame["head"] == HEAD) & frame["kind"].isin(["budget", "budget-random", "uniform", "float"])]
    d = bud.groupby(["allocation", "budget", "bits", "seed", "metric"], dropna=False)[
        ["value", "average_bits"]
    ]
    return d.mean().reset_index()


def budget_paired(bud: pd.DataFrame, metric: str, reference: str = "norm-driven") -> pd.DataFrame:
    """Per budget, seed and allocation: ``metric`` minus the reference allocation's (points)."""
    d = bud[(bud["metric"] == metric) & bud["allocation"].isin(BUDGET_KINDS)]
    w = d.pivot_table(index=["budget", "seed"], columns="allocation", values="value")
    diff = w.drop(columns=reference).sub(w[reference], axis=0)
    return diff.reset_index().melt(id_vars=["budget", "seed"], var_name="allocation", value_name="difference")


def dominance(bud: pd.DataFrame) -> tuple[pd.DataFrame, list[float]]:
    """Per budget: tail- and Hessian-driven minus norm-driven tail and overall accuracy (mean ± CI,
    paired by seed), and the budgets where tail-driven dominates (:func:`ltmpq.verdicts.dominates`)."""
    piv = bud[bud["allocation"].isin(BUDGET_KINDS)].pivot_table(
        index=["budget", "seed"], columns=["allocation", "metric"], values="value"
    )
    rows, wins = [], []
    for budget, g in piv.groupby(level="budget"):
        row = {"budget": budget}
        for alloc in ("tail-driven", "Hessian-driven"):
            for metric in ("tail", "overall"):
                if (alloc, metric) in g and ("norm-driven", metric) in g:
                    row[f"{alloc.split('-')[0]}: Δ{metric}"] = pm_of(
                        (g[(alloc, metric)] - g[("norm-driven", metric)]).to_numpy()
                    )
        rows.append(row)
        diff = {m: (g[("tail-driven", m)] - g[("norm-driven", m)]).to_numpy() for m in ("tail", "overall")}
        if verdicts.dominates(diff["tail"], diff["overall"]):
            wins.append(budget)
    return pd.DataFrame(rows).set_index("budget"), wins


def by_imbalance(mres: dict) -> dict[float, dict]:
    """``{imbalance factor: {config: run}}`` of chapter 4's stored runs, strongest imbalance first."""
    return {
        f: {c: r for c, r in mres.items() if c.imbalance_factor == f}
        for f in sorted({c.imbalance_factor for c in mres})
    }


def dominance_by_imbalance(mres: dict) -> pd.DataFrame:
    """Per imbalance factor: the budgets where tail-driven allocation dominates norm-driven
    (:func:`dominance`), and tail-driven minus norm-driven tail accuracy at each budget."""
    rows = []
    for f, group in by_imbalance(mres).items():
        table, wins = dominance(budget_frame(mpq_frame(group)))
        rows.append(
            {
                "IF": f,
                "seeds": len(group),
                "tail-driven dominates at": budgets_text(wins),
                **{f"Δtail at {b:g} bits": v for b, v in table["tail: Δtail"].items()},
            }
        )
    return pd.DataFrame(rows).set_index("IF")


def budgets_text(budgets: Sequence[float]) -> str:
    """Bit budgets as a phrase that follows "at": ``no budget``, ``a budget of 4 bits``,
    ``budgets of 4 and 5 bits``."""
    bs = [f"{b:g}" for b in budgets]
    if not bs:
        return "no budget"
    if len(bs) == 1:
        return f"a budget of {bs[0]} bits"
    return f"budgets of {', '.join(bs[:-1])} and {bs[-1]} bits"


def budget_facts(bud: pd.DataFrame, mres: dict, mcfg: MPQConfig) -> dict:
    """Where tail-driven allocation dominates, which allocation has the best tail per budget, the
    fewest uniform bits' accuracy, and how often the tail-only metrics pick the plain ones' map."""
    _, wins = dominance(bud)
    best = bud[(bud["metric"] == "tail") & bud["allocation"].isin(BUDGET_KINDS)]
    best = best.groupby(["budget", "allocation"])["value"].mean().unstack()
    u = bud[(bud["allocation"] == "uniform") & (bud["bits"] == min(mcfg.choices))]

    def same_maps(metric_a: str, metric_b: str) -> str:
        pairs = [
            a["bit_map"] == b["bit_map"]
            for r in mres.values()
            for a in mpq_select(r, head=HEAD, kind="budget", metric=metric_a)
            for b in mpq_select(r, head=HEAD, kind="budget", metric=metric_b, budget=a["budget"])
        ]
        return f"{sum(pairs)} of {len(pairs)}"

    return {
        "dominate_budgets": budgets_text(wins),
        "best_tail_alloc": ", ".join(f"{b:g}: {best.loc[b].idxmax()}" for b in best.index),
        "u_low_bits": min(mcfg.choices),
        "u_low_tail": pm_of(u[u["metric"] == "tail"]["value"]),
        "u_low_overall": pm_of(u[u["metric"] == "overall"]["value"]),
        "same_hessian": same_maps("hessian", "hessian_tail"),
        "same_kl": same_maps("kl", "kl_tail"),
    }


def cost(mres: dict) -> tuple[pd.DataFrame, dict]:
    """Seconds per seed for each part of the run, and the totals the prose states."""
    f = frames.cost_frame({"chapter 4": mres})
    # one row per run (a seed appears once per imbalance factor), its parts in the order it recorded them
    t = f.pivot_table(index="result", columns="part", values="seconds", sort=False)
    t = t[list(dict.fromkeys(f["part"]))]
    t.columns.name = None
    t.insert(0, "seed", f.groupby("result", sort=False)["seed"].first())
    t.insert(0, "IF", f.groupby("result", sort=False)["imbalance_factor"].first())
    t["total"] = t[list(dict.fromkeys(f["part"]))].sum(axis=1)
    t["threads"] = f.groupby("result", sort=False)["threads"].first()
    t["allocations"] = [len(r["allocations"]) for r in mres.values()]
    t = t.set_index(["IF", "seed"])
    facts = {
        "cost_total_min": f"{t['total'].sum() / 60:.0f}",
        "cost_sweep_s": f"{t['sweep'].mean():.0f}",
        "cost_hessian_s": f"{t['hessian'].mean():.0f}",
        "cost_eval_s": f"{t['evaluation'].mean():.0f}",
        "n_alloc": int(t["allocations"].iloc[0]),
    }
    return t, facts


def study_parts(s1: dict, dec: dict, qres: dict, mres: dict, quant_bits, k: int, n_splits: int,
                bits: int) -> list:  # fmt: skip
    """Every part of the four claims from a model set's stored results (chapters 1-2's ``s1`` and
    ``dec``, chapter 3's default sweeps ``qres``, chapter 4's ``mres`` at one imbalance factor):
    chapter 4 judges another model set (e.g. the predecessor's) by it, to show what changed."""
    acc = frames.metrics_frame(s1, dec)
    drops = frames.drop_frame(frames.quant_frame({"default": qres}))
    gap = rank_agreement(mres, HEAD, bits, n_splits)["per_seed"].set_index("seed")["gap"]
    return claims.study_parts(acc, drops, quant_bits, gap, frames.mpq_frame(mres), k)


def claim4_by_imbalance(mres: dict, k: int, bits: int, n_splits: int) -> pd.DataFrame:
    """Claim 4's verdict table at each imbalance factor chapter 4 ran (``mres``: its stored runs
    of every factor), with an ``IF`` column, strongest imbalance first."""
    tables = []
    for f, group in by_imbalance(mres).items():
        gap = rank_agreement(group, HEAD, bits, n_splits)["per_seed"].set_index("seed")["gap"]
        tables.append(claims.verdict_table(claims.claim4(gap, frames.mpq_frame(group), k)).assign(IF=f))
    return pd.concat(tables, ignore_index=True)
