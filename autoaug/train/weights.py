"""Pretrained weights for timm models: timm's own (``hub``, through its normal mechanism and the Hugging Face
cache) or a local state dict or checkpoint file; the classifier is replaced for the dataset's classes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autoaug.errors import AutoaugError

HUB = "hub"  # ``weights="hub"``: timm's pretrained weights for the model
# the recipe a pretrained model fine-tunes with, unless one is given: AdamW at a tenth of the from-scratch rate, the
# rate rising linearly over the first tenth of the steps (so the new classifier settles before the body moves much)
FINETUNE = {"optimizer": "adamw", "lr": 1e-4, "weight_decay": 0.05, "warmup": 0.1}


def input_size(model: str) -> int | None:
    """The side of the images timm's ``model`` (``timm:NAME``) was pretrained on (its ``pretrained_cfg``), if
    timm knows it."""
    import timm

    try:
        return int(timm.get_pretrained_cfg(model[5:]).input_size[-1])
    except (AttributeError, RuntimeError, TypeError, ValueError):
        return None


def check_weights(model: str, weights: str | os.PathLike[str] | None) -> None:
    """One clear line unless ``weights`` (``None``, ``hub`` or a file) can initialize ``model``: a timm model, and
    a file that holds a state dict whose tensors fit it (its classifier aside)."""
    if weights is None:
        return
    if not model.startswith("timm:"):
        raise AutoaugError(f"pretrained weights need a timm model (timm:NAME); {model!r} is autoaug's own")
    if str(weights) == HUB:
        return
    import timm

    state = load_state_dict(weights)
    reference = timm.create_model(model[5:], pretrained=False)
    head = reference.pretrained_cfg.get("classifier", "")
    expected = {k: v.shape for k, v in reference.state_dict().items() if not k.startswith(head)}
    missing = [k for k in expected if k not in state]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k])]
    if missing or wrong:
        what = f"{len(missing)} missing (first: {missing[0]})" if missing else f"{wrong[0]} has another shape"
        raise AutoaugError(f"weights file {str(weights)!r} does not fit {model}: {what}")


def load_state_dict(path: str | os.PathLike[str]) -> Mapping[str, torch.Tensor]:
    """The state dict in ``path``: a plain one, or a checkpoint's ``state_dict`` / ``model`` entry."""
    if not Path(path).is_file():
        raise AutoaugError(f"weights file {str(path)!r} does not exist")
    try:
        loaded: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise AutoaugError(f"weights file {str(path)!r} is not a PyTorch state dict ({type(e).__name__})") from None
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
            break
    if not isinstance(loaded, Mapping) or not loaded or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise AutoaugError(f"weights file {str(path)!r} holds no state dict (a mapping of names to tensors)")
    return loaded


def pretrained_timm(name: str, in_channels: int, num_classes: int, weights: str | os.PathLike[str]) -> nn.Module:
    """timm's ``name`` initialized from ``weights`` (``hub`` or a file, through timm's ``pretrained`` mechanism:
    first conv adapted to ``in_channels``, classifier new for ``num_classes``)."""
    import timm

    overlay = {} if str(weights) == HUB else {"file": str(Path(weights).resolve())}
    try:
        return timm.create_model(name, pretrained=True, num_classes=num_classes, in_chans=in_channels,
                                 pretrained_cfg_overlay=overlay)
    except Exception as e:  # timm's and the hub's own errors: said in one line
        if overlay:
            raise AutoaugError(f"cannot load weights file {overlay['file']!r} into timm:{name}: {e}") from None
        from huggingface_hub import constants

        raise AutoaugError(f"no pretrained weights for timm:{name}: not in the Hugging Face cache "
                           f"({constants.HF_HUB_CACHE}) and the hub did not give them ({type(e).__name__}); "
                           "download them once where the hub answers, or give --weights FILE") from None
