"""Stage-1 training, evaluation and feature extraction on in-memory uint8 tensors.

Used by chapters 1 and 2 (and by 3-4 through the stored checkpoints). Everything is seeded so the
same config gives the same numbers on CPU; a checkpoint is written atomically after every epoch
and an interrupted run resumes from it with the same result as an uninterrupted one.

Two epoch loops train the same model with the same per-epoch random streams. On the CPU (the
published runs) the original host loop runs, bit for bit as the stored weights were made. On a
GPU the *resident* loop runs: the uint8 images are copied to the device once, the crop + flip
augmentation runs there with a generator on that device, and loss and accuracy are summed on the
device and read back once per epoch, so that no training step waits for the host
(``train_stage1(..., device="cpu", resident=True)`` runs that loop on the CPU, for the tests).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .config import Stage1Config
from .io import UNREADABLE, atomic_write
from .models import VGG16, ResNet32, build

# Per-channel statistics of the original CIFAR-10 train split (the JPEG copy is within 0.002).
MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
_STATS: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}


def _mean_std(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """MEAN and STD on ``device``, copied there once: a host-to-device copy in every training
    step would make each step wait for the host."""
    if device.type == "cpu":
        return MEAN, STD  # the very tensors the CPU path always used
    if device not in _STATS:
        _STATS[device] = (MEAN.to(device), STD.to(device))
    return _STATS[device]


def to_input(x_uint8: torch.Tensor) -> torch.Tensor:
    """(N, 32, 32, 3) uint8 -> normalised float (N, 3, 32, 32), on the device of ``x_uint8``."""
    x = x_uint8.permute(0, 3, 1, 2).float().div_(255)
    mean, std = _mean_std(x.device)
    # NHWC memory ("channels_last") runs this VGG ~1.3x faster on CPU than NCHW (make bench)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def augment(x_uint8: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Batched random crop (zero padding ``pad``) + horizontal flip, as uint8 NHWC -> float NCHW.

    One gather for the whole batch instead of a per-image Python loop. Runs on the device of
    ``x_uint8``; ``gen`` must be a generator on that device.
    """
    dev = x_uint8.device
    if gen.device.type != dev.type:
        raise ValueError(f"augment: the generator is on {gen.device}, the images on {dev}")
    b, h, w, _ = x_uint8.shape
    xp = F.pad(x_uint8.permute(0, 3, 1, 2), (pad, pad, pad, pad))  # zero = black, as torchvision
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=dev)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=dev)
    flip = torch.rand(b, generator=gen, device=dev) < 0.5
    rows = oy[:, None] + torch.arange(h, device=dev)
    cols = ox[:, None] + torch.arange(w, device=dev)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    out = xp[
        torch.arange(b, device=dev)[:, None, None, None],
        torch.arange(3, device=dev)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]
    mean, std = _mean_std(dev)
    return ((out.float().div_(255) - mean) / std).contiguous(memory_format=torch.channels_last)


def epoch_generator(
    seed: int, epoch: int, stream: int = 0, device: torch.device | str = "cpu"
) -> torch.Generator:
    """A generator on ``device`` fixed by (seed, epoch): a resumed run draws exactly what it would
    have. (A CUDA generator seeded alike draws other numbers than the CPU one.)"""
    return torch.Generator(device=device).manual_seed(
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


def resolve_device(device: torch.device | str | None) -> torch.device:
    """``device`` as a torch.device (None: :func:`default_device`), with a one-line error for a
    name torch does not know or a CUDA device on a machine without one."""
    if device is None:
        return default_device()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA device here")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be a CPU or CUDA device, got {device!r}")
    return dev


def _autocast(precision: str, device: torch.device | str = "cpu"):
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def fp32_precision(mode: str) -> Iterator[None]:
    """CUDA float32 matmuls and convolutions in ``"ieee"`` (exact float32) or ``"tf32"`` within
    the block, restored after it. torch's new flags only: once they are set, torch refuses to
    read the legacy ``torch.backends.cudnn.allow_tf32`` (nothing in ltmpq reads it). No effect
    on the CPU."""
    if mode not in ("ieee", "tf32"):
        raise ValueError(f"fp32 precision must be 'ieee' or 'tf32', got {mode!r}")
    flags = (torch.backends.cuda.matmul, torch.backends.cudnn.conv)
    before = [f.fp32_precision for f in flags]
    for f in flags:
        f.fp32_precision = mode
    try:
        yield
    finally:
        for f, old in zip(flags, before, strict=True):
            f.fp32_precision = old


