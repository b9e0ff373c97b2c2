"""A policy for pipelines that augment one image at a time: a ``torchvision.transforms.v2`` transform.

``to_torchvision(policy)`` gives :class:`TorchvisionPolicy`, which draws what autoaug's batched augmenter
draws for one image (which ops, each op's magnitude and sign) and applies the ops with
``torchvision.transforms.v2.functional``, in the same order and with the same physical ranges. It takes a
tensor image ``[C, H, W]`` (uint8, or float in [0, 1]) or a PIL image (returned as a uint8 tensor), so it
fits a ``Dataset`` / ``DataLoader`` pipeline before ``ToDtype`` and ``Normalize``. ``python_source(policy)``
writes the same as a Python snippet (``autoaug export POLICY.json --to torchvision``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torchvision.transforms.v2 as v2
import torchvision.transforms.v2.functional as F
from torchvision.transforms import InterpolationMode

from autoaug.augment.geometry import resized_crop_box
from autoaug.augment.ops import OPS
from autoaug.augment.policy import Policy
from autoaug.errors import AutoaugError

BILINEAR = InterpolationMode.BILINEAR


def _affine(img: torch.Tensor, **kw: Any) -> torch.Tensor:
    args = {"angle": 0.0, "translate": [0.0, 0.0], "scale": 1.0, "shear": [0.0, 0.0]} | kw
    return F.affine(img, **args, interpolation=BILINEAR, fill=0)  # type: ignore[arg-type]


def _as_uint8(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Run an 8-bit op on a float image too (through uint8, as autoaug's kernels do)."""
    def run(img: torch.Tensor) -> torch.Tensor:
        if img.dtype == torch.uint8:
            return fn(img)
        return F.to_dtype(fn(F.to_dtype(img, torch.uint8, scale=True)), img.dtype, scale=True)

    return run


def _crop(img: torch.Tensor, pad: float, u: tuple[float, float]) -> torch.Tensor:
    h, w = img.shape[-2:]
    py, px = round(pad * h), round(pad * w)
    dy = min(math.floor(u[0] * (2 * py + 1)), 2 * py)
    dx = min(math.floor(u[1] * (2 * px + 1)), 2 * px)
    return F.crop(F.pad(img, [px, py], fill=0), 2 * py - dy, 2 * px - dx, h, w)  # as geometry.crop


def _resized_crop(img: torch.Tensor, v: float, u: tuple[float, ...]) -> torch.Tensor:
    """torchvision's ``resized_crop`` of the box that :func:`autoaug.augment.geometry.resized_crop_box` draws from the
    same uniforms."""
    h, w = img.shape[-2:]
    top, left, height, width = (int(b) for b in resized_crop_box(torch.tensor([v]), torch.tensor([u]), h, w)[0])
    return F.resized_crop(img, top, left, height, width, [h, w], antialias=True)


def _cutout(img: torch.Tensor, side: float, u: tuple[float, float]) -> torch.Tensor:
    h, w = img.shape[-2:]
    half = side * min(h, w) / 2
    cy, cx = u[0] * h, u[1] * w
    top, left = max(0, math.ceil(cy - half - 0.5)), max(0, math.ceil(cx - half - 0.5))
    bottom, right = min(h, math.floor(cy + half - 0.5) + 1), min(w, math.floor(cx + half - 0.5) + 1)
    if bottom <= top or right <= left:
        return img
    grey = 128 if img.dtype == torch.uint8 else 0.5
    return F.erase(img, top, left, bottom - top, right - left, torch.tensor(grey, dtype=img.dtype))


def _noise(img: torch.Tensor, sigma: float, g: torch.Generator) -> torch.Tensor:
    def add(x: torch.Tensor) -> torch.Tensor:
        return (x + sigma * torch.randn(x.shape, generator=g)).clamp_(0, 1)

    if img.dtype == torch.uint8:
        return F.to_dtype(add(F.to_dtype(img, torch.float32, scale=True)), torch.uint8, scale=True)
    return add(img)


