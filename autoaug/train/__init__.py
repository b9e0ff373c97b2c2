"""Training: one plain-PyTorch training run (models, batches with augmentation, precision) and its evaluation,
metrics and robustness. Reports progress through a ``report(metrics)`` callable; knows nothing of Ray or MLflow."""

from __future__ import annotations

from autoaug.lazy import attach

__getattr__, __dir__ = attach(__name__, {
    "TrainConfig": "trainer", "TrainResult": "trainer", "Trainer": "trainer", "TrainingDiverged": "trainer",
    "train": "trainer", "evaluate": "trainer", "predict": "trainer", "resolve_device": "trainer",
    "build_model": "models", "model_names": "models",
    "PRECISIONS": "precision", "resolve_precision": "precision",
    "classification_metrics": "metrics",
    "corruption_accuracy": "robustness", "fgsm_accuracy": "robustness",
})
__all__ = __dir__()
