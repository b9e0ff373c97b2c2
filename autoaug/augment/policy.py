"""Augmentation policies: frozen dataclasses keyed by op name, with a JSON round-trip.

The named ones are in :mod:`autoaug.augment.presets`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Any

from autoaug.augment.ops import OPS, get_op
from autoaug.augment.schedule import Schedule
from autoaug.data.names import GENERATORS
from autoaug.errors import AutoaugError, choice_error
from autoaug.files import write_text

SAMPLING = ("uniform", "fixed")


def _unit(what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise AutoaugError(f"{what} {value!r} is outside [0, 1]")
    return float(value)


@dataclass(frozen=True)
class OpConfig:
    """How one op is applied.

    ``magnitude`` in ``[0, 1]`` (the registry maps it to physical units); ``probability`` that an image
    selected for the op gets it; ``sampling``: ``uniform`` draws each image's magnitude from
    ``U(0, magnitude)``, ``fixed`` uses ``magnitude`` itself. Signed ops draw the sign per image.
    ``schedule``: this op's own (parametric) magnitude schedule, in place of the policy's.
    """

    magnitude: float = 0.0
    probability: float = 1.0
    sampling: str = "uniform"
    schedule: Schedule | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "magnitude", _unit("magnitude", self.magnitude))
        object.__setattr__(self, "probability", _unit("probability", self.probability))
        if self.sampling not in SAMPLING:
            raise choice_error("sampling", self.sampling, SAMPLING)
        if isinstance(self.schedule, Mapping):
            object.__setattr__(self, "schedule", Schedule.from_dict(self.schedule))
        if self.schedule is not None and self.schedule.adaptive:
            raise AutoaugError(f"an op's own schedule must be parametric, not {self.schedule.kind!r}; "
                               f"adaptive schedules apply to the whole policy")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"magnitude": self.magnitude, "probability": self.probability, "sampling": self.sampling}
        if self.schedule is not None:
            d["schedule"] = self.schedule.to_dict()
        return d


OP_KEYS = ("magnitude", "probability", "sampling", "schedule")


def _ops_from_dict(ops: Any) -> dict[str, OpConfig]:
    if not isinstance(ops, Mapping):
        raise AutoaugError(f"policy 'ops' must map op names to settings, got {type(ops).__name__}")
    configs = {}
    for op_name, cfg in ops.items():
        get_op(op_name)
        extra = sorted(set(cfg) - set(OP_KEYS)) if isinstance(cfg, Mapping) else []
        if not isinstance(cfg, Mapping) or extra:
            raise AutoaugError(f"op {op_name!r}: settings must be an object with {', '.join(OP_KEYS)}; "
                               f"got {extra[0] if extra else cfg!r}")
        try:
            configs[op_name] = OpConfig(**cfg)
        except AutoaugError as e:
            raise AutoaugError(f"op {op_name!r}: {e}") from None
    return configs


def _canonical(ops: Mapping[str, OpConfig | Mapping[str, Any]]) -> Mapping[str, OpConfig]:
    """``ops`` in registry order (so equal policies compare and serialize equal), as :class:`OpConfig`."""
    for op_name in ops:
        get_op(op_name)  # raises for an unknown op
    return MappingProxyType({name: ops[name] if isinstance(ops[name], OpConfig) else OpConfig(**ops[name])
                             for name in OPS if name in ops})


@dataclass(frozen=True)
class Synthetic:
    """Mix generated images into training: ``ratio`` of every batch comes from the class-conditional
    ``generator`` (:mod:`autoaug.data.synthetic`, trained for ``epochs``) with uniformly drawn labels; ``augment``:
    whether those images also go through the policy's ops."""

    ratio: float = 0.0
    generator: str = "vae"
    augment: bool = True
    epochs: int = 20

    def __post_init__(self) -> None:
        ok = isinstance(self.ratio, int | float) and not isinstance(self.ratio, bool) and 0.0 <= self.ratio < 1.0
        if not ok:
            raise AutoaugError(f"synthetic ratio {self.ratio!r} is outside [0, 1)")
        object.__setattr__(self, "ratio", float(self.ratio))
        if self.generator not in GENERATORS:
            raise choice_error("generator", self.generator, GENERATORS)
        if not isinstance(self.augment, bool):
            raise AutoaugError(f"synthetic augment {self.augment!r} must be true or false")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise AutoaugError(f"synthetic epochs {self.epochs!r} must be a positive integer")


MIXES = ("mixup", "cutmix")


