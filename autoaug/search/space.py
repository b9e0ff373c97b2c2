"""Search spaces: YAML files that say which ops a search may use and the ranges Optuna samples.

``search_spaces/default.yaml`` holds everything; per-dataset files ``extends: default`` and hold only
their differences (``null`` removes a key). Files are validated against the op registry on load, and an
error names the file, the key and the bad value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from autoaug.augment.ops import OPS
from autoaug.augment.policy import MIXES, SAMPLING, OpConfig, Policy, Synthetic
from autoaug.augment.presets import BASES, GROUPS, STYLES, standards
from autoaug.augment.schedule import ADAPTIVE, Schedule
from autoaug.augment.schedule import PARAMS as SCHEDULE_PARAMS
from autoaug.data.names import GENERATORS
from autoaug.errors import AutoaugError
from autoaug.search.layer import Layer, Range

_UP = Path(__file__).resolve().parents
# the shipped spaces: inside the package in an installed wheel, beside it (the project's search_spaces/) in a checkout
SPACES_DIR = _UP[1] / "search_spaces" if (_UP[1] / "search_spaces").is_dir() else _UP[2] / "search_spaces"
TRAIN_PARAMS = ("lr", "weight_decay")  # training hyper-parameters a space may search (log-uniform)


def is_point(params: Mapping[str, Any], point: Mapping[str, Any]) -> bool:
    """Whether the flat parameters ``params`` hold every value of ``point`` (floats up to rounding)."""
    import math

    def same(a: Any, b: Any) -> bool:
        return a == b or (isinstance(a, float) and isinstance(b, float) and math.isclose(a, b))

    return all(same(params.get(k), v) for k, v in point.items())


@dataclass(frozen=True)
class OpRange:
    """Sampling ranges of one op: magnitude (``None`` for magnitude-free ops) and probability."""

    magnitude: Range | None
    probability: Range
    sampling: str = "uniform"


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space. ``source`` is the file it came from. Either ``layer`` (the compact space: a
    handful of dimensions) or ``ops`` (every op's magnitude and probability, applied as a pipeline)."""

    source: str
    ops: Mapping[str, OpRange]
    layer: Layer | None = None
    schedule_kinds: tuple[str, ...] = ("constant",)
    schedule_ranges: Mapping[str, Range] | None = None
    per_op_schedule: bool = False  # each op with a magnitude gets its own parameters of the chosen kind
    synthetic_ratio: Range | None = None  # share of generated images per batch; None: not searched
    generators: tuple[str, ...] = ("vae",)
    generator_epochs: int = 20  # training epochs of each generator (trained once per search, before the trials)
    train: Mapping[str, Range] = field(default_factory=dict)  # TRAIN_PARAMS name -> log-uniform range

    def standards(self, image_shape: Sequence[int]) -> tuple[str, ...]:
        """The free standards for images of ``image_shape`` with the bases this space offers
        (:func:`autoaug.augment.presets.standards`)."""
        return standards(image_shape, self.layer.bases if self.layer else None)

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Sample a point with an Optuna trial (define-by-run); returns the flat parameters."""
        params: dict[str, Any] = self.layer.suggest(trial) if self.layer else {}
        for name, r in self.ops.items():
            params[f"{name}.p"] = trial.suggest_float(f"{name}.p", *r.probability)
            if r.magnitude is not None:
                params[f"{name}.m"] = trial.suggest_float(f"{name}.m", *r.magnitude)
        if len(self.schedule_kinds) > 1:
            params["schedule"] = trial.suggest_categorical("schedule", list(self.schedule_kinds))
        for prefix in self._schedule_prefixes(params.get("schedule", self.schedule_kinds[0])):
            for key, spec in SCHEDULE_PARAMS[params.get("schedule", self.schedule_kinds[0])].items():
                low, high = self.schedule_ranges[key]
                suggest = trial.suggest_int if spec.integer else trial.suggest_float
                params[f"{prefix}{key}"] = suggest(f"{prefix}{key}", int(low) if spec.integer else low,
                                                   int(high) if spec.integer else high)
        for key, r in self.train.items():
            params[f"train.{key}"] = trial.suggest_float(f"train.{key}", *r, log=r[0] > 0)
        if self.synthetic_ratio is not None:
            params["synthetic.ratio"] = trial.suggest_float("synthetic.ratio", *self.synthetic_ratio)
            if len(self.generators) > 1:
                params["synthetic.generator"] = trial.suggest_categorical("synthetic.generator", list(self.generators))
        return params

    def _schedule_prefixes(self, kind: str) -> list[str]:
        """Where a schedule's parameters go: ``schedule.`` (policy-wide), or ``OP.schedule.`` per op."""
        if self.per_op_schedule and kind not in ADAPTIVE:
            return [f"{op}.schedule." for op, r in self.ops.items() if r.magnitude is not None]
        return ["schedule."]

    def train_overrides(self, params: Mapping[str, Any]) -> dict[str, float]:
        """The training hyper-parameters in a flat parameter dict, as ``TrainConfig`` field values."""
        return {key: float(params[f"train.{key}"]) for key in self.train if f"train.{key}" in params}

    def to_policy(self, params: Mapping[str, Any], name: str = "searched") -> Policy:
        """The policy a flat parameter dict stands for (ops with probability 0 are left out)."""
        kind = params.get("schedule", self.schedule_kinds[0])

        def schedule(prefix: str) -> Schedule | None:
            keys = [k for k in SCHEDULE_PARAMS[kind] if f"{prefix}{k}" in params]
            return Schedule(kind, {k: params[f"{prefix}{k}"] for k in keys}) if keys or prefix == "schedule." else None

        ops = {}
        for op, r in self.ops.items():
            p = float(params[f"{op}.p"])
            if p > 0:
                ops[op] = OpConfig(float(params.get(f"{op}.m", 0.0)), p, r.sampling, schedule(f"{op}.schedule."))
        per_op = self.per_op_schedule and kind not in ADAPTIVE
        ratio = float(params.get("synthetic.ratio", 0.0))
        synthetic = (Synthetic(ratio, params.get("synthetic.generator", self.generators[0]),
                               epochs=self.generator_epochs) if ratio > 0 else None)
        if self.layer:
            return replace(self.layer.to_policy(params, schedule("schedule."), name), synthetic=synthetic)
        return Policy(ops=ops, schedule=Schedule() if per_op else schedule("schedule."), name=name,
                      synthetic=synthetic)

    def point(self, policy: Policy, train: Mapping[str, float] | None = None) -> dict[str, Any] | None:
        """The flat parameters of ``policy`` (and of the ``train`` hyper-parameter values, where this space
        searches them) in this space, or ``None`` when the space cannot express them."""
        if policy.subpolicies:  # AutoAugment's form: no space holds it
            return None
        if self.layer:
            params = self.layer.point(replace(policy, synthetic=None, stages=()))
            if params is None:
                return None
        elif policy.n_ops is not None or policy.base or policy.mix or set(policy.ops) - set(self.ops):
            return None
        else:
            params = {}
        for op, r in self.ops.items():
            cfg = policy.ops.get(op)
            p, m = (cfg.probability, cfg.magnitude) if cfg else (0.0, r.magnitude[0] if r.magnitude else 0.0)
            if cfg and cfg.sampling != r.sampling:
                return None
            if not r.probability[0] <= p <= r.probability[1]:
                return None
            params[f"{op}.p"] = p
            if r.magnitude is not None:
                if not r.magnitude[0] <= m <= r.magnitude[1]:
                    return None
                params[f"{op}.m"] = m
        kind = policy.schedule.kind
        if kind not in self.schedule_kinds or policy.stages or self.per_op_schedule or any(
                c.schedule for c in policy.ops.values()):
            return None
        if len(self.schedule_kinds) > 1:
            params["schedule"] = kind
        for key in SCHEDULE_PARAMS[kind]:
            params[f"schedule.{key}"] = policy.schedule.params[key]
        if self.synthetic_ratio is not None:
            ratio = policy.synthetic.ratio if policy.synthetic else 0.0
            if not self.synthetic_ratio[0] <= ratio <= self.synthetic_ratio[1]:
                return None
            params["synthetic.ratio"] = ratio
            if policy.synthetic and policy.synthetic.epochs != self.generator_epochs:
                return None
            if len(self.generators) > 1:
                params["synthetic.generator"] = policy.synthetic.generator if policy.synthetic else self.generators[0]
        elif policy.synthetic is not None:
            return None
        for key, (low, high) in self.train.items():
            value = (train or {}).get(key)
            if value is None or not low <= value <= high:
                return None
            params[f"train.{key}"] = float(value)
        return params


