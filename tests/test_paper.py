"""The paper profile's GPU path, on the CPU: the CPU loop is bit for bit the one the published
weights came from, the device-resident loop (what CUDA runs) computes the same and reads back once
per epoch, and ``python -m ltmpq.tools.paper`` plans, estimates and runs a profile end to end."""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import ltmpq.training as training
from ltmpq import plan, provenance, results
from ltmpq.config import PROFILES, DecoupledRun, QuantizedRun, Stage1Config, get_profile
from ltmpq.data import long_tail_counts
from ltmpq.models import VGG16, VGG16_CFG
from ltmpq.tools import paper
from ltmpq.training import fp32_precision, predict, resolve_device, throughput, train_stage1

# ------------------------------------------------------------------ the CPU path, bit for bit

#: sha256 of the final state_dict and of the history (without seconds) of :func:`_golden_run`, per
#: machine kind (:func:`ltmpq.provenance.machine_kind`: CPU model, torch's CPU capability, torch),
#: 1 thread. The Xeon's were computed with ltmpq/training.py as it was before the device path was
#: added (its sha256 6c1e9a1e...). Float rounding differs between kinds (an AMD EPYC with AVX-512
#: rounds otherwise than a Xeon with the same capability), so each kind needs its own digests; an
#: unrecorded kind skips and prints them.
GOLDEN = {
    "Intel(R) Xeon(R) Processor | AVX512 | torch 2.14.1": {
        "fp32": (
            "e65ee00cd13f34e4b9617ef1de0faf61342b41eea0d329b436ddeb6165ade5bc",
            "5939490b62d08471ff526e9ba6ed587b96485dbc6cd1da55e8334870f805c5cb",
        ),
        "bf16": (
            "54db2cc56307e08a0164ada7ef337fe4f384d08088202d4d4aa3f4b9030a0b84",
            "d52ed81638bb161b3b6ed1034603c35e72ac2f6daff77176769cd5368280bc33",
        ),
    },
    "AMD EPYC | AVX2 | torch 2.14.1": {
        "fp32": (
            "e3444b51703a9986b421bd2be86a2062ce7281bcd38857bd9f81a1472714e99a",
            "da8eb4c1a4488d4393c911097c39cba90ce2f12a39a5cb090387f72a172f9f3e",
        ),
        "bf16": (
            "25207238757756095a84bffb93e1ef069358541fa89f739aed47ca42a92d9945",
            "c2e57dbe31d380bd706783ce899b72306d7dee2a3c9ed4df3861df7b18204872",
        ),
    },
}


def _state_digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k, v in state.items():
        h.update(k.encode())
        h.update(str(v.dtype).encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _history_digest(history: list[dict]) -> str:
    keep = [{k: v for k, v in e.items() if k != "seconds"} for e in history]
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()


def _golden_data() -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, (80, 32, 32, 3), dtype=np.uint8))
    return x, torch.from_numpy(np.arange(80) % 10)


def _golden_cfg(precision: str = "fp32") -> Stage1Config:
    return Stage1Config(imbalance_factor=0.5, seed=0, val_per_class=5, n_max=15, width=1 / 16, epochs=2,
                        batch_size=32, lr=0.05, warmup_epochs=1, precision=precision)  # fmt: skip


def _one_thread(fn):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cpu_path_is_bitwise_the_published_loop(precision, tmp_path):
    x, y = _golden_data()
    out = _one_thread(lambda: train_stage1(_golden_cfg(precision), x, y, tmp_path, progress=False))
    got = (_state_digest(out.model.state_dict()), _history_digest(out.history))
    kind = provenance.machine_key()
    if precision not in GOLDEN.get(kind, {}):
        pytest.skip(
            f"no golden digests for machine kind {kind!r}; record them in tests/test_paper.py: "
            f"{precision!r}: {got}"
        )
    assert got == GOLDEN[kind][precision]


def test_resident_loop_on_cpu_is_bitwise_the_host_loop(tmp_path):
    """The device path's loop (resident data, augmentation with a generator on the device, sums
    kept on the device) draws and computes exactly what the host loop does, on any CPU."""
    x, y = _golden_data()
    cfg = _golden_cfg()
    host = _one_thread(lambda: train_stage1(cfg, x, y, tmp_path / "host", progress=False))
    res = _one_thread(lambda: train_stage1(cfg, x, y, tmp_path / "res", progress=False, device="cpu",
                                           resident=True))  # fmt: skip
    assert _state_digest(res.model.state_dict()) == _state_digest(host.model.state_dict())
    assert _history_digest(res.history) == _history_digest(host.history)
    assert [h["images"] for h in res.history] == [80, 80]
    assert not res.model.training and next(res.model.parameters()).device.type == "cpu"


