from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from PIL import Image

from autoaug.data.datasets import load_dataset
from autoaug.errors import AutoaugError
from autoaug.train.robustness import (
    CORRUPTIONS,
    box_resize_matrix,
    corruption_accuracy,
    fgsm_accuracy,
    get_corruption,
    pixelate,
)
from autoaug.train.trainer import TrainConfig, evaluate, train

NAMES = list(CORRUPTIONS)


@pytest.fixture(scope="module")
def data():
    return load_dataset("fashion_mnist_small", train_size=1000, val_size=200, seed=0)


@pytest.fixture(scope="module")
def model(data):
    return train(TrainConfig(model="smallcnn", epochs=1, batch_size=64, device="cpu"), data, "none").model


@pytest.fixture(scope="module")
def test_set(data):
    return data.test_x[:500], data.test_y[:500]


@pytest.fixture
def images(request, data, photo) -> torch.Tensor:
    """Natural 8-bit images: 16 Fashion-MNIST ``[16, 1, 28, 28]`` or 3 photos ``[3, 3, 32, 32]``."""
    if request.param == 1:
        return data.test_x[:16].float() / 255
    return (photo * 255).round() / 255


def _changes(name: str, x: torch.Tensor) -> list[float]:
    return [(CORRUPTIONS[name](x, s, torch.Generator().manual_seed(0)) - x).abs().mean().item() for s in range(1, 6)]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("images", [1, 3], indirect=True, ids=["gray", "rgb"])
def test_keeps_shape_dtype_range_and_input(name: str, images: torch.Tensor) -> None:
    before = images.clone()
    for severity in (1, 5):
        y = CORRUPTIONS[name](images, severity, torch.Generator().manual_seed(0))
        assert y.shape == images.shape and y.dtype == images.dtype
        assert y.min() >= 0 and y.max() <= 1
        assert not torch.equal(y, images)
    assert torch.equal(images, before)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("images", [1, 3], indirect=True, ids=["gray", "rgb"])
def test_change_grows_with_severity(name: str, images: torch.Tensor) -> None:
    changes = _changes(name, images)
    assert all(a < b for a, b in itertools.pairwise(changes)), changes


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_for_a_seed(name: str, photo: torch.Tensor) -> None:
    a = CORRUPTIONS[name](photo, 3, torch.Generator().manual_seed(1))
    b = CORRUPTIONS[name](photo, 3, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_noise_has_the_severity_sigma_and_depends_on_the_seed() -> None:
    grey = torch.full((4, 3, 32, 32), 0.5)
    a = CORRUPTIONS["gaussian_noise"](grey, 5, torch.Generator().manual_seed(1))
    b = CORRUPTIONS["gaussian_noise"](grey, 5, torch.Generator().manual_seed(2))
    assert (a - grey).std().item() == pytest.approx(0.10, rel=0.05)
    assert (a - grey).mean().abs().item() < 0.01
    assert not torch.equal(a, b)


def test_contrast_and_brightness_by_hand() -> None:
    x = torch.tensor([0.0, 0.2, 0.6, 1.0]).view(1, 1, 2, 2)  # mean 0.45
    contrast, brightness = CORRUPTIONS["contrast"], CORRUPTIONS["brightness"]
    assert contrast(x, 2).flatten().tolist() == pytest.approx([0.225, 0.325, 0.525, 0.725])  # factor 0.5
    assert brightness(x, 5).flatten().tolist() == pytest.approx([0.3, 0.5, 0.9, 1.0])  # +0.3, clamped
    rgb = torch.stack([torch.zeros(2, 2), torch.ones(2, 2), torch.full((2, 2), 0.5)]).unsqueeze(0)
    assert torch.equal(contrast(rgb, 5), rgb)  # flat channels: every pixel is its channel's mean


def test_blur_keeps_flat_images_and_smooths_an_edge() -> None:
    flat = torch.full((2, 1, 28, 28), 0.3)
    assert torch.allclose(CORRUPTIONS["gaussian_blur"](flat, 5), flat, atol=1e-6)
    edge = torch.zeros(1, 1, 28, 28)
    edge[..., 14:] = 1
    row = CORRUPTIONS["gaussian_blur"](edge, 5)[0, 0, 10]
    # sigma 1 px, taps exp(-d^2 / 2) at d = -3..3: pixel 13 gets (0.606531 + 0.135335 + 0.011109) / 2.505950
    assert row[13].item() == pytest.approx(0.300475, abs=1e-5)
    assert row[14].item() == pytest.approx(0.699525, abs=1e-5)
    assert row[:10].max() < 1e-6 and row[18:].min() > 1 - 1e-6


def _pil_box_round_trip(x: torch.Tensor, factor: float) -> torch.Tensor:
    out = []
    for img in x:
        arr = (img.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        pil = Image.fromarray(arr if arr.shape[2] == 3 else arr[..., 0])
        size = pil.size
        pil = pil.resize((int(size[0] * factor), int(size[1] * factor)), Image.BOX).resize(size, Image.BOX)
        back = torch.from_numpy(np.array(pil)).float() / 255
        out.append(back.permute(2, 0, 1) if back.dim() == 3 else back[None])
    return torch.stack(out)


@pytest.mark.parametrize("images", [1, 3], indirect=True, ids=["gray", "rgb"])
@pytest.mark.parametrize("severity", [1, 3, 5])
def test_pixelate_matches_pil_box_resampling(images: torch.Tensor, severity: int) -> None:
    factor = CORRUPTIONS["pixelate"].level(severity)
    expected = _pil_box_round_trip(images, factor)
    assert (pixelate(images, factor) - expected).abs().max() <= 1.01 / 255  # PIL rounds to 8 bits in between


def test_box_resize_matrix_by_hand() -> None:
    down = box_resize_matrix(4, 2)  # pairs of pixels averaged
    assert down.tolist() == [[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]]
    up = box_resize_matrix(2, 4)  # each pixel repeated
    assert up.tolist() == [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]
    assert torch.allclose(box_resize_matrix(28, 23).sum(1), torch.ones(23))


def test_jpeg_keeps_flat_images() -> None:
    flat = torch.full((2, 3, 32, 32), 128 / 255)
    assert torch.allclose(CORRUPTIONS["jpeg"](flat, 5), flat, atol=1.01 / 255)


def test_unknown_corruption_and_severity_are_refused() -> None:
    with pytest.raises(AutoaugError, match="unknown corruption 'fog'; choose from: gaussian_noise"):
        get_corruption("fog")
    for bad in (0, 6, True):
        with pytest.raises(AutoaugError, match="must be one of 1, 2, 3, 4, 5"):
            CORRUPTIONS["contrast"].level(bad)


def test_fgsm_lowers_accuracy_and_epsilon_zero_is_clean(model, test_set) -> None:
    x, y = test_set
    clean = evaluate(model, x, y)["acc"]
    assert clean > 0.4  # ten classes: chance is 0.1
    assert fgsm_accuracy(model, x, y, epsilon=0.0, batch_size=128) == pytest.approx(clean, abs=1e-6)
    small = fgsm_accuracy(model, x, y)
    large = fgsm_accuracy(model, x, y, epsilon=0.1)
    assert large < small < clean
    assert large < clean - 0.1
    noise = 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)).sign()
    with torch.no_grad():  # a random step of the same size barely matters: the gradient sign does
        random_sign = (model((x.float() / 255 + noise).clamp(0, 1)).argmax(1) == y).float().mean().item()
    assert large < random_sign - 0.1


