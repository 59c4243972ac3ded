"""Chapter 0: the data, the three splits, the model and the model sets (the code's *profiles*), as
tables and glued facts."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..config import PROFILES, Profile, Stage1Config
from ..data import long_tail_counts
from ..params import ChapterParams
from ..paths import results_dir
from ..vocab import CLASSES

#: CIFAR-10's training and test images per class.
TRAIN_PER_CLASS, TEST_PER_CLASS = 5000, 1000
#: The blog draws its long tail from all 5,000 training images per class (it has no validation split).
BLOG_N_MAX = TRAIN_PER_CLASS
#: The model set the book publishes: the one every chapter shows unless told otherwise (``make
#: book`` renders the chapters with their default profile).
PUBLISHED = ChapterParams().profile
#: What the JPEG copy's README (``../shared/data/README.md``) measured against the lossless
#: originals (4,000 training images), and what it reports of models trained on such copies.
JPEG_COPY = {"quality": 75, "mae_grey_levels": 5.8, "psnr_db": 30.5, "accuracy_cost_points": "2-3"}
#: BatchNorm's running statistics and step counter: stored beside the weights, not parameters.
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _join(parts: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


# --------------------------------------------------------------------------- the data


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


def counts_tidy(counts: pd.DataFrame) -> pd.DataFrame:
    """Chapter 0's download: one row per (imbalance factor, class), mildest imbalance first, with
    the class's index and its training images, ours and the blog's."""
    theirs = blog_counts(counts.index)
    rows = [
        {"imbalance_factor": f, "class": c, "class_index": i,
         "train_images": int(counts.loc[f, c]), "blog_train_images": int(theirs.loc[f, c])}
        for f in sorted(counts.index, reverse=True)
        for i, c in enumerate(CLASSES)
    ]  # fmt: skip
    return pd.DataFrame(rows).set_index(["imbalance_factor", "class"])


def head_share(counts: pd.DataFrame, imbalance_factor: float, num_head: int = 4) -> float:
    """Fraction of the training set in the first ``num_head`` classes at one imbalance factor."""
    row = counts.loc[imbalance_factor, list(CLASSES)]
    return float(row.iloc[:num_head].sum() / row.sum())


def training_sizes(counts: pd.DataFrame) -> dict:
    """Each imbalance factor's training set in words, mildest imbalance first: the totals
    ("19,206 images at IF 0.1, ... and 11,661 at IF 0.01") and the rarest class's images ("470,
    94 and 47")."""
    ifs = sorted(counts.index, reverse=True)
    rows = counts.loc[ifs, list(CLASSES)]
    totals = [f"{int(t):,} at IF {f:g}" for f, t in zip(ifs, rows.sum(axis=1), strict=True)]
    totals[0] = totals[0].replace(" at ", " images at ", 1)
    return {"train_sizes": _join(totals), "rarest_counts": _join([f"{int(n):,}" for n in rows[CLASSES[-1]]])}


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


def data_caveat(sources: Iterable[Mapping]) -> str:
    """The one sentence the opening says about the pixels (``sources``: the data sources the stored
    results record, :func:`ltmpq.load.data_sources`): a lossy copy is named as such, with what it
    means for comparisons."""
    if any(src["lossy"] for src in sources):
        return (
            f"The images are a lossy JPEG copy (quality {JPEG_COPY['quality']}) of CIFAR-10, not its "
            "original pixels, so our absolute accuracies are not directly comparable with published "
            "CIFAR-10 results, the blog's included; differences between classes, methods and "
            "bit-widths, all measured on the same pixels, are."
        )
    return "The images are CIFAR-10's original pixels."


def jpeg_facts() -> dict:
    """What the JPEG copy's README reports (:data:`JPEG_COPY`), for the data section's prose."""
    return {
        "jpeg_mae": f"{JPEG_COPY['mae_grey_levels']:g}",
        "jpeg_psnr": f"{JPEG_COPY['psnr_db']:g}",
        "jpeg_cost": JPEG_COPY["accuracy_cost_points"],
    }


