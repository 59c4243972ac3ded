"""Run configurations (frozen dataclasses -> content hash) and the three profiles.

A run *is* its config: the hash of the config names its cache entries and its result file, so
chapters that ask for the same run share it. Used by every chapter.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, ClassVar

import numpy as np

from .vocab import ALL_METHODS, EXTRA_METHODS, METHODS, check_bits

PRECISIONS = ("fp32", "bf16")
#: Stage 1's learning-rate schedules: ``cosine`` (v1: linear warm-up, cosine decay to zero) and
#: ``onecycle`` (torch's OneCycleLR: cosine warm-up over 30% of the steps, cosine annealing,
#: momentum cycled inversely between 0.85 and ``momentum``).
SCHEDULES = ("cosine", "onecycle")
#: Stage 1's model families (:mod:`ltmpq.models`; a tuple here so that configs import no torch).
ARCHS = ("vgg16", "resnet32")
#: Stage 1's losses: cross-entropy (``ce``) or Menon et al.'s logit-adjusted loss
#: (``logit_adjusted``: cross-entropy of ``logits + tau * log(prior)``, tau = 1, the prior being
#: the training set's class frequencies; at test time the plain logits are used).
LOSSES = ("ce", "logit_adjusted")


def check_number(cfg: Any, name: str, kind: type, lo: float | None = None, hi: float | None = None, *,
                 lo_open: bool = False, hi_open: bool = False, optional: bool = False) -> None:  # fmt: skip
    """Check the field ``name`` of a frozen config at construction: an ``int`` (``kind=int``) or a
    number (``kind=float``) within the bounds; numpy scalars are accepted and stored as plain
    Python numbers (so that equal configs hash equally). Bools are never numbers here."""
    v = getattr(cfg, name)
    if v is None and optional:
        return
    is_int = isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)
    is_num = is_int or (isinstance(v, float | np.floating) and np.isfinite(v))
    if not (is_int if kind is int else is_num):
        what = "an int" if kind is int else "a finite number"
        raise ValueError(f"{name} must be {what}{' or None' if optional else ''}, got {v!r}")
    v = int(v) if kind is int else float(v)
    below = lo is not None and (v <= lo if lo_open else v < lo)
    above = hi is not None and (v >= hi if hi_open else v > hi)
    if below or above:
        left = f"{'(' if lo_open else '['}{'-inf' if lo is None else f'{lo:g}'}"
        right = f"{'inf' if hi is None else f'{hi:g}'}{')' if hi_open else ']'}"
        raise ValueError(f"{name} must be in {left}, {right}, got {v!r}")
    object.__setattr__(cfg, name, v)


def check_choice(cfg: Any, name: str, allowed: Sequence[str]) -> None:
    """Check that the field ``name`` is one of ``allowed`` (an error lists them)."""
    v = getattr(cfg, name)
    if not isinstance(v, str) or v not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {v!r}")


def _hashable(obj: Any) -> Any:
    """``asdict`` of a (nested) config, without the fields added after the v1 results were
    stored while they keep their default (a class lists them in ``LATER_FIELDS``): so adding a
    field leaves the hash, and with it the name of every stored result, of the old runs as it was."""
    if is_dataclass(obj) and not isinstance(obj, type):
        later = getattr(type(obj), "LATER_FIELDS", ())
        return {
            f.name: _hashable(getattr(obj, f.name))
            for f in fields(obj)
            if not (f.name in later and getattr(obj, f.name) == f.default)
        }
    if isinstance(obj, list | tuple):
        return [_hashable(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _hashable(v) for k, v in obj.items()}
    return obj


def config_hash(cfg: Any) -> str:
    """Stable 12-hex-digit content hash of a (nested) dataclass config."""
    payload = json.dumps({"type": type(cfg).__name__, **_hashable(cfg)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Stage1Config:
    """Stage 1 (chapter 1's baseline): the whole VGG16 trained with instance-balanced sampling.

    ``seed`` governs the long-tailed draw, the weight init and the batch order / augmentation.
    The validation split is drawn by ``val_seed`` before the long-tailed subset.
    """

    imbalance_factor: float
    seed: int = 0
    lt_profile: str = "exp"
    val_per_class: int = 100
    val_seed: int = 0
    n_max: int | None = None  # None: all that is left per class after the validation hold-out
    test_per_class: int | None = None  # None: the full balanced test set
    width: float = 0.25
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: int = 1
    precision: str = "fp32"
    schedule: str = "cosine"  # see SCHEDULES; onecycle ignores warmup_epochs
    hidden: int | None = None  # width of L14/L15; None: 512 x width (4096: the classic VGG16)
    dropout: float = 0.0  # after L14's and L15's ReLU (0.5 in the classic VGG16)
    arch: str = "vgg16"  # see ARCHS
    loss: str = "ce"  # see LOSSES

    LATER_FIELDS: ClassVar[tuple[str, ...]] = ("schedule", "hidden", "dropout", "arch", "loss")

    def __post_init__(self) -> None:
        check_number(self, "imbalance_factor", float, 0, 1, lo_open=True)  # n_min / n_max, e.g. 0.01
        for name in ("seed", "val_seed", "val_per_class", "warmup_epochs"):
            check_number(self, name, int, 0)
        for name in ("epochs", "batch_size"):
            check_number(self, name, int, 1)
        for name in ("n_max", "test_per_class"):
            check_number(self, name, int, 1, optional=True)
        check_number(self, "width", float, 0, 4, lo_open=True)
        check_number(self, "hidden", int, 1, optional=True)
        check_number(self, "dropout", float, 0, 1, hi_open=True)
        check_number(self, "lr", float, 0, lo_open=True)
        check_number(self, "momentum", float, 0, 1, hi_open=True)
        check_number(self, "weight_decay", float, 0)
        check_choice(self, "precision", PRECISIONS)
        check_choice(self, "lt_profile", ("exp", "step"))
        check_choice(self, "schedule", SCHEDULES)
        check_choice(self, "arch", ARCHS)
        check_choice(self, "loss", LOSSES)
        if self.arch != "vgg16" and (self.hidden is not None or self.dropout):
            raise ValueError(
                f"hidden and dropout shape the VGG16's classifier; arch={self.arch!r} has none, got "
                f"hidden={self.hidden!r}, dropout={self.dropout!r}"
            )
        if self.warmup_epochs > self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) must not exceed epochs ({self.epochs})")

    @property
    def key(self) -> str:
        return config_hash(self)

    @property
    def tag(self) -> str:
        """Human-readable part of the result file name. Chapter 5's scale ladder says how its
        models differ: the width (but for the book's 0.25 and the smoke models' 1/16, whose names
        predate the ladder) and the classifier's shape; the model family and loss where they are
        not the VGG16 and cross-entropy."""
        shape = "" if self.arch == "vgg16" else f"-{self.arch}"
        shape += "" if self.loss == "ce" else "-la"
        shape += "" if self.width in (0.25, 1 / 16) else f"-w{self.width:g}"
        shape += "" if self.hidden is None else f"-fc{self.hidden}"
        shape += "" if self.dropout == 0 else f"-drop{self.dropout:g}"
        return f"if{self.imbalance_factor:g}-seed{self.seed}{shape}"


@dataclass(frozen=True)
class DecoupleConfig:
    """Stage 2 (chapter 2): classifier re-balancing on frozen stage-1 features (Kang et al. 2020).

    cRT and LWS train for ``epochs`` with class-balanced sampling, on ``augment_views`` augmented
    views of each training image (0: the un-augmented image); the epoch kept, and tau of
    tau-normalisation, are chosen by balanced accuracy on the validation split.
    """

    epochs: int = 30
    batch_size: int = 512
    lr: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    tau_grid: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(21))  # 0.0 .. 2.0
    seed: int = 0
    # 0: cRT and LWS see the fixed features of the un-augmented training images (v1). n > 0: the
    # features of n crop + flip views of every training image through the frozen backbone, as
    # Kang et al. train them (on views drawn once, rather than new ones every epoch).
    augment_views: int = 0
    # stage-2 methods fitted beside the five of :data:`~ltmpq.vocab.METHODS` (post-hoc logit
    # adjustment, its tau from ``tau_grid`` on the validation split)
    extra_methods: tuple[str, ...] = ()

    LATER_FIELDS: ClassVar[tuple[str, ...]] = ("augment_views", "extra_methods")

    @property
    def methods(self) -> tuple[str, ...]:
        """Every classifier this stage 2 fits, the stage-1 model's own first."""
        return METHODS + self.extra_methods

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            check_number(self, name, int, 1)
        check_number(self, "seed", int, 0)
        check_number(self, "augment_views", int, 0, 100)
        check_number(self, "lr", float, 0, lo_open=True)
        check_number(self, "momentum", float, 0, 1, hi_open=True)
        check_number(self, "weight_decay", float, 0)
        grid = self.tau_grid
        numbers = isinstance(grid, Sequence) and not isinstance(grid, str) and len(grid) > 0
        numbers = numbers and all(
            not isinstance(t, bool) and isinstance(t, int | float | np.number) for t in grid
        )
        if not numbers or not all(t >= 0 for t in grid):
            raise ValueError(f"tau_grid must be a non-empty sequence of numbers >= 0, got {grid!r}")
        object.__setattr__(self, "tau_grid", tuple(float(t) for t in grid))
        extra = self.extra_methods
        listed = isinstance(extra, Sequence) and not isinstance(extra, str)
        if not listed or len(set(extra)) != len(extra) or any(m not in EXTRA_METHODS for m in extra):
            raise ValueError(f"extra_methods must be distinct, from {list(EXTRA_METHODS)}, got {extra!r}")
        object.__setattr__(self, "extra_methods", tuple(m for m in EXTRA_METHODS if m in extra))


GRANULARITIES = ("channel", "tensor")
CLIPPINGS = ("minmax", "mse")
CALIBRATIONS = ("lt", "balanced", "tail")
WEIGHT_SCHEMES = ("symmetric", "affine")
ACT_SCHEMES = ("unsigned", "affine")
ACT_CLIPPINGS = ("mse", "minmax", "percentile", "histogram")
#: Weight quantizers (``QuantConfig.ptq``): rounding to nearest (``rtn``, :mod:`ltmpq.quantization`),
#: the same through Brevitas (``brevitas_rtn``, a cross-check), GPTQ and GPFQ (:mod:`ltmpq.ptq`).
PTQ_METHODS = ("rtn", "brevitas_rtn", "gptq", "gpfq")
#: ``act_bits`` / ``logit_bits`` value: the bits of the weights they follow, at each swept bit-width.
MATCH = "match"


@dataclass(frozen=True)
class QuantConfig:
    """How weights (and optionally activations) are quantized after training (chapters 3-4).

    Weights: signed symmetric integers, one scale per output channel (``channel``) or per layer
    (``tensor``), the scale from the largest magnitude (``minmax``) or from the clipping that
    minimises the squared error (``mse``); BatchNorm folded into the convolution first
    (``fold_bn``). Which layer gets how many bits is not here but in a bit-width map.
    Activations (``act_bits``; None: float): unsigned per-tensor, the clipping chosen by squared
    error on ``calibration_size`` training images drawn ``lt`` (as the long-tailed training
    set), ``balanced`` (equal per class) or ``tail`` (equal per tail class).

    Chapter 5's hypotheses (:data:`QUANT_HYPOTHESES`; each default is the quantizer above):
    ``weight_scheme="affine"``: asymmetric weights (an integer zero point per scale).
    ``act_bits="match"``: each activation at the bits of the layer it feeds (W8A8 ... W4A4 in a
    uniform sweep; float activations for the float model). ``act_scheme="affine"``: asymmetric
    activations, which also quantizes the network input (after a ReLU the minimum is 0: there it
    is the unsigned grid). ``act_clipping``: the activation range from squared error (``mse``),
    the extremes (``minmax``), the ``act_percentile``-th percentile (``percentile``) or torch's
    ``HistogramObserver`` (``histogram``). ``first_last_bits``: L1 and L16 (weights and inputs)
    at these bits whatever the swept bit-width. ``logit_bits``: the classifier's output
    quantized (affine per tensor, calibrated on the calibration images' logits) before the
    argmax, at these bits or at the classifier's (``"match"``).
    """

    granularity: str = "channel"
    clipping: str = "minmax"
    fold_bn: bool = True
    act_bits: int | str | None = None  # an int, MATCH or None (float activations)
    calibration: str = "lt"
    calibration_size: int = 250
    calibration_seed: int = 0
    weight_scheme: str = "symmetric"
    act_scheme: str = "unsigned"
    act_clipping: str = "mse"
    act_percentile: float = 99.99
    first_last_bits: int | None = None
    logit_bits: int | str | None = None  # an int, MATCH or None (float logits)
    # the chapter "Winning the tail back": the weight quantizer (PTQ_METHODS), Brevitas's bias
    # correction and cross-layer equalization (on ``calibration`` images), and stage 2 refitted on
    # the quantized backbone's features (each method's head then quantized at the same bits)
    ptq: str = "rtn"
    bias_correction: bool = False
    equalize: bool = False
    rebalance_after: bool = False

    # added for chapter 5 and later: at their defaults they leave the hash of every earlier run
    LATER_FIELDS: ClassVar[tuple[str, ...]] = (
        "weight_scheme", "act_scheme", "act_clipping", "act_percentile", "first_last_bits", "logit_bits",
        "ptq", "bias_correction", "equalize", "rebalance_after",
    )  # fmt: skip

    @property
    def brevitas(self) -> bool:
        """Whether the weights go through Brevitas (:mod:`ltmpq.ptq`) rather than our rounding."""
        return self.ptq != "rtn" or self.bias_correction or self.equalize

    def __post_init__(self) -> None:
        for name, allowed in (("granularity", GRANULARITIES), ("clipping", CLIPPINGS),
                              ("calibration", CALIBRATIONS), ("weight_scheme", WEIGHT_SCHEMES),
                              ("act_scheme", ACT_SCHEMES), ("act_clipping", ACT_CLIPPINGS),
                              ("ptq", PTQ_METHODS)):  # fmt: skip
            if not isinstance(getattr(self, name), str) or getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("fold_bn", "bias_correction", "equalize", "rebalance_after"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
            object.__setattr__(self, name, bool(getattr(self, name)))
        if self.brevitas:
            # what ltmpq.ptq implements: folded BN, symmetric min-max grids
            needs = {"fold_bn": True, "weight_scheme": "symmetric", "clipping": "minmax"}
            off = {k: getattr(self, k) for k, v in needs.items() if getattr(self, k) != v}
            if off:
                raise ValueError(
                    f"ptq={self.ptq!r} (bias_correction={self.bias_correction}, equalize={self.equalize}) "
                    f"quantizes with {needs}; this QuantConfig sets {off}"
                )
        for name in ("act_bits", "logit_bits", "first_last_bits"):
            v = getattr(self, name)
            if v is None or (name != "first_last_bits" and isinstance(v, str) and v == MATCH):
                continue
            others = " or None" if name == "first_last_bits" else f", {MATCH!r} or None"
            object.__setattr__(self, name, check_bits(v, name, others=others))
        check_number(self, "act_percentile", float, 50, 100, lo_open=True)
        check_number(self, "calibration_size", int, 1)
        check_number(self, "calibration_seed", int, 0)
        # settings that would change nothing are errors: two configs, one quantizer, two hashes
        if self.act_bits is None and self.act_scheme != "unsigned":
            raise ValueError(f"act_scheme={self.act_scheme!r} needs act_bits (an int or {MATCH!r}), got None")
        if self.act_bits is None and self.logit_bits is None and self.act_clipping != "mse":
            raise ValueError(f"act_clipping={self.act_clipping!r} needs act_bits or logit_bits, got None")
        if self.act_clipping != "percentile" and self.act_percentile != 99.99:
            raise ValueError(
                f"act_percentile={self.act_percentile!r} needs act_clipping='percentile', "
                f"got {self.act_clipping!r}"
            )


#: Chapter 3's ablations: each changes one thing of the profile's default quantizer.
QUANT_ABLATIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "per-tensor": {"granularity": "tensor"},
    "BN not folded": {"fold_bn": False},
    "per-tensor, BN not folded": {"granularity": "tensor", "fold_bn": False},
    "MSE clipping": {"clipping": "mse"},
    "+ 8-bit act., LT calib.": {"act_bits": 8, "calibration": "lt"},
    "+ 8-bit act., balanced calib.": {"act_bits": 8, "calibration": "balanced"},
    "+ 8-bit act., tail calib.": {"act_bits": 8, "calibration": "tail"},
}

#: Chapter 5's quantizer hypotheses: what quantizer would lose the blog's 0.5 head / 6.5 tail
#: points at 6 bits? Each changes the profile's default quantizer (a QuantConfig's overrides);
#: "W=A" is activations at the weights' bits (W8A8 ... W4A4), calibrated on LT training images.
QUANT_HYPOTHESES: dict[str, dict[str, Any]] = {
    "W=A, LT calib.": {"act_bits": MATCH, "calibration": "lt"},
    "W=A affine, min-max": {"act_bits": MATCH, "act_scheme": "affine", "act_clipping": "minmax"},
    "W=A affine, histogram": {"act_bits": MATCH, "act_scheme": "affine", "act_clipping": "histogram"},
    "W=A affine, 99.99th pct.": {"act_bits": MATCH, "act_scheme": "affine", "act_clipping": "percentile",
                                 "act_percentile": 99.99},
    "affine per-tensor weights": {"weight_scheme": "affine", "granularity": "tensor"},
    "per-tensor weights, BN folded": {"granularity": "tensor", "fold_bn": True},
    "W=A, first/last at 8 bits": {"act_bits": MATCH, "first_last_bits": 8},
    "logits at 8 bits": {"logit_bits": 8},
    "W=A + logits at same bits": {"act_bits": MATCH, "logit_bits": MATCH},
    "naive: per-tensor affine W=A + logits": {"weight_scheme": "affine", "granularity": "tensor",
                                              "act_bits": MATCH, "act_scheme": "affine",
                                              "act_clipping": "minmax", "logit_bits": MATCH},
}  # fmt: skip
#: The chapter "Winning the tail back": quantizers stronger than rounding to nearest (GPTQ, GPFQ,
#: bias correction, cross-layer equalization, through Brevitas), each with its calibration /
#: reconstruction images drawn long-tailed (as training), class-balanced or from the tail classes
#: only; Brevitas's own rounding (a cross-check of ours); and stage 2 refitted after quantization.
#: Each changes the profile's default quantizer (weights per channel, min-max; float activations).
MITIGATIONS: dict[str, dict[str, Any]] = {
    "Brevitas min-max": {"ptq": "brevitas_rtn"},
    **{f"{name}{label}": {**over, "calibration": c}
       for name, over in (("GPTQ", {"ptq": "gptq"}), ("bias correction", {"bias_correction": True}))
       for c, label in (("lt", ""), ("balanced", ", balanced calib."), ("tail", ", tail calib."))},
    "GPFQ": {"ptq": "gpfq"},  # twice GPTQ's time: the calibration sets are compared on GPTQ
    "equalization": {"equalize": True},
    "re-balanced after quantization": {"rebalance_after": True},
}  # fmt: skip
#: One line per hypothesis, for the chapter to print.
QUANT_HYPOTHESIS_DESCRIPTIONS: dict[str, str] = {
    "W=A, LT calib.": "activations at the weights' bits, unsigned per tensor after every ReLU, "
    "MSE clipping, calibrated on LT training images",
    "W=A affine, min-max": "activations at the weights' bits, asymmetric per tensor (the input image "
    "too), range from the calibration extremes",
    "W=A affine, histogram": "as min-max, the range from torch.ao's HistogramObserver (its default "
    "post-training calibration)",
    "W=A affine, 99.99th pct.": "as min-max, the range from the 0.01st and 99.99th percentiles",
    "affine per-tensor weights": "asymmetric weights (a zero point) with one scale per layer, BN folded",
    "per-tensor weights, BN folded": "symmetric weights with one scale per layer after BN folding "
    "(chapter 3's 'per-tensor' run)",
    "W=A, first/last at 8 bits": "activations at the weights' bits; L1 and L16 (weights and inputs) "
    "at 8 bits whatever the swept bits",
    "logits at 8 bits": "weight-only quantization; the logits quantized to 8 bits (asymmetric, MSE "
    "clipping) before the argmax",
    "W=A + logits at same bits": "activations and logits at the weights' bits",
    "naive: per-tensor affine W=A + logits": "everything per tensor and asymmetric with min-max "
    "ranges: weights, activations and logits at the same bits",
}


#: Chapter 4's sensitivity metrics (computed in :mod:`ltmpq.mpq`). Accuracy metrics, named as in
#: :func:`ltmpq.metrics.evaluate`: sensitivity = metric(float) - metric(one layer quantized).
#: KL metrics: mean KL(float || quantized) over all, head or tail classes. Hessian metrics:
#: HAWQ-V3's trace-weighted perturbation, of the plain or the tail-only loss.
ACCURACY_METRICS = ("overall", "head", "tail", "balanced", "worst_class", "deployment")
KL_METRICS = ("kl", "kl_head", "kl_tail")
SENSITIVITY_METRICS = ACCURACY_METRICS + KL_METRICS
HESSIAN_METRICS = ("hessian", "hessian_tail")
ALL_METRICS = SENSITIVITY_METRICS + HESSIAN_METRICS


@dataclass(frozen=True)
class MPQConfig:
    """Chapter 4's mixed precision: what is measured and which allocations are evaluated.

    Sensitivities: every layer quantized alone at each of ``choices`` on the validation split,
    plus ``hessian_samples`` Hutchinson probes per Hessian. The blog's rule ranks layers by
    their sensitivity at ``rule_bits[1]`` (the bits the rest keep) and gives the top ``k`` of
    ``rule_ks`` ``rule_bits[0]`` bits; it runs with ``rule_metrics`` for the heads in
    ``rule_heads``. The budgeted ILP picks from ``choices`` for each of ``budgets`` (average
    weight bits) and each of ``budget_metrics``, for the heads in ``budget_heads``;
    ``random_draws`` random maps per budget and per k are the controls, drawn with ``seed``.
    """

    choices: tuple[int, ...] = (3, 4, 5, 6, 8)
    rule_bits: tuple[int, int] = (6, 4)
    rule_ks: tuple[int, ...] = (4, 8, 12)
    rule_metrics: tuple[str, ...] = ("overall", "tail")
    rule_heads: tuple[str, ...] = ("baseline", "crt")
    budgets: tuple[float, ...] = (3.5, 4.0, 4.5, 5.0, 5.5, 6.0)
    budget_metrics: tuple[str, ...] = ("overall", "tail", "kl", "kl_tail", "hessian", "hessian_tail")
    budget_heads: tuple[str, ...] = ("crt",)
    random_draws: int = 3
    random_tolerance: float = 0.25
    hessian_samples: int = 32
    seed: int = 0
    # None: the traces use the whole validation split; n: the first n / classes images of each
    # class (a balanced subset; the traces cost grows with the images, the sweep's noise does not)
    hessian_images: int | None = None

    LATER_FIELDS: ClassVar[tuple[str, ...]] = ("hessian_images",)

    def __post_init__(self) -> None:
        if not self.choices:
            raise ValueError("choices (the bit-widths a layer may get) must not be empty")
        for name in ("choices", "rule_bits"):
            object.__setattr__(
                self, name, tuple(check_bits(b, f"{name} (bit-widths)") for b in getattr(self, name))
            )
        if len(self.rule_bits) != 2 or self.rule_bits[1] not in self.choices:
            raise ValueError(f"rule_bits must be (high, low) with low in choices, got {self.rule_bits!r}")
        if self.rule_bits[0] <= self.rule_bits[1]:
            raise ValueError(f"rule_bits must be (high, low) with high > low bits, got {self.rule_bits!r}")
        for m in self.rule_metrics:
            if m not in SENSITIVITY_METRICS:
                raise ValueError(f"unknown rule metric {m!r}; choose from {list(SENSITIVITY_METRICS)}")
        for m in self.budget_metrics:
            if m not in ALL_METRICS:
                raise ValueError(f"unknown budget metric {m!r}; choose from {list(ALL_METRICS)}")
        for name in ("rule_heads", "budget_heads"):
            unknown = [h for h in getattr(self, name) if h not in ALL_METHODS]
            if unknown:
                raise ValueError(f"unknown {name} {unknown}; choose from {list(ALL_METHODS)}")
        lo, hi = min(self.choices), max(self.choices)
        for b in self.budgets:
            if isinstance(b, bool) or not isinstance(b, int | float) or not lo <= b <= hi:
                raise ValueError(f"budget {b!r} average bits is outside what choices allow [{lo}, {hi}]")
        if any(isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= 32 for k in self.rule_ks):
            raise ValueError(
                f"rule_ks must be in [0, 32] (ints: how many layers get the high bits), got {self.rule_ks!r}"
            )
        check_number(self, "random_draws", int, 0)
        check_number(self, "hessian_samples", int, 2)
        check_number(self, "hessian_images", int, 1, optional=True)
        check_number(self, "random_tolerance", float, 0, lo_open=True)
        check_number(self, "seed", int, 0)


# --------------------------------------------------------------------------- run keys
# A downstream run is named by everything it depends on: its own config and the stage-1 run's.


@dataclass(frozen=True)
class DecoupledRun:
    """Chapter 2: stage 2 on the features of one stage-1 run."""

    stage1: Stage1Config
    decouple: DecoupleConfig

    @property
    def tag(self) -> str:
        return self.stage1.tag


@dataclass(frozen=True)
class QuantizedRun:
    """Chapter 3: one stage-1 run and its decoupled classifiers, quantized at uniform weight bits.

    ``bits`` lists the weight bit-widths swept (float is always included as the reference);
    ``keep_predictions`` stores the test predictions (for the paired tests and the flips).
    """

    stage1: Stage1Config
    decouple: DecoupleConfig
    quant: QuantConfig
    bits: tuple[int, ...]
    keep_predictions: bool = True

    @property
    def tag(self) -> str:
        q = self.quant
        parts = [self.stage1.tag, q.granularity, q.clipping] + ([] if q.fold_bn else ["unfolded"])
        if q.act_bits is not None:
            parts.append(f"a{q.act_bits}-{q.calibration}")
        return "-".join(parts)


@dataclass(frozen=True)
class MPQRun:
    """Chapter 4: sensitivities and mixed-precision allocations of one stage-1 run's heads."""

    stage1: Stage1Config
    decouple: DecoupleConfig
    quant: QuantConfig
    mpq: MPQConfig

    @property
    def tag(self) -> str:
        return self.stage1.tag


@dataclass(frozen=True)
class SensitivityRun:
    """What chapter 4's cached sensitivities depend on (not the allocations made from them)."""

    stage1: Stage1Config
    decouple: DecoupleConfig
    quant: QuantConfig
    choices: tuple[int, ...]
    heads: tuple[str, ...]
    hessian_samples: int
    hessian_metrics: tuple[str, ...]
    hessian_heads: tuple[str, ...]
    seed: int
    hessian_images: int | None = None

    LATER_FIELDS: ClassVar[tuple[str, ...]] = ("hessian_images",)


@dataclass(frozen=True)
class ExplainConfig:
    """Chapter 5's per-run measurements on the published weights: the default quantizer's W8A8
    model through a real integer runtime (``engine``, torch.ao's quantized CPU kernels) against
    its simulation on the test set, and per-class curvature (Hessian trace, gradient norm and the
    HAWQ term at ``bits``) of ``heads`` on ``val_images`` balanced validation images and on up to
    ``train_per_class`` training images of each class (baseline only), ``samples`` probes each."""

    engine: str = "x86"
    reduce_range: bool = False
    heads: tuple[str, ...] = ("baseline", "crt")
    val_images: int = 1000
    train_per_class: int = 100
    samples: int = 32
    bits: tuple[int, ...] = (4, 3)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.engine not in ("x86", "fbgemm"):  # the engines ltmpq.integer builds for
            raise ValueError(f"engine must be one of x86, fbgemm, got {self.engine!r}")
        if not isinstance(self.reduce_range, bool | np.bool_):
            raise ValueError(f"reduce_range must be True or False, got {self.reduce_range!r}")
        unknown = [h for h in self.heads if h not in METHODS]
        if unknown or not self.heads:
            raise ValueError(f"heads must be a non-empty list of {list(METHODS)}, got {list(self.heads)!r}")
        if "ncm" in self.heads:
            raise ValueError(
                "heads: NCM is not a linear classifier on the features; the integer runtime needs one"
            )
        object.__setattr__(self, "bits", tuple(check_bits(b, "bits") for b in self.bits))
        check_number(self, "val_images", int, 10)
        check_number(self, "train_per_class", int, 1)
        check_number(self, "samples", int, 2)
        check_number(self, "seed", int, 0)


@dataclass(frozen=True)
class ExplainRun:
    """Chapter 5: the integer-runtime check and per-class curvature of one stage-1 run."""

    stage1: Stage1Config
    decouple: DecoupleConfig
    quant: QuantConfig
    explain: ExplainConfig

    @property
    def tag(self) -> str:
        return self.stage1.tag


@dataclass(frozen=True)
class ModelSet:
    """A further model set of a profile (the chapter "Beyond VGG16 and cRT"): ``stage1``
    overrides the profile's stage-1 settings (``{}``: the profile's own models), ``seeds`` says
    which seeds are trained at each imbalance factor, ``sweep_ifs`` at which of them the models
    are quantized (None: at all)."""

    stage1: dict[str, Any]
    seeds: dict[float, tuple[int, ...]]
    sweep_ifs: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.stage1, dict):
            raise ValueError(f"a model set's stage1 must be a dict of stage-1 fields, got {self.stage1!r}")
        if not isinstance(self.seeds, dict) or not self.seeds:
            raise ValueError(f"a model set's seeds must map imbalance factors to seeds, got {self.seeds!r}")
        for f, ss in self.seeds.items():
            Stage1Config(imbalance_factor=f)  # a bad imbalance factor fails here
            if not isinstance(ss, tuple) or not ss or len(set(ss)) != len(ss):
                raise ValueError(f"seeds at IF {f:g} must be a non-empty tuple of distinct seeds, got {ss!r}")
        if self.sweep_ifs is not None and not set(self.sweep_ifs) <= set(self.seeds):
            raise ValueError(f"sweep_ifs {self.sweep_ifs!r} must be among the set's IFs {list(self.seeds)}")


