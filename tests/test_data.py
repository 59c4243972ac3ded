"""ltmpq.data and ltmpq.paths: long-tail counts, splits, class groups, readers, cache, data search."""

from __future__ import annotations

import hashlib
import math
import re
import socket
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ltmpq.data as data_mod
from ltmpq import paths
from ltmpq.data import (
    DataError,
    DataNotFoundError,
    DataSource,
    blog_head_tail,
    class_groups,
    find_source,
    load_cifar10,
    long_tail_counts,
    make_splits,
    many_medium_few,
)
from ltmpq.vocab import CLASSES

# ------------------------------------------------------------------ long-tail counts

GOLDEN_EXP_5000_001 = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def test_long_tail_counts_golden_exp():
    assert long_tail_counts(5000, 0.01) == GOLDEN_EXP_5000_001
    assert long_tail_counts(5000, 0.01, profile="exp") == GOLDEN_EXP_5000_001


def test_long_tail_counts_golden_other_factors():
    # CIFAR-10 with 100 validation images per class leaves n_max = 4,900
    assert long_tail_counts(4900, 0.01) == [4900, 2937, 1760, 1055, 632, 379, 227, 136, 81, 49]
    assert long_tail_counts(5000, 0.1) == [5000, 3871, 2997, 2320, 1796, 1391, 1077, 834, 645, 500]
    assert long_tail_counts(5000, 1) == [5000] * 10
    assert long_tail_counts(5000, 1.0) == [5000] * 10


def test_long_tail_counts_step():
    assert long_tail_counts(5000, 0.01, profile="step") == [5000] * 5 + [50] * 5
    assert long_tail_counts(100, 0.1, num_classes=5, profile="step") == [100, 100, 10, 10, 10]


@pytest.mark.parametrize("imbalance", [0.5, 0.1, 0.02, 0.01, 0.005])
def test_long_tail_counts_invariants(imbalance):
    counts = long_tail_counts(4900, imbalance)
    assert len(counts) == 10
    assert counts[0] == 4900
    assert all(isinstance(n, int) for n in counts)
    assert all(a >= b for a, b in zip(counts, counts[1:], strict=False))
    # the smallest class is n_max * IF (floored), as the definition IF = n_min / n_max says
    assert counts[-1] == math.floor(4900 * imbalance + 1e-9)


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, "0.1", float("nan"), None])
def test_long_tail_counts_rejects_bad_imbalance_factor(bad):
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        long_tail_counts(5000, bad)


def test_long_tail_counts_rejects_bad_profile_and_sizes():
    with pytest.raises(ValueError, match="'zipf'"):
        long_tail_counts(5000, 0.1, profile="zipf")
    for bad_n in (0, -3, 10.5):
        with pytest.raises(ValueError, match="n_max"):
            long_tail_counts(bad_n, 0.1)
    with pytest.raises(ValueError, match="num_classes"):
        long_tail_counts(5000, 0.1, num_classes=1)


# ------------------------------------------------------------------ splits

PER_CLASS = 60


@pytest.fixture
def labels():
    rng = np.random.default_rng(123)
    train = rng.permutation(np.repeat(np.arange(10), PER_CLASS))
    test = rng.permutation(np.repeat(np.arange(10), 10))
    return train, test


def test_make_splits_disjoint_balanced_val_and_lt_counts(labels):
    train_y, test_y = labels
    s = make_splits(train_y, test_y, 0.1, val_per_class=10)
    # indices are unique, in range, and train / val never share an image of the train array
    for idx in (s.train, s.val):
        assert len(np.unique(idx)) == len(idx)
        assert idx.min() >= 0 and idx.max() < len(train_y)
    assert np.intersect1d(s.train, s.val).size == 0
    assert np.bincount(train_y[s.val], minlength=10).tolist() == [10] * 10
    expected = long_tail_counts(PER_CLASS - 10, 0.1)
    assert list(s.train_counts) == expected
    assert np.bincount(train_y[s.train], minlength=10).tolist() == expected
    # the full, untouched test split by default
    assert s.test.tolist() == list(range(len(test_y)))