def test_fgsm_leaves_parameters_alone_and_the_model_in_eval_mode(model, test_set) -> None:
    x, y = test_set
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.zero_grad(set_to_none=True)
    model.train()
    fgsm_accuracy(model, x[:64], y[:64], epsilon=0.1)
    assert not model.training
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BatchNorm statistics included


def test_corruption_accuracy_covers_every_corruption_and_severity(model, test_set) -> None:
    x, y = test_set
    result = corruption_accuracy(model, x, y, batch_size=200)
    assert list(result) == NAMES
    assert all(list(per) == [1, 2, 3, 4, 5] for per in result.values())
    assert all(0 <= acc <= 1 for per in result.values() for acc in per.values())
    clean = evaluate(model, x, y)["acc"]
    assert np.mean([per[5] for per in result.values()]) < clean

    with torch.no_grad():  # the same numbers as corrupting by hand, in the same batches
        logits = torch.cat([model(CORRUPTIONS["contrast"](x[i : i + 200].float() / 255, 4)) for i in (0, 200, 400)])
    assert result["contrast"][4] == (logits.argmax(1) == y).sum().item() / 500

    again = corruption_accuracy(model, x, y, corruptions=["gaussian_noise", "jpeg"], severities=[5, 1], batch_size=200)
    assert again == {"gaussian_noise": {5: result["gaussian_noise"][5], 1: result["gaussian_noise"][1]},
                     "jpeg": {5: result["jpeg"][5], 1: result["jpeg"][1]}}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, x, y: fgsm_accuracy(m, x.float(), y), "images must be uint8"),
        (lambda m, x, y: fgsm_accuracy(m, x, y[:-1]), "500 images but 499 labels"),
        (lambda m, x, y: fgsm_accuracy(m, x, y, epsilon=-0.1), "epsilon -0.1 must be a number >= 0"),
        (lambda m, x, y: corruption_accuracy(m, x, y, corruptions=["fog"]), "unknown corruption 'fog'"),
        (lambda m, x, y: corruption_accuracy(m, x, y, severities=[6]), "severity 6 must be one of"),
    ],
)
def test_bad_input_is_refused(model, test_set, call, message: str) -> None:
    with pytest.raises(AutoaugError, match=message):
        call(model, *test_set)