def _colour_task(n_per_class: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A learnable task: each class is a flat colour of its own, plus pixel noise."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(30, 226, (10, 3))
    y = np.repeat(np.arange(10), n_per_class)
    x = colours[y][:, None, None, :] + rng.integers(-25, 26, (len(y), 32, 32, 3))
    return torch.from_numpy(np.clip(x, 0, 255).astype(np.uint8)), torch.from_numpy(y)


def test_resident_loop_learns_a_learnable_task(tmp_path):
    x, y = _colour_task()
    cfg = Stage1Config(imbalance_factor=0.5, width=1 / 8, epochs=6, batch_size=16, lr=0.02, warmup_epochs=1)
    out = train_stage1(cfg, x, y, tmp_path, progress=False, device="cpu", resident=True)
    losses = [h["loss"] for h in out.history]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0], losses
    assert out.history[-1]["train_acc"] > 0.6, out.history
    _, logits = predict(out.model, x, device="cpu")
    assert (logits.argmax(1) == y).float().mean() > 0.6


_SYNCS = ("item", "tolist", "__float__", "__int__", "__bool__", "__index__", "numpy", "cpu")


def _count_syncs(fn) -> tuple[int, int]:
    """How often ``fn`` reads a tensor back to the host (each a wait for a GPU): in all, and from
    ltmpq.training itself."""
    calls = []
    with pytest.MonkeyPatch.context() as mp:  # its own: the test's isolation patches stay in place
        for name in _SYNCS:
            orig = getattr(torch.Tensor, name)

            def wrapped(self, *args, _orig=orig, **kwargs):
                calls.append(sys._getframe(1).f_globals.get("__name__"))
                return _orig(self, *args, **kwargs)

            mp.setattr(torch.Tensor, name, wrapped)
        fn()
    return len(calls), calls.count("ltmpq.training")


def test_resident_loop_reads_back_once_per_epoch(tmp_path):
    cfg = replace(_golden_cfg(), epochs=3, batch_size=8)
    x, y = _golden_data()

    def syncs(n: int, resident: bool) -> tuple[int, int]:
        def train():
            train_stage1(cfg, x[:n], y[:n], tmp_path / f"{n}-{resident}", progress=False, device="cpu",
                         resident=resident, checkpoint_every_s=float("inf"))  # fmt: skip

        return _count_syncs(train)

    (few, _), (many, ours) = syncs(16, True), syncs(80, True)  # 2 and 10 steps per epoch
    assert few == many  # none per step, in ltmpq or in torch (the rest: model.cpu() at the end)
    assert ours == cfg.epochs + 1  # one per epoch, and the class count before training
    (host_few, _), (host_many, _) = syncs(16, False), syncs(80, False)
    assert host_many - host_few == 2 * cfg.epochs * (10 - 2)  # the host loop: float() and int() a step


def test_resident_checkpoints_by_interval_and_resumes(monkeypatch, tmp_path):
    cfg = replace(_golden_cfg(), epochs=3)
    x, y = _golden_data()
    writes = []
    real = training.atomic_write
    monkeypatch.setattr(training, "atomic_write", lambda path, fn: (writes.append(path), real(path, fn)))
    kw = {"progress": False, "device": "cpu", "resident": True}
    full = train_stage1(cfg, x, y, tmp_path / "full", checkpoint_every_s=float("inf"), **kw)
    assert len(writes) == 1  # only after the last epoch
    writes.clear()
    train_stage1(cfg, x, y, tmp_path / "every", checkpoint_every_s=0, **kw)
    assert len(writes) == 3
    with pytest.raises(KeyboardInterrupt):
        train_stage1(cfg, x, y, tmp_path / "cut", checkpoint_every_s=float("inf"), stop_after_epoch=2, **kw)
    cut = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert cut["epoch"] == 2  # written at the stop, whatever the interval
    resumed = train_stage1(cfg, x, y, tmp_path / "cut", **kw)
    assert _state_digest(resumed.model.state_dict()) == _state_digest(full.model.state_dict())
    assert _history_digest(resumed.history) == _history_digest(full.history)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"device": "gpu"}, "got 'gpu'"),
        ({"device": "meta"}, "CPU or CUDA device, got 'meta'"),
        ({"resident": "yes"}, "resident must be True, False or None, got 'yes'"),
        ({"checkpoint_every_s": -1}, "checkpoint_every_s must be .* got -1"),
        ({"checkpoint_every_s": True}, "checkpoint_every_s must be .* got True"),
    ],
)
def test_bad_training_arguments_are_named(kwargs, message, tmp_path):
    x, y = _golden_data()
    with pytest.raises(ValueError, match=message):
        train_stage1(_golden_cfg(), x, y, tmp_path, progress=False, **kwargs)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_cuda_asked_for_without_one_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="'cuda' asked for, but torch sees no CUDA device"):
        resolve_device("cuda")
    assert resolve_device(None) == torch.device("cpu")