@dataclass(frozen=True)
class Mix:
    """Mix pairs of images of a batch, with soft targets: ``mixup`` blends whole images, ``cutmix`` pastes a box of
    the partner image (:mod:`autoaug.augment.mix`). The share ``lam`` of the own image is drawn per batch from
    Beta(``alpha``, ``alpha``); a batch is mixed with ``probability``."""

    kind: str = "mixup"
    alpha: float = 1.0
    probability: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in MIXES:
            raise choice_error("mix", self.kind, MIXES)
        ok = isinstance(self.alpha, int | float) and not isinstance(self.alpha, bool) and 0 < self.alpha <= 10
        if not ok:
            raise AutoaugError(f"mix alpha {self.alpha!r} is out of range; allowed: above 0 up to 10")
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "probability", _unit("mix probability", self.probability))


@dataclass(frozen=True)
class Step:
    """One op of a sub-policy: applied with ``probability`` at the fixed normalized ``magnitude`` (signed ops draw
    the sign per image)."""

    op: str
    probability: float
    magnitude: float = 0.0

    def __post_init__(self) -> None:
        get_op(self.op)
        object.__setattr__(self, "probability", _unit("probability", self.probability))
        object.__setattr__(self, "magnitude", _unit("magnitude", self.magnitude))


def _mix(value: Any) -> Mix | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) - {"kind", "alpha", "probability"}:
        raise AutoaugError(f"policy 'mix' must be an object with kind, alpha, probability; got {value!r}")
    return Mix(**value)


def _subpolicies(value: Any) -> tuple[tuple[Step, ...], ...]:
    """Sub-policies from JSON (lists of ``{op, probability, magnitude}``) or :class:`Step` tuples, validated."""
    if not isinstance(value, list | tuple) or not all(isinstance(sub, list | tuple) and sub for sub in value):
        raise AutoaugError("policy 'subpolicies' must be a list of non-empty lists of steps")
    out = []
    for sub in value:
        steps = []
        for step in sub:
            if isinstance(step, Mapping):
                if set(step) - {"op", "probability", "magnitude"} or "op" not in step:
                    raise AutoaugError(f"a sub-policy step must be an object with op, probability, magnitude; "
                                       f"got {dict(step)!r}")
                step = Step(**step)
            if not isinstance(step, Step):
                raise AutoaugError(f"a sub-policy step must be an object with op, probability, magnitude; got {step!r}")
            steps.append(step)
        out.append(tuple(steps))
    return tuple(out)


@dataclass(frozen=True)
class Stage:
    """From training progress ``start`` on, ``ops`` replace the policy's ops (a replayed PBT schedule)."""

    start: float
    ops: Mapping[str, OpConfig]

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _unit("stage start", self.start))
        object.__setattr__(self, "ops", _canonical(self.ops))


