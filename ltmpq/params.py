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


def _integer(name: str, value, lo: int) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer) or value < lo:
        raise ValueError(f"{name} must be an int >= {lo}, got {value!r}")
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
            seeds = tuple(_integer("seeds", s, 0) for s in _sequence("seeds", self.seeds, "[0, 1]"))
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
        object.__setattr__(self, "n_boot", _integer("n_boot", self.n_boot, 100))

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
        object.__setattr__(self, "n_splits", _integer("n_splits", self.n_splits, 1))
        object.__setattr__(self, "n_boot", _integer("n_boot", self.n_boot, 100))
