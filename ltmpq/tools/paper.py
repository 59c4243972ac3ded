"""``python -m ltmpq.tools.paper``: the paper profile's prepared GPU run (chapters 1-3 at the blog's scale).

One command trains stage 1 (VGG16 width 1.0, the profile's epochs) for each seed, fits chapter 2's
decoupled classifiers, and quantizes them with chapter 3's default quantizer at the profile's
bit-widths: ``ltmpq.engine.run_grid(profile, [IF], seeds, stages=("stage1", "decoupled",
"quantized"), variants=["default"])``. It prints the plan and a budget estimate first; on a GPU
the estimate uses the training loop's images/s measured there (a few seconds), elsewhere a
stated planning figure (:data:`PLANNING`). On CUDA, :mod:`ltmpq.training` keeps the images on
the GPU, augments them there and reads loss and accuracy back once per epoch; this module adds
cuDNN autotuning and TF32 for the float32 operations of training (the profile's ``precision``
decides bf16 autocast; chapter 2-3's evaluations run in exact float32 on the GPU).

Device script: on a GPU machine with this repository, its venv, and a CIFAR-10 copy (the
original ``cifar-10-batches-py`` or the ``cifar10-jpeg`` ImageFolder) copied next to it, in
``../shared/data`` (``LTMPQ_DATA`` names the folder that holds the copy), from the repository root::

    LTMPQ_DATA=../shared/data .venv/bin/python -m ltmpq.tools.paper --seeds 0 1 2 --if 0.01

(``--dry-run`` prints the plan, the measured rates and the estimate, and trains nothing.) The
results land in ``results/paper/`` (``LTMPQ_RESULTS``), checkpoints in ``.cache/`` (``LTMPQ_CACHE``);
seeds run one after another, so a run cut short keeps its finished seeds, and the same command
resumes the interrupted one from its last checkpoint (written every 30 s on CUDA).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..cli import imbalance_factor_arg, seed_arg
from ..config import PROFILES, Stage1Config, get_profile, with_overrides
from ..data import long_tail_counts
from ..models import VGG16
from ..vocab import NUM_CLASSES

#: What the paper run makes (chapter 4's mixed precision is not part of it).
STAGES = ("stage1", "decoupled", "quantized")
VARIANTS = ("default",)
#: CIFAR-10's training images per class before the validation hold-out.
CIFAR10_PER_CLASS = 5000
CIFAR10_TEST = 10_000
#: The wall-clock budget the run is meant to fit (one 10-minute device job).
BUDGET_S = 600.0

#: Planning figures where no GPU is at hand to measure them. Not measurements: derivations.
PLANNING = {
    "train_img_s": 25_000.0,
    "eval_img_s": 40_000.0,
    "fixed_s": 45.0,
    "per_run_s": 15.0,
}
PLANNING_SOURCE = (
    "planning figures, NOT measured. Training: 25,000 img/s for VGG16 width 1.0 at batch 128, "
    "bf16, channels_last on an H100/H200, assuming eager PyTorch is bound by kernel launches there (a few "
    "hundred launches a step at ~15-20 us each: ~5 ms per 128 images), far below the compute bound (1.88 "
    "GFLOP per training image, from the layer shapes, at 25% of the 989 TFLOPS dense bf16 peak of "
    "NVIDIA's H100/H200 datasheets: ~130,000 img/s). Evaluation: 40,000 img/s forward-only in exact fp32 "
    "(0.63 GFLOP per image at ~40% of the 67 TFLOPS fp32 peak). Fixed: 45 s once (start, CUDA, decoding "
    "the data: 7.4 s for the JPEG copy on the 2-core development machine), 15 s a run (cuDNN autotuning, "
    "writing; stage 2 and quantizing 5 bit-widths took 2.2 s there). Run --dry-run on the GPU to measure "
    "the rates instead"
)


# --------------------------------------------------------------------------- the plan and its cost


def train_images_per_epoch(cfg: Stage1Config) -> int:
    """The long-tailed training subset's size on CIFAR-10 (:func:`ltmpq.data.make_splits`)."""
    n_max = cfg.n_max if cfg.n_max is not None else CIFAR10_PER_CLASS - cfg.val_per_class
    return sum(long_tail_counts(n_max, cfg.imbalance_factor, NUM_CLASSES, cfg.lt_profile))