def _blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma < 1e-3:
        return img
    h, w = img.shape[-2:]
    radius = max(1, min(math.ceil(3 * sigma), (min(h, w) - 1) // 2))
    return F.gaussian_blur(img, [2 * radius + 1] * 2, [sigma, sigma])


# op -> fn(img, physical value, per-image uniforms, generator); physical values as autoaug.augment.ops maps them
APPLY: dict[str, Callable[[torch.Tensor, float, tuple[float, ...], torch.Generator], torch.Tensor]] = {
    "identity": lambda x, v, u, g: x,
    "rotate": lambda x, v, u, g: F.rotate(x, v, interpolation=BILINEAR, fill=0),  # type: ignore[arg-type]
    "shear_x": lambda x, v, u, g: _affine(x, shear=[math.degrees(math.atan(v)), 0.0]),
    "shear_y": lambda x, v, u, g: _affine(x, shear=[0.0, math.degrees(math.atan(v))]),
    "translate_x": lambda x, v, u, g: _affine(x, translate=[v * x.shape[-1], 0.0]),
    "translate_y": lambda x, v, u, g: _affine(x, translate=[0.0, v * x.shape[-2]]),
    "zoom": lambda x, v, u, g: _affine(x, scale=1.0 + v),
    "hflip": lambda x, v, u, g: F.horizontal_flip(x),
    "vflip": lambda x, v, u, g: F.vertical_flip(x),
    "brightness": lambda x, v, u, g: F.adjust_brightness(x, 1.0 + v),
    "contrast": lambda x, v, u, g: F.adjust_contrast(x, 1.0 + v),
    "saturation": lambda x, v, u, g: x if x.shape[-3] == 1 else F.adjust_saturation(x, 1.0 + v),
    "sharpness": lambda x, v, u, g: F.adjust_sharpness(x, 1.0 + v),
    "posterize": lambda x, v, u, g: _as_uint8(lambda y: F.posterize(y, 8 - round(v)))(x),
    "solarize": lambda x, v, u, g: F.solarize(x, (1.0 - v) * (255 if x.dtype == torch.uint8 else 1.0) + 1e-6),
    "autocontrast": lambda x, v, u, g: F.autocontrast(x),
    "equalize": lambda x, v, u, g: _as_uint8(F.equalize)(x),
    "invert": lambda x, v, u, g: F.invert(x),
    "gaussian_noise": lambda x, v, u, g: _noise(x, v, g),
    "gaussian_blur": lambda x, v, u, g: _blur(x, v),
    "cutout": lambda x, v, u, g: _cutout(x, v, u),  # type: ignore[arg-type]
    "crop": lambda x, v, u, g: _crop(x, v, u),  # type: ignore[arg-type]
    "resized_crop": lambda x, v, u, g: _resized_crop(x, v, u),
}


class TorchvisionPolicy(v2.Transform):
    """``policy`` at training ``progress`` for one image at a time; random draws from a generator seeded with
    ``seed`` (None: torch's global generator, as torchvision's own transforms). A scheduled policy follows its
    schedule when the training loop calls :meth:`set_progress` (e.g. once an epoch), as the batched augmenter
    does."""

    _transformed_types = (torch.Tensor,)

    def __init__(self, policy: Policy, progress: float = 0.0, seed: int | None = None) -> None:
        super().__init__()
        self.schedule_of = policy
        self.set_progress(progress)
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None

    def set_progress(self, progress: float) -> None:
        """Move to training ``progress`` in [0, 1]: the ops, magnitudes and stage the policy has there."""
        if not 0.0 <= progress <= 1.0:
            raise ValueError(f"progress {progress!r} is outside [0, 1]")
        self.policy, self.progress = self.schedule_of.at(progress), progress
        self.magnitudes = self.schedule_of.magnitudes(progress)
        self.base_magnitudes = self.schedule_of.base_magnitudes(progress)

    def forward(self, *inputs: Any) -> Any:
        from PIL import Image

        converted = [F.pil_to_tensor(i) if isinstance(i, Image.Image) else i for i in inputs]
        return super().forward(*converted)

    def _rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        """The base ops, then the layer's: each op's physical value and uniforms, for those that apply."""
        names = list(self.policy.ops)
        if self.policy.n_ops is not None:
            names = [names[i] for i in sorted(self._rand(len(names)).argsort()[: self.policy.n_ops].tolist())]
        layers = ((self.policy.base, list(self.policy.base), self.base_magnitudes),
                  (self.policy.ops, names, self.magnitudes))
        return {"ops": [draw for ops, chosen, mags in layers for name in chosen
                        if (draw := self._draw(name, ops[name], mags.get(name, 0.0))) is not None]}

    def _draw(self, name: str, cfg: Any, magnitude: float) -> tuple[str, float, tuple[float, ...]] | None:
        spec = OPS[name]
        u = self._rand(3 + spec.n_uniform).tolist()  # probability, magnitude, sign, the op's own
        if u[0] >= cfg.probability:
            return None
        mag = u[1] * magnitude if cfg.sampling == "uniform" else magnitude
        return name, float(spec.value(torch.tensor(-mag if spec.signed and u[2] < 0.5 else mag))), tuple(u[3:])

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        g = self.generator if self.generator is not None else torch.default_generator
        for name, value, u in params["ops"]:
            inpt = APPLY[name](inpt, value, u, g)
        return inpt

    def extra_repr(self) -> str:
        return f"policy={self.policy.name!r}, ops={list(self.policy.ops)}, progress={self.progress}"


def exportable(policy: Policy) -> None:
    """Refuse, in one line, a policy that a per-image transform cannot run: one driven by the training state (the
    feedback controller, AugNet) or one that mixes generated images into every batch."""
    adaptive = sorted({s.kind for s in (policy.schedule, *(c.schedule for c in policy.ops.values())) if s is not None
                       and s.adaptive})
    if adaptive:
        raise AutoaugError(f"policy {policy.name!r} is driven by the training state ({', '.join(adaptive)} schedule): "
                           "a per-image transform cannot follow it; export a fixed or scheduled policy instead "
                           "(e.g. the policy with its schedule set to constant)")
    if policy.mixes:
        raise AutoaugError(f"policy {policy.name!r} mixes pairs of images of a batch ({policy.mix.kind}): a per-image "  # type: ignore[union-attr]
                           "transform cannot; use torchvision.transforms.v2.MixUp / CutMix on the batches, or remove "
                           "'mix' from the policy file to export its ops")
    if policy.subpolicies:
        raise AutoaugError(f"policy {policy.name!r} has sub-policies (AutoAugment's form), which the exported "
                           "transform does not run; for AutoAugment's CIFAR-10 policy use torchvision.transforms.v2."
                           "AutoAugment(AutoAugmentPolicy.CIFAR10)")
    if policy.synthetic is not None and policy.synthetic.ratio > 0:
        raise AutoaugError(f"policy {policy.name!r} mixes generated images into every batch (synthetic ratio "
                           f"{policy.synthetic.ratio:g}): a per-image transform cannot; remove 'synthetic' from the "
                           "policy file to export its ops")


def to_torchvision(policy: Policy, progress: float = 0.0, seed: int | None = None) -> TorchvisionPolicy:
    """``policy`` as a ``torchvision.transforms.v2`` transform for one image at a time, at training ``progress``
    (a scheduled policy follows its schedule through ``set_progress``). Refuses what a per-image transform cannot
    run (:func:`exportable`)."""
    exportable(policy)
    return TorchvisionPolicy(policy, progress, seed)


def python_source(policy: Policy) -> str:
    """A Python snippet that builds the torchvision pipeline of ``policy`` (for ``autoaug export``); for a scheduled
    policy it shows where the training loop moves the transform along its schedule."""
    exportable(policy)
    scheduled = policy.schedule.kind != "constant" or bool(policy.stages) or any(
        c.schedule is not None and c.schedule.kind != "constant" for c in (*policy.ops.values(),
                                                                            *policy.base.values()))
    follow = ("\n# the policy is scheduled: move it along its schedule as training goes, e.g. once an epoch\n"
              "# (in DataLoader workers, with persistent_workers=False, so that each epoch's workers see it):\n"
              "#     augment.set_progress(epoch / epochs)\n") if scheduled else ""
    return (
        "import torch\n"
        "import torchvision.transforms.v2 as v2\n\n"
        "from autoaug import Policy, to_torchvision\n\n"
        f"policy = Policy.from_dict({policy.to_dict()!r})\n"
        "augment = to_torchvision(policy)        # the searched augmentation, one image at a time\n"
        "transform = v2.Compose([\n"
        "    v2.ToImage(),                       # PIL or array -> uint8 tensor [C, H, W]\n"
        "    augment,\n"
        "    v2.ToDtype(torch.float32, scale=True),\n"
        "])\n" + follow
    )
