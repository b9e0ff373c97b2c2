"""Report: retrain a finished search's policy and the standards over seeds, compare them paired by seed, and
write the report (Markdown, HTML, CSV, plots), with the synthetic-data ablation."""

from __future__ import annotations

from autoaug.lazy import attach

__getattr__, __dir__ = attach(__name__, {
    "make_report": "reporter", "Report": "reporter", "load_search": "reporter", "FinishedSearch": "reporter",
    "compared_policies": "reporter", "describe": "reporter",
    "ablate_synthetic": "ablation",
})
__all__ = __dir__()