def build_model(cfg: Stage1Config, num_classes: int = 10) -> VGG16 | ResNet32:
    """The stage-1 model (family ``cfg.arch``), initialised from ``cfg.seed``."""
    torch.manual_seed(cfg.seed)
    model = build(cfg.arch, num_classes=num_classes, width=cfg.width, hidden=cfg.hidden, dropout=cfg.dropout)
    return model.to(memory_format=torch.channels_last)


def logit_offset(cfg: Stage1Config, y: torch.Tensor, num_classes: int) -> torch.Tensor | None:
    """What the loss adds to the logits: ``tau * log(prior)`` with tau = 1 and the prior the
    training labels' class frequencies for the logit-adjusted loss (Menon et al. 2021, eq. 10);
    None for cross-entropy."""
    if cfg.loss == "ce":
        return None
    counts = torch.bincount(y.cpu(), minlength=num_classes).double()
    if bool((counts == 0).any()):
        raise ValueError(f"{cfg.tag}: the logit-adjusted loss needs every class in the training set")
    return torch.log(counts / counts.sum()).float()


def native_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic (AVX-512 BF16 or AMX); without it torch emulates bf16
    autocast, several times slower than fp32 (measured on an AVX2 CPU; the v2 recipe is bf16)."""
    from .provenance import cpu_flags

    return bool({"avx512_bf16", "amx_bf16"} & set(cpu_flags()))


def _resumable(state, cfg: Stage1Config) -> bool:
    """A loaded checkpoint holds what resuming needs (a ``{}`` or a foreign dict does not)."""
    need = {"model", "optimizer", "epoch", "history"}
    if cfg.schedule == "onecycle":
        need.add("scheduler")
    if not isinstance(state, dict) or not need <= set(state):
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
    device: torch.device | str | None = None,
    resident: bool | None = None,
    checkpoint_every_s: float | None = None,
) -> TrainOutcome:
    """Train the stage-1 model on (x uint8 NHWC, y), instance-balanced; resume from ``ckpt_dir``.

    ``stop_after_epoch`` ends the process early after that epoch (to test resuming).
    ``data_sha256`` names the data the run trains on; a checkpoint recorded on other data is not
    resumed from. ``device``: where to train (None: :func:`default_device`). ``resident``: the
    device-resident loop (module docstring); None: on CUDA only, so that the CPU keeps the loop
    the published weights came from. ``checkpoint_every_s``: write the checkpoint after an epoch
    only when this many seconds passed since the last one (always after the last epoch and at
    ``stop_after_epoch``); None: every epoch on the CPU, every 30 s on CUDA, where an epoch of
    the paper profile takes about a second and writing its 120 MB checkpoint a good part of one.
    """
    num_classes = int(y.max()) + 1
    device = resolve_device(device)
    if resident is None:
        resident = device.type == "cuda"
    elif not isinstance(resident, bool):
        raise ValueError(f"resident must be True, False or None, got {resident!r}")
    if checkpoint_every_s is None:
        checkpoint_every_s = 30.0 if device.type == "cuda" else 0.0
    elif isinstance(checkpoint_every_s, bool) or not (
        isinstance(checkpoint_every_s, int | float) and checkpoint_every_s >= 0
    ):
        raise ValueError(f"checkpoint_every_s must be a number of seconds >= 0, got {checkpoint_every_s!r}")
    if cfg.precision == "bf16" and device.type == "cpu" and not native_bf16():
        warnings.warn(
            f"{cfg.tag}: bf16 autocast on a CPU without AVX-512 BF16 or AMX (this one: "
            f"{torch.backends.cpu.get_cpu_capability()}) is emulated and runs several times slower "
            "than fp32 (`make bench` measures it); the recipe's bf16 models are best trained on such "
            "a CPU or a GPU",
            RuntimeWarning,
            stacklevel=2,
        )
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
    sched = None
    if cfg.schedule == "onecycle":  # torch's, stepped after every optimizer step
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=total, base_momentum=0.85, max_momentum=cfg.momentum
        )
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
        if sched is not None:
            sched.load_state_dict(state["scheduler"])
        start, history = int(state["epoch"]), list(state["history"])
    if resident:  # the images and labels cross to the device once, not once per step
        x, y = x.to(device), y.to(device)
    run_epoch = _resident_epoch if resident else _host_epoch
    offset = logit_offset(cfg, y, num_classes)
    schedule = (steps_per_epoch, total, warmup, sched, None if offset is None else offset.to(device))
    last_write = time.perf_counter()
    for epoch in range(start, cfg.epochs):
        model.train()
        t0 = time.perf_counter()
        bar = tqdm(range(steps_per_epoch), desc=f"{cfg.tag} epoch {epoch + 1}/{cfg.epochs}",
                   disable=not progress, leave=False, mininterval=1)  # fmt: skip
        loss_sum, correct, n = run_epoch(model, opt, x, y, cfg, epoch, bar, schedule, device)
        dt = time.perf_counter() - t0  # after the epoch's one read-back: the device work is done
        history.append({"epoch": epoch + 1, "loss": loss_sum / n, "train_acc": correct / n,
                        "seconds": dt, "images": n})  # fmt: skip
        if progress:
            tqdm.write(f"{cfg.tag} epoch {epoch + 1}/{cfg.epochs}: loss {loss_sum / n:.3f} "
                       f"acc {correct / n:.3f} ({n / dt:.0f} img/s)")  # fmt: skip
        stopping = stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < cfg.epochs
        due = time.perf_counter() - last_write >= checkpoint_every_s
        if due or stopping or epoch + 1 == cfg.epochs:
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
                     "epoch": epoch + 1, "history": history, "data_sha256": data_sha256}  # fmt: skip
            if sched is not None:
                state["scheduler"] = sched.state_dict()
            atomic_write(ckpt, lambda tmp, s=state: torch.save(s, tmp))
            last_write = time.perf_counter()
        if stopping:
            raise KeyboardInterrupt(f"stopped after epoch {epoch + 1} (stop_after_epoch)")
    model = model.cpu().eval()
    seconds = sum(h["seconds"] for h in history)
    images = sum(h.get("images", len(y)) for h in history)
    return TrainOutcome(model, history, seconds, images / seconds if seconds else float("nan"))


def _set_lr(opt: torch.optim.Optimizer, step: int, schedule: tuple, peak: float) -> None:
    """The learning rate of global step ``step``; ``schedule``: (steps per epoch, total, warm-up,
    OneCycleLR or None). A OneCycleLR sets it itself (stepped after each optimizer step)."""
    _, total, warmup, sched, _ = schedule
    if sched is not None:
        return
    for g in opt.param_groups:
        g["lr"] = lr_at(step, total, warmup, peak)


def _host_epoch(model, opt, x, y, cfg, epoch, bar, schedule, device) -> tuple[float, int, int]:
    """One epoch of the original loop: batches drawn and augmented on the host, moved to
    ``device``, loss and accuracy read back every step. The CPU path: its operations are the
    ones the published weights came from, in the same order; change nothing here.
    ``schedule``: (steps per epoch, total steps, warm-up steps, OneCycleLR or None, logit offset
    of the loss or None)."""
    gen = epoch_generator(cfg.seed, epoch)
    order = torch.randperm(len(y), generator=gen)
    steps = schedule[0]
    loss_sum, correct, n = 0.0, 0, 0
    for i in bar:
        idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
        xb, yb = augment(x[idx], gen).to(device), y[idx].to(device)
        _set_lr(opt, epoch * steps + i, schedule, cfg.lr)
        loss, logits = _step(model, opt, xb, yb, cfg.precision, device, schedule[4])
        if schedule[3] is not None:
            schedule[3].step()
        loss_sum += float(loss.detach()) * len(yb)
        correct += int((logits.argmax(1) == yb).sum())
        n += len(yb)
        bar.set_postfix(loss=f"{loss_sum / n:.3f}", acc=f"{correct / n:.3f}", refresh=False)
    return loss_sum, correct, n


def _step(model, opt, xb, yb, precision: str, device, offset: torch.Tensor | None = None
          ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """One SGD step on a batch (both epoch loops): loss and logits, nothing read back. ``offset``:
    added to the logits inside the loss only (the logit-adjusted loss; accuracy reads the plain
    logits)."""
    with _autocast(precision, device):
        logits = model(xb)
        loss = F.cross_entropy(logits if offset is None else logits + offset, yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss, logits


def _resident_epoch(model, opt, x, y, cfg, epoch, bar, schedule, device) -> tuple[float, int, int]:
    """One epoch on ``device`` with ``x``, ``y`` already there: order and augmentation drawn by a
    generator on the device, loss and accuracy summed there and read back once, at the end.
    Nothing in a step waits for the host (no ``.item()``, ``float()``, ``int()``, host copies),
    so the host queues steps ahead of the GPU. On the CPU it computes what :func:`_host_epoch`
    does, bit for bit (the same draws, the same float64 sums)."""
    gen = epoch_generator(cfg.seed, epoch, device=device)
    order = torch.randperm(len(y), generator=gen, device=device)
    steps = schedule[0]
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    n = 0
    for i in bar:
        idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
        b = min(cfg.batch_size, len(y) - i * cfg.batch_size)  # known on the host: no read-back
        xb, yb = augment(x[idx], gen), y[idx]
        _set_lr(opt, epoch * steps + i, schedule, cfg.lr)
        loss, logits = _step(model, opt, xb, yb, cfg.precision, device, schedule[4])
        if schedule[3] is not None:
            schedule[3].step()
        loss_sum += loss.detach().double() * b
        correct += (logits.argmax(1) == yb).sum()
        n += b
    total_loss, total_correct = torch.stack([loss_sum, correct.double()]).tolist()  # the one sync
    return total_loss, int(total_correct), n


@torch.inference_mode()
def predict(
    model: nn.Module,
    x: torch.Tensor,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (input of the classifier) and logits of a VGG16 on uint8 images, in float32, as
    CPU tensors.

    ``device``: where to compute (None: :func:`default_device`); a model elsewhere is copied
    there (the caller's model stays where it is), so that chapter 2-3's evaluations of the
    paper profile run on the GPU it trained on. On CUDA in exact float32 (no TF32: quantization
    errors of a few 2**-8 must not drown in TF32's 2**-11 rounding) and in batches of 4096 when
    ``batch_size`` is None (1000 on the CPU).
    """
    model.eval()
    device = resolve_device(device)
    if batch_size is None:
        batch_size = 4096 if device.type == "cuda" else 1000
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    here = next(model.parameters()).device
    if here.type != device.type or (device.index is not None and here.index != device.index):
        import copy

        model = copy.deepcopy(model).to(device)
    exact = fp32_precision("ieee") if device.type == "cuda" else contextlib.nullcontext()
    feats, logits = [], []
    with exact:
        for i in range(0, len(x), batch_size):
            f = model.features(to_input(x[i : i + batch_size].to(device)))
            feats.append(f.cpu())
            logits.append(model.classifier(f).cpu())
    return torch.cat(feats), torch.cat(logits)


