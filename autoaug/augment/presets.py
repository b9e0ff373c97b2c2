"""Named policies: ``none``, the free standards (crop and flip, RandAugment, TrivialAugment, alone or on crop and
flip), the adaptive presets, and the compact space's layered policies (:func:`layered`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace

from autoaug.augment.ops import OPS
from autoaug.augment.policy import Mix, OpConfig, Policy, Step
from autoaug.augment.schedule import Schedule
from autoaug.errors import choice_error


def _phys(op: str, value: float) -> float:
    """Normalized magnitude of a physical value for ``op`` (inverse of ``OpSpec.value``)."""
    spec = OPS[op]
    return (value - spec.low) / (spec.high - spec.low)



# The op set of RandAugment and TrivialAugment, in two groups that a search weighs (identity belongs to neither)
GROUPS: dict[str, tuple[str, ...]] = {
    "geometric": ("rotate", "shear_x", "shear_y", "translate_x", "translate_y"),
    "color": ("autocontrast", "equalize", "solarize", "saturation", "posterize", "contrast", "brightness",
              "sharpness"),
}
# RandAugment's physical range of each op at its full magnitude (M = 30; torchvision's)
_RAND_RANGES = {"rotate": 30.0, "shear_x": 0.3, "shear_y": 0.3, "translate_x": 150 / 331, "translate_y": 150 / 331,
                "brightness": 0.9, "contrast": 0.9, "saturation": 0.9, "sharpness": 0.9, "posterize": 4.0,
                "solarize": 1.0}
# how the sampled layer sets each image's magnitude: randaugment, ``fixed`` at the global magnitude on
# RandAugment's ranges; trivialaugment, ``uniform`` up to it on the wide ranges (the registry's)
STYLES = ("randaugment", "trivialaugment")


def _bases() -> dict[str, dict[str, OpConfig]]:
    """The always-on layers a policy may start with. ``cropflip`` is the natural-image standard of small images:
    pad by 1/8 of the side and crop back (4 px at 32 px), always, and horizontal flip with p = 0.5 (torchvision's
    and timm's CIFAR recipes); ``crop`` alone suits images that must not be mirrored (digits). ``rrcflip`` is the
    ImageNet recipes' standard for larger photos: random resized crop (8% to all of the area, aspect ratio 3/4 to
    4/3), always, and the flip."""
    crop = {"crop": OpConfig(_phys("crop", 0.125), 1.0, "fixed")}
    flip = {"hflip": OpConfig(0.0, 0.5)}
    return {"none": {}, "crop": crop, "cropflip": {**crop, **flip},
            "rrcflip": {"resized_crop": OpConfig(1.0, 1.0, "fixed"), **flip}}


BASES = _bases()


def layered(base: str = "none", n_ops: int = 0, magnitude: float | Mapping[str, float] = 0.0,
            style: str = "randaugment",
            groups: Mapping[str, float] | None = None, schedule: Schedule | None = None,
            name: str = "custom", mix: Mix | None = None) -> Policy:
    """A policy of the compact space: the ``base`` layer (:data:`BASES`) always on, then ``n_ops`` ops per image
    drawn uniformly from identity and the ops of ``groups``, at the global ``magnitude`` (or one per group) in
    ``style``
    (:data:`STYLES`); a drawn op of group ``g`` applies with probability ``groups[g]`` (default: every group, 1);
    then the batch is mixed where ``mix`` says (MixUp, CutMix).

    ``none``, ``cropflip``, RandAugment (``n_ops=2, magnitude=0.3``: M = 9) and TrivialAugment (``n_ops=1,
    magnitude=1``, ``trivialaugment`` style), alone or on ``cropflip``, are points of it."""
    if base not in BASES:
        raise choice_error("base", base, BASES)
    if style not in STYLES:
        raise choice_error("style", style, STYLES)
    groups = dict.fromkeys(GROUPS, 1.0) if groups is None else groups
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        raise choice_error("op group", unknown[0], GROUPS)
    ops: dict[str, OpConfig] = {}
    if n_ops:
        sampling = "fixed" if style == "randaugment" else "uniform"
        ops["identity"] = OpConfig(0.0, 1.0, sampling)
        for group, p in groups.items():
            for op in GROUPS[group]:
                scale = _phys(op, _RAND_RANGES[op]) if style == "randaugment" and op in _RAND_RANGES else 1.0
                own = magnitude[group] if isinstance(magnitude, Mapping) else magnitude
                m = own * scale if OPS[op].has_magnitude else 0.0
                ops[op] = OpConfig(m, p, sampling)
    return Policy(base=BASES[base], ops=ops, n_ops=min(n_ops, len(ops)) or None,
                  schedule=schedule or Schedule(), name=name, mix=mix)


def _randaugment(m: int = 9, n: int = 2) -> Policy:
    """RandAugment (torchvision's op set and ranges) with ``n`` ops per image at magnitude ``m`` of 30."""
    return layered(n_ops=n, magnitude=m / 30, name="randaugment")


# AutoAugment's CIFAR-10 policy (Cubuk et al., 2019), as torchvision holds it: 25 sub-policies of two steps
# (op, probability, magnitude bin of 10)
_AUTOAUGMENT_CIFAR10 = (
    (("Invert", 0.1, None), ("Contrast", 0.2, 6)), (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)), (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)), (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)), (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, None), ("Equalize", 0.5, None)), (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)), (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)), (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, None)), (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.2, None), ("Equalize", 0.6, None)), (("Color", 0.9, 9), ("Equalize", 0.6, None)),
    (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)), (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)), (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)), (("Equalize", 0.8, None), ("Invert", 0.1, None)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
)
# AutoAugment's op names, and each op's physical value at bin b of 10 (torchvision's ranges; translation as a
# fraction of the side, posterize as bits dropped, solarize as 1 - threshold)
_AUTOAUGMENT_OPS: dict[str, tuple[str, Callable[[int], float]]] = {
    "ShearX": ("shear_x", lambda b: 0.3 * b / 9), "ShearY": ("shear_y", lambda b: 0.3 * b / 9),
    "TranslateX": ("translate_x", lambda b: 150 / 331 * b / 9),
    "TranslateY": ("translate_y", lambda b: 150 / 331 * b / 9),
    "Rotate": ("rotate", lambda b: 30.0 * b / 9), "Brightness": ("brightness", lambda b: 0.9 * b / 9),
    "Color": ("saturation", lambda b: 0.9 * b / 9), "Contrast": ("contrast", lambda b: 0.9 * b / 9),
    "Sharpness": ("sharpness", lambda b: 0.9 * b / 9), "Posterize": ("posterize", lambda b: float(round(b / 2.25))),
    "Solarize": ("solarize", lambda b: b / 9), "AutoContrast": ("autocontrast", lambda b: 0.0),
    "Equalize": ("equalize", lambda b: 0.0), "Invert": ("invert", lambda b: 0.0),
}