# --------------------------------------------------------------------------- the model


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor name -> shape, read from a safetensors file's header alone (an 8-byte little-endian
    length, then that many bytes of JSON): no torch, and the tensors themselves are not read."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    return {name: t["shape"] for name, t in header.items() if name != "__metadata__"}


def model_parameters(path: Path) -> int:
    """The parameters of the model stored at ``path`` (weights and biases, BatchNorm's scale and
    shift included; its running statistics are not parameters)."""
    shapes = safetensors_shapes(path)
    return sum(math.prod(s) for name, s in shapes.items() if name.rsplit(".", 1)[-1] not in BUFFERS)


def model_facts(profile: str, s1: dict) -> dict:
    """How many trained models the page shows, and their size: the parameters counted in the first
    one's committed weights (``results/<profile>/<weights>``), or a plain statement when they are
    not on this machine."""
    path = results_dir() / profile / next(iter(s1.values()))["weights"]
    if path.is_file():
        size = f"{model_parameters(path) / 1e6:.2f} million parameters"
    else:
        size = "parameters not counted: its weights are not on this machine"
    return {"n_models": len(s1), "model_params": size}


# --------------------------------------------------------------------------- the model sets


def version(p: Profile) -> int:
    """1 for a model set that replaced none, 2 for one that replaced a first, and so on."""
    return 1 if p.predecessor is None else 1 + version(PROFILES[p.predecessor])


def model_set_role(p: Profile, published: str = PUBLISHED) -> str:
    """What a model set (profile) is for, in plain words, from its fields: the published one, one
    it replaced, a tiny one for the tests, the blog's model size, or another."""
    cfg = p.stage1_config(1.0, 0)
    chain, q = [], PROFILES[published]
    while q.predecessor is not None:
        chain.append(q.predecessor)
        q = PROFILES[q.predecessor]
    if p.name == published:
        return "the published model set" + (f" (v{version(p)})" if p.predecessor else "")
    if p.name in chain:
        which = "the first" if p.predecessor is None else "an earlier"
        return f"{which} published model set (v{version(p)}), kept for comparison"
    if cfg.n_max is not None or cfg.test_per_class is not None:
        return "a tiny set for the tests (its numbers mean nothing)"
    if cfg.width >= 1:
        return "the blog's model size (needs a GPU)"
    return "another model set"


def profiles_table(published: str = PUBLISHED) -> pd.DataFrame:
    """Every model set, the published one first, then those it replaced, then the others: its role
    in plain words (:func:`model_set_role`), the name commands use, imbalance factors, seeds, model
    width, training recipe and split sizes, all from the profile's fields."""
    order = {published: -1}
    q = PROFILES[published]
    while q.predecessor is not None:
        order[q.predecessor] = len(order)
        q = PROFILES[q.predecessor]
    rows = []
    for p in sorted(PROFILES.values(), key=lambda p: order.get(p.name, len(PROFILES))):
        cfg = p.stage1_config(1.0, 0)
        rows.append(
            {
                "model set": model_set_role(p, published),
                "name in commands": p.name,
                "imbalance factors": ", ".join(f"{f:g}" for f in p.imbalance_factors),
                "seeds": len(p.seeds),
                "VGG16 width": f"{cfg.width:g}",
                "epochs": cfg.epochs,
                "schedule": cfg.schedule,
                "precision": cfg.precision,
                "largest class (train)": cfg.n_max or TRAIN_PER_CLASS - cfg.val_per_class,
                "validation per class": cfg.val_per_class,
                "test per class": cfg.test_per_class or TEST_PER_CLASS,
            }
        )
    return pd.DataFrame(rows).set_index("model set")


def profile_facts(params: ChapterParams, cfg: Stage1Config) -> dict:
    """Which model set this rendering shows (in words and by the name commands use), at what width,
    epochs and number of seeds."""
    return {
        "model_set": model_set_role(params.prof),
        "profile_name": params.profile,
        "profile_width": f"{cfg.width:g}",
        "profile_epochs": cfg.epochs,
        "profile_seeds": len(params.seed_list),
    }
