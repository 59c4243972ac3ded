"""Chapter 0's analysis (ltmpq.analysis.ch0_introduction): training counts beside the blog's, head
shares, and the data and profile facts the introduction prints.

Everything reads the tiny synthetic stored results of :func:`fakes.hand_results` (the ``hand_*``
fixtures), with head and tail accuracies chosen so that every expected gap, mean and 95%
t-interval below can be computed by hand. Nothing is trained and no data is read.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pandas as pd
import pytest
from fakes import (
    BLOG_001,
    BLOG_01,
    COUNTS_BY_IF,
    IFS,
    VAL_PER_CLASS,
)

from ltmpq.analysis import appendix_recipe as app
from ltmpq.analysis import ch0_introduction as ch0
from ltmpq.config import PROFILES, Profile, Stage1Config
from ltmpq.params import ChapterParams
from ltmpq.vocab import CLASSES


def test_train_counts_one_row_per_if_from_the_first_seed(hand_stored):
    """train_counts: IF rows (stored order), class columns, read from the first seed's runs only."""
    s1, _ = hand_stored
    for c in s1:
        if c.seed == 1:  # another seed's counts must not be read
            s1[c]["train_counts"] = [1] * 10
    counts = ch0.train_counts(s1)
    assert list(counts.index) == list(IFS)
    assert counts.index.name == "IF"
    assert list(counts.columns) == list(CLASSES)
    for f in IFS:
        assert counts.loc[f].tolist() == COUNTS_BY_IF[f]


def test_blog_counts_are_the_cifar10_lt_counts():
    """blog_counts: the blog's n_max = 5000 long tail, per imbalance factor."""
    b = ch0.blog_counts([0.1, 0.01])
    assert list(b.columns) == list(CLASSES)
    assert b.loc[0.01].tolist() == BLOG_001
    assert b.loc[0.1].tolist() == BLOG_01


def test_counts_beside_blog_layout_and_totals(hand_stored):
    """counts_beside_blog: class rows + 'train total', columns (IF, ours | blog), totals by hand."""
    counts = ch0.train_counts(hand_stored[0])
    both = ch0.counts_beside_blog(counts)
    assert list(both.index) == [*CLASSES, "train total"]
    assert list(both.columns) == [(f"IF {f:g}", who) for f in IFS for who in ("ours", "blog")]
    assert both.loc["train total", ("IF 0.1", "ours")] == 5270
    assert both.loc["train total", ("IF 0.02", "ours")] == 4520
    assert both.loc["train total", ("IF 0.01", "ours")] == 3750
    assert both.loc["train total", ("IF 0.1", "blog")] == 20431
    assert both.loc["train total", ("IF 0.01", "blog")] == 12406
    assert both.loc["truck", ("IF 0.01", "ours")] == 30
    assert both.loc["truck", ("IF 0.01", "blog")] == 50


def test_head_share_by_hand(hand_stored):
    """head_share: the first four classes' fraction of the training set at one IF."""
    counts = ch0.train_counts(hand_stored[0])
    assert ch0.head_share(counts, 0.01) == pytest.approx(3000 / 3750)
    assert ch0.head_share(counts, 0.1) == pytest.approx(3600 / 5270)
    assert ch0.head_share(counts, 0.01, num_head=1) == pytest.approx(1200 / 3750)


def test_data_facts_by_hand(hand_stored):
    """data_facts: split sizes, n_max, the strongest IF's counts, head shares (ours, blog's), few."""
    assert ch0.data_facts(hand_stored[0]) == {
        "val_per_class": VAL_PER_CLASS,
        "n_max": "1,200",
        "n_val": "500",
        "n_test": "1,000",
        "most_lt_if": "0.01",
        "head_share": "80",
        "tail_min": 30,
        "blog_head_share": f"{100 * sum(BLOG_001[:4]) / sum(BLOG_001):.0f}",  # 10870 / 12406 = 87.6%
        "few_group": "is empty here",
    }
    assert ch0.data_facts(hand_stored[0])["blog_head_share"] == "88"


@pytest.mark.parametrize(
    ("few", "text"), [([], "is empty here"), ([9], "holds class 9"), ([8, 9], "holds classes 8, 9")]
)
def test_data_facts_few_group_text_at_the_strongest_imbalance(hand_stored, few, text):
    """data_facts' few_group reads the most imbalanced setting's few group (singular/plural/empty)."""
    s1, _ = hand_stored
    for c, r in s1.items():
        r["groups"]["few"] = list(few) if c.imbalance_factor == 0.01 else [5, 6, 7]
    assert ch0.data_facts(s1)["few_group"] == text


def counts_of(rows: dict) -> pd.DataFrame:
    """A train_counts-shaped frame: IF rows (in the order given), class columns."""
    return pd.DataFrame([{"IF": f, **dict(zip(CLASSES, c, strict=True))} for f, c in rows.items()]).set_index(
        "IF"
    )


HAND = {0.01: [100, 50, 40, 30, 20, 10, 5, 3, 2, 1], 0.1: [100, 90, 80, 70, 60, 50, 40, 30, 20, 10]}


