"""Chapter 0: the data, the three splits and the profiles, as tables and glued facts."""

from __future__ import annotations

import pandas as pd

from ..config import PROFILES, Stage1Config
from ..data import long_tail_counts
from ..params import ChapterParams
from ..vocab import CLASSES

#: The blog draws its long tail from all 5,000 training images per class (it has no validation split).
BLOG_N_MAX = 5000


def train_counts(s1: dict) -> pd.DataFrame:
    """Training images per class (columns) for each imbalance factor (rows), from stored runs.

    The counts depend only on the imbalance factor, so the first seed's runs are read.
    """
    seed0 = next(iter(s1)).seed
    rows = [
        {"IF": c.imbalance_factor, **dict(zip(CLASSES, r["train_counts"], strict=True))}
        for c, r in s1.items()
        if c.seed == seed0
    ]
    return pd.DataFrame(rows).set_index("IF")


def blog_counts(imbalance_factors) -> pd.DataFrame:
    """The blog's per-class counts (same formula, ``n_max`` = 5,000) for the same imbalance factors."""
    rows = [
        {"IF": f, **dict(zip(CLASSES, long_tail_counts(BLOG_N_MAX, f), strict=True))}
        for f in imbalance_factors
    ]
    return pd.DataFrame(rows).set_index("IF")


def counts_beside_blog(counts: pd.DataFrame) -> pd.DataFrame:
    """Classes (rows, plus the total) x (IF, ours | blog) columns."""
    theirs = blog_counts(counts.index)
    both = pd.concat({"ours": counts.T, "blog": theirs.T}, axis=1).swaplevel(axis=1)
    both = both[[(f, who) for f in counts.index for who in ("ours", "blog")]]
    both.loc["train total"] = both.sum()
    both.columns = pd.MultiIndex.from_tuples([(f"IF {f:g}", who) for f, who in both.columns])
    return both


def head_share(counts: pd.DataFrame, imbalance_factor: float, num_head: int = 4) -> float:
    """Fraction of the training set in the first ``num_head`` classes at one imbalance factor."""
    row = counts.loc[imbalance_factor, list(CLASSES)]
    return float(row.iloc[:num_head].sum() / row.sum())


def data_facts(s1: dict) -> dict:
    """Split sizes, the most imbalanced setting's counts and head share (ours and the blog's)."""
    counts = train_counts(s1)
    cfg0, first = next(iter(s1.items()))
    most_lt = min(counts.index)
    few = next(r for c, r in s1.items() if c.imbalance_factor == most_lt)["groups"]["few"]
    few_text = (
        "is empty here"
        if not few
        else f"holds class{'es' if len(few) > 1 else ''} " + ", ".join(map(str, few))
    )
    return {
        "val_per_class": cfg0.val_per_class,
        "n_max": f"{counts[CLASSES[0]].max():,}",
        "n_val": f"{first['split_sizes']['val']:,}",
        "n_test": f"{first['split_sizes']['test']:,}",
        "most_lt_if": f"{most_lt:g}",
        "head_share": f"{100 * head_share(counts, most_lt):.0f}",
        "tail_min": int(counts.loc[most_lt, CLASSES[-1]]),
        "blog_head_share": f"{100 * head_share(blog_counts([most_lt]), most_lt):.0f}",
        "few_group": few_text,
    }


def profiles_table() -> pd.DataFrame:
    """Every profile: imbalance factors, seeds, model width, epochs and what each is for."""
    rows = []
    for p in PROFILES.values():
        cfg = p.stage1_config(1.0, 0)
        rows.append(
            {
                "profile": p.name,
                "imbalance factors": ", ".join(f"{f:g}" for f in p.imbalance_factors),
                "seeds": len(p.seeds),
                "VGG16 width": cfg.width,
                "epochs": cfg.epochs,
                "schedule": cfg.schedule,
                "precision": cfg.precision,
                "validation per class": cfg.val_per_class,
                "what for": p.description,
            }
        )
    return pd.DataFrame(rows).set_index("profile")


def profile_facts(params: ChapterParams, cfg: Stage1Config) -> dict:
    """Which profile this rendering shows, at what width, epochs and number of seeds."""
    return {
        "profile_name": params.profile,
        "profile_width": f"{cfg.width:g}",
        "profile_epochs": cfg.epochs,
        "profile_seeds": len(params.seed_list),
    }
