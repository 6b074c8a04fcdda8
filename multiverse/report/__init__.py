"""Compare the methods: score every result in the evaluation image, then one HTML report."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Optional

from multiverse.engine import Engine


def make_report(
    root: Path,
    engine: Optional[Engine] = None,
    labels: Optional[dict] = None,
    on_line: Callable[[str], None] = lambda line: None,
    cancel: Optional[threading.Event] = None,
    metric_set: Optional[str] = None,
) -> Path:
    """Evaluate ``root``'s results and write ``root/report/report.html``; return its path."""
    from multiverse.report.evaluate import evaluate
    from multiverse.report.html import render

    extra = {"metric_set": metric_set} if metric_set else {}
    folder, scores, manifest = evaluate(root, engine or Engine.connect(), labels, on_line=on_line, cancel=cancel,
                                        **extra)
    return render(folder, scores, manifest)
