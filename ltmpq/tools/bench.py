"""``make bench``: training throughput of the cpu profile's model (fp32 and bf16 autocast) against
raw forward+backward, ResNet-32's raw throughput (chapter 6), chapter 4's sweep with and without
reuse, and the run grid's speed-up on two worker processes.

Measures, on random data: raw forward+backward images/s of VGG16 at the cpu profile's width
(NCHW vs channels_last memory), the images/s of :func:`ltmpq.training.train_stage1` (with
augmentation, optimizer and bookkeeping) for one epoch, and the single-layer sensitivity sweep
of chapter 4 with and without reusing the activations in front of each layer. Speed goals live
here, not in tests.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from ..config import QuantConfig, get_profile, with_overrides
from ..models import VGG16, ResNet32
from ..training import throughput, train_stage1


def sweep_speedup(width: float, n_images: int = 1000, bits=(3, 4, 5, 6, 8)) -> tuple[float, float]:
    """Seconds of chapter 4's single-layer sweep (16 layers x ``bits``, two heads) without and
    with reuse, on ``n_images`` random images (the cpu profile's validation split has 1000)."""
    from ..mpq import single_layer_sweep
    from ..training import MEAN, STD

    torch.manual_seed(0)
    model = VGG16(width=width).eval()
    heads = {"a": model.classifier, "b": torch.nn.Linear(model.feature_dim, model.num_classes)}
    x = ((torch.rand(n_images, 3, 32, 32) - MEAN) / STD).contiguous(memory_format=torch.channels_last)
    seconds = []
    for reuse in (False, True):
        t0 = time.perf_counter()
        single_layer_sweep(model, heads, x, bits, QuantConfig(), reuse=reuse)
        seconds.append(time.perf_counter() - t0)
    return seconds[0], seconds[1]


def grid_speedup(jobs: int = 2) -> tuple[float, float, float]:
    """Seconds of the smoke profile's whole grid (4 runs, 42 tasks: every stage and variant) in this process
    (``--jobs 1``) and on ``jobs`` worker processes, each from empty results and caches."""
    import os

    from ..engine import run_grid

    seconds, startup = [], 0.0
    for n in (1, jobs):
        with tempfile.TemporaryDirectory() as tmp:
            saved = {k: os.environ.get(k) for k in ("LTMPQ_RESULTS", "LTMPQ_CACHE")}
            os.environ["LTMPQ_RESULTS"], os.environ["LTMPQ_CACHE"] = f"{tmp}/results", f"{tmp}/cache"
            try:
                from ..artifacts import dataset

                dataset()  # decode the data into this cache first: both timings start from it
                t0 = time.perf_counter()
                report = run_grid("smoke", jobs=n, threads=1, progress=False)
                seconds.append(time.perf_counter() - t0)
                startup = report.startup_seconds
                if report.failed:
                    raise RuntimeError(report.summary())
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
    return seconds[0], seconds[1], startup


def main(n_images: int = 6144) -> int:
    cfg = with_overrides(get_profile("cpu").stage1_config(0.01, 0), epochs=1, warmup_epochs=0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, VGG16 width {cfg.width:g}")
    torch.manual_seed(0)
    raw_nchw = throughput(VGG16(width=cfg.width), cfg.batch_size, steps=10, channels_last=False)
    gen = torch.Generator().manual_seed(0)
    xs = torch.randint(0, 256, (n_images, 32, 32, 3), dtype=torch.uint8, generator=gen)
    ys = torch.randint(0, 10, (n_images,), generator=gen)
    print(f"raw forward+backward, fp32, NCHW:          {raw_nchw:7.0f} img/s")
    for precision in ("fp32", "bf16"):
        raw = throughput(VGG16(width=cfg.width), cfg.batch_size, steps=10, precision=precision)
        with tempfile.TemporaryDirectory() as tmp:
            out = train_stage1(with_overrides(cfg, precision=precision), xs, ys, Path(tmp), progress=False)
        print(f"raw forward+backward, {precision}, channels_last: {raw:7.0f} img/s")
        print(f"train_stage1, {precision} (augment + SGD step):  {out.images_per_second:7.0f} img/s "
              f"({out.images_per_second / raw:.2f}x raw; goal >= 0.9x)")  # fmt: skip
    # chapter 6's ResNet-32 (width 1, as the CIFAR-LT literature trains it)
    for precision in ("fp32", "bf16"):
        for last in (False, True):
            raw = throughput(ResNet32(), cfg.batch_size, steps=5, precision=precision, channels_last=last)
            layout = "channels_last" if last else "NCHW"
            print(f"ResNet-32 raw forward+backward, {precision}, {layout}: {raw:7.0f} img/s")
    naive, reuse = sweep_speedup(cfg.width)
    print(f"chapter 4 sweep, 16 layers x 5 bit-widths x 1000 images, two heads: naive {naive:.1f} s, "
          f"reusing activations {reuse:.1f} s ({naive / reuse:.2f}x faster)")  # fmt: skip
    one, two, startup = grid_speedup(2)
    print(f"smoke grid (4 runs, every stage): --jobs 1 {one:.1f} s, --jobs 2 {two:.1f} s "
          f"({one / two:.2f}x; goal >= 1.8x on 2 cores); of those, {startup:.1f} s start the workers, "
          f"so {one / (two - startup):.2f}x once they run")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