def test_make_splits_explicit_n_max_and_step_profile(labels):
    train_y, test_y = labels
    s = make_splits(train_y, test_y, 0.2, val_per_class=5, n_max=30, profile="step")
    assert np.bincount(train_y[s.train], minlength=10).tolist() == [30] * 5 + [6] * 5
    assert np.intersect1d(s.train, s.val).size == 0


def test_make_splits_seeds(labels):
    train_y, test_y = labels
    a = make_splits(train_y, test_y, 0.1, val_per_class=10, data_seed=0)
    b = make_splits(train_y, test_y, 0.1, val_per_class=10, data_seed=0)
    c = make_splits(train_y, test_y, 0.1, val_per_class=10, data_seed=1)
    d = make_splits(train_y, test_y, 0.1, val_per_class=10, data_seed=0, val_seed=1)
    np.testing.assert_array_equal(a.train, b.train)
    np.testing.assert_array_equal(a.val, b.val)
    assert not np.array_equal(a.train, c.train)  # another long-tailed draw ...
    np.testing.assert_array_equal(a.val, c.val)  # ... with the same validation split
    assert not np.array_equal(a.val, d.val)  # val_seed does move the validation split
    assert np.intersect1d(c.train, c.val).size == 0 and np.intersect1d(d.train, d.val).size == 0


def test_make_splits_test_subsample(labels):
    train_y, test_y = labels
    s = make_splits(train_y, test_y, 0.1, val_per_class=10, test_per_class=3)
    assert np.bincount(test_y[s.test], minlength=10).tolist() == [3] * 10
    assert len(np.unique(s.test)) == 30
    again = make_splits(train_y, test_y, 0.1, val_per_class=10, test_per_class=3, data_seed=5)
    np.testing.assert_array_equal(s.test, again.test)


def test_make_splits_errors(labels):
    train_y, test_y = labels
    for bad in (PER_CLASS, PER_CLASS + 1, -1):
        with pytest.raises(ValueError, match="val_per_class"):
            make_splits(train_y, test_y, 0.1, val_per_class=bad)
    with pytest.raises(ValueError, match="n_max"):
        make_splits(train_y, test_y, 0.1, val_per_class=10, n_max=PER_CLASS - 10 + 1)
    with pytest.raises(ValueError, match="n_max"):
        make_splits(train_y, test_y, 0.1, val_per_class=10, n_max=0)
    with pytest.raises(ValueError, match="imbalance_factor"):
        make_splits(train_y, test_y, 0.0, val_per_class=10)


# ------------------------------------------------------------------ class groups


def test_many_medium_few_at_if_001_has_no_few_class():
    g = many_medium_few(long_tail_counts(5000, 0.01))
    assert g == {"many": (0, 1, 2, 3, 4, 5, 6, 7), "medium": (8, 9), "few": ()}
    g = many_medium_few(long_tail_counts(4900, 0.01))
    assert g["few"] == () and g["medium"] == (8, 9)


def test_many_medium_few_boundaries_and_partition():
    assert many_medium_few([101, 100, 20, 19, 0]) == {"many": (0,), "medium": (1, 2), "few": (3, 4)}
    counts = long_tail_counts(500, 0.01)  # down to 5 images: all three groups occupied
    g = many_medium_few(counts)
    assert all(g.values())
    assert sorted(sum(g.values(), ())) == list(range(10))
    with pytest.raises(ValueError, match="few_below"):
        many_medium_few(counts, many_above=10, few_below=20)


def test_blog_head_tail_and_class_groups():
    assert blog_head_tail() == {"head": (0, 1, 2, 3), "tail": (4, 5, 6, 7, 8, 9)}
    assert blog_head_tail(5, 2) == {"head": (0, 1), "tail": (2, 3, 4)}
    for bad in (0, 10, -1):
        with pytest.raises(ValueError, match="num_head"):
            blog_head_tail(10, bad)
    g = class_groups(long_tail_counts(5000, 0.01))
    assert set(g) == {"head", "tail", "many", "medium", "few"}
    assert g["head"] == (0, 1, 2, 3) and g["few"] == ()


