"""Magnitude schedules: a factor in ``[0, 1]`` (or above) that multiplies every op magnitude over training."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from autoaug.errors import AutoaugError, choice_error


def _constant(p: float) -> float:
    return 1.0


def _linear(p: float, start: float = 0.0, end: float = 1.0) -> float:
    return start + (end - start) * p


def _cosine(p: float, start: float = 0.0, end: float = 1.0) -> float:
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * p))


SCHEDULES: dict[str, Callable[..., float]] = {"constant": _constant, "linear": _linear, "cosine": _cosine}
PARAMS: dict[str, tuple[str, ...]] = {"constant": (), "linear": ("start", "end"), "cosine": ("start", "end")}


@dataclass(frozen=True)
class Schedule:
    """``kind`` from :data:`SCHEDULES` and its parameters; ``factor(progress)`` for progress in ``[0, 1]``."""

    kind: str = "constant"
    params: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise choice_error("schedule", self.kind, SCHEDULES)
        unknown = sorted(set(self.params) - set(PARAMS[self.kind]))
        if unknown:
            raise AutoaugError(f"schedule {self.kind!r} has no parameter {unknown[0]!r}; "
                               f"allowed: {', '.join(PARAMS[self.kind]) or 'none'}")
        for k, v in self.params.items():
            if not isinstance(v, int | float) or not 0.0 <= v <= 1.0:
                raise AutoaugError(f"schedule {self.kind!r}: {k}={v!r} is outside [0, 1]")
        object.__setattr__(self, "params", MappingProxyType({k: float(v) for k, v in self.params.items()}))

    def factor(self, progress: float) -> float:
        """Magnitude multiplier at ``progress`` (fraction of training done, clamped to ``[0, 1]``)."""
        return SCHEDULES[self.kind](min(max(float(progress), 0.0), 1.0), **self.params)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.params}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Schedule:
        d = dict(d)
        return cls(kind=d.pop("kind", "constant"), params=d)
