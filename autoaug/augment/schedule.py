"""Magnitude schedules: a factor in ``[0, 1]`` that multiplies op magnitudes over training.

Parametric kinds are pure functions of training progress (``factor(progress)``). Adaptive kinds
(``feedback``, ``augnet``) are driven by the training state at run time by the controllers in
:mod:`autoaug.augment.adaptive`; here they are only named and validated, so a policy file can hold them.
"""

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


def _step(p: float, start: float = 0.0, end: float = 1.0, at: float = 0.5) -> float:
    return start if p < at else end


def _warmup(p: float, warmup: float = 0.2) -> float:
    return 1.0 if p >= warmup else p / warmup


@dataclass(frozen=True)
class Param:
    """One schedule parameter: its allowed range, and whether it is an integer."""

    low: float = 0.0
    high: float = 1.0
    integer: bool = False


UNIT = Param()
SCHEDULES: dict[str, Callable[..., float]] = {
    "constant": _constant, "linear": _linear, "cosine": _cosine, "step": _step, "warmup": _warmup,
}
ADAPTIVE = ("feedback", "augnet")
PARAMS: dict[str, dict[str, Param]] = {
    "constant": {},
    "linear": {"start": UNIT, "end": UNIT},
    "cosine": {"start": UNIT, "end": UNIT},
    "step": {"start": UNIT, "end": UNIT, "at": UNIT},
    "warmup": {"warmup": Param(0.01, 1.0)},
    # feedback: level starts at `start`; up by `up` after `window` readings of val-loss decrease, each by more
    # than `tol` (relative); down by `down` when the val loss did not fall by `tol` over the window. A reading
    # after every epoch, or with `every` > 0 every `every` batches (on 1,024 validation images).
    "feedback": {"start": UNIT, "window": Param(1, 10, True), "tol": Param(0.0, 0.2), "up": UNIT, "down": UNIT,
                 "every": Param(0, 100_000, True)},
    # augnet: a new draw from the net every `segment` batches; `sigma`: exploration std in logit space.
    "augnet": {"segment": Param(1, 1000, True), "sigma": Param(0.01, 2.0), "holdout": Param(16, 4096, True)},
}
DEFAULTS: dict[str, dict[str, float]] = {
    "feedback": {"start": 0.0, "window": 2, "tol": 0.01, "up": 0.25, "down": 0.25, "every": 0},
    "augnet": {"segment": 20, "sigma": 0.5, "holdout": 256},
}


@dataclass(frozen=True)
class Schedule:
    """``kind`` from :data:`PARAMS` and its parameters (missing ones take :data:`DEFAULTS`)."""

    kind: str = "constant"
    params: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in PARAMS:
            raise choice_error("schedule", self.kind, PARAMS)
        specs = PARAMS[self.kind]
        unknown = sorted(set(self.params) - set(specs))
        if unknown:
            raise AutoaugError(f"schedule {self.kind!r} has no parameter {unknown[0]!r}; "
                               f"allowed: {', '.join(specs) or 'none'}")
        params = {**DEFAULTS.get(self.kind, {}), **self.params}
        for k, v in params.items():
            spec = specs[k]
            ok = isinstance(v, int | float) and not isinstance(v, bool) and spec.low <= v <= spec.high
            if not ok or (spec.integer and v != int(v)):
                kind = "an integer" if spec.integer else "a number"
                raise AutoaugError(f"schedule {self.kind!r}: {k}={v!r} must be {kind} in [{spec.low:g}, {spec.high:g}]")
            params[k] = int(v) if spec.integer else float(v)
        object.__setattr__(self, "params", MappingProxyType(params))

    @property
    def adaptive(self) -> bool:
        """True for kinds driven by the training state (see :mod:`autoaug.augment.adaptive`)."""
        return self.kind in ADAPTIVE

    def factor(self, progress: float) -> float:
        """Magnitude multiplier at ``progress`` (fraction of training done, clamped to ``[0, 1]``).
        Adaptive kinds give their starting factor (``feedback``) or 1 (``augnet``)."""
        if self.kind == "feedback":
            return self.params["start"]
        if self.kind == "augnet":
            return 1.0
        return SCHEDULES[self.kind](min(max(float(progress), 0.0), 1.0), **self.params)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.params}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Schedule:
        if not isinstance(d, Mapping):
            raise AutoaugError(f"a schedule must be an object with 'kind' and its parameters, got {d!r}")
        d = dict(d)
        return cls(kind=d.pop("kind", "constant"), params=d)
