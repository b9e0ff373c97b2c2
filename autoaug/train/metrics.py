"""Classification metrics on a test set: accuracy, loss, macro precision / recall / F1, confusion matrix."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[K, K]`` counts (int64): row = true class, column = predicted class. ``pred``, ``target``: ``[N]``."""
    index = target.long() * num_classes + pred.long()
    return torch.bincount(index.cpu(), minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def classification_metrics(logits: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
    """Metrics of ``logits [N, K]`` against labels ``target [N]``.

    Macro averages weigh every class that occurs in the targets or the predictions equally; a class that is
    never predicted has precision 0 (and F1 0), as scikit-learn with ``zero_division=0``. ``confusion`` is a
    nested list (JSON-ready).
    """
    k = logits.shape[1]
    target = target.to(logits.device)
    cm = confusion_matrix(logits.argmax(1), target, k).double()
    tp = cm.diag()
    predicted, actual = cm.sum(0), cm.sum(1)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(actual > 0, tp / actual.clamp(min=1), torch.zeros_like(tp))
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12),
                     torch.zeros_like(tp))
    present = (actual > 0) | (predicted > 0)  # classes neither in the targets nor predicted do not count
    return {
        "acc": float(tp.sum() / cm.sum()),
        "loss": float(F.cross_entropy(logits.float(), target)),
        "precision": float(precision[present].mean()),
        "recall": float(recall[present].mean()),
        "f1": float(f1[present].mean()),
        "confusion": cm.long().tolist(),
    }