# ------------------------------------------------------------------ paths and the data search


def test_paths_honour_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LTMPQ_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("LTMPQ_RESULTS", str(tmp_path / "r"))
    monkeypatch.setenv("LTMPQ_DATA", str(tmp_path / "d"))
    assert paths.cache_dir() == tmp_path / "c"
    assert paths.results_dir() == tmp_path / "r"
    # an explicit LTMPQ_DATA is the only place looked at: it wins or fails, it is never skipped
    assert paths.data_candidates() == [tmp_path / "d"]
    monkeypatch.delenv("LTMPQ_DATA")
    assert paths.data_candidates() == [paths.ROOT / "data", paths.ROOT.parent / "shared" / "data"]


def test_find_source_nothing_found_lists_where_it_looked(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.delenv("LTMPQ_DATA")
    monkeypatch.setattr(data_mod, "data_candidates", lambda: [empty])
    with pytest.raises(DataNotFoundError) as err:
        find_source(allow_download=False)
    assert "LTMPQ_DATA" in str(err.value)
    assert str(empty) in str(err.value)
    assert isinstance(err.value, FileNotFoundError)


@pytest.mark.parametrize("state", ["missing", "empty", "unrelated files"])
def test_an_explicit_ltmpq_data_without_cifar_fails_naming_it(tmp_path, monkeypatch, state):
    """A set LTMPQ_DATA is never skipped for ./data or ../shared/data, however good those are."""
    where = tmp_path / "mine"
    if state != "missing":
        where.mkdir()
    if state == "unrelated files":
        (where / "notes.txt").write_text("hello")
    monkeypatch.setenv("LTMPQ_DATA", str(where))
    # the real search (conftest restricts it): ./data and ../shared/data (which holds the real copy
    # on the development and CI machines) must not be used instead
    monkeypatch.setattr(data_mod, "data_candidates", paths.data_candidates)
    with pytest.raises(DataNotFoundError, match=rf"LTMPQ_DATA={re.escape(str(where))} holds no CIFAR-10"):
        find_source(allow_download=True)  # and nothing is downloaded into it either


def test_find_source_download_failure_is_reported(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.delenv("LTMPQ_DATA")
    monkeypatch.setattr(data_mod, "data_candidates", lambda: [empty])
    calls = []

    class RefusingCIFAR10:
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download, socket.getdefaulttimeout()))
            raise OSError("no route to host")

    fake_tv = types.ModuleType("torchvision")
    fake_ds = types.ModuleType("torchvision.datasets")
    fake_ds.CIFAR10 = RefusingCIFAR10
    fake_tv.datasets = fake_ds
    monkeypatch.setitem(sys.modules, "torchvision", fake_tv)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake_ds)
    before = socket.getdefaulttimeout()
    with pytest.raises(DataNotFoundError, match="no route to host") as err:
        find_source(allow_download=True)
    assert "LTMPQ_DATA" in str(err.value)
    # it said what it was doing, with a timeout in force during the download and restored after
    assert calls and calls[0][2] is True and calls[0][3] == data_mod.DOWNLOAD_TIMEOUT_S
    assert socket.getdefaulttimeout() == before
    assert f"downloading it with torchvision into {empty}" in capsys.readouterr().err


def test_find_source_imagefolder_via_ltmpq_data(fake_imagefolder, monkeypatch):
    # LTMPQ_DATA may name the folder holding ``cifar10-jpeg`` or the copy itself
    for where in (fake_imagefolder.parent, fake_imagefolder):
        monkeypatch.setenv("LTMPQ_DATA", str(where))
        src = find_source(allow_download=False)
        assert src.kind == "imagefolder-jpeg"
        assert src.lossy is True
        assert Path(src.path) == fake_imagefolder.resolve()
        assert "JPEG" in src.note


