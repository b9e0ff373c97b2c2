"""Model registry: the small CNNs autoaug's users start from, and any timm model as ``timm:NAME``."""

from __future__ import annotations

import difflib
from collections.abc import Callable

import torch
from torch import nn

from autoaug.errors import AutoaugError, choice_error


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, so models take float images in ``[0, 1]``."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.view(1, -1, 1, 1).float())
        self.register_buffer("std", std.view(1, -1, 1, 1).float().clamp(min=1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class SmallCNN(nn.Module):
    """conv32-pool-conv64-pool-fc128-fc(classes), ReLU, dropout 0.5. Input ``[B, C, H, W]``."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * side * side, 128), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class LeNet5(nn.Module):
    """LeNet-5 (conv6-pool-conv16-pool-fc120-fc84-fc), ReLU and max pooling. Input ``[B, C, H, W]``."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        side = (image_size // 2 - 4) // 2
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * side * side, 120), nn.ReLU(inplace=True),
            nn.Linear(120, 84), nn.ReLU(inplace=True), nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


WIDTHS = (32, 32, 64, 64, 128)


class ConvNet(nn.Module):
    """Five 3x3 conv-BN-ReLU layers (32-32-pool-64-64-pool-128), global average pooling, linear head.

    Translation-tolerant and without dropout, so it overfits small training sets: the model on which
    augmentation pays off. Input ``[B, C, H, W]``.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip((in_channels, *WIDTHS[:-1]), WIDTHS, strict=True)):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            if i in (1, 3):
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(WIDTHS[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


MODELS: dict[str, Callable[[int, int, int], nn.Module]] = {"smallcnn": SmallCNN, "lenet5": LeNet5, "convnet": ConvNet}


def _small_stem(model: nn.Module, in_channels: int, image_size: int) -> None:
    """Adapt an ImageNet stem to 28-32 px inputs: stride-1 3x3 first conv, no stem max-pool."""
    conv1, stem_pool = getattr(model, "conv1", None), getattr(model, "maxpool", None)
    if isinstance(conv1, nn.Conv2d):  # ResNet family
        model.conv1 = nn.Conv2d(in_channels, conv1.out_channels, 3, stride=1, padding=1, bias=False)
        if isinstance(stem_pool, nn.Module):
            model.maxpool = nn.Identity()
        return
    conv_stem = getattr(model, "conv_stem", None)
    if isinstance(conv_stem, nn.Conv2d):  # EfficientNet / MobileNet family
        conv_stem.stride = (1, 1)
        return
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):  # VGG family: keep only the pools the input size allows
        pools = [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
        for i in pools[max(image_size.bit_length() - 1, 0):]:
            features[i] = nn.Identity()


def check_model(name: str) -> None:
    """Raise :class:`AutoaugError` unless ``name`` is a registered model or a known ``timm:NAME``."""
    if not name.startswith("timm:"):
        if name not in MODELS:
            raise choice_error("model", name, model_names())
        return
    import timm

    available = timm.list_models()
    if name[5:] not in available:
        close = difflib.get_close_matches(name[5:], available, n=3)
        hint = f"; did you mean {', '.join('timm:' + c for c in close)}?" if close else "; see timm.list_models()"
        raise AutoaugError(f"unknown timm model {name!r}{hint}")


def _timm_model(name: str, in_channels: int, num_classes: int, image_size: int, small_stem: bool,
                weights: str | None) -> nn.Module:
    import timm

    if weights is not None:
        from autoaug.train.weights import pretrained_timm

        model = pretrained_timm(name, in_channels, num_classes, weights)
    else:
        model = timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels)
    if small_stem:
        _small_stem(model, in_channels, image_size)
    return model


def model_names() -> list[str]:
    return [*MODELS, "timm:NAME"]


def build_model(name: str, in_channels: int, num_classes: int, image_size: int,
                small_stem: bool | None = None, weights: str | None = None) -> nn.Module:
    """``smallcnn``, ``lenet5`` or ``timm:NAME``; ``small_stem`` (default: inputs up to 64 px, and not with
    pretrained ``weights``, whose stem it would replace) for timm; ``weights``: see :mod:`autoaug.train.weights`."""
    check_model(name)
    if name.startswith("timm:"):
        stem = image_size <= 64 and weights is None if small_stem is None else small_stem
        return _timm_model(name[5:], in_channels, num_classes, image_size, stem, weights)
    return MODELS[name](in_channels, num_classes, image_size)
