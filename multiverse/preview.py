"""``multiverse plan`` (``run --dry-run``): the job grid, what a run would keep and what it would run.

Nothing is started. A job is "cached" when its earlier result has the same key
(the images are looked up on the backend for their ids; without an engine the
status is "unknown") and still validates. The expected time of a job that
would run comes from earlier results in the output folder: the median
duration of the same model entry on the same dataset, else of the same method
on that dataset, else of the method on any dataset.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from typing import Optional

from multiverse.errors import MultiverseError
from multiverse.plan import MANIFEST_FILE, Job, Plan
from multiverse.runner.execute import cached_result
from multiverse.runner.provenance import result_key


@dataclass
class Row:
    job: Job
    status: str  # "cached", "run", "not applicable", "unknown"
    expected_s: Optional[float] = None
    detail: str = ""


def _history(plan: Plan) -> list[dict]:
    try:
        manifest = json.loads((plan.output_root / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return []
    return [r for r in manifest.get("jobs", {}).values() if isinstance(r, dict) and r.get("duration_s")]


def expected_seconds(job: Job, history: list[dict]) -> Optional[float]:
    for match in (
        lambda r: r.get("dataset") == job.dataset and r.get("entry") == job.entry,
        lambda r: r.get("dataset") == job.dataset and r.get("method") == job.method,
        lambda r: r.get("method") == job.method,
    ):
        times = [float(r["duration_s"]) for r in history if match(r)]
        if times:
            return statistics.median(times)
    return None


def preview(plan: Plan, backend=None) -> list[Row]:
    history = _history(plan)
    image_ids: dict[str, Optional[str]] = {}
    missing: dict[str, str] = {}  # image -> why its id is unknown
    rows = []
    for job in plan.jobs:
        if job.not_applicable:
            rows.append(Row(job, "not applicable", detail=job.not_applicable))
            continue
        if job.image not in image_ids:
            image_ids[job.image] = None
            if backend is None:
                missing[job.image] = "no engine to look the image up"
            else:
                try:
                    image_ids[job.image] = backend.resolve_image(job.image)
                except MultiverseError as exc:  # a preview reports, it does not fail
                    missing[job.image] = exc.message
        image_id = image_ids[job.image]
        expected = expected_seconds(job, history)
        if image_id is None:
            rows.append(Row(job, "unknown", expected, missing[job.image]))
        elif cached_result(job, result_key(job, image_id)) is not None:
            rows.append(Row(job, "cached"))
        else:
            rows.append(Row(job, "run", expected))
    return rows
