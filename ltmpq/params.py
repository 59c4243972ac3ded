"""A chapter's parameters cell, frozen into a checked object as soon as it has run.

Used by chapters 0-4.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Profile, get_profile


@dataclass(frozen=True)
class ChapterParams:
    """A notebook's parameters cell, frozen and checked as soon as it has run."""

    profile: str = "cpu"
    compute: bool = False
    imbalance_factors: tuple[float, ...] | None = None
    seeds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        get_profile(self.profile)  # raises with the allowed names
        for name, kind in (("imbalance_factors", float), ("seeds", int)):
            v = getattr(self, name)
            if v is not None:
                v = tuple(kind(x) for x in v)  # plain numbers: numpy scalars do not hash as JSON
                object.__setattr__(self, name, v)
                if not v:
                    raise ValueError(f"{name} must be None (the profile's) or non-empty, got {v!r}")

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