@torch.inference_mode()
def augmented_features(
    model: VGG16, x: torch.Tensor, views: int, seed: int, batch_size: int = 1000
) -> torch.Tensor:
    """Features (input of the classifier) of ``views`` crop + flip views of every uint8 image,
    view-major: rows ``v * len(x) + i`` are view ``v`` of image ``i``. View ``v`` is drawn by
    :func:`epoch_generator` ``(seed, v, stream=7)``, so the views are fixed by the seed. On the
    CPU, in float32 (stage 2's cRT and LWS train on them, chapter 2)."""
    if isinstance(views, bool) or not isinstance(views, int) or views < 1:
        raise ValueError(f"views must be an int >= 1, got {views!r}")
    model = model.cpu().eval()
    out = []
    for v in range(views):
        # the whole set's crops and flips in one draw, so that the views do not depend on batch_size
        xa = augment(x, epoch_generator(seed, v, stream=7))
        for i in range(0, len(x), batch_size):
            out.append(model.features(xa[i : i + batch_size]))
    return torch.cat(out)


def throughput(
    model: nn.Module,
    batch_size: int = 128,
    steps: int = 5,
    precision: str = "fp32",
    channels_last: bool = True,
    device: torch.device | str = "cpu",
    warmup: int = 1,
) -> float:
    """Raw forward+backward images/s on random data on ``device`` (no data pipeline, no optimizer).

    The first ``warmup`` steps are not timed (cuDNN picks its kernels there); on CUDA the clock
    stops after the device finished, not when the host queued the last step.
    """
    device = resolve_device(device)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch_size, 3, 32, 32).contiguous(memory_format=fmt).to(device)
    model = model.to(device=device, memory_format=fmt)
    y = torch.randint(0, 10, (batch_size,)).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    model.train()
    for i in range(steps + warmup):
        if i == warmup:
            sync()
            t0 = time.perf_counter()
        with _autocast(precision, device):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
    sync()
    return batch_size * steps / (time.perf_counter() - t0)
