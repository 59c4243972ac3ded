"""ltmpq.training (and experiments.features): inputs, augmentation, determinism, resume, caches."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from fakes import state_snapshot

import ltmpq.artifacts as artifacts
from ltmpq.config import Stage1Config, config_hash
from ltmpq.training import (
    MEAN,
    STD,
    augment,
    build_model,
    epoch_generator,
    lr_at,
    predict,
    to_input,
    train_stage1,
)


def _uint8_batch(n: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))


def _normalise_np(img_hwc: np.ndarray) -> np.ndarray:
    """Oracle for to_input on one image: HWC uint8 -> CHW float, per-channel standardised."""
    mean, std = MEAN.view(3).numpy(), STD.view(3).numpy()
    return ((img_hwc.astype(np.float32) / 255 - mean) / std).transpose(2, 0, 1)


# ------------------------------------------------------------------ inputs and augmentation


def test_to_input_normalises_each_channel():
    x = _uint8_batch(3)
    out = to_input(x)
    assert out.shape == (3, 3, 32, 32) and out.dtype == torch.float32
    for i in range(3):
        np.testing.assert_allclose(out[i].numpy(), _normalise_np(x[i].numpy()), rtol=1e-5, atol=1e-5)


def test_augment_shape_dtype_and_determinism():
    x = _uint8_batch(16)
    a = augment(x, torch.Generator().manual_seed(5))
    b = augment(x, torch.Generator().manual_seed(5))
    c = augment(x, torch.Generator().manual_seed(6))
    assert a.shape == (16, 3, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert x.dtype == torch.uint8  # input untouched
    assert torch.isfinite(a).all()


def test_augment_without_padding_is_identity_or_flip():
    x = _uint8_batch(12, seed=1)
    out = augment(x, torch.Generator().manual_seed(0), pad=0)
    plain, flipped = to_input(x), to_input(x.flip(2))
    kinds = []
    for i in range(len(x)):
        if torch.allclose(out[i], plain[i]):
            kinds.append("plain")
        else:
            torch.testing.assert_close(out[i], flipped[i])
            kinds.append("flip")
    assert set(kinds) == {"plain", "flip"}  # both occur with 12 images (p of one kind = 2**-11)


def test_augment_is_a_padded_crop_with_optional_flip():
    """Every output image is one of the 9 x 9 x 2 crops/flips of the zero-padded input."""
    pad = 4
    x = _uint8_batch(6, seed=2)
    out = augment(x, torch.Generator().manual_seed(3), pad=pad).numpy()
    found = set()
    for i in range(len(x)):
        padded = np.pad(x[i].numpy(), ((pad, pad), (pad, pad), (0, 0)))
        match = None
        for oy in range(2 * pad + 1):
            for ox in range(2 * pad + 1):
                crop = padded[oy : oy + 32, ox : ox + 32]
                for flip in (False, True):
                    cand = _normalise_np(crop[:, ::-1] if flip else crop)
                    if np.allclose(out[i], cand, atol=1e-5):
                        match = (oy, ox, flip)
        assert match is not None, f"image {i} is not a crop/flip of its padded input"
        found.add(match)
    assert len(found) > 1  # the crops are random, not one fixed offset


def test_epoch_generator_and_lr_schedule():
    g = lambda s, e: torch.randint(0, 10**9, (4,), generator=epoch_generator(s, e))  # noqa: E731
    assert torch.equal(g(0, 3), g(0, 3))
    assert not torch.equal(g(0, 3), g(0, 4)) and not torch.equal(g(0, 3), g(1, 3))
    # warm-up: linear to the peak; then cosine decay to zero
    assert lr_at(0, 100, 10, 0.1) == pytest.approx(0.01)
    assert lr_at(9, 100, 10, 0.1) == pytest.approx(0.1)
    assert lr_at(10, 100, 10, 0.1) == pytest.approx(0.1)
    assert lr_at(55, 100, 10, 0.1) == pytest.approx(0.05)
    assert lr_at(100, 100, 10, 0.1) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(0, 100, 0, 0.2) == pytest.approx(0.2)
    lrs = [lr_at(s, 100, 10, 0.1) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


# ------------------------------------------------------------------ training: determinism and resume


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _no_time(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def test_train_stage1_is_deterministic(tiny_cfg, tiny_train, tmp_path):
    x, y = tiny_train
    a = train_stage1(tiny_cfg, x, y, tmp_path / "a", progress=False)
    b = train_stage1(tiny_cfg, x, y, tmp_path / "b", progress=False)
    _assert_same_weights(state_snapshot(a.model), state_snapshot(b.model))
    assert _no_time(a.history) == _no_time(b.history)
    assert [h["epoch"] for h in a.history] == [1, 2]
    assert all(math.isfinite(h["loss"]) for h in a.history)
    assert not a.model.training  # returned in eval mode
    assert (tmp_path / "a" / "checkpoint.pt").is_file()
    # and the seed matters: another seed gives other weights
    c = train_stage1(replace(tiny_cfg, seed=1, epochs=1), x, y, tmp_path / "c", progress=False)
    d = train_stage1(replace(tiny_cfg, epochs=1), x, y, tmp_path / "d", progress=False)
    assert not torch.equal(c.model.classifier.weight, d.model.classifier.weight)


def test_train_stage1_resume_matches_uninterrupted(tiny_cfg, tiny_train, tmp_path):
    x, y = tiny_train
    full = train_stage1(tiny_cfg, x, y, tmp_path / "full", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train_stage1(tiny_cfg, x, y, tmp_path / "cut", progress=False, stop_after_epoch=1)
    ckpt = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and len(ckpt["history"]) == 1
    resumed = train_stage1(tiny_cfg, x, y, tmp_path / "cut", progress=False)
    _assert_same_weights(state_snapshot(full.model), state_snapshot(resumed.model))
    assert _no_time(full.history) == _no_time(resumed.history)


def test_train_stage1_stop_after_last_epoch_and_finished_checkpoint(tiny_cfg, tiny_train, tmp_path):
    x, y = tiny_train
    cfg = replace(tiny_cfg, epochs=1)
    done = train_stage1(cfg, x, y, tmp_path / "r", progress=False, stop_after_epoch=1)  # no interrupt
    again = train_stage1(cfg, x, y, tmp_path / "r", progress=False)  # finished: nothing to train
    _assert_same_weights(state_snapshot(done.model), state_snapshot(again.model))
    assert again.history == done.history  # including the recorded seconds
    # timing comes from the history, so a reloaded run reports the time it took to train
    assert again.train_seconds == pytest.approx(sum(h["seconds"] for h in done.history))
    assert again.images_per_second == pytest.approx(len(y) / again.train_seconds)


def test_predict_features_and_logits(tiny_cfg, tiny_train, tmp_path):
    x, y = tiny_train
    model = train_stage1(replace(tiny_cfg, epochs=1), x, y, tmp_path / "p", progress=False).model
    feats, logits = predict(model, x, batch_size=1000)
    feats7, logits7 = predict(model, x, batch_size=7)
    assert feats.shape == (len(x), model.feature_dim) and logits.shape == (len(x), 10)
    assert (feats >= 0).all()  # after L15's ReLU
    torch.testing.assert_close(feats7, feats)
    torch.testing.assert_close(logits7, logits)
    with torch.no_grad():
        torch.testing.assert_close(logits, model.classifier(feats))
        torch.testing.assert_close(logits, model(to_input(x)))


# ------------------------------------------------------------------ experiments.features cache


def _assert_same_features(a: dict, b: dict) -> None:
    for split in ("train", "val", "test"):
        for part in ("features", "logits", "labels"):
            assert torch.equal(a[f"{split}_{part}"], b[f"{split}_{part}"]), f"{split}_{part}"
    assert torch.equal(a["classifier_weight"], b["classifier_weight"])


def test_features_cached_and_consistent(tiny_cfg, patched_data, tiny_cifar):
    out = artifacts.features(tiny_cfg, progress=False)
    path = artifacts.run_dir(tiny_cfg) / "features.pt"
    assert path.is_file() and (artifacts.run_dir(tiny_cfg) / "checkpoint.pt").is_file()
    assert out["config_hash"] == config_hash(tiny_cfg)
    splits = artifacts.splits_for(tiny_cfg, tiny_cifar)
    assert out["train_labels"].tolist() == tiny_cifar.train_y[splits.train].tolist()
    assert out["val_labels"].tolist() == tiny_cifar.train_y[splits.val].tolist()
    assert out["test_labels"].tolist() == tiny_cifar.test_y[splits.test].tolist()
    assert len(out["train_features"]) == sum(splits.train_counts) == len(splits.train)
    torch.testing.assert_close(out["test_logits"], out["test_features"] @ out["classifier_weight"].T
                               + out["classifier_bias"])  # fmt: skip
    assert out["data_sha256"] == patched_data_source_sha(tiny_cifar)
    ckpt_mtime = (artifacts.run_dir(tiny_cfg) / "checkpoint.pt").stat().st_mtime_ns
    again = artifacts.features(tiny_cfg, progress=False)  # from the cache: nothing retrained
    assert (artifacts.run_dir(tiny_cfg) / "checkpoint.pt").stat().st_mtime_ns == ckpt_mtime
    _assert_same_features(out, again)


def patched_data_source_sha(data) -> str | None:
    return data.source.sha256


def test_features_of_other_data_are_recomputed(tiny_cfg, patched_data, tiny_cifar, monkeypatch):
    """Features (and the checkpoint) recorded on another copy of the data are not reused."""
    from dataclasses import replace as dc_replace

    one = dc_replace(tiny_cifar, source=dc_replace(tiny_cifar.source, sha256="a" * 64))
    monkeypatch.setattr(artifacts, "dataset", lambda: one)
    first = artifacts.features(tiny_cfg, progress=False)
    assert artifacts.features(tiny_cfg, progress=False)["data_sha256"] == "a" * 64  # same data: reused
    other = dc_replace(tiny_cifar, source=dc_replace(tiny_cifar.source, sha256="f" * 64))
    monkeypatch.setattr(artifacts, "dataset", lambda: other)
    again = artifacts.features(tiny_cfg, progress=False)
    assert first["data_sha256"] != again["data_sha256"] == "f" * 64


@pytest.mark.parametrize("how", ["garbage", "truncate", "foreign-hash"])
def test_corrupt_features_are_recomputed(tiny_cfg, patched_data, how, caplog):
    first = artifacts.features(tiny_cfg, progress=False)
    path = artifacts.run_dir(tiny_cfg) / "features.pt"
    if how == "garbage":
        path.write_bytes(b"\x00garbage" * 100)
    elif how == "truncate":
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 3])
    else:
        torch.save({**first, "config_hash": "0" * 12}, path)
    loads = len(patched_data)
    with caplog.at_level("WARNING", logger="ltmpq"):
        second = artifacts.features(tiny_cfg, progress=False)
    assert len(patched_data) == loads + 1  # recomputed (from the finished checkpoint)
    _assert_same_features(first, second)
    # an unreadable entry is said, not silently replaced (a foreign one is just stale)
    assert ("unreadable cache entry" in caplog.text and "features.pt" in caplog.text) is (
        how != "foreign-hash"
    )
    assert torch.load(path, weights_only=True)["config_hash"] == config_hash(tiny_cfg)


def test_features_rebuilt_when_checkpoint_missing(tiny_cfg, patched_data):
    first = artifacts.features(tiny_cfg, progress=False)
    run = artifacts.run_dir(tiny_cfg)
    (run / "features.pt").unlink()
    (run / "checkpoint.pt").unlink()
    second = artifacts.features(tiny_cfg, progress=False)  # retrains: same numbers (deterministic)
    _assert_same_features(first, second)


def test_features_rebuilt_when_checkpoint_corrupt(tiny_cfg, patched_data):
    # artifacts' docstring: checkpoints are "rebuilt from the config when missing or corrupt"
    first = artifacts.features(tiny_cfg, progress=False)
    run = artifacts.run_dir(tiny_cfg)
    (run / "features.pt").unlink()
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    second = artifacts.features(tiny_cfg, progress=False)
    _assert_same_features(first, second)


@pytest.mark.slow  # a full-width bf16 step: a minute where bf16 is emulated (CPUs without AVX-512 BF16)
def test_paper_profile_config_trains_one_step_at_full_width(tmp_path):
    """The blog-scale profile is a GPU job; here it is only checked for construction: its own
    config (width 1.0, its learning rate and warm-up) builds and takes a training step."""
    from ltmpq.config import get_profile, with_overrides

    cfg = get_profile("paper").stage1_config(0.01, 0)
    one_step = with_overrides(cfg, epochs=1, warmup_epochs=1)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (cfg.batch_size, 32, 32, 3), dtype=torch.uint8, generator=gen)
    y = torch.arange(cfg.batch_size) % 10
    out = train_stage1(one_step, x, y, tmp_path / "paper", progress=False)
    assert len(out.history) == 1 and math.isfinite(out.history[0]["loss"])
    assert sum(p.numel() for p in out.model.parameters()) == 15_249_354


_CHILD = """
import sys, torch
from ltmpq.config import Stage1Config
from ltmpq.training import train_stage1
torch.set_num_threads(1)
cfg = Stage1Config(imbalance_factor=0.5, seed=3, width=1 / 16, epochs=6, batch_size=32)
g = torch.Generator().manual_seed(0)
x = torch.randint(0, 256, (1500, 32, 32, 3), dtype=torch.uint8, generator=g)
y = torch.arange(1500) % 10
train_stage1(cfg, x, y, __import__("pathlib").Path(sys.argv[1]), progress=False)
"""


def test_killed_process_resumes_to_the_same_result(tmp_path):
    """SIGKILL a training process after its first checkpoint; resuming gives the same weights."""
    import signal
    import subprocess
    import sys
    import time

    from ltmpq.config import Stage1Config

    cfg = Stage1Config(imbalance_factor=0.5, seed=3, width=1 / 16, epochs=6, batch_size=32)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (1500, 32, 32, 3), dtype=torch.uint8, generator=gen)
    y = torch.arange(1500) % 10
    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(killed_dir)])
    ckpt = killed_dir / "checkpoint.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the child finished before it could be killed"
    saved = torch.load(ckpt, weights_only=True)
    done_epochs = saved["epoch"]
    assert 1 <= done_epochs < cfg.epochs  # really interrupted mid-run
    torch.set_num_threads(1)
    resumed = train_stage1(cfg, x, y, killed_dir, progress=False)
    straight = train_stage1(cfg, x, y, tmp_path / "straight", progress=False)
    _assert_same_weights(state_snapshot(straight.model), state_snapshot(resumed.model))
    # it resumed (kept the killed process's epochs, timings included) rather than starting over
    assert resumed.history[:done_epochs] == saved["history"]


def test_a_cache_entry_that_fails_for_another_reason_is_not_swallowed(tiny_cfg, patched_data, monkeypatch):
    """Only unreadable files are rebuilt: a bug raised while loading propagates."""
    artifacts.features(tiny_cfg, progress=False)

    def broken(*args, **kwargs):
        raise KeyError("a bug, not a damaged file")

    monkeypatch.setattr(torch, "load", broken)
    with pytest.raises(KeyError, match="a bug"):
        artifacts.features(tiny_cfg, progress=False)


@pytest.mark.parametrize(
    ("flags", "warns"), [([], True), (["avx2", "amx_bf16"], False), (["avx512_bf16"], False)]
)
def test_bf16_on_a_cpu_without_bf16_arithmetic_warns(
    flags, warns, tiny_cfg, tiny_train, tmp_path, monkeypatch
):
    import warnings

    from ltmpq import provenance

    monkeypatch.setattr(provenance, "cpu_flags", lambda: flags)
    x, y = tiny_train
    cfg = replace(tiny_cfg, epochs=1, precision="bf16")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_stage1(cfg, x, y, tmp_path, progress=False)
    slow = [w for w in caught if "bf16 autocast on a CPU without AVX-512 BF16 or AMX" in str(w.message)]
    assert len(slow) == warns
    # fp32 never warns
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_stage1(replace(cfg, precision="fp32"), x, y, tmp_path / "fp32", progress=False)
    assert not [w for w in caught if "bf16 autocast" in str(w.message)]


# ------------------------------------------------------------------ building the model


def test_build_model_is_seeded():
    cfg = Stage1Config(0.1, width=1 / 16)
    a, b = build_model(cfg), build_model(cfg)
    c = build_model(replace(cfg, seed=1))
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    assert not torch.equal(a.layers["L1"][0].weight, c.layers["L1"][0].weight)


def test_build_model_follows_the_config_classifier():
    m = build_model(Stage1Config(0.01, width=1 / 16, hidden=96, dropout=0.25))
    assert m.feature_dim == 96 and m.drop.p == 0.25


def test_logit_adjusted_loss_follows_its_formula():
    """Menon et al.'s logit-adjusted loss (eq. 10, tau = 1): -log softmax(f(x) + log pi)_y, the
    prior pi from the training labels; cross-entropy has no offset; the logits returned (and
    evaluated) are the plain ones."""
    from ltmpq.training import _step, logit_offset

    y = torch.tensor([0, 0, 0, 1, 2, 2])
    la = Stage1Config(imbalance_factor=0.01, loss="logit_adjusted")
    assert logit_offset(Stage1Config(imbalance_factor=0.01), y, 3) is None
    offset = logit_offset(la, y, 3)
    assert offset.tolist() == pytest.approx(np.log([3 / 6, 1 / 6, 2 / 6]).tolist())
    with pytest.raises(ValueError, match="every class"):
        logit_offset(la, y, 4)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x = torch.randn(6, 4)
    with torch.no_grad():
        f = model(x)
    by_hand = -torch.log_softmax(f + offset, 1)[torch.arange(6), y].mean()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    loss, logits = _step(model, opt, x, y, "fp32", "cpu", offset)
    assert float(loss) == pytest.approx(float(by_hand), rel=1e-6)
    assert torch.allclose(logits, f)
    plain, _ = _step(model, opt, x, y, "fp32", "cpu")
    assert float(plain) == pytest.approx(float(torch.nn.functional.cross_entropy(f, y)), rel=1e-6)
    assert float(plain) != pytest.approx(float(loss))