def write_safetensors(path, shapes: dict) -> None:
    """A minimal safetensors file: the header (offsets of float32 zeros) and the zeros."""
    header, offset = {"__metadata__": {"ltmpq": "{}"}}, 0
    for name, shape in shapes.items():
        size = 4 * int(np.prod(shape)) if shape else 8
        header[name] = {"dtype": "F32" if shape else "I64", "shape": list(shape),
                        "data_offsets": [offset, offset + size]}  # fmt: skip
        offset += size
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + bytes(offset))


def test_training_sizes_mildest_first_with_totals_and_rarest():
    """Totals 261 (IF 0.01) and 550 (IF 0.1); rarest 1 and 10; 'images' once, after the first."""
    assert ch0.training_sizes(counts_of(HAND)) == {
        "train_sizes": "550 images at IF 0.1 and 261 at IF 0.01",
        "rarest_counts": "10 and 1",
    }
    three = counts_of({0.02: [2000] + [2] * 9, 0.01: [1500] + [1] * 9, 0.1: [3000] + [1000] * 9})
    assert ch0.training_sizes(three) == {
        "train_sizes": "12,000 images at IF 0.1, 2,018 at IF 0.02 and 1,509 at IF 0.01",
        "rarest_counts": "1,000, 2 and 1",
    }
    assert ch0.training_sizes(counts_of({0.5: [7] * 10})) == {
        "train_sizes": "70 images at IF 0.5",
        "rarest_counts": "7",
    }


def test_training_sizes_of_stored_runs(hand_stored):
    """The hand results' counts (totals 5270, 4520, 3750 as chapter 0's existing tests compute)."""
    facts = ch0.training_sizes(ch0.train_counts(hand_stored[0]))
    assert facts["train_sizes"] == "5,270 images at IF 0.1, 4,520 at IF 0.02 and 3,750 at IF 0.01"
    assert facts["rarest_counts"].endswith(" and 30")  # truck at IF 0.01


def test_counts_tidy_rows_values_and_order():
    """One row per (IF, class), mildest IF first, classes in label order, ours and the blog's
    (the blog's: int(5000 * IF ** (i / 9)), e.g. 500 and 50 for the rarest class)."""
    t = ch0.counts_tidy(counts_of(HAND))
    assert t.index.names == ["imbalance_factor", "class"]
    assert list(t.columns) == ["class_index", "train_images", "blog_train_images"]
    assert list(t.index) == [(f, c) for f in (0.1, 0.01) for c in CLASSES]
    assert t["class_index"].tolist() == list(range(10)) * 2
    assert t.loc[(0.01, "airplane"), "train_images"] == 100
    assert t.loc[(0.01, "truck"), "train_images"] == 1
    assert t.loc[(0.1, "cat"), "train_images"] == 70
    assert t.loc[(0.1, "truck"), "blog_train_images"] == 500
    assert t.loc[(0.01, "truck"), "blog_train_images"] == 50
    assert t.loc[(0.01, "airplane"), "blog_train_images"] == 5000
    assert t["train_images"].sum() == 261 + 550


def test_data_caveat_names_a_lossy_copy_and_only_then():
    lossy = ch0.data_caveat([{"lossy": False}, {"lossy": True}])
    assert "lossy JPEG copy (quality 75)" in lossy and "not directly comparable" in lossy
    assert ch0.data_caveat([{"lossy": False}]) == "The images are CIFAR-10's original pixels."
    assert "JPEG" not in ch0.data_caveat([])


def test_jpeg_facts_are_the_readme_numbers():
    assert ch0.jpeg_facts() == {"jpeg_mae": "5.8", "jpeg_psnr": "30.5", "jpeg_cost": "2-3"}


def test_model_parameters_by_hand(tmp_path):
    """2x3x3x3 + 2 + 2 + 4x2 + 4 = 54 + 4 + 12 = 70; the running statistics are not counted."""
    path = tmp_path / "m.safetensors"
    write_safetensors(path, {
        "layers.L1.0.weight": (2, 3, 3, 3), "layers.L1.1.weight": (2,), "layers.L1.1.bias": (2,),
        "layers.L1.1.running_mean": (2,), "layers.L1.1.running_var": (2,),
        "layers.L1.1.num_batches_tracked": (), "layers.L2.weight": (4, 2), "layers.L2.bias": (4,),
    })  # fmt: skip
    assert ch0.safetensors_shapes(path)["layers.L1.0.weight"] == [2, 3, 3, 3]
    assert "__metadata__" not in ch0.safetensors_shapes(path)
    assert ch0.model_parameters(path) == 70


def test_model_parameters_is_torchs_count_of_a_saved_vgg16(tmp_path):
    """The header count equals torch's parameter count of the model whose state was saved."""
    from safetensors.torch import save_file

    from ltmpq.models import VGG16

    model = VGG16(width=1 / 16)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "v.safetensors"))
    assert ch0.model_parameters(tmp_path / "v.safetensors") == sum(p.numel() for p in model.parameters())