@pytest.mark.parametrize("damage", ["missing class", "empty class", "missing split"])
def test_an_incomplete_imagefolder_is_an_error_naming_what_is_missing(fake_imagefolder, monkeypatch, damage):
    """Issue: an empty train/truck/ became a 9-class study stored under the normal name."""
    import shutil

    if damage == "missing class":
        shutil.rmtree(fake_imagefolder / "test" / "truck")
        named = r"class folder \S*cifar10-jpeg/test/truck is missing"
    elif damage == "empty class":
        for f in (fake_imagefolder / "train" / "truck").iterdir():
            f.unlink()
        named = r"class folder \S*cifar10-jpeg/train/truck is empty"
    else:
        shutil.rmtree(fake_imagefolder / "test")
        named = r"\S*cifar10-jpeg/test is missing"
    monkeypatch.setenv("LTMPQ_DATA", str(fake_imagefolder.parent))
    with pytest.raises(DataError, match=rf"incomplete CIFAR-10 copy \S+: {named}"):
        find_source(allow_download=False)
    with pytest.raises(DataError, match=named):  # and a copy that broke after it was found
        load_cifar10(DataSource("imagefolder-jpeg", str(fake_imagefolder), True, "x"))


def test_incomplete_batches_name_the_missing_files(fake_batches, monkeypatch):
    root, _ = fake_batches
    (root / "test_batch").unlink()
    monkeypatch.setenv("LTMPQ_DATA", str(root.parent))
    with pytest.raises(
        DataError, match=r"incomplete CIFAR-10 batches \S*cifar-10-batches-py: missing test_batch"
    ):
        find_source(allow_download=False)


@pytest.mark.parametrize("bad", ["truncated", "garbage", "stray text file", "hidden file"])
def test_a_file_that_is_not_a_readable_image_is_named(fake_imagefolder, bad):
    target = fake_imagefolder / "train" / "dog" / "001.jpg"
    if bad == "truncated":
        target.write_bytes(target.read_bytes()[:200])
        named = re.escape(str(target)) + r": not a readable image"
    elif bad == "garbage":
        target.write_bytes(b"\x00not a jpeg" * 20)
        named = re.escape(str(target)) + r": not a readable image"
    else:
        stray = fake_imagefolder / "test" / "cat" / ("notes.txt" if bad == "stray text file" else ".DS_Store")
        stray.write_text("x")
        named = r"not an image in the CIFAR-10 copy: " + re.escape(str(stray))
    src = DataSource("imagefolder-jpeg", str(fake_imagefolder), True, "x")
    with pytest.raises(DataError, match=named):
        load_cifar10(src)


def test_find_source_prefers_original_batches(tmp_path, monkeypatch, make_imagefolder, make_batches):
    base = tmp_path / "both"
    make_imagefolder(base / "cifar10-jpeg")
    make_batches(base / "cifar-10-batches-py")
    monkeypatch.setenv("LTMPQ_DATA", str(base))
    src = find_source(allow_download=False)
    assert src.kind == "cifar-10-batches-py"
    assert src.lossy is False
    assert Path(src.path) == (base / "cifar-10-batches-py").resolve()


# ------------------------------------------------------------------ readers and the cache


def _decode_oracle(folder: Path):
    """Decode the ImageFolder copy independently: (train_x, train_y, test_x, test_y, sha256)."""
    out = {}
    for split in ("train", "test"):
        xs, ys = [], []
        for label, c in enumerate(CLASSES):
            for f in sorted((folder / split / c).glob("*.jpg")):
                xs.append(np.asarray(Image.open(f).convert("RGB")))
                ys.append(label)
        out[split] = (np.stack(xs), np.array(ys))
    # the copy's README checksum: sorted relative paths (prefixed by the folder name) + bytes
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*.jpg"), key=lambda p: p.relative_to(folder).as_posix()):
        h.update(f"{folder.name}/{f.relative_to(folder).as_posix()}".encode())
        h.update(f.read_bytes())
    return (*out["train"], *out["test"], h.hexdigest())


