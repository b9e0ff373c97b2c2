"""The natural-image standards: pad-and-crop plus flip, always on, and RandAugment / TrivialAugment on top."""

from __future__ import annotations

import collections
import json

import pytest
import torch
import torchvision.transforms.v2 as v2
import torchvision.transforms.v2.functional as F

from autoaug.augment.augmenter import Augmenter
from autoaug.augment.policy import Policy
from autoaug.augment.presets import BASES, PRESETS


def _outcomes(img: torch.Tensor) -> dict[bytes, tuple[int, int, bool]]:
    """Every image that a 4-px pad-and-crop and a horizontal flip can make of ``img``, by its shift and flip."""
    out = {}
    padded = F.pad(img, [4, 4], fill=0)
    for top in range(9):
        for left in range(9):
            crop = F.crop(padded, top, left, 32, 32)
            for flip in (False, True):
                out[(F.horizontal_flip(crop) if flip else crop).numpy().tobytes()] = (top, left, flip)
    return out


def _counts(images: torch.Tensor, outcomes: dict) -> collections.Counter:
    return collections.Counter(outcomes[x.numpy().tobytes()] for x in images)  # KeyError: an impossible image


def test_cropflip_is_torchvisions_random_crop_and_flip(photo: torch.Tensor) -> None:
    img = (photo[0] * 255).round().to(torch.uint8)
    outcomes = _outcomes(img)
    n = 8100
    ours = _counts(Augmenter("cropflip", seed=0)(img.expand(n, -1, -1, -1).contiguous()), outcomes)
    torch.manual_seed(0)
    reference = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()])
    theirs = _counts(torch.stack([reference(img) for _ in range(n)]), outcomes)
    for counts in (ours, theirs):
        shifts = collections.Counter((top, left) for (top, left, _), c in counts.items() for _ in range(c))
        assert len(shifts) == 81 and all(40 < c < 160 for c in shifts.values())  # 100 expected each: uniform
        flipped = sum(c for (_, _, f), c in counts.items() if f)
        assert abs(flipped / n - 0.5) < 0.03


def test_the_standards_on_top_keep_cropflip_as_base() -> None:
    crop = PRESETS["cropflip"].base
    assert set(crop) == {"crop", "hflip"} and crop["crop"].probability == 1.0 and crop["hflip"].probability == 0.5
    for name, layer in (("cropflip+randaugment", "randaugment"), ("cropflip+trivialaugment", "trivialaugment")):
        p = PRESETS[name]
        assert p.base == crop and p.ops == PRESETS[layer].ops and p.n_ops == PRESETS[layer].n_ops
    assert not PRESETS["none"].augments and PRESETS["cropflip"].augments


def test_cropflip_cutout_greys_a_square_of_half_the_side_on_every_image() -> None:
    """Cutout's CIFAR recipe: on a white 32 px image, every image gets one grey 16 x 16 square (clipped at the
    border), on top of crop and flip."""
    white = torch.full((2000, 3, 32, 32), 255, dtype=torch.uint8)
    out = Augmenter("cropflip+cutout", seed=0)(white)
    grey = (out == 128).all(1)  # [N, H, W]
    area = grey.flatten(1).sum(1)
    assert (area > 0).all() and (area <= 16 * 16).all()
    assert (area == 256).float().mean() > 0.15  # the centre far enough from the border: the whole square
    rows, cols = grey.any(2).sum(1), grey.any(1).sum(1)
    assert (rows <= 16).all() and (cols <= 16).all()
    assert set(PRESETS["cropflip+cutout"].base) == {"crop", "hflip", "cutout"}


def test_autoaugment_holds_torchvisions_cifar10_policy() -> None:
    """The 25 sub-policies of torchvision's AutoAugment(CIFAR10): the same ops, probabilities and physical values
    (translation in pixels at 32 px, posterize as bits kept, solarize as the threshold's fraction)."""
    from autoaug.augment.ops import OPS

    reference = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)
    space = {name: values(10, 32, 32) for name, (values, _signed) in reference._AUGMENTATION_SPACE.items()}
    names = {"ShearX": "shear_x", "ShearY": "shear_y", "TranslateX": "translate_x", "TranslateY": "translate_y",
             "Rotate": "rotate", "Brightness": "brightness", "Color": "saturation", "Contrast": "contrast",
             "Sharpness": "sharpness", "Posterize": "posterize", "Solarize": "solarize",
             "AutoContrast": "autocontrast", "Equalize": "equalize", "Invert": "invert"}
    ours = PRESETS["autoaugment"].subpolicies
    assert len(ours) == len(reference._policies) == 25
    for sub, theirs in zip(ours, reference._policies, strict=True):
        for step, (name, p, b) in zip(sub, theirs, strict=True):
            assert (step.op, step.probability) == (names[name], p)
            if b is None:
                continue
            value = float(OPS[step.op].value(torch.tensor(step.magnitude)))
            expected = float(space[name][b])
            if name.startswith("Translate"):
                value *= 32
            elif name == "Posterize":
                value = 8 - value
            elif name == "Solarize":  # v2 holds the threshold as a fraction of the largest value
                value = 1 - value
            assert value == pytest.approx(expected, abs=1e-4), (name, b)


