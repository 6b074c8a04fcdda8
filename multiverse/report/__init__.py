"""Compare the methods: score every result in the evaluation image, then one HTML report."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Optional

from multiverse.backends import Backend, connect
from multiverse_methods.scoring.metric_sets import DEFAULT_METRIC_SET


def make_report(
    root: Path,
    backend: Optional[Backend] = None,
    labels: Optional[dict] = None,
    on_line: Callable[[str], None] = lambda line: None,
    cancel: Optional[threading.Event] = None,
    metric_set: Optional[str] = None,
) -> Path:
    """Evaluate ``root``'s results and write ``root/report/report.html``; return its path."""
    from multiverse.report.evaluate import evaluate, publish
    from multiverse.report.html import render
    from multiverse.runner.store import OUTPUT

    store, staging, scores, manifest = evaluate(root, backend or connect(), labels, on_line=on_line, cancel=cancel,
                                                metric_set=metric_set or DEFAULT_METRIC_SET)
    page = render(staging / OUTPUT, scores, manifest)  # a failed render leaves the old report in place
    return publish(store, staging) / page.name