def test_load_cifar10_imagefolder_matches_pil_and_caches(fake_imagefolder, monkeypatch, isolated_dirs):
    monkeypatch.setenv("LTMPQ_DATA", str(fake_imagefolder.parent))
    src = find_source(allow_download=False)
    d = load_cifar10(src)
    tr_x, tr_y, te_x, te_y, sha = _decode_oracle(fake_imagefolder)
    assert d.train_x.dtype == np.uint8 and d.train_x.shape == (30, 32, 32, 3)
    assert d.test_x.shape == (20, 32, 32, 3)
    assert d.train_y.dtype == np.int64
    np.testing.assert_array_equal(d.train_x, tr_x)
    np.testing.assert_array_equal(d.train_y, tr_y)
    np.testing.assert_array_equal(d.test_x, te_x)
    np.testing.assert_array_equal(d.test_y, te_y)
    assert d.source.sha256 == sha
    assert d.source.kind == "imagefolder-jpeg"
    cached = list((isolated_dirs["cache"] / "data").glob("*.npz"))
    assert len(cached) == 1 and cached[0].with_suffix(".json").is_file()

    # second load: from the cache, without decoding a single JPEG
    def boom(path):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(data_mod, "_read_imagefolder", boom)
    again = load_cifar10()  # source found through LTMPQ_DATA
    np.testing.assert_array_equal(again.train_x, d.train_x)
    np.testing.assert_array_equal(again.test_y, d.test_y)
    assert again.source == d.source


def test_load_cifar10_rejects_wrong_image_size(fake_imagefolder, monkeypatch):
    Image.new("RGB", (28, 28)).save(fake_imagefolder / "train" / "cat" / "999.jpg")
    monkeypatch.setenv("LTMPQ_DATA", str(fake_imagefolder))
    with pytest.raises(ValueError, match="32x32"):
        load_cifar10(find_source(allow_download=False))


def test_load_cifar10_batches_reader(fake_batches, trusted_batches, monkeypatch):
    root, written = fake_batches
    monkeypatch.setenv("LTMPQ_DATA", str(root.parent))
    d = load_cifar10(find_source(allow_download=False))
    assert d.source.kind == "cifar-10-batches-py" and len(d.source.sha256) == 64

    def nhwc(raw):
        return raw.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)

    exp_x = np.concatenate([nhwc(written[f"data_batch_{i}"]["data"]) for i in range(1, 6)])
    exp_y = np.concatenate([written[f"data_batch_{i}"]["labels"] for i in range(1, 6)])
    np.testing.assert_array_equal(d.train_x, exp_x)
    np.testing.assert_array_equal(d.train_y, exp_y)
    np.testing.assert_array_equal(d.test_x, nhwc(written["test_batch"]["data"]))
    np.testing.assert_array_equal(d.test_y, written["test_batch"]["labels"])
    assert d.train_x.shape == (20, 32, 32, 3) and d.train_x.flags.c_contiguous

    assert d.train_y.dtype == np.int64 and d.test_x.dtype == np.uint8
    # one pixel by hand: image 0 of batch 1, row 2, column 3 = channel planes R, G, B
    raw0 = written["data_batch_1"]["data"][0]
    assert d.train_x[0, 2, 3].tolist() == [raw0[2 * 32 + 3], raw0[1024 + 2 * 32 + 3], raw0[2048 + 2 * 32 + 3]]


def test_batches_that_fail_torchvisions_checksums_are_refused_naming_the_folder(fake_batches, monkeypatch):
    root, _ = fake_batches
    monkeypatch.setenv("LTMPQ_DATA", str(root.parent))
    with pytest.raises(DataNotFoundError, match=r"cifar-10-batches-py: the CIFAR-10 batches do not match"):
        load_cifar10(find_source(allow_download=False))