def test_autoaugment_gives_what_torchvision_gives(photo: torch.Tensor) -> None:
    """Batched AutoAugment and torchvision's, one image at a time: per-image statistics agree in distribution."""
    import numpy as np
    from scipy.stats import ks_2samp

    img, n = (photo[0] * 255).round().to(torch.uint8), 1500
    ours = Augmenter("autoaugment", seed=0)(img.expand(n, -1, -1, -1).contiguous()).float() / 255
    torch.manual_seed(0)
    reference = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)
    theirs = torch.stack([reference(img) for _ in range(n)]).float() / 255
    for region in ((slice(None), slice(None), slice(8, -8), slice(8, -8)), (...,)):
        a, b = ours[region].mean((1, 2, 3)).numpy(), theirs[region].mean((1, 2, 3)).numpy()
        se = np.sqrt(a.var() / n + b.var() / n)
        assert abs(a.mean() - b.mean()) < 4 * se + 0.004
        assert ks_2samp(np.round(a, 2), np.round(b, 2)).pvalue > 1e-4
    assert (ours == img.float() / 255).all((1, 2, 3)).float().mean() < 0.5  # most images changed


def test_old_policy_files_without_a_base_still_load_and_base_round_trips(tmp_path) -> None:
    old = {"name": "mine", "n_ops": None, "ops": {"rotate": {"magnitude": 0.1, "probability": 1.0,
                                                             "sampling": "uniform"}}, "schedule": {"kind": "constant"}}
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert Policy.load(tmp_path / "old.json").base == {}
    p = PRESETS["cropflip+trivialaugment"]
    assert Policy.from_dict(json.loads(p.to_json())) == p


def test_base_ops_ignore_the_policy_schedule() -> None:
    """A linear ramp from 0 scales the layer, not the always-on crop."""
    p = Policy.from_dict({**PRESETS["cropflip+trivialaugment"].to_dict(),
                          "schedule": {"kind": "linear", "start": 0.0, "end": 1.0}})
    assert p.base_magnitudes(0.0)["crop"] == pytest.approx(0.5) and p.magnitudes(0.0)["rotate"] == 0.0


def test_the_standards_are_every_free_preset_that_suits_the_data_and_the_space() -> None:
    from autoaug.augment.presets import standards
    from autoaug.search import load_space

    rgb = ("cropflip", "randaugment", "trivialaugment", "cropflip+randaugment", "cropflip+trivialaugment",
           "cropflip+cutout", "autoaugment", "cropflip+autoaugment")
    assert standards((3, 32, 32)) == load_space("default").standards((3, 32, 32)) == rgb
    # digits: the space offers crop without flip, and so do their standards
    crop = ("crop", "randaugment", "trivialaugment", "crop+randaugment", "crop+trivialaugment")
    assert load_space("svhn").standards((3, 32, 32)) == load_space("mnist").standards((1, 28, 28)) == crop
    assert standards((1, 28, 28)) == crop  # gray images without a space: crop, no flip, no AutoAugment
    gray = load_space("default").standards((1, 28, 28))
    assert "cropflip+cutout" in gray and not any("autoaugment" in name for name in gray)
    assert standards((3, 64, 64)) == load_space("photos").standards((3, 64, 64)) == (
        "rrcflip", "randaugment", "trivialaugment", "rrcflip+randaugment", "rrcflip+trivialaugment")
    assert load_space("per_op").standards((3, 32, 32)) == rgb  # a per-op space has no bases: the usual one


def test_the_crop_presets_are_the_layers_without_flip() -> None:
    assert PRESETS["crop"].base == BASES["crop"] and "hflip" not in PRESETS["crop+randaugment"].base
    assert PRESETS["crop+trivialaugment"].ops == PRESETS["cropflip+trivialaugment"].ops


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28), (3, 64, 64)])
def test_the_default_comparison_names_are_accepted(shape: tuple[int, ...]) -> None:
    from autoaug.augment.presets import standards
    from autoaug.report.reporter import compared_policies

    assert [p.name for p in compared_policies(standards(shape))] == ["none", *standards(shape)]