@dataclass(frozen=True)
class Policy:
    """Which ops, with which magnitude and probability, how many per image, and the magnitude schedule.

    ``base``: ops applied first, each independently with its probability, at their own magnitude (the policy's
    schedule does not scale them; an op's own schedule does) — the always-on standards such as pad-and-crop
    and horizontal flip. Then the sampled layer, ``ops``: with ``n_ops=None`` every op is applied independently
    with its probability (a pipeline, in registry order); with ``n_ops=k`` each image draws ``k`` distinct ops
    uniformly from ``ops`` (RandAugment-style), then each drawn op applies with its probability.
    ``stages``: ops that replace ``ops`` from a given training progress on (starts increasing, above 0).
    ``synthetic``: generated images mixed into every training batch (``None``: none).
    ``subpolicies``: after the sampled layer, each image draws one sub-policy uniformly and applies its steps in
    order (AutoAugment's form). ``mix``: last, pairs of images of a training batch are mixed (MixUp, CutMix).
    """

    ops: Mapping[str, OpConfig] = field(default_factory=dict)
    n_ops: int | None = None
    schedule: Schedule = field(default_factory=Schedule)
    name: str = "custom"
    stages: tuple[Stage, ...] = ()
    synthetic: Synthetic | None = None
    base: Mapping[str, OpConfig] = field(default_factory=dict)
    subpolicies: tuple[tuple[Step, ...], ...] = ()
    mix: Mix | None = None

    def __post_init__(self) -> None:
        if isinstance(self.mix, Mapping):
            object.__setattr__(self, "mix", Mix(**self.mix))
        if self.subpolicies:
            object.__setattr__(self, "subpolicies", _subpolicies(self.subpolicies))
        ops = _canonical(self.ops)
        object.__setattr__(self, "ops", ops)
        object.__setattr__(self, "base", _canonical(self.base))
        stages = tuple(s if isinstance(s, Stage) else Stage(**s) for s in self.stages)
        object.__setattr__(self, "stages", stages)
        starts = [0.0] + [s.start for s in stages]
        if any(b <= a for a, b in pairwise(starts)):
            raise AutoaugError(f"stage starts {starts[1:]} must increase and lie above 0")
        most = max([len(ops), *(len(s.ops) for s in stages), 1])
        if self.n_ops is not None and not (isinstance(self.n_ops, int) and 1 <= self.n_ops <= most):
            raise AutoaugError(f"n_ops {self.n_ops!r} is out of range; allowed: null or 1 to {most}")

    def at(self, progress: float) -> Policy:
        """The policy in force at ``progress`` (``self`` when there are no stages)."""
        if not self.stages:
            return self
        ops = self.ops
        for stage in self.stages:
            if stage.start <= progress:
                ops = stage.ops
        return replace(self, ops=ops, stages=())

    @property
    def augments(self) -> bool:
        """Whether the policy changes images at all."""
        return bool(self.base or self.ops or self.subpolicies or any(s.ops for s in self.stages))

    @property
    def mixes(self) -> bool:
        """Whether training batches are mixed (:attr:`mix`)."""
        return self.mix is not None and self.mix.probability > 0

    def base_magnitudes(self, progress: float) -> dict[str, float]:
        """Each base op's magnitude at ``progress`` (its own schedule, else constant)."""
        return {name: min(cfg.magnitude * (cfg.schedule.factor(progress) if cfg.schedule else 1.0), 1.0)
                for name, cfg in self.base.items() if OPS[name].has_magnitude}

    def magnitudes(self, progress: float, factor: float | None = None) -> dict[str, float]:
        """Each op's scheduled magnitude at ``progress`` (the policy-wide ``factor`` in place of its
        schedule's when given); ops without a magnitude are left out."""
        policy = self.at(progress)
        if factor is None:
            factor = policy.schedule.factor(progress)
        return {name: min(cfg.magnitude * (cfg.schedule.factor(progress) if cfg.schedule else factor), 1.0)
                for name, cfg in policy.ops.items() if OPS[name].has_magnitude}

    # ------------------------------------------------------------------------------------ serialization
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name}
        if self.base:
            d["base"] = {k: c.to_dict() for k, c in self.base.items()}
        d |= {"n_ops": self.n_ops, "ops": {k: c.to_dict() for k, c in self.ops.items()},
              "schedule": self.schedule.to_dict()}
        if self.stages:
            d["stages"] = [{"start": s.start, "ops": {k: c.to_dict() for k, c in s.ops.items()}} for s in self.stages]
        if self.subpolicies:
            d["subpolicies"] = [[asdict(step) for step in sub] for sub in self.subpolicies]
        if self.mix is not None:
            d["mix"] = asdict(self.mix)
        if self.synthetic is not None:
            d["synthetic"] = asdict(self.synthetic)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Policy:
        if not isinstance(d, Mapping):
            raise AutoaugError(f"a policy must be a JSON object, got {type(d).__name__}")
        keys = ("name", "base", "n_ops", "ops", "schedule", "stages", "subpolicies", "mix", "synthetic")
        unknown = sorted(set(d) - set(keys))
        if unknown:
            raise AutoaugError(f"unknown policy key {unknown[0]!r}; allowed: {', '.join(keys)}")
        synthetic = d.get("synthetic")
        if synthetic is not None and (not isinstance(synthetic, Mapping)
                                      or set(synthetic) - {"ratio", "generator", "augment", "epochs"}):
            raise AutoaugError(f"policy 'synthetic' must be an object with ratio, generator, augment, epochs; "
                               f"got {synthetic!r}")
        stages = d.get("stages", [])
        if not isinstance(stages, list) or not all(isinstance(s, Mapping) and set(s) == {"start", "ops"}
                                                   for s in stages):
            raise AutoaugError("policy 'stages' must be a list of objects with 'start' and 'ops'")
        return cls(ops=_ops_from_dict(d.get("ops", {})), n_ops=d.get("n_ops"), base=_ops_from_dict(d.get("base", {})),
                   schedule=Schedule.from_dict(d.get("schedule", {})), name=str(d.get("name", "custom")),
                   stages=tuple(Stage(s["start"], _ops_from_dict(s["ops"])) for s in stages),
                   subpolicies=_subpolicies(d["subpolicies"]) if "subpolicies" in d else (),
                   mix=_mix(d.get("mix")),
                   synthetic=Synthetic(**synthetic) if synthetic is not None else None)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the policy as JSON (atomically: a crash never leaves a half-written file)."""
        path = Path(path)
        write_text(path, self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Policy:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise AutoaugError(f"policy file {str(path)!r} does not exist") from None
        except IsADirectoryError:
            raise AutoaugError(f"policy file {str(path)!r} is a folder; give a policy JSON file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise AutoaugError(f"policy file {str(path)!r} is not valid JSON: {e}") from None
        try:
            return cls.from_dict(d)
        except AutoaugError as e:
            raise AutoaugError(f"policy file {str(path)!r}: {e}") from None
