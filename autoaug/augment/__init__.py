"""Augmentation: the op registry, the policy and its presets, schedules, the batched augmenter, adaptive
controllers, and the export to torchvision. Knows nothing of datasets, training or search."""

from __future__ import annotations

from autoaug.lazy import attach

__getattr__, __dir__ = attach(__name__, {
    "OPS": "ops", "OpSpec": "ops", "get_op": "ops",
    "Policy": "policy", "OpConfig": "policy", "Synthetic": "policy", "layered": "policy",
    "PRESETS": "presets", "standards": "presets", "resolve_policy": "presets",
    "Schedule": "schedule",
    "Augmenter": "augmenter", "sample": "augmenter", "apply": "augmenter",
    "controller_for": "adaptive",
    "TorchvisionPolicy": "export", "to_torchvision": "export",
})
__all__ = __dir__()