def test_model_facts_reads_the_first_runs_weights_or_says_they_are_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("LTMPQ_RESULTS", str(tmp_path))
    s1 = {Stage1Config(0.1, seed=0): {"weights": "models/a.safetensors"},
          Stage1Config(0.1, seed=1): {"weights": "models/b.safetensors"}}  # fmt: skip
    assert ch0.model_facts("cpu", s1) == {
        "n_models": 2,
        "model_params": "parameters not counted: its weights are not on this machine",
    }
    (tmp_path / "cpu" / "models").mkdir(parents=True)
    write_safetensors(tmp_path / "cpu" / "models" / "a.safetensors", {"w": (1000, 1235), "b": (766,)})
    assert ch0.model_facts("cpu", s1) == {"n_models": 2, "model_params": "1.24 million parameters"}


def test_model_set_roles_of_the_books_profiles():
    assert ch0.PUBLISHED == "cpu"
    roles = {n: ch0.model_set_role(p) for n, p in PROFILES.items()}
    assert roles == {
        "cpu": "the published model set (v2)",
        "cpu-v1": "the first published model set (v1), kept for comparison",
        "smoke": "a tiny set for the tests (its numbers mean nothing)",
        "paper": "the blog's model size (needs a GPU)",
    }
    assert ch0.version(PROFILES["cpu"]) == 2 and ch0.version(PROFILES["smoke"]) == 1
    # seen from another published set, cpu is just another model set and cpu-v1 is not its past
    assert ch0.model_set_role(PROFILES["cpu"], published="smoke") == "another model set"
    assert ch0.model_set_role(PROFILES["smoke"], published="smoke") == "the published model set"
    assert ch0.model_set_role(PROFILES["cpu-v1"], published="smoke") == "another model set"


def test_model_set_roles_along_a_longer_chain(monkeypatch):
    """v3 replaced v2, which replaced v1: v2 is 'an earlier' one, v1 'the first'."""
    chain = {
        "v1": Profile("v1", (0.1,), (0,)),
        "v2": Profile("v2", (0.1,), (0,), predecessor="v1"),
        "v3": Profile("v3", (0.1,), (0,), predecessor="v2"),
        "wide": Profile("wide", (0.1,), (0,), stage1={"width": 2.0}),
    }
    monkeypatch.setattr(ch0, "PROFILES", chain)
    assert [ch0.version(p) for p in chain.values()] == [1, 2, 3, 1]
    roles = [ch0.model_set_role(p, published="v3") for p in chain.values()]
    assert roles == [
        "the first published model set (v1), kept for comparison",
        "an earlier published model set (v2), kept for comparison",
        "the published model set (v3)",
        "the blog's model size (needs a GPU)",
    ]
    t = ch0.profiles_table(published="v3")
    assert t["name in commands"].tolist() == ["v3", "v2", "v1", "wide"]  # published, its past, others


def test_profiles_table_from_fields_not_descriptions():
    t = ch0.profiles_table()
    assert t.index.name == "model set"
    assert t["name in commands"].tolist() == ["cpu", "cpu-v1", "smoke", "paper"]
    assert list(t.columns) == [
        "name in commands", "imbalance factors", "seeds", "VGG16 width", "epochs", "schedule",
        "precision", "largest class (train)", "validation per class", "test per class",
    ]  # fmt: skip
    assert not any("real" in str(v) for v in t.reset_index().to_numpy().ravel())
    cpu = t.loc["the published model set (v2)"]
    assert cpu["imbalance factors"] == "0.1, 0.02, 0.01" and cpu["seeds"] == 5
    assert (cpu["VGG16 width"], cpu["epochs"], cpu["schedule"], cpu["precision"]) == (
        "0.25",
        60,
        "onecycle",
        "bf16",
    )
    # 5000 - 300 held out; the test set whole
    assert (cpu["largest class (train)"], cpu["validation per class"], cpu["test per class"]) == (
        4700,
        300,
        1000,
    )
    v1 = t.loc["the first published model set (v1), kept for comparison"]
    assert (v1["epochs"], v1["schedule"], v1["largest class (train)"], v1["validation per class"]) == (
        30, "cosine", 4900, 100)  # fmt: skip
    smoke = t.loc["a tiny set for the tests (its numbers mean nothing)"]
    assert (smoke["VGG16 width"], smoke["largest class (train)"], smoke["test per class"]) == (
        "0.0625",
        300,
        100,
    )
    assert t.loc["the blog's model size (needs a GPU)", "VGG16 width"] == "1"


def test_profile_facts_name_the_model_set_in_words():
    cfg = Stage1Config(imbalance_factor=0.1, width=0.25, epochs=7)
    assert ch0.profile_facts(ChapterParams("cpu", seeds=(0, 1)), cfg) == {
        "model_set": "the published model set (v2)",
        "profile_name": "cpu",
        "profile_width": "0.25",
        "profile_epochs": 7,
        "profile_seeds": 2,
    }
    assert ch0.profile_facts(ChapterParams("smoke"), cfg)["model_set"].startswith("a tiny set")


def test_no_aims_or_goals_left():
    for name in ("REBUILD_AIMS", "MAD_GOAL", "goal_facts"):
        assert not hasattr(app, name)