@dataclass(frozen=True)
class Profile:
    """A named set of runs: which imbalance factors and seeds, and the run settings."""

    name: str
    imbalance_factors: tuple[float, ...]
    seeds: tuple[int, ...]
    stage1: dict[str, Any] = field(default_factory=dict)  # Stage1Config overrides
    decouple: DecoupleConfig = DecoupleConfig()
    quant: QuantConfig = QuantConfig()
    quant_bits: tuple[int, ...] = (8, 6, 5, 4, 3)  # chapter 3's uniform weight bit-widths
    mpq: MPQConfig = MPQConfig()
    mpq_ifs: tuple[float, ...] = (0.01,)  # chapter 4 studies the most imbalanced setting
    description: str = ""
    # the profile whose model set this one replaced: the book shows what changed from it
    predecessor: str | None = None
    explain: ExplainConfig = ExplainConfig()
    explain_ifs: tuple[float, ...] = ()  # chapter 5's per-run measurements (none: not run)
    hypothesis_ifs: tuple[float, ...] = ()  # chapter 5's quantizer hypotheses (none: not run)
    # chapter 5's scale ladder: named stage-1 overrides on top of ``stage1`` (each rung a model
    # set of its own at ``ladder_ifs`` x ``ladder_seeds``), quantized with ``ladder_variants``;
    # the profile's own models are the ladder's first rung
    ladder: dict[str, dict[str, Any]] = field(default_factory=dict)
    ladder_ifs: tuple[float, ...] = ()
    ladder_seeds: tuple[int, ...] = ()
    ladder_variants: tuple[str, ...] = ("default",)
    # the chapter "Winning the tail back": the MITIGATIONS sweeps of the profile's own models, at
    # ``mitigation_bits`` (None: ``quant_bits``)
    mitigation_ifs: tuple[float, ...] = ()
    mitigation_bits: tuple[int, ...] | None = None
    # the chapter "Beyond VGG16 and cRT": further model families and long-tail methods, each a
    # model set; their stage 2 adds ``family_methods`` (post-hoc logit adjustment), their sweeps
    # are ``family_variants``, their mixed precision runs at ``family_mpq_ifs`` with ``family_mpq``
    families: dict[str, ModelSet] = field(default_factory=dict)
    family_methods: tuple[str, ...] = EXTRA_METHODS
    family_variants: tuple[str, ...] = ("default", "naive: per-tensor affine W=A + logits")
    family_mpq: MPQConfig = MPQConfig()
    family_mpq_ifs: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        self.quant_configs(self.ladder_variants)  # unknown names fail here
        self.quant_configs(self.family_variants)
        self.family_decouple  # noqa: B018 (unknown methods fail here)
        allowed = {f.name for f in fields(Stage1Config)} - {"imbalance_factor", "seed"}
        for name, ms in self.families.items():
            unknown = sorted(set(ms.stage1) - allowed)
            if unknown:
                raise ValueError(
                    f"model set {name!r}: unknown stage-1 fields {unknown}; allowed: {sorted(allowed)}"
                )
            self.family_config(name, next(iter(ms.seeds)), 0)  # bad values fail here
        for rung, overrides in self.ladder.items():
            unknown = sorted(set(overrides) - allowed)
            if unknown:
                raise ValueError(
                    f"ladder rung {rung!r}: unknown stage-1 fields {unknown}; allowed: {sorted(allowed)}"
                )
            cfg = self.stage1_config(0.01, 0)
            replace(cfg, **overrides)  # bad values fail here
            if not overrides or all(getattr(cfg, k) == v for k, v in overrides.items()):
                raise ValueError(f"ladder rung {rung!r} must change the profile's model, got {overrides!r}")

    def quant_configs(self, names=None) -> dict[str, QuantConfig]:
        """Quantizer variants by name, from the profile's default: chapter 3's ablations
        (:data:`QUANT_ABLATIONS`, all of them when ``names`` is None), chapter 5's hypotheses
        (:data:`QUANT_HYPOTHESES`) or chapter 7's mitigations (:data:`MITIGATIONS`)."""
        names = list(QUANT_ABLATIONS) if names is None else list(names)
        known = QUANT_ABLATIONS | QUANT_HYPOTHESES | MITIGATIONS
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(
                f"unknown quantizer variants {unknown}; choose from chapter 3's {list(QUANT_ABLATIONS)}, "
                f"chapter 5's {list(QUANT_HYPOTHESES)} or chapter 7's {list(MITIGATIONS)}"
            )
        return {n: replace(self.quant, **known[n]) for n in names}

    def stage1_config(self, imbalance_factor: float, seed: int) -> Stage1Config:
        return Stage1Config(imbalance_factor=imbalance_factor, seed=seed, **self.stage1)

    def rung_config(self, base: Stage1Config, rung: str) -> Stage1Config:
        """The scale ladder's model ``rung`` (a name in ``ladder``) at ``base``'s IF and seed."""
        if rung not in self.ladder:
            raise ValueError(f"unknown ladder rung {rung!r}; profile {self.name!r} has {list(self.ladder)}")
        return replace(base, **self.ladder[rung])

    def ladder_rungs(self, base: Stage1Config) -> dict[str, Stage1Config]:
        """Every rung of the scale ladder at ``base``'s IF and seed, the profile's own model first."""
        return {self.ladder_base: base, **{r: self.rung_config(base, r) for r in self.ladder}}

    @property
    def ladder_base(self) -> str:
        """The name of the ladder's first rung: the profile's own models."""
        return f"width {self.stage1.get('width', Stage1Config.width):g}"

    def on_ladder(self, cfg: Stage1Config) -> bool:
        """Whether a run of the profile's own models is the first rung of the scale ladder."""
        return cfg.imbalance_factor in self.ladder_ifs and cfg.seed in self.ladder_seeds

    @property
    def family_decouple(self) -> DecoupleConfig:
        """Stage 2 of the model sets: the profile's, with ``family_methods`` added."""
        return replace(self.decouple, extra_methods=self.family_methods)

    def family_config(self, name: str, imbalance_factor: float, seed: int) -> Stage1Config:
        """The stage-1 config of model set ``name`` at one IF and seed."""
        if name not in self.families:
            raise ValueError(f"unknown model set {name!r}; profile {self.name!r} has {list(self.families)}")
        return replace(self.stage1_config(imbalance_factor, seed), **self.families[name].stage1)

    def stage1_configs(self, imbalance_factors=None, seeds=None) -> list[Stage1Config]:
        ifs = self.imbalance_factors if imbalance_factors is None else tuple(imbalance_factors)
        ss = self.seeds if seeds is None else tuple(seeds)
        return [self.stage1_config(f, s) for f in ifs for s in ss]


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        "smoke",
        imbalance_factors=(0.1, 0.01),
        seeds=(0, 1),
        stage1=dict(width=1 / 16, epochs=2, n_max=300, test_per_class=100, batch_size=64),
        decouple=DecoupleConfig(epochs=5),
        # IF 0.01 of 300 leaves 3 images in class 9: 20 calibration images fit every composition
        quant=QuantConfig(calibration_size=20),
        quant_bits=(8, 6, 4),
        mpq=MPQConfig(rule_ks=(8,), budgets=(4.0, 5.0), random_draws=1, hessian_samples=4),
        mpq_ifs=(0.1, 0.01),
        explain=ExplainConfig(val_images=50, train_per_class=5, samples=4, bits=(6, 4)),
        explain_ifs=(0.01,),
        hypothesis_ifs=(0.01,),
        ladder={"width 0.125": {"width": 0.125}, "classic classifier": {"hidden": 128, "dropout": 0.5}},
        ladder_ifs=(0.01,),
        ladder_seeds=(0, 1),
        ladder_variants=("default", "naive: per-tensor affine W=A + logits"),
        families={
            "VGG16": ModelSet({}, {0.1: (0, 1), 0.01: (0, 1)}, sweep_ifs=(0.01,)),
            "ResNet-32": ModelSet({"arch": "resnet32", "width": 0.25}, {0.01: (0, 1)}),
            "VGG16, LA loss": ModelSet({"loss": "logit_adjusted"}, {0.01: (0, 1)}),
        },
        # three bit choices and one budget head: the ResNet-32's 32 layers make the sweep the
        # smoke book's longest step
        family_mpq=MPQConfig(
            choices=(3, 4, 6),
            rule_ks=(8,),
            budgets=(4.0, 5.0),
            random_draws=1,
            budget_metrics=("overall", "tail"),
            rule_heads=("baseline", "crt", "logit_adj"),
            budget_heads=("crt",),
        ),
        family_mpq_ifs=(0.01,),
        mitigation_ifs=(0.01,),
        description="tiny model and data for tests; the whole book in minutes; numbers mean nothing",
    ),
    "cpu": Profile(
        "cpu",
        imbalance_factors=(0.1, 0.02, 0.01),
        seeds=(0, 1, 2, 3, 4),
        # chosen on the validation split (ltmpq.recipe, appendix "The v2 model set")
        stage1=dict(width=0.25, val_per_class=300, epochs=60, schedule="onecycle", precision="bf16"),
        decouple=DecoupleConfig(weight_decay=5e-3),
        # Hessian traces on 100 images per class: a third of the cost of the whole split; the
        # sweep (the noisy part, appendix) still uses all 3,000 validation images
        mpq=MPQConfig(hessian_images=1000),
        mpq_ifs=(0.1, 0.02, 0.01),
        explain_ifs=(0.01,),
        hypothesis_ifs=(0.1, 0.02, 0.01),
        # width 0.5 costs ~4x width 0.25 per image; the classic VGG16 classifier (two 4096-wide
        # layers with dropout) at the book's width; both with the default quantizer and the
        # hypothesis closest to the blog's 6-bit cells (chapter 5 checks that it still is)
        # (width 1.0, the blog's, is a GPU job: ~16x width 0.25 per image)
        ladder={
            "width 0.5": {"width": 0.5},
            "width 1.0": {"width": 1.0},
            "classic classifier": {"hidden": 4096, "dropout": 0.5},
        },  # fmt: skip
        ladder_ifs=(0.01,),
        ladder_seeds=(0, 1, 2),
        ladder_variants=("default", "naive: per-tensor affine W=A + logits"),
        # the chapter "Beyond VGG16 and cRT": the book's own VGG16s (stage 2 adds post-hoc logit
        # adjustment), the CIFAR-LT literature's ResNet-32 and the VGG16 trained with the
        # logit-adjusted loss; the v2 recipe, in fp32 where the machine that trained them had no
        # bf16 arithmetic (emulated bf16 is several times slower than fp32 there)
        families={
            "VGG16": ModelSet({}, {f: (0, 1, 2, 3, 4) for f in (0.1, 0.02, 0.01)}, sweep_ifs=(0.01,)),
            "ResNet-32": ModelSet(
                {"arch": "resnet32", "width": 1.0, "precision": "fp32"},
                {0.01: (0, 1, 2, 3, 4), 0.1: (0, 1, 2)},
            ),
            "VGG16, LA loss": ModelSet(
                {"loss": "logit_adjusted", "precision": "fp32"}, {0.01: (0, 1, 2, 3, 4)}
            ),
        },
        family_mpq=MPQConfig(
            hessian_images=1000,
            budget_metrics=("overall", "tail", "kl", "kl_tail"),
            rule_heads=("baseline", "crt", "logit_adj"),
            budget_heads=("crt", "logit_adj"),
        ),
        family_mpq_ifs=(0.01,),
        mitigation_ifs=(0.01,),
        mitigation_bits=(6, 4, 3),  # the blog's 6, mixed precision's 4, and where rounding breaks
        description="the published book (v2 model set): real CIFAR-10-LT, VGG16 at width 0.25, "
        "recipe chosen on validation, fits 2 CPU cores",
        predecessor="cpu-v1",
    ),
    # The first published model set, kept so that the book can show what changed (appendix
    # "The v2 model set", chapter 4's verdicts v1 -> v2); its results live in results/cpu-v1/.
    "cpu-v1": Profile(
        "cpu-v1",
        imbalance_factors=(0.1, 0.02, 0.01),
        seeds=(0, 1, 2, 3, 4),
        stage1=dict(width=0.25, epochs=30),
        description="the v1 model set (30 epochs, cosine, fp32; chapter 4 at IF 0.01 only), "
        "kept for the v1 -> v2 comparisons",
    ),
    "paper": Profile(
        "paper",
        imbalance_factors=(0.1, 0.02, 0.01),
        seeds=(0, 1, 2),
        stage1=dict(width=1.0, epochs=200, lr=0.1, warmup_epochs=5, precision="bf16"),
        description="the blog's scale (VGG16 width 1.0, 200 epochs): a GPU job",
    ),
}


def get_profile(name: str) -> Profile:
    """Look up a profile by name, with an error that lists the allowed names."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[name]


def with_overrides(cfg: Any, **overrides: Any) -> Any:
    """``dataclasses.replace`` with an error naming unknown fields."""
    allowed = {f.name for f in fields(cfg)}
    unknown = set(overrides) - allowed
    if unknown:
        raise ValueError(f"unknown config fields {sorted(unknown)}; allowed: {sorted(allowed)}")
    return replace(cfg, **overrides)