def test_predict_checks_its_batch_size_and_keeps_the_callers_model():
    model = training.build_model(_golden_cfg())
    x, _ = _golden_data()
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        predict(model, x, batch_size=0)
    feats, logits = predict(model, x, device="cpu")
    f7, l7 = predict(model, x, batch_size=7)
    torch.testing.assert_close(f7, feats)
    torch.testing.assert_close(l7, logits)
    assert feats.device.type == logits.device.type == "cpu"


def test_fp32_precision_is_restored_and_checked():
    before = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    with fp32_precision("ieee"):
        assert torch.backends.cuda.matmul.fp32_precision == torch.backends.cudnn.conv.fp32_precision == "ieee"
        assert torch.backends.cuda.matmul.allow_tf32 is False  # what the legacy matmul flag reads
    assert (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision) == before
    with pytest.raises(ValueError, match="got 'fp16'"):
        with fp32_precision("fp16"):
            pass


def test_throughput_on_the_cpu():
    from ltmpq.models import VGG16

    assert throughput(VGG16(width=1 / 16), batch_size=4, steps=2, precision="bf16", device="cpu") > 0
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        throughput(VGG16(width=1 / 16), steps=0)


# ------------------------------------------------------------------ the plan and its budget


def test_forward_macs_by_hand():
    """313.7 M multiply-accumulates at width 1.0: each 3x3 conv at its resolution, the 3 linear."""
    side, cin, macs = 32, 3, 0
    for v in VGG16_CFG:
        if v == "M":
            side //= 2
            continue
        macs += side * side * cin * int(v) * 9
        cin = int(v)
    macs += 512 * 512 + 512 * 512 + 512 * 10
    assert VGG16(width=1.0).macs_per_image() == macs == 313_725_952
    assert paper.train_gflop_per_image(1.0) == pytest.approx(1.882, abs=1e-3)
    assert VGG16(width=0.25).macs_per_image() < macs / 10  # ~width**2


def test_the_paper_run_fits_ten_minutes_at_the_planning_rates():
    prof = get_profile("paper")
    cfgs = prof.stage1_configs([0.01], [0, 1, 2])
    per_epoch = sum(long_tail_counts(4900, 0.01))
    assert [paper.train_images_per_epoch(c) for c in cfgs] == [per_epoch] * 3 == [12_156] * 3
    est = paper.estimate(cfgs, len(prof.quant_bits))
    assert est.train_images == 3 * per_epoch * prof.stage1_config(0.01, 0).epochs == 7_293_600
    # features of train + val + test, then 5 quantized backbones on val + test
    assert est.eval_images == 3 * (per_epoch + 1000 + 10_000 + 5 * 11_000)
    expected = est.train_images / 25_000 + est.eval_images / 40_000 + 45 + 3 * 15
    assert est.seconds == pytest.approx(expected)
    assert est.seconds < paper.BUDGET_S
    assert est.seconds > paper.BUDGET_S / 2  # not an estimate that could not be wrong
    faster = paper.estimate(cfgs, len(prof.quant_bits), {"train_img_s": 50_000})
    assert faster.train_s == pytest.approx(est.train_s / 2) and faster.source == paper.PLANNING_SOURCE
    with pytest.raises(ValueError, match="train_img_s must be a positive number .* got 0"):
        paper.estimate(cfgs, 5, {"train_img_s": 0})