def eval_images(cfg: Stage1Config, n_bits: int, stages: Sequence[str] = STAGES) -> int:
    """Forward-only images of one run: the features of its three splits, and chapter 3's
    quantized backbones on validation + test (the float one reuses the features)."""
    val = NUM_CLASSES * cfg.val_per_class
    test = CIFAR10_TEST if cfg.test_per_class is None else NUM_CLASSES * cfg.test_per_class
    quantized = n_bits * (val + test) if "quantized" in stages else 0
    return train_images_per_epoch(cfg) + val + test + quantized


@dataclass(frozen=True)
class Estimate:
    """Expected wall seconds of a plan: images / rate + fixed costs."""

    runs: int
    train_images: int  # images through a training step, all runs and epochs
    eval_images: int  # images through a forward pass only
    train_img_s: float
    eval_img_s: float
    fixed_s: float
    per_run_s: float
    source: str

    @property
    def train_s(self) -> float:
        return self.train_images / self.train_img_s

    @property
    def eval_s(self) -> float:
        return self.eval_images / self.eval_img_s

    @property
    def seconds(self) -> float:
        return self.train_s + self.eval_s + self.fixed_s + self.per_run_s * self.runs


def estimate(
    cfgs: Sequence[Stage1Config], n_bits: int, rates: dict[str, float] | None = None, source: str = ""
) -> Estimate:
    """The :class:`Estimate` of training and evaluating ``cfgs`` at ``rates`` (keys of
    :data:`PLANNING`; missing ones are the planning figures)."""
    r = {**PLANNING, **(rates or {})}
    for key in ("train_img_s", "eval_img_s"):
        if not (isinstance(r[key], int | float) and math.isfinite(r[key]) and r[key] > 0):
            raise ValueError(f"{key} must be a positive number of images per second, got {r[key]!r}")
    return Estimate(
        runs=len(cfgs),
        train_images=sum(train_images_per_epoch(c) * c.epochs for c in cfgs),
        eval_images=sum(eval_images(c, n_bits) for c in cfgs),
        train_img_s=float(r["train_img_s"]),
        eval_img_s=float(r["eval_img_s"]),
        fixed_s=float(r["fixed_s"]),
        per_run_s=float(r["per_run_s"]),
        source=source or PLANNING_SOURCE,
    )


# --------------------------------------------------------------------------- torch settings and benchmark


def configure_torch(device: torch.device) -> list[str]:
    """GPU settings for training, said in words: cuDNN autotuning (fixed shapes: it pays after a
    few steps) and TF32 for float32 matmuls and convolutions (what bf16 autocast leaves in float32;
    :func:`ltmpq.training.predict` switches it off again for the evaluations). Nothing on the CPU:
    its results stay bit for bit the published ones."""
    if device.type != "cuda":
        return ["CPU: torch defaults (bit-reproducible)"]
    torch.backends.cudnn.benchmark = True
    # torch's new precision flags only (mixing them with the legacy allow_tf32 flags raises)
    for flag in (torch.backends.cuda.matmul, torch.backends.cudnn.conv):
        flag.fp32_precision = "tf32"
    return [f"CUDA {torch.cuda.get_device_name(device)}", "cudnn.benchmark", "TF32 matmul + conv (training)"]