def _autoaugment() -> Policy:
    """AutoAugment's CIFAR-10 policy: each image draws one of its 25 sub-policies and applies its two steps."""
    def step(name: str, p: float, b: int | None) -> Step:
        op, value = _AUTOAUGMENT_OPS[name]
        return Step(op, p, _phys(op, value(b)) if b is not None and OPS[op].has_magnitude else 0.0)

    return Policy(subpolicies=tuple(tuple(step(*s) for s in sub) for sub in _AUTOAUGMENT_CIFAR10), name="autoaugment")


def _adaptive(kind: str) -> Policy:
    """Basic flip and crop always on (their own constant schedule); rotation up to ±30° and brightness and
    contrast up to ±0.2 scaled by the controller (level 0.5: ±15° and ±0.1)."""
    basic = Schedule()
    ops = {"hflip": OpConfig(0.0, 0.5), "crop": OpConfig(0.5, 0.5, schedule=basic),
           "rotate": OpConfig(_phys("rotate", 30.0), 0.5), "brightness": OpConfig(_phys("brightness", 0.2), 0.5),
           "contrast": OpConfig(_phys("contrast", 0.2), 0.5)}
    return Policy(ops=ops, schedule=Schedule(kind), name=kind)


PRESETS: dict[str, Policy] = {
    "none": Policy(name="none"),
    "baseline": Policy(
        ops={
            "rotate": OpConfig(_phys("rotate", 15.0)),
            "hflip": OpConfig(0.0, 0.5),
            "brightness": OpConfig(_phys("brightness", 0.2)),
            "zoom": OpConfig(_phys("zoom", 0.2)),
            "gaussian_noise": OpConfig(_phys("gaussian_noise", 0.1), 1.0, "fixed"),
        },
        name="baseline",
    ),
    "randaugment": _randaugment(),
    "trivialaugment": layered(n_ops=1, magnitude=1.0, style="trivialaugment", name="trivialaugment"),
    "cropflip": layered("cropflip", name="cropflip"),
    "cropflip+randaugment": replace(_randaugment(), base=BASES["cropflip"], name="cropflip+randaugment"),
    "cropflip+trivialaugment": layered("cropflip", 1, 1.0, "trivialaugment", name="cropflip+trivialaugment"),
    # MixUp (Zhang et al., 2018: alpha 1 on CIFAR) and CutMix (Yun et al., 2019: alpha 1, half the batches) on
    # crop and flip
    "cropflip+mixup": layered("cropflip", name="cropflip+mixup", mix=Mix("mixup", 1.0, 1.0)),
    "cropflip+cutmix": layered("cropflip", name="cropflip+cutmix", mix=Mix("cutmix", 1.0, 0.5)),
    "autoaugment": _autoaugment(),
    # on crop and flip, as the CIFAR recipes apply it
    "cropflip+autoaugment": replace(_autoaugment(), base=BASES["cropflip"], name="cropflip+autoaugment"),
    # Cutout's CIFAR recipe (DeVries and Taylor, 2017): crop and flip, and a grey square of half the side (16 px at
    # 32 px) at a uniform centre on every image
    "cropflip+cutout": Policy(base={**BASES["cropflip"], "cutout": OpConfig(1.0, 1.0, "fixed")},
                              name="cropflip+cutout"),
    # pad-and-crop without flip, for images a mirror changes (digits, text)
    "crop": layered("crop", name="crop"),
    "crop+randaugment": replace(_randaugment(), base=BASES["crop"], name="crop+randaugment"),
    "crop+trivialaugment": layered("crop", 1, 1.0, "trivialaugment", name="crop+trivialaugment"),
    "rrcflip": layered("rrcflip", name="rrcflip"),
    "rrcflip+randaugment": replace(_randaugment(), base=BASES["rrcflip"], name="rrcflip+randaugment"),
    "rrcflip+trivialaugment": layered("rrcflip", 1, 1.0, "trivialaugment", name="rrcflip+trivialaugment"),
    "feedback": _adaptive("feedback"),
    "augnet": _adaptive("augnet"),
}