def test_dry_run_prints_the_plan_and_stores_nothing(capsys, patched_data, isolated_dirs):
    assert paper.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "profile paper: VGG16 width 1, 200 epochs" in out
    assert out.count("12,156 images/epoch x 200 epochs") == 3
    assert "7,293,600 training images / 25,000 img/s = 292 s" in out
    assert "NOT measured" in out and "dry run: nothing trained" in out and "WARNING" not in out
    assert not patched_data  # no data read
    assert not isolated_dirs["results"].exists() and not isolated_dirs["cache"].exists()
    assert paper.main(["--dry-run", "--budget-s", "100", "--seeds", "0", "1"]) == 0
    assert "WARNING: the estimate exceeds the budget" in capsys.readouterr().out


@pytest.fixture
def tiny_smoke(monkeypatch):
    """The smoke profile on what ``tiny_cifar`` holds (20 training images a class)."""
    tiny = {**PROFILES["smoke"].stage1, "val_per_class": 5, "n_max": 15}
    monkeypatch.setitem(PROFILES, "smoke", replace(PROFILES["smoke"], stage1=tiny))
    return PROFILES["smoke"]


def test_smoke_run_end_to_end(tiny_smoke, patched_data, isolated_dirs, capsys):
    argv = ["--profile", "smoke", "--seeds", "0", "--if", "0.1", "--quiet"]
    assert paper.main(argv) == 0
    out = capsys.readouterr().out
    assert "stage1 stored, decoupled stored, quantized stored" in out
    prof = tiny_smoke
    cfg = prof.stage1_config(0.1, 0)
    s1 = results.load(plan.result_path("smoke", "stage1", cfg), cfg)
    assert s1 is not None and len(s1["history"]) == cfg.epochs == 2
    run = DecoupledRun(cfg, prof.decouple)
    dec = results.load(plan.result_path("smoke", "decoupled", run), run)
    assert set(dec["methods"]) >= {"crt", "lws", "tau_norm", "ncm"}
    qrun = QuantizedRun(cfg, prof.decouple, prof.quant, prof.quant_bits, True)
    q = results.load(plan.result_path("smoke", "quantized", qrun), qrun)
    assert set(q["entries"]) == {"float", *map(str, prof.quant_bits)}
    # chapter 3's default quantizer only, and no chapter 4
    root = isolated_dirs["results"] / "smoke"
    assert len(list((root / "quantized").glob("*.json"))) == 1 and not (root / "mpq").exists()
    loads = len(patched_data)
    assert paper.main(argv) == 0  # everything stored: found, nothing recomputed
    assert len(patched_data) == loads


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seeds", "-1"], r"a seed is an int in \[0, 4294967295\], got -1"),
        (["--seeds", "0", "0"], r"--seeds must be distinct, got \[0, 0\]"),
        (["--if", "0"], r"an imbalance factor is in \(0, 1\] \(n_min / n_max\), got 0"),
        (["--if", "x"], "got 'x'"),
        (["--profile", "nope"], "invalid choice: 'nope'"),
        (["--budget-s", "0"], "a budget is a number of seconds > 0, got 0"),
    ],
)
def test_bad_arguments_are_one_line_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        paper.main(["--dry-run", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    lines = err.strip().splitlines()  # argparse's usage, then one line of error
    assert [i for i, line in enumerate(lines) if "error:" in line] == [len(lines) - 1]


def test_an_impossible_plan_is_one_line(capsys, patched_data):
    assert paper.main(["--dry-run", "--if", "1e-9", "--seeds", "0"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: imbalance factor 1e-09 leaves class")


def test_benchmark_and_torch_settings_on_the_cpu():
    before = torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.fp32_precision
    assert paper.configure_torch(torch.device("cpu")) == ["CPU: torch defaults (bit-reproducible)"]
    assert (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.fp32_precision) == before
    cfg = Stage1Config(imbalance_factor=0.5, width=1 / 16, epochs=1, batch_size=8, warmup_epochs=0)
    rates = paper.benchmark(cfg, "cpu", steps=1, train_batches=2)
    assert set(rates) == {"raw_bf16_img_s", "train_img_s", "eval_img_s"}
    assert all(math.isfinite(v) and v > 0 for v in rates.values())
    with pytest.raises(ValueError, match="train_batches must be an int >= 1, got 0"):
        paper.benchmark(cfg, "cpu", train_batches=0)


def test_module_docstring_names_the_device_command():
    doc = paper.__doc__
    assert "LTMPQ_DATA=" in doc and "python -m ltmpq.tools.paper --seeds 0 1 2 --if 0.01" in doc
    assert Path(paper.__file__).name == "paper.py"
