"""The augmenter's hot path never reads the device back nor copies host data to it.

On a GPU each of these would stall the stream: ``nonzero``, ``item``, ``float(t)``, ``bool(t)``, ``tolist``,
boolean-mask indexing, moving a tensor to the CPU, or making a tensor from host data. A
:class:`~torch.overrides.TorchFunctionMode` sees every torch call made while a batch is sampled and applied,
on the CPU as on a GPU, and records the ones that would sync.
"""

from __future__ import annotations

import random

import pytest
import torch
from torch.overrides import TorchFunctionMode

from autoaug.augment.augmenter import Augmenter, apply, sample
from autoaug.augment.ops import OPS
from autoaug.augment.policy import OpConfig, Policy
from autoaug.augment.presets import PRESETS

SYNCS = {torch.Tensor.nonzero, torch.nonzero, torch.argwhere, torch.Tensor.item, torch.Tensor.tolist,
         torch.Tensor.__float__, torch.Tensor.__int__, torch.Tensor.__bool__, torch.Tensor.__index__,
         torch.Tensor.numpy, torch.Tensor.cpu, torch.masked_select, torch.Tensor.masked_select, torch.unique,
         torch.Tensor.unique, torch.tensor, torch.as_tensor, torch.Tensor.new_tensor}


class SyncRecorder(TorchFunctionMode):
    """Records the torch calls that would make the host wait for the device or copy host data to it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if func in SYNCS:
            self.calls.append(name)
        elif name == "__getitem__" and any(isinstance(a, torch.Tensor) and a.dtype == torch.bool
                                           for a in _flat(args[1:])):
            self.calls.append("boolean mask indexing")
        elif name in ("to", "copy_") and any(isinstance(a, torch.device | str) and torch.device(a).type == "cpu"
                                              for a in [*args[1:], kwargs.get("device")] if a is not None):
            self.calls.append(f"{name}(cpu)")
        return func(*args, **kwargs)


def _flat(args: tuple) -> list:
    out = []
    for a in args:
        out.extend(_flat(a) if isinstance(a, tuple | list) else [a])
    return out


def _policies() -> dict[str, Policy]:
    every_op = {name: OpConfig(0.5, 0.4) for name in OPS}
    return {**{name: PRESETS[name] for name in ("baseline", "randaugment", "trivialaugment", "cropflip+randaugment",
                                               "cropflip+autoaugment")},
            "every op": Policy(ops=every_op), "every op, 2 per image": Policy(ops=every_op, n_ops=2)}


@pytest.mark.parametrize("name", list(_policies()))
@pytest.mark.parametrize("shape", [(64, 1, 28, 28), (64, 3, 32, 32)])
def test_a_batch_makes_no_host_sync_and_no_host_to_device_copy(name: str, shape: tuple[int, ...]) -> None:
    aug = Augmenter(_policies()[name], seed=0)
    x = torch.randint(0, 256, shape, dtype=torch.uint8)
    aug(x, progress=0.3)  # the first batch of a shape may set up constants on the device
    with SyncRecorder() as recorder:
        for progress in (0.4, 0.5, 0.9):
            aug(x, progress=progress)
    assert recorder.calls == []


def test_the_recorder_sees_the_syncs_it_looks_for() -> None:
    """The old hot path: one ``nonzero`` per op and probabilities copied to the device every batch."""
    x = torch.rand(8, 3, 4, 4)
    with SyncRecorder() as recorder:
        applied = torch.rand(8) < torch.tensor(0.5)
        applied.nonzero()
        x[applied]
        float(x.max())
    assert recorder.calls == ["tensor", "nonzero", "boolean mask indexing", "__float__"]


def test_fixed_shapes_come_from_the_host_generator() -> None:
    """Same host and device seeds: the same batch; the subsets' sizes follow the probabilities."""
    policy = Policy(ops={"invert": OpConfig(0.0, 0.3), "rotate": OpConfig(0.5, 1.0)})
    draws = [sample(policy, (1000, 1, 4, 4), 0.0, torch.Generator().manual_seed(1), host=random.Random(2))
             for _ in range(2)]
    x = torch.rand(1000, 1, 4, 4)
    assert torch.equal(apply(x, draws[0]), apply(x, draws[1]))
    sizes = {name: len(p.index) for name, p in draws[0].ops}
    assert sizes["rotate"] == 1000 and sizes["invert"] in (300,)
