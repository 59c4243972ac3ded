"""Stage-1 training, evaluation and feature extraction on in-memory uint8 tensors.

Used by chapters 1 and 2 (and by 3-4 through the stored checkpoints). Everything is seeded so the
same config gives the same numbers on CPU; a checkpoint is written atomically after every epoch
and an interrupted run resumes from it with the same result as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .config import Stage1Config
from .io import UNREADABLE, atomic_write
from .models import VGG16

# Per-channel statistics of the original CIFAR-10 train split (the JPEG copy is within 0.002).
MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


def to_input(x_uint8: torch.Tensor) -> torch.Tensor:
    """(N, 32, 32, 3) uint8 -> normalised float (N, 3, 32, 32)."""
    x = x_uint8.permute(0, 3, 1, 2).float().div_(255)
    # NHWC memory ("channels_last") runs this VGG ~1.3x faster on CPU than NCHW (make bench)
    return ((x - MEAN) / STD).contiguous(memory_format=torch.channels_last)


def augment(x_uint8: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Batched random crop (zero padding ``pad``) + horizontal flip, as uint8 NHWC -> float NCHW.

    One gather for the whole batch instead of a per-image Python loop.
    """
    b, h, w, _ = x_uint8.shape
    xp = F.pad(x_uint8.permute(0, 3, 1, 2), (pad, pad, pad, pad))  # zero = black, as torchvision
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    flip = torch.rand(b, generator=gen) < 0.5
    rows = oy[:, None] + torch.arange(h)
    cols = ox[:, None] + torch.arange(w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    out = xp[
        torch.arange(b)[:, None, None, None],
        torch.arange(3)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]
    return ((out.float().div_(255) - MEAN) / STD).contiguous(memory_format=torch.channels_last)


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A generator fixed by (seed, epoch): a resumed run draws exactly what it would have."""
    return torch.Generator().manual_seed(
        int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])
    )


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up for ``warmup`` steps, then cosine decay to zero."""
    # Hand-written, not torch's LinearLR + CosineAnnealingLR: those compute the same schedule with
    # other float rounding (CosineAnnealingLR recursively), so retrained models would not be
    # bitwise the published ones.
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.5 * peak * (1 + math.cos(math.pi * t))


@dataclass
class TrainOutcome:
    """A trained stage-1 model and how its training went."""

    model: VGG16
    history: list[dict[str, float]]
    train_seconds: float  # wall time of all epochs (summed from the history, so resumes count)
    images_per_second: float


def default_device() -> torch.device:
    """CUDA when present (the paper profile's GPU runs), else the CPU (bit-reproducible)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _autocast(precision: str, device: torch.device | str = "cpu"):
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def build_model(cfg: Stage1Config, num_classes: int = 10) -> VGG16:
    """The stage-1 model, initialised from ``cfg.seed``."""
    torch.manual_seed(cfg.seed)
    return VGG16(num_classes=num_classes, width=cfg.width).to(memory_format=torch.channels_last)


def _resumable(state, cfg: Stage1Config) -> bool:
    """A loaded checkpoint holds what resuming needs (a ``{}`` or a foreign dict does not)."""
    if not isinstance(state, dict) or not {"model", "optimizer", "epoch", "history"} <= set(state):
        return False
    epoch = state["epoch"]
    return isinstance(epoch, int) and 0 <= epoch <= cfg.epochs and len(state["history"]) == epoch


def train_stage1(
    cfg: Stage1Config,
    x: torch.Tensor,
    y: torch.Tensor,
    ckpt_dir: Path,
    *,
    progress: bool = True,
    stop_after_epoch: int | None = None,
    data_sha256: str | None = None,
) -> TrainOutcome:
    """Train VGG16 on (x uint8 NHWC, y) with instance-balanced sampling; resume from ``ckpt_dir``.

    ``stop_after_epoch`` ends the process early after that epoch (to test resuming).
    ``data_sha256`` names the data the run trains on; a checkpoint recorded on other data is not
    resumed from.
    """
    num_classes = int(y.max()) + 1
    device = default_device()
    model = build_model(cfg, num_classes).to(device)
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)  # no weight decay on BN and biases
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0}],
        lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
    )  # fmt: skip
    steps_per_epoch = math.ceil(len(y) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warmup = steps_per_epoch * cfg.warmup_epochs
    ckpt = ckpt_dir / "checkpoint.pt"
    start, history = 0, []
    state = None
    if ckpt.is_file():
        try:
            state = torch.load(ckpt, weights_only=True, map_location=device)
        except UNREADABLE as exc:  # truncated or corrupt: start again rather than crash
            tqdm.write(
                f"{cfg.tag}: unreadable checkpoint {ckpt} ({type(exc).__name__}); training from scratch"
            )
    if state is not None and not _resumable(state, cfg):
        tqdm.write(f"{cfg.tag}: incomplete checkpoint {ckpt}; training from scratch")
        state = None
    if state is not None and state.get("data_sha256") not in (None, data_sha256):
        tqdm.write(f"{cfg.tag}: checkpoint was trained on other data; training from scratch")
        state = None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, history = int(state["epoch"]), list(state["history"])
    for epoch in range(start, cfg.epochs):
        model.train()
        gen = epoch_generator(cfg.seed, epoch)
        order = torch.randperm(len(y), generator=gen)
        t0 = time.perf_counter()
        loss_sum, correct, n = 0.0, 0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"{cfg.tag} epoch {epoch + 1}/{cfg.epochs}",
                   disable=not progress, leave=False, mininterval=1)  # fmt: skip
        for i in bar:
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            xb, yb = augment(x[idx], gen).to(device), y[idx].to(device)
            for g in opt.param_groups:
                g["lr"] = lr_at(epoch * steps_per_epoch + i, total, warmup, cfg.lr)
            with _autocast(cfg.precision, device):
                logits = model(xb)
                loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(yb)
            correct += int((logits.argmax(1) == yb).sum())
            n += len(yb)
            bar.set_postfix(loss=f"{loss_sum / n:.3f}", acc=f"{correct / n:.3f}", refresh=False)
        dt = time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "loss": loss_sum / n, "train_acc": correct / n,
                        "seconds": dt, "images": n})  # fmt: skip
        if progress:
            tqdm.write(f"{cfg.tag} epoch {epoch + 1}/{cfg.epochs}: loss {loss_sum / n:.3f} "
                       f"acc {correct / n:.3f} ({n / dt:.0f} img/s)")  # fmt: skip
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
                 "epoch": epoch + 1, "history": history, "data_sha256": data_sha256}  # fmt: skip
        atomic_write(ckpt, lambda tmp, s=state: torch.save(s, tmp))
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < cfg.epochs:
            raise KeyboardInterrupt(f"stopped after epoch {epoch + 1} (stop_after_epoch)")
    model = model.cpu().eval()
    seconds = sum(h["seconds"] for h in history)
    images = sum(h.get("images", len(y)) for h in history)
    return TrainOutcome(model, history, seconds, images / seconds if seconds else float("nan"))


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (input of the classifier) and logits of a VGG16 on uint8 images, in float32."""
    model.eval()
    device = next(model.parameters()).device
    feats, logits = [], []
    for i in range(0, len(x), batch_size):
        f = model.features(to_input(x[i : i + batch_size]).to(device))
        feats.append(f.cpu())
        logits.append(model.classifier(f).cpu())
    return torch.cat(feats), torch.cat(logits)


def throughput(
    model: nn.Module,
    batch_size: int = 128,
    steps: int = 5,
    precision: str = "fp32",
    channels_last: bool = True,
) -> float:
    """Raw forward+backward images/s on random data (no data pipeline, no optimizer)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch_size, 3, 32, 32).contiguous(memory_format=fmt)
    model = model.to(memory_format=fmt)
    y = torch.randint(0, 10, (batch_size,))
    model.train()
    for i in range(steps + 1):
        if i == 1:
            t0 = time.perf_counter()  # first step is warm-up
        with _autocast(precision):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
    return batch_size * steps / (time.perf_counter() - t0)