def benchmark(
    cfg: Stage1Config, device: torch.device | str, *, steps: int = 20, train_batches: int = 30
) -> dict[str, float]:
    """Images/s on ``device`` of (1) raw forward+backward of ``cfg``'s model at bf16 and
    channels_last, (2) :func:`ltmpq.training.train_stage1`'s loop at ``cfg``'s precision (the
    second of two epochs of ``train_batches`` random batches: the first autotunes), (3)
    :func:`ltmpq.training.predict`. Random data; the model is ``cfg``'s width and batch size."""
    from ..training import predict, resolve_device, throughput, train_stage1

    device = resolve_device(device)
    if isinstance(train_batches, bool) or not isinstance(train_batches, int) or train_batches < 1:
        raise ValueError(f"train_batches must be an int >= 1, got {train_batches!r}")
    torch.manual_seed(0)
    raw = throughput(VGG16(width=cfg.width), cfg.batch_size, steps=steps, precision="bf16",
                     device=device, warmup=3)  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    n = cfg.batch_size * train_batches
    x = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=gen)
    y = torch.arange(n) % NUM_CLASSES
    short = with_overrides(cfg, epochs=2, warmup_epochs=min(cfg.warmup_epochs, 1))
    with tempfile.TemporaryDirectory() as tmp:
        out = train_stage1(short, x, y, Path(tmp), progress=False, device=device, resident=True,
                           checkpoint_every_s=float("inf"))  # fmt: skip
    second = out.history[-1]
    model = out.model
    predict(model, x, device=device)  # warm-up: cuDNN autotunes these very shapes here
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    predict(model, x, device=device)  # returns CPU tensors: the device is done when it returns
    eval_s = time.perf_counter() - t0
    return {
        "raw_bf16_img_s": raw,
        "train_img_s": second["images"] / second["seconds"],
        "eval_img_s": n / eval_s,
    }


# --------------------------------------------------------------------------- command line


def _seconds(text: str) -> float:
    try:
        s = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a budget is a number of seconds > 0, got {text!r}") from None
    if not (math.isfinite(s) and s > 0):
        raise argparse.ArgumentTypeError(f"a budget is a number of seconds > 0, got {text}")
    return s


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ltmpq.tools.paper", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--profile", default="paper", choices=sorted(PROFILES))
    p.add_argument("--seeds", type=seed_arg, nargs="+", default=[0, 1, 2], help="seeds (default: 0 1 2)")
    p.add_argument("--if", dest="imbalance_factors", type=imbalance_factor_arg, nargs="+", default=[0.01],
                   metavar="IF", help="imbalance factors (default: 0.01)")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="print the plan and the estimate; train nothing")
    p.add_argument("--budget-s", type=_seconds, default=BUDGET_S, help="the wall-clock budget to check")
    p.add_argument("--no-bench", action="store_true", help="on a GPU too: the planning figures, no measuring")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return p