def _corrupt(path: Path, how: str) -> None:
    raw = path.read_bytes()
    if how == "garbage":
        path.write_bytes(b"this is not an npz file" * 20)
    elif how == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "flip-middle":
        mid = len(raw) // 2
        path.write_bytes(raw[:mid] + bytes(b ^ 0xFF for b in raw[mid : mid + 64]) + raw[mid + 64 :])
    elif how == "empty":
        path.write_bytes(b"")
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("how", ["garbage", "truncate", "flip-middle", "empty"])
def test_corrupt_data_cache_is_rebuilt(fake_imagefolder, monkeypatch, isolated_dirs, how):
    monkeypatch.setenv("LTMPQ_DATA", str(fake_imagefolder.parent))
    src = find_source(allow_download=False)
    first = load_cifar10(src)
    (npz,) = (isolated_dirs["cache"] / "data").glob("*.npz")
    _corrupt(npz, how)

    calls = []
    real = data_mod._read_imagefolder

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(data_mod, "_read_imagefolder", counting)
    second = load_cifar10(src)
    assert len(calls) == 1, "the corrupt cache entry was not rebuilt"
    for name in ("train_x", "train_y", "test_x", "test_y"):
        np.testing.assert_array_equal(getattr(second, name), getattr(first, name))
    assert second.source == first.source
    # the rebuilt entry is valid again: a third load decodes nothing
    third = load_cifar10(src)
    assert len(calls) == 1
    np.testing.assert_array_equal(third.train_x, first.train_x)


def test_data_cache_with_bad_checksum_or_meta_is_rebuilt(fake_imagefolder, monkeypatch, isolated_dirs):
    monkeypatch.setenv("LTMPQ_DATA", str(fake_imagefolder.parent))
    src = find_source(allow_download=False)
    first = load_cifar10(src)
    (npz,) = (isolated_dirs["cache"] / "data").glob("*.npz")
    meta = npz.with_suffix(".json")
    calls = []
    real = data_mod._read_imagefolder
    monkeypatch.setattr(data_mod, "_read_imagefolder", lambda p: (calls.append(p), real(p))[1])

    # a well-formed npz whose arrays do not match the recorded checksum
    np.savez(npz, train_x=np.zeros_like(first.train_x), train_y=first.train_y,
             test_x=first.test_x, test_y=first.test_y)  # fmt: skip
    second = load_cifar10(src)
    assert len(calls) == 1
    np.testing.assert_array_equal(second.train_x, first.train_x)

    meta.write_text("{not json")
    third = load_cifar10(src)
    assert len(calls) == 2
    np.testing.assert_array_equal(third.test_x, first.test_x)

    meta.unlink()
    load_cifar10(src)
    assert len(calls) == 3


def test_data_cache_is_keyed_by_source(make_imagefolder, tmp_path, monkeypatch):
    a = make_imagefolder(tmp_path / "a" / "cifar10-jpeg", seed=1)
    b = make_imagefolder(tmp_path / "b" / "cifar10-jpeg", seed=2)
    monkeypatch.setenv("LTMPQ_DATA", str(a.parent))
    da = load_cifar10(find_source(allow_download=False))
    monkeypatch.setenv("LTMPQ_DATA", str(b.parent))
    db = load_cifar10(find_source(allow_download=False))
    assert not np.array_equal(da.train_x, db.train_x)
    assert da.source.sha256 != db.source.sha256


# ------------------------------------------------------------------ bad input


def test_an_imbalance_factor_that_empties_a_class_names_the_smallest_usable_one():
    """Probe: --if 1e-9 gave 7 classes with no training image and a 3-output network, stored."""
    with pytest.raises(ValueError, match=r"leaves class 4 with no training image \(n_max = 4900\); the "
                       r"smallest that keeps one image per class is 1/4900, about 0.000205"):  # fmt: skip
        long_tail_counts(4900, 1e-9)
    assert long_tail_counts(4900, 0.000205)[-1] == 1  # the number said works
    with pytest.raises(ValueError, match="leaves class 5 with no training image"):
        long_tail_counts(10, 0.05, profile="step")


def test_training_labels_without_every_class_are_refused():
    """Probe: an empty class folder became a 9-class study stored under the normal name."""
    labels = np.repeat(np.arange(9), 20)  # truck absent
    with pytest.raises(DataError, match=r"hold 9 of CIFAR-10's 10 classes \(absent: \[9\]\)"):
        make_splits(labels, np.repeat(np.arange(10), 2), 0.5, val_per_class=2)
