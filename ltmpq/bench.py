"""``make bench``: training throughput of the cpu profile's model against its raw speed.

Measures, on random data: raw forward+backward images/s of VGG16 at the cpu profile's width
(NCHW vs channels_last memory), and the images/s of :func:`ltmpq.training.train_stage1` (with
augmentation, optimizer and bookkeeping) for one epoch. Speed goals live here, not in tests.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from .config import get_profile, with_overrides
from .models import VGG16
from .training import throughput, train_stage1


def main(n_images: int = 6144) -> int:
    cfg = with_overrides(get_profile("cpu").stage1_config(0.01, 0), epochs=1, warmup_epochs=0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, VGG16 width {cfg.width:g}")
    torch.manual_seed(0)
    raw_nchw = throughput(VGG16(width=cfg.width), cfg.batch_size, steps=10, channels_last=False)
    raw_cl = throughput(VGG16(width=cfg.width), cfg.batch_size, steps=10)
    gen = torch.Generator().manual_seed(0)
    xs = torch.randint(0, 256, (n_images, 32, 32, 3), dtype=torch.uint8, generator=gen)
    ys = torch.randint(0, 10, (n_images,), generator=gen)
    with tempfile.TemporaryDirectory() as tmp:
        out = train_stage1(cfg, xs, ys, Path(tmp), progress=False)
    print(f"raw forward+backward, NCHW:          {raw_nchw:7.0f} img/s")
    print(f"raw forward+backward, channels_last: {raw_cl:7.0f} img/s")
    print(f"train_stage1 (augment + SGD step):   {out.images_per_second:7.0f} img/s "
          f"({100 * out.images_per_second / raw_cl:.0f}% of raw)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