def _print_plan(profile: str, cfgs: list[Stage1Config], est: Estimate, n_bits: int, budget_s: float) -> None:
    prof = get_profile(profile)
    c = cfgs[0]
    model = f"VGG16 width {c.width:g}, {c.epochs} epochs, batch {c.batch_size}, lr {c.lr:g}"
    print(f"profile {profile}: {model}, warm-up {c.warmup_epochs} epochs, precision {c.precision}")
    sweep = f"chapter 3's {', '.join(VARIANTS)} quantizer at bits {list(prof.quant_bits)}"
    flop = f"{train_gflop_per_image(c.width):.2f} GFLOP per training image"
    print(f"stages {', '.join(STAGES)}; {sweep}; {flop}")
    for cfg in cfgs:
        per_epoch = train_images_per_epoch(cfg)
        trained = f"{per_epoch:,} images/epoch x {cfg.epochs} epochs = {per_epoch * cfg.epochs:,} trained"
        print(f"  {cfg.tag:>16}: {trained}; {eval_images(cfg, n_bits):,} evaluated")
    parts = [
        f"{est.train_images:,} training images / {est.train_img_s:,.0f} img/s = {est.train_s:.0f} s",
        f"{est.eval_images:,} evaluated / {est.eval_img_s:,.0f} img/s = {est.eval_s:.0f} s",
        f"{est.fixed_s:.0f} s",
        f"{est.runs} runs x {est.per_run_s:.0f} s",
    ]
    print(f"estimate: {' + '.join(parts)} = {est.seconds:.0f} s (budget {budget_s:.0f} s)")
    print(f"  rates: {est.source}")
    if est.seconds > budget_s:
        per_run = (est.seconds - est.fixed_s) / est.runs
        fit = max(0, int((budget_s - est.fixed_s) // per_run))
        over = f"the estimate exceeds the budget by {est.seconds - budget_s:.0f} s"
        print(f"WARNING: {over}: about {fit} of {est.runs} runs fit; finished runs are kept and the same "
              "command resumes the rest")  # fmt: skip


def train_gflop_per_image(width: float) -> float:
    """GFLOP of one training step per image: forward + backward = 3 x the forward's 2 x MACs."""
    return 3 * 2 * VGG16(width=width).macs_per_image() / 1e9


def main(argv: list[str] | None = None) -> int:
    """Plan, estimate and (without ``--dry-run``) run; 0 when every planned result is stored."""
    parser = _parser()
    args = parser.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds must be distinct, got {args.seeds}")
    if len(set(args.imbalance_factors)) != len(args.imbalance_factors):
        parser.error(f"--if must be distinct, got {args.imbalance_factors}")
    debug = args.debug or bool(os.environ.get("LTMPQ_DEBUG"))
    from .. import plan, results
    from ..data import DataError, DataNotFoundError
    from ..engine import run_grid
    from ..results import MissingResultError
    from ..training import default_device

    try:
        prof = get_profile(args.profile)
        todo = plan.grid(args.profile, args.imbalance_factors, args.seeds, STAGES, VARIANTS)
        cfgs = list(dict.fromkeys(r.stage1 for r in todo))
        device = default_device()
        settings = configure_torch(device)
        print(f"device: {'; '.join(settings)}")
        rates, source = None, ""
        if device.type == "cuda" and not args.no_bench:
            rates = benchmark(cfgs[0], device)
            source = (f"measured here ({torch.cuda.get_device_name(device)}): training loop "
                      f"{rates['train_img_s']:,.0f} img/s at {cfgs[0].precision}, raw forward+backward "
                      f"{rates['raw_bf16_img_s']:,.0f} img/s at bf16, evaluation {rates['eval_img_s']:,.0f} "
                      f"img/s; fixed costs are the planning figures")  # fmt: skip
        if device.type == "cuda" and cfgs[0].precision != "bf16":
            print(f"note: profile {args.profile!r} trains at precision {cfgs[0].precision!r}; bf16 autocast "
                  "needs precision='bf16' in its stage-1 settings (ltmpq/config.py)")  # fmt: skip
        est = estimate(cfgs, len(prof.quant_bits), rates, source)
        _print_plan(args.profile, cfgs, est, len(prof.quant_bits), args.budget_s)
        if args.dry_run:
            print("dry run: nothing trained")
            return 0
        t0 = time.perf_counter()
        run_grid(args.profile, args.imbalance_factors, args.seeds, stages=STAGES, variants=list(VARIANTS),
                 progress=not args.quiet, stop_on_error=True)  # fmt: skip
        wall = time.perf_counter() - t0
    except KeyboardInterrupt:
        if debug:
            raise
        print("\ninterrupted: finished runs and epochs are kept; the same command resumes", file=sys.stderr)
        return 130
    except (ValueError, DataNotFoundError, DataError, MissingResultError) as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    missing = 0
    for cfg in cfgs:
        here = {r.kind: results.run_state(r, args.profile) == "ok" for r in todo if r.stage1 == cfg}
        missing += not all(here.values())
        s1 = results.load(plan.result_path(args.profile, "stage1", cfg), cfg) or {}
        speed = s1.get("train_images_per_second")
        print(f"  {cfg.tag:>16}: " + ", ".join(f"{k} {'stored' if v else 'MISSING'}" for k, v in here.items())
              + (f"; stage 1 trained at {speed:,.0f} img/s" if speed else ""))  # fmt: skip
    where = plan.result_path(args.profile, "stage1", cfgs[0]).parent.parent
    print(f"done in {wall:.0f} s (estimate {est.seconds:.0f} s); results in {where}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
