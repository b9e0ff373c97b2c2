"""How a run computes: autocast precision and memory format, chosen once per device.

``auto`` picks bfloat16 autocast on CPUs that run it natively (AMX or AVX512-BF16, read from the CPU's
flags: not assumed) and on CUDA devices that support it, float16 with a gradient scaler on older GPUs, and
float32 elsewhere. Conv nets take channels-last inputs. :class:`Compute` wraps a model so that every caller
(training, validation, test metrics, robustness, controllers) gets the same: float images in, float32
logits out.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from autoaug.errors import AutoaugError, choice_error
from autoaug.machine import native_bf16

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX-BF16 or AVX512-BF16) and torch can use it (oneDNN)."""
    return torch.backends.mkldnn.is_available() and bool(native_bf16())


@dataclass(frozen=True)
class Precision:
    """A resolved precision: ``name`` (fp32, bf16 or fp16) on ``device_type``, and whether inputs go
    channels-last."""

    name: str
    device_type: str
    channels_last: bool = True

    @property
    def dtype(self) -> torch.dtype | None:
        return DTYPES[self.name]

    @property
    def scaled(self) -> bool:
        """float16 needs a gradient scaler."""
        return self.name == "fp16"

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device_type, enabled=self.scaled)

    def wrap(self, model: nn.Module) -> Compute:
        channels_last = self.channels_last and any(isinstance(m, nn.Conv2d) for m in model.modules())
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        return Compute(model, self.device_type, self.dtype, channels_last)


def resolve_precision(name: str, device: torch.device) -> Precision:
    """``auto``: bf16 where the device runs it natively, fp16 on CUDA devices without bf16, else fp32. An
    explicit fp16 needs CUDA."""
    if name not in PRECISIONS:
        raise choice_error("precision", name, PRECISIONS)
    cuda = device.type == "cuda"
    if name == "auto":
        if cuda:
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            name = "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"
    if name == "fp16" and not cuda:
        raise AutoaugError(f"precision 'fp16' needs a CUDA device, not {str(device)!r}; use auto, fp32 or bf16")
    return Precision(name, device.type)


class Compute(nn.Module):
    """Runs ``module`` under autocast to ``dtype`` (None: float32) with channels-last inputs where asked;
    returns float32 outputs. Float images ``[B, C, H, W]`` in, logits ``[B, K]`` out."""

    def __init__(self, module: nn.Module, device_type: str, dtype: torch.dtype | None, channels_last: bool) -> None:
        super().__init__()
        self.module, self.device_type, self.dtype, self.channels_last = module, device_type, dtype, channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None):
            return self.module(x).float()

    def extra_repr(self) -> str:
        return f"dtype={self.dtype}, channels_last={self.channels_last}"
