"""Compare the methods: score every dataset's results in the evaluation image, then one HTML report."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Optional

from multiverse.backends import Backend, connect


def make_report(
    root: Path,
    backend: Optional[Backend] = None,
    labels: Optional[dict] = None,
    on_line: Callable[[str], None] = lambda line: None,
    cancel: Optional[threading.Event] = None,
    metric_set: Optional[str] = None,
    options=None,
) -> Path:
    """Evaluate ``root``'s results and write ``root/report/report.html``; return its path.

    ``options``: an ``EvaluationOptions`` (limits, seed, metric set); ``metric_set`` overrides its set.
    """
    import dataclasses

    from multiverse.report.campaign import overall_table, stability_table
    from multiverse.report.evaluate import EvaluationOptions, draw_summary, evaluate, publish
    from multiverse.report.html import render
    from multiverse.runner.store import OUTPUT

    options = options or EvaluationOptions()
    if metric_set:
        options = dataclasses.replace(options, metric_set=metric_set)
    backend = backend or connect()
    store, staging, per_dataset, manifest = evaluate(root, backend, labels, options, on_line=on_line, cancel=cancel)
    overall = overall_table(per_dataset)
    if any(row["control"] for row in overall["rows"]) and not draw_summary(backend, store, staging, overall, options, cancel):
        on_line("the summary figure could not be drawn; the report has its table")
    stability = {name: stability_table(scores, view) for name, (scores, view) in per_dataset.items()}
    page = render(staging / OUTPUT, per_dataset, overall, stability, manifest)  # a failed render keeps the old report
    combined = {"schema_version": 1, "run_id": manifest.get("run_id"),
                "datasets": {name: scores for name, (scores, _) in per_dataset.items()}}
    return publish(store, staging, combined) / page.name
