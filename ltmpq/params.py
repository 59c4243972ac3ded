"""A chapter's parameters cell, frozen into a checked object as soon as it has run.

Papermill passes parameters as YAML, so a typo arrives as a value of the wrong type: ``-p compute
Flase`` is the string ``"Flase"`` and ``-p seeds 0`` the int ``0``. Every field is checked here
and a wrong one named with what is allowed; nothing is coerced by truthiness. Unknown parameter
names are refused before a chapter runs (:func:`ltmpq.tools.execute.execute_chapter`).
Used by chapters 0-4.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .config import QUANT_ABLATIONS, Profile, get_profile


def _sequence(name: str, value, example: str) -> tuple:
    """``value`` as a tuple when it is a list, tuple or 1-d array; an error naming it otherwise."""
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = value.tolist()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a list such as {example} or None (the profile's), got {value!r}")
    if not value:
        raise ValueError(f"{name} must be None (the profile's) or non-empty, got {value!r}")
    return tuple(value)


#: Upper bounds: past them a chapter runs for hours or exhausts memory, and nothing is gained.
#: A seed seeds torch and numpy (torch.manual_seed overflows past 2**64; chapter 2 seeds with
#: ``seed * 1000 + stream``): numpy's classic 32-bit range is plenty.
MAX_SEED = 2**32 - 1
#: Resamples of the paired bootstrap (chapter 3: one test per IF x method x bit-width, 75 on the
#: cpu profile; chapter 4: six). Each test draws, per class, an n_boot x images-per-class index
#: matrix (50,000 x 1,000 test images: 400 MB) and takes ~5 s at 50,000 on 2 cores, so chapter 3
#: stays within minutes; the p-values' resolution, 1 / (n_boot + 1), is already 0.0005 at 2,000.
MAX_N_BOOT = 50_000
#: Split-halves per seed of chapter 4's rank stability, ~7 ms each; chapter 4 runs them for
#: ~25 seed groups on the cpu profile (its IF, every IF, the previous model set): ~6 min at 2,000.
MAX_N_SPLITS = 2_000


def _integer(name: str, value, lo: int, hi: int) -> int:
    """``value`` as a plain int in [lo, hi]; bools and non-integers are refused."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an int in [{lo}, {hi}], got {value!r}")
    if value < lo:  # the historical message, kept for a value below the range
        raise ValueError(f"{name} must be an int >= {lo}, got {value!r}")
    if value > hi:
        raise ValueError(f"{name} must be an int in [{lo}, {hi}], got {value!r}")
    return int(value)


@dataclass(frozen=True)
class ChapterParams:
    """The parameters every chapter has: which profile's results, whether missing runs may be
    computed, and which imbalance factors and seeds (None: the profile's)."""

    profile: str = "cpu"
    compute: bool = False
    imbalance_factors: tuple[float, ...] | None = None
    seeds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.profile, str):
            raise ValueError(f"profile must be a profile name, got {self.profile!r}")
        get_profile(self.profile)  # raises with the allowed names
        if not isinstance(self.compute, bool | np.bool_):
            raise ValueError(f"compute must be True or False, got {self.compute!r}")
        object.__setattr__(self, "compute", bool(self.compute))
        if self.imbalance_factors is not None:
            ifs = _sequence("imbalance_factors", self.imbalance_factors, "[0.1, 0.01]")
            for f in ifs:
                if (
                    isinstance(f, bool | np.bool_)
                    or not isinstance(f, int | float | np.number)
                    or not 0 < f <= 1
                ):
                    raise ValueError(f"imbalance_factors must be numbers in (0, 1], got {f!r} in {list(ifs)}")
            # plain floats: numpy scalars do not hash as JSON, and 1 and 1.0 are one run
            object.__setattr__(self, "imbalance_factors", tuple(float(f) for f in ifs))
        if self.seeds is not None:
            seeds = tuple(_integer("seeds", s, 0, MAX_SEED) for s in _sequence("seeds", self.seeds, "[0, 1]"))
            if len(set(seeds)) != len(seeds):
                raise ValueError(f"seeds must not repeat a seed, got {list(seeds)}")
            object.__setattr__(self, "seeds", seeds)

    @property
    def prof(self) -> Profile:
        return get_profile(self.profile)

    @property
    def ifs(self) -> tuple[float, ...]:
        return self.imbalance_factors or self.prof.imbalance_factors

    @property
    def seed_list(self) -> tuple[int, ...]:
        return self.seeds or self.prof.seeds

    def configs(self):
        return self.prof.stage1_configs(self.ifs, self.seed_list)


@dataclass(frozen=True)
class QuantizationParams(ChapterParams):
    """Chapter 3's: also the quantizer variants to show and the bootstrap resamples."""

    variants: tuple[str, ...] | None = None
    n_boot: int = 2000

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.variants is not None:
            variants = _sequence("variants", self.variants, "['default', 'per-tensor']")
            unknown = [v for v in variants if v not in QUANT_ABLATIONS]
            if unknown:
                raise ValueError(f"unknown quantizer variants {unknown}; choose from {list(QUANT_ABLATIONS)}")
            object.__setattr__(self, "variants", variants)
        object.__setattr__(self, "n_boot", _integer("n_boot", self.n_boot, 100, MAX_N_BOOT))

    @property
    def variant_names(self) -> list[str]:
        """The variants shown, the default first (every comparison is against it)."""
        chosen = self.variants or tuple(QUANT_ABLATIONS)
        return ["default"] + [v for v in chosen if v != "default"]


@dataclass(frozen=True)
class MitigationParams(ChapterParams):
    """Chapter 4's: also the rule's k, the split-halves and the bootstrap resamples."""

    rule_k: int = 8
    n_splits: int = 200
    n_boot: int = 2000

    def __post_init__(self) -> None:
        super().__post_init__()
        ks = self.prof.mpq.rule_ks
        if isinstance(self.rule_k, bool | np.bool_) or self.rule_k not in ks:
            raise ValueError(
                f"rule_k={self.rule_k!r} was not run; the profile's MPQ runs have k in {list(ks)}"
            )
        object.__setattr__(self, "rule_k", int(self.rule_k))
        object.__setattr__(self, "n_splits", _integer("n_splits", self.n_splits, 1, MAX_N_SPLITS))
        object.__setattr__(self, "n_boot", _integer("n_boot", self.n_boot, 100, MAX_N_BOOT))


@dataclass(frozen=True)
class FamiliesParams(ChapterParams):
    """The chapter "Beyond VGG16 and cRT": also the rule's k (of the model sets' mixed
    precision) and chapter 4's split-halves for the ranking part of claim 4."""

    rule_k: int = 8
    n_splits: int = 200

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.prof.families:
            raise ValueError(f"profile {self.profile!r} has no model sets beyond its own (Profile.families)")
        ks = self.prof.family_mpq.rule_ks
        if isinstance(self.rule_k, bool | np.bool_) or self.rule_k not in ks:
            raise ValueError(
                f"rule_k={self.rule_k!r} was not run; the model sets' MPQ runs have k in {list(ks)}"
            )
        object.__setattr__(self, "rule_k", int(self.rule_k))
        object.__setattr__(self, "n_splits", _integer("n_splits", self.n_splits, 1, MAX_N_SPLITS))