SMALL_SIDE = 32  # px: RGB images up to this side (CIFAR's) take the small-image standards, larger ones the photos'
PHOTO_BASES = ("rrcflip",)  # the bases the standards use on photos, and on smaller images
SMALL_BASES = ("cropflip", "crop")


def is_photo(image_shape: Sequence[int]) -> bool:
    """Whether images of ``image_shape`` ``[C, H, W]`` are RGB and larger than CIFAR's: the ImageNet recipes'
    random resized crop suits them."""
    return image_shape[0] == 3 and min(image_shape[1:]) > SMALL_SIDE


def standards(image_shape: Sequence[int], bases: Collection[str] | None = None) -> tuple[str, ...]:
    """The free standards for images of ``image_shape`` ``[C, H, W]``, besides ``none``: RandAugment and
    TrivialAugment alone, each base of ``bases`` that suits the images (random resized crop and flip above 32 px,
    pad-and-crop with or without flip up to it) alone and with RandAugment and TrivialAugment on top, and on crop and
    flip also Cutout, and for RGB images AutoAugment's CIFAR-10 policy alone and on it. ``bases``: those a search
    space offers (a space for digits offers crop without flip); ``None``: the usual one, ``rrcflip`` for photos,
    ``cropflip`` for smaller RGB images, ``crop`` for gray ones."""
    photo = is_photo(image_shape)
    if bases is None:
        bases = PHOTO_BASES if photo else ("cropflip",) if image_shape[0] == 3 else ("crop",)
    names = []
    for base in (b for b in (PHOTO_BASES if photo else SMALL_BASES) if b in bases):
        names += [base, f"{base}+randaugment", f"{base}+trivialaugment"]
    names[1:1] = ["randaugment", "trivialaugment"]
    if "cropflip" in names:
        names.append("cropflip+cutout")
        if image_shape[0] == 3:
            names += ["autoaugment", "cropflip+autoaugment"]
    return tuple(names)


def resolve_policy(spec: str | Policy) -> Policy:
    """A preset name, a path to a policy JSON file, or a :class:`Policy`."""
    if isinstance(spec, Policy):
        return spec
    if spec in PRESETS:
        return PRESETS[spec]
    if spec.endswith(".json") or os.sep in spec:
        return Policy.load(spec)
    raise choice_error("policy", spec, [*PRESETS, "FILE.json"])
