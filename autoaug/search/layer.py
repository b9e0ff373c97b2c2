"""The compact space's layer (:func:`autoaug.augment.presets.layered`): a base layer, ops per image at one global
magnitude in a style, op groups' probabilities, and a batch layer (MixUp, CutMix); Optuna samples it, and a policy
of that form reads back as its point."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from autoaug.augment.ops import OPS
from autoaug.augment.policy import Mix, OpConfig, Policy
from autoaug.augment.presets import BASES, GROUPS, STYLES, layered
from autoaug.augment.schedule import Schedule

Range = tuple[float, float]


@dataclass(frozen=True)
class Layer:
    """The compact space (:func:`autoaug.augment.presets.layered`): the base layers it may choose (and cutout in it,
    with its size and probability, where ``cutout`` gives a range), the range of ops per
    image, of the global magnitude (or of each group's), the styles, each op group's probability range, and the
    batch layer's mixes
    (MixUp, CutMix) with the ranges of their alpha and of the share of batches mixed."""

    bases: tuple[str, ...] = ("none", "cropflip")
    n_ops: tuple[int, int] = (0, 3)
    magnitude: Range = (0.0, 1.0)
    styles: tuple[str, ...] = STYLES
    groups: Mapping[str, Range] = field(default_factory=lambda: dict.fromkeys(GROUPS, (0.0, 1.0)))
    per_group_magnitude: bool = False  # a magnitude for each op group instead of one global one
    cutout: Range | None = None  # cutout in the base layer: the range of its normalized size (None: not searched)
    cutout_probability: Range = (0.0, 1.0)
    mixes: tuple[str, ...] = ("none",)  # none, mixup, cutmix: the batch layer's choices
    mix_alpha: Range = (1.0, 1.0)
    mix_probability: Range = (1.0, 1.0)

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Every dimension, always (a point with no ops per image ignores the others)."""
        params: dict[str, Any] = {
            "base": trial.suggest_categorical("base", list(self.bases)),
            "n_ops": trial.suggest_int("n_ops", *self.n_ops),
            **{key: trial.suggest_float(key, *self.magnitude) for key in self._magnitude_keys()},
            "style": trial.suggest_categorical("style", list(self.styles)),
        }
        if self.cutout is not None:
            params["cutout.magnitude"] = trial.suggest_float("cutout.magnitude", *self.cutout)
            params["cutout.probability"] = trial.suggest_float("cutout.probability", *self.cutout_probability)
        for group, r in self.groups.items():
            params[f"group.{group}"] = trial.suggest_float(f"group.{group}", *r)
        if len(self.mixes) > 1:
            params["mix"] = trial.suggest_categorical("mix", list(self.mixes))
            for key, r in (("alpha", self.mix_alpha), ("probability", self.mix_probability)):
                if r[0] < r[1]:
                    params[f"mix.{key}"] = trial.suggest_float(f"mix.{key}", *r, log=key == "alpha")
        return params

    def _magnitude_keys(self) -> list[str]:
        return [f"magnitude.{g}" for g in self.groups] if self.per_group_magnitude else ["magnitude"]

    def mix(self, params: Mapping[str, Any]) -> Mix | None:
        """The batch layer of ``params``."""
        kind = params.get("mix", self.mixes[0])
        if kind == "none":
            return None
        return Mix(kind, float(params.get("mix.alpha", self.mix_alpha[0])),
                   float(params.get("mix.probability", self.mix_probability[0])))

    def to_policy(self, params: Mapping[str, Any], schedule: Schedule, name: str) -> Policy:
        groups = {g: float(params[f"group.{g}"]) for g in self.groups}
        magnitude = ({g: float(params[f"magnitude.{g}"]) for g in self.groups} if self.per_group_magnitude
                     else float(params["magnitude"]))
        policy = layered(params["base"], int(params["n_ops"]), magnitude, params["style"], groups, schedule, name,
                         mix=self.mix(params))
        if self.cutout is None or not params["cutout.probability"]:
            return policy
        cutout = OpConfig(float(params["cutout.magnitude"]), float(params["cutout.probability"]), "fixed")
        return replace(policy, base={**policy.base, "cutout": cutout})

    def point(self, policy: Policy) -> dict[str, Any] | None:
        """The parameters of ``policy``, found by reading its base, ops per image, style and magnitude and
        checked by rebuilding it; ``None`` when it is not a point of this layer."""
        cutout = policy.base.get("cutout") if self.cutout is not None else None
        rest = {k: v for k, v in policy.base.items() if k != "cutout"} if self.cutout is not None else policy.base
        base = next((b for b in self.bases if BASES[b] == rest), None)
        n_ops = policy.n_ops or 0
        probe = next((op for op in policy.ops if op != "identity" and OPS[op].has_magnitude), None)
        style = ("randaugment" if probe is None or policy.ops[probe].sampling == "fixed" else "trivialaugment")
        if base is None or style not in self.styles or not self.n_ops[0] <= n_ops <= self.n_ops[1]:
            return None
        unit = layered(n_ops=1, magnitude=1.0, style=style)  # each op's magnitude at global magnitude 1

        def read(ops: Any) -> float:
            probe = next((op for op in ops if op in policy.ops and op != "identity" and OPS[op].has_magnitude), None)
            return round(policy.ops[probe].magnitude / unit.ops[probe].magnitude, 6) if probe else self.magnitude[0]

        magnitudes = ({f"magnitude.{g}": read(GROUPS[g]) for g in self.groups} if self.per_group_magnitude
                      else {"magnitude": read(policy.ops)})
        groups = {g: next((policy.ops[op].probability for op in GROUPS[g] if op in policy.ops), r[1])
                  for g, r in self.groups.items()}
        params = {"base": base, "n_ops": n_ops, **magnitudes, "style": style,
                  **{f"group.{g}": p for g, p in groups.items()}, **self._mix_point(policy.mix)}
        if self.cutout is not None:
            params |= {"cutout.magnitude": cutout.magnitude if cutout else self.cutout[0],
                       "cutout.probability": cutout.probability if cutout else 0.0}
        inside = all(self.magnitude[0] <= m <= self.magnitude[1] for m in magnitudes.values()) and all(
            r[0] <= groups[g] <= r[1] for g, r in self.groups.items()) and (self.cutout is None or (
                self.cutout[0] <= params["cutout.magnitude"] <= self.cutout[1]
                and self.cutout_probability[0] <= params["cutout.probability"] <= self.cutout_probability[1]))
        rebuilt = self.to_policy(params, policy.schedule, policy.name)
        return params if inside and _same(rebuilt, policy) else None

    def _mix_point(self, mix: Mix | None) -> dict[str, Any]:
        """The batch layer's parameters of ``mix`` (none where the layer has no choice)."""
        if len(self.mixes) == 1:
            return {}
        params: dict[str, Any] = {"mix": "none" if mix is None else mix.kind}
        for key, r in (("alpha", self.mix_alpha), ("probability", self.mix_probability)):
            if r[0] < r[1]:
                value = getattr(mix, key) if mix is not None else r[0]
                params[f"mix.{key}"] = min(max(value, r[0]), r[1])  # out of range: the rebuilt policy differs
        return params


def _same(a: Policy, b: Policy) -> bool:
    """Equal policies, up to rounding of their magnitudes."""
    def close(x: Mapping[str, OpConfig], y: Mapping[str, OpConfig]) -> bool:
        return x.keys() == y.keys() and all(
            abs(x[k].magnitude - y[k].magnitude) < 1e-6 and x[k].probability == y[k].probability
            and x[k].sampling == y[k].sampling and x[k].schedule == y[k].schedule for k in x)

    return (close(a.base, b.base) and close(a.ops, b.ops) and a.n_ops == b.n_ops and a.schedule == b.schedule
            and a.stages == b.stages and a.synthetic == b.synthetic and a.mix == b.mix
            and a.subpolicies == b.subpolicies)
