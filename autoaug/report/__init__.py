"""Report: retrain a finished search's policy and the standards over seeds, compare them paired by seed, and
write the report (Markdown, HTML, CSV, plots), with the synthetic-data ablation."""

from __future__ import annotations

from autoaug.lazy import attach

__getattr__, __dir__ = attach(__name__, {
    "make_report": "reporter", "Report": "reporter", "compared_policies": "reporter",
    "load_search": "finished", "FinishedSearch": "finished",
    "describe": "prose",
    "ablate_synthetic": "ablation",
})
__all__ = __dir__()
