from __future__ import annotations

import itertools
import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from autoaug.augment.geometry import shift_pixels
from autoaug.augment.ops import OPS, OpSpec

MAGNITUDE_OPS = [n for n, s in OPS.items() if s.has_magnitude]


def _rand(spec: OpSpec, x: torch.Tensor, seed: int = 0, uniform: float | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if spec.dense_noise:
        return torch.randn(x.shape, generator=g)
    if uniform is not None:
        return torch.full((x.shape[0], spec.n_uniform), uniform)
    return torch.rand(x.shape[0], spec.n_uniform, generator=g)


def _quantized(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round() / 255


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("channels", [1, 3])
def test_shape_dtype_device_kept_and_input_untouched(name: str, channels: int, photo: torch.Tensor) -> None:
    spec = OPS[name]
    x = _quantized(photo[:, :channels]).contiguous()
    before = x.clone()
    y = spec(x, torch.tensor([0.3, -0.7, 1.0]), _rand(spec, x))
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert torch.equal(x, before)
    assert y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("name", list(OPS))
def test_batched_equals_per_image(name: str, photo: torch.Tensor) -> None:
    spec = OPS[name]
    x = _quantized(photo)
    mag = torch.tensor([0.2, -0.5, 0.9])
    rand = _rand(spec, x)
    batched = spec(x, mag, rand)
    single = torch.cat([spec(x[i : i + 1], mag[i : i + 1], rand[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", MAGNITUDE_OPS)
def test_magnitude_zero_is_identity(name: str, photo: torch.Tensor) -> None:
    spec = OPS[name]
    x = _quantized(photo)
    y = spec(x, torch.zeros(3), _rand(spec, x))
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", [n for n, s in OPS.items() if s.neutral_at_zero])
def test_ops_neutral_at_zero_leave_every_image_exactly_as_it_is(name: str, photo: torch.Tensor) -> None:
    spec = OPS[name]
    x = torch.cat([photo, photo.flip(3) * 0.5 + 0.25])  # not on the 8-bit grid, as after a warp
    assert torch.equal(spec(x, torch.zeros(6), torch.zeros(6, spec.n_uniform)), x)


@pytest.mark.parametrize("name", MAGNITUDE_OPS)
def test_severity_grows_with_magnitude(name: str, photo: torch.Tensor) -> None:
    spec = OPS[name]
    x = _quantized(photo)
    rand = _rand(spec, x, uniform=0.99)  # fixed positions / offsets at the far end of their range
    diffs = [(spec(x, torch.full((3,), m), rand) - x).abs().mean().item() for m in (0.0, 0.25, 0.5, 1.0)]
    assert all(b >= a - 1e-6 for a, b in itertools.pairwise(diffs)), diffs
    assert diffs[-1] > diffs[0] + 1e-3, diffs


@pytest.mark.parametrize("name", [n for n in MAGNITUDE_OPS if OPS[n].signed])
def test_signed_ops_differ_by_sign(name: str, photo: torch.Tensor) -> None:
    spec = OPS[name]
    x = _quantized(photo)
    assert not torch.allclose(spec(x, torch.full((3,), 0.5)), spec(x, torch.full((3,), -0.5)))


BILINEAR = InterpolationMode.BILINEAR
# op -> (normalized magnitude, torchvision reference on float images, tolerance of the mean abs difference)
REFERENCES = {
    "rotate": (0.2, lambda x: TF.rotate(x, 27.0, interpolation=BILINEAR), 2e-3),
    "shear_x": (0.3, lambda x: TF.affine(x, angle=0.0, translate=[0, 0], scale=1.0,
                                         shear=[math.degrees(math.atan(0.297)), 0.0], interpolation=BILINEAR), 2e-3),
    "shear_y": (0.3, lambda x: TF.affine(x, angle=0.0, translate=[0, 0], scale=1.0,
                                         shear=[0.0, math.degrees(math.atan(0.297))], interpolation=BILINEAR), 2e-3),
    "translate_x": (0.25, lambda x: TF.affine(x, angle=0.0, translate=[8, 0], scale=1.0, shear=[0.0, 0.0]), 1e-5),
    "translate_y": (0.25, lambda x: TF.affine(x, angle=0.0, translate=[0, 8], scale=1.0, shear=[0.0, 0.0]), 1e-5),
    "zoom": (0.4, lambda x: TF.affine(x, angle=0.0, translate=[0, 0], scale=1.2, shear=[0.0, 0.0],
                                      interpolation=BILINEAR), 2e-3),
    "hflip": (0.0, TF.horizontal_flip, 0.0),
    "vflip": (0.0, TF.vertical_flip, 0.0),
    "brightness": (0.5, lambda x: TF.adjust_brightness(x, 1.495), 1e-6),
    "contrast": (-0.5, lambda x: TF.adjust_contrast(x, 0.505), 1e-6),
    "saturation": (0.5, lambda x: TF.adjust_saturation(x, 1.495), 1e-6),
    "sharpness": (0.8, lambda x: TF.adjust_sharpness(x, 1.792), 1e-6),
    "posterize": (0.5, lambda x: TF.to_dtype(TF.posterize(TF.to_dtype(x, torch.uint8, scale=True), 5),
                                             torch.float32, scale=True), 1e-6),
    "solarize": (0.3, lambda x: TF.solarize(x, 0.7), 1e-6),
    "autocontrast": (0.0, TF.autocontrast, 1e-6),
    "equalize": (0.0, TF.equalize, 1e-6),
    "invert": (0.0, TF.invert, 1e-6),
    "gaussian_blur": (0.5, lambda x: TF.gaussian_blur(x, kernel_size=[7, 7], sigma=[1.0, 1.0]), 1e-5),
}


@pytest.mark.parametrize("name", list(REFERENCES))
def test_matches_torchvision(name: str, photo: torch.Tensor) -> None:
    mag, reference, tol = REFERENCES[name]
    x = _quantized(photo)
    ours = OPS[name](x, torch.full((3,), mag))
    theirs = reference(x)
    assert (ours - theirs).abs().mean().item() <= tol


def test_crop_is_an_integer_shift_with_zero_fill(photo: torch.Tensor) -> None:
    x = photo[:1]
    y = shift_pixels(x, torch.tensor([3]), torch.tensor([-2]))
    torch.testing.assert_close(y[..., :-2, 3:], x[..., 2:, :-3])
    assert y[..., :, :3].abs().sum() == 0 and y[..., -2:, :].abs().sum() == 0
    # magnitude 0.5 = padding of 0.125 x 32 = 4 px; u = 0 picks the bottom-right corner of RandomCrop(32, padding=4)
    ref = TF.crop(TF.pad(x, [4]), 8, 8, 32, 32)
    torch.testing.assert_close(OPS["crop"](x, torch.tensor([0.5]), torch.tensor([[0.0, 0.0]])), ref)


def test_cutout_fills_a_square_of_the_requested_side(photo: torch.Tensor) -> None:
    y = OPS["cutout"](photo[:1], torch.tensor([0.5]), torch.tensor([[0.5, 0.5]]))  # side 0.25 x 32 = 8 px
    filled = (y == 0.5).all(1)[0]
    assert filled.sum().item() == 8 * 8
    torch.testing.assert_close(y, TF.erase(photo[:1], 12, 12, 8, 8, torch.tensor(0.5)))


def test_gaussian_noise_has_the_requested_sigma() -> None:
    x = torch.full((1, 1, 64, 64), 0.5)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    y = OPS["gaussian_noise"](x, torch.tensor([0.5]), noise)
    assert abs((y - x).std().item() - 0.1) < 0.005


def test_saturation_is_identity_on_gray(photo: torch.Tensor) -> None:
    x = photo[:, :1]
    torch.testing.assert_close(OPS["saturation"](x, torch.full((3,), 0.8)), x)


@pytest.mark.parametrize(("h", "w"), [(64, 64), (40, 90)])
def test_resized_crop_draws_boxes_as_torchvision_does(h: int, w: int) -> None:
    """The batched boxes (top, left, height, width) follow torchvision's RandomResizedCrop(scale=(0.08, 1))."""
    from scipy.stats import ks_2samp
    from torchvision.transforms import v2

    from autoaug.augment.geometry import resized_crop_box

    n, g = 3000, torch.Generator().manual_seed(0)
    ours = resized_crop_box(torch.full((n,), 0.92), torch.rand(n, OPS["resized_crop"].n_uniform, generator=g), h, w)
    torch.manual_seed(1)
    theirs = torch.tensor([v2.RandomResizedCrop.get_params(torch.zeros(1, h, w), [0.08, 1.0], [3 / 4, 4 / 3])
                           for _ in range(n)], dtype=torch.float32)
    for i in range(4):
        assert ks_2samp(ours[:, i].numpy(), theirs[:, i].numpy()).pvalue > 0.01, i
    assert ((ours[:, 2] * ours[:, 3]) >= 0.08 * h * w - h - w).all() and (ours[:, 0] + ours[:, 2] <= h).all()