def _range(where: str, value: Any, low: float = 0.0, high: float = 1.0) -> Range:
    ok = (isinstance(value, list | tuple) and len(value) == 2
          and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value))
    if not ok or not low <= value[0] <= value[1] <= high:
        raise AutoaugError(f"{where}: {value!r} is not a range [low, high] within [{low:g}, {high:g}]")
    return float(value[0]), float(value[1])


def _merge(base: dict[str, Any], diff: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in diff.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(dict(out[k]), v)
        else:
            out[k] = v
    return out


def _read(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    import yaml

    if path in seen:
        raise AutoaugError(f"{path}: 'extends' makes a cycle")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise AutoaugError(f"{path}: malformed YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise AutoaugError(f"{path}: a search space must be a mapping, got {type(doc).__name__}")
    parent = doc.pop("extends", None)
    if parent is None:
        return doc
    return _merge(_read(_resolve(str(parent), path.parent), (*seen, path)), doc)


def _resolve(space: str, directory: Path = SPACES_DIR) -> Path:
    path = Path(space).expanduser()
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise AutoaugError(f"search space file {space!r} does not exist")
        return path.resolve()
    candidate = directory / f"{space}.yaml"
    if not candidate.is_file():  # a user's file may extend a shipped space by name
        candidate = SPACES_DIR / f"{space}.yaml"
    if not candidate.is_file():
        names = sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))
        raise AutoaugError(f"unknown search space {space!r}; choose from: {', '.join(names)}, or FILE.yaml")
    return candidate


def _choices(where: str, value: Any, allowed: Mapping[str, Any] | tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or any(v not in allowed for v in value):
        raise AutoaugError(f"{where}: {value!r} must list some of {', '.join(allowed)}")
    return tuple(value)


def _layer(doc: Any, source: str) -> Layer:
    """``layer: {bases, n_ops, magnitude, per_group_magnitude, styles, groups, cutout, mix}``; each key optional
    (defaults: :class:`Layer`); ``cutout: {magnitude, probability}``, ``mix: {kinds, alpha, probability}``."""
    keys = ("bases", "n_ops", "magnitude", "per_group_magnitude", "styles", "groups", "cutout", "mix")
    if not isinstance(doc, Mapping) or set(doc) - set(keys):
        extra = sorted(set(doc) - set(keys)) if isinstance(doc, Mapping) else [doc]
        raise AutoaugError(f"{source}: layer: unknown key {extra[0]!r}; allowed: {', '.join(keys)}")
    default = Layer()
    where = f"{source}: layer"
    n_ops = doc.get("n_ops", list(default.n_ops))
    if not (isinstance(n_ops, list) and len(n_ops) == 2 and all(type(v) is int for v in n_ops)
            and 0 <= n_ops[0] <= n_ops[1] <= 3):
        raise AutoaugError(f"{where}.n_ops: {n_ops!r} is not a range [low, high] of integers within [0, 3]")
    groups = doc.get("groups", {g: list(r) for g, r in default.groups.items()})
    if not isinstance(groups, Mapping) or not groups or set(groups) - set(GROUPS):
        raise AutoaugError(f"{where}.groups: {groups!r} must map some of {', '.join(GROUPS)} to probability ranges")
    per_group = doc.get("per_group_magnitude", False)
    if not isinstance(per_group, bool):
        raise AutoaugError(f"{where}.per_group_magnitude: {per_group!r} must be true or false")
    cutout = doc.get("cutout")
    if cutout is not None and (not isinstance(cutout, Mapping) or set(cutout) != {"magnitude", "probability"}):
        raise AutoaugError(f"{where}.cutout: {cutout!r} must be an object with magnitude and probability ranges")
    mix = doc.get("mix") or {}
    if not isinstance(mix, Mapping) or set(mix) - {"kinds", "alpha", "probability"}:
        raise AutoaugError(f"{where}.mix: {mix!r} must be an object with kinds, alpha, probability")
    return Layer(bases=_choices(f"{where}.bases", doc.get("bases", list(default.bases)), BASES),
                 mixes=_choices(f"{where}.mix.kinds", mix.get("kinds", list(default.mixes)), ("none", *MIXES)),
                 mix_alpha=_range(f"{where}.mix.alpha", mix.get("alpha", list(default.mix_alpha)), 0.05, 10.0),
                 mix_probability=_range(f"{where}.mix.probability",
                                        mix.get("probability", list(default.mix_probability))),
                 n_ops=(n_ops[0], n_ops[1]), per_group_magnitude=per_group,
                 cutout=_range(f"{where}.cutout.magnitude", cutout["magnitude"]) if cutout else None,
                 cutout_probability=(_range(f"{where}.cutout.probability", cutout["probability"]) if cutout
                                     else (0.0, 1.0)),
                 magnitude=_range(f"{where}.magnitude", doc.get("magnitude", list(default.magnitude))),
                 styles=_choices(f"{where}.styles", doc.get("styles", list(default.styles)), STYLES),
                 groups={g: _range(f"{where}.groups.{g}", groups[g]) for g in GROUPS if g in groups})


def _validate(doc: Mapping[str, Any], source: str) -> SearchSpace:
    allowed = ("layer", "ops", "schedule", "train", "synthetic")
    unknown = sorted(set(doc) - set(allowed))
    if unknown:
        raise AutoaugError(f"{source}: unknown key {unknown[0]!r}; allowed: {', '.join(allowed)}")
    ops_doc = doc.get("ops") or {}
    if "layer" in doc and ops_doc:
        raise AutoaugError(f"{source}: give 'layer' (the compact space) or 'ops' (per-op ranges), not both")
    if not isinstance(ops_doc, Mapping) or not (ops_doc or "layer" in doc or doc.get("synthetic")):
        raise AutoaugError(f"{source}: 'ops' must map at least one op name to its ranges (or 'layer' or "
                           f"'synthetic' be searched)")
    ops = {}
    for name in OPS:  # registry order
        if name not in ops_doc:
            continue
        cfg = ops_doc[name] or {}
        where = f"{source}: ops.{name}"
        extra = sorted(set(cfg) - {"magnitude", "probability", "sampling"})
        if extra:
            raise AutoaugError(f"{where}: unknown key {extra[0]!r}; allowed: magnitude, probability, sampling")
        if "magnitude" in cfg and not OPS[name].has_magnitude:
            raise AutoaugError(f"{where}.magnitude: {name!r} has no magnitude; give only its probability")
        magnitude = _range(f"{where}.magnitude", cfg.get("magnitude", [0.0, 1.0])) if OPS[name].has_magnitude else None
        sampling = cfg.get("sampling", "uniform")
        if sampling not in SAMPLING:
            raise AutoaugError(f"{where}.sampling: {sampling!r} is not one of {', '.join(SAMPLING)}")
        ops[name] = OpRange(magnitude, _range(f"{where}.probability", cfg.get("probability", [0.0, 1.0])), sampling)
    bad = sorted(set(ops_doc) - set(OPS))
    if bad:
        raise AutoaugError(f"{source}: ops.{bad[0]}: unknown op {bad[0]!r}; see 'autoaug ops'")
    sched = dict(doc.get("schedule") or {"kinds": ["constant"]})
    kinds = sched.pop("kinds", ["constant"])
    per_op = sched.pop("per_op", False)
    if not isinstance(per_op, bool):
        raise AutoaugError(f"{source}: schedule.per_op: {per_op!r} must be true or false")
    if not isinstance(kinds, list) or not kinds or any(k not in SCHEDULE_PARAMS for k in kinds):
        raise AutoaugError(f"{source}: schedule.kinds: {kinds!r} must list some of {', '.join(SCHEDULE_PARAMS)}")
    specs = {p: spec for k in kinds for p, spec in SCHEDULE_PARAMS[k].items()}
    extra = sorted(set(sched) - set(specs))
    if extra:
        raise AutoaugError(f"{source}: schedule.{extra[0]}: not a parameter of {kinds}; allowed: {sorted(specs)}")
    ranges = {p: _range(f"{source}: schedule.{p}", sched.get(p, [spec.low, spec.high]), spec.low, spec.high)
              for p, spec in specs.items()}
    ratio, generators, generator_epochs = _synthetic(doc.get("synthetic"), source)
    layer = _layer(doc["layer"] or {}, source) if "layer" in doc else None
    return SearchSpace(source=source, ops=ops, layer=layer, schedule_kinds=tuple(kinds), schedule_ranges=ranges,
                       per_op_schedule=per_op, train=_train_ranges(doc.get("train") or {}, source),
                       synthetic_ratio=ratio, generators=generators, generator_epochs=generator_epochs)


def _synthetic(doc: Any, source: str) -> tuple[Range | None, tuple[str, ...], int]:
    """``synthetic: {ratio: [0, 0.5], generators: [vae, dcgan], epochs: 20}``: the ratio range (below 1), the
    generators and their training epochs."""
    if doc is None:
        return None, ("vae",), 20
    if not isinstance(doc, Mapping) or set(doc) - {"ratio", "generators", "epochs"}:
        raise AutoaugError(f"{source}: synthetic: {doc!r} must be a mapping with ratio, generators and epochs")
    ratio = _range(f"{source}: synthetic.ratio", doc.get("ratio", [0.0, 0.5]), 0.0, 0.95)
    generators = doc.get("generators", ["vae"])
    if not isinstance(generators, list) or not generators or any(g not in GENERATORS for g in generators):
        raise AutoaugError(f"{source}: synthetic.generators: {generators!r} must list some of {', '.join(GENERATORS)}")
    epochs = doc.get("epochs", 20)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise AutoaugError(f"{source}: synthetic.epochs: {epochs!r} must be a positive integer")
    return ratio, tuple(generators), epochs


def _train_ranges(doc: Any, source: str) -> dict[str, Range]:
    """``train: {lr: [1e-4, 1e-2], weight_decay: [0, 1e-3]}``: positive ranges, log-uniform when low > 0."""
    if not isinstance(doc, Mapping):
        raise AutoaugError(f"{source}: train: must map hyper-parameter names to ranges, got {doc!r}")
    out = {}
    for key, value in doc.items():
        if key not in TRAIN_PARAMS:
            raise AutoaugError(f"{source}: train.{key}: unknown hyper-parameter; allowed: {', '.join(TRAIN_PARAMS)}")
        ok = (isinstance(value, list | tuple) and len(value) == 2
              and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value))
        if not ok or not 0 <= value[0] <= value[1] or (key == "lr" and value[0] <= 0):
            low = "> 0" if key == "lr" else ">= 0"
            raise AutoaugError(f"{source}: train.{key}: {value!r} is not a range [low, high] with low {low}")
        out[key] = (float(value[0]), float(value[1]))
    return out


def load_space(space: str = "default") -> SearchSpace:
    """Load a named space (``search_spaces/NAME.yaml``) or a YAML file path, validated."""
    path = _resolve(space)
    return _validate(_read(path), str(path.relative_to(SPACES_DIR.parent) if path.is_relative_to(SPACES_DIR.parent)
                                      else path))


def space_file(source: str | os.PathLike[str]) -> Path:
    """A space's file from its recorded ``source``: absolute, or relative to the shipped spaces' parent folder."""
    path = Path(source)
    return path if path.is_absolute() else SPACES_DIR.parent / path
