"""Score every valid result of an output folder in the evaluation image.

The evaluation container sees the input file and the output folder read-only
and writes ``scores.json``, UMAP coordinates and figures into a staging
folder; only a complete evaluation replaces ``<output>/report/``.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Callable, Optional

from multiverse.catalog import METRICS_IMAGE
from multiverse.collect import read_manifest, result_folders
from multiverse.config import Limits
from multiverse.engine import Engine
from multiverse.errors import InfrastructureError, InputError, MultiverseError
from multiverse.plan import new_run_id
from multiverse.runner.container import SandboxedContainer, ContainerSpec
from multiverse.runner.store import CONTAINER_LOG, ResultStore
from multiverse_methods import protocol
from multiverse_methods.scoring.metric_sets import DEFAULT_METRIC_SET

REPORT_DIR = "report"
SCORES_FILE = "scores.json"


class EvaluationFailed(MultiverseError):
    """The evaluation container did not produce scores."""


def evaluation_limits() -> Limits:
    import os

    return Limits(timeout=3600, memory=8 * 1024**3, cpus=float(os.cpu_count() or 1), pids=4096, gpus=0)


def evaluate(
    root: Path,
    engine: Engine,
    labels: Optional[dict] = None,
    seed: int = 0,
    on_line: Callable[[str], None] = lambda line: None,
    cancel: Optional[threading.Event] = None,
    metric_set: str = DEFAULT_METRIC_SET,
) -> tuple[Path, dict, dict]:
    """Run the evaluation image on ``root``'s valid results; return (report folder, scores, manifest).

    ``metric_set``: a name in ``multiverse_methods.scoring.metric_sets.METRIC_SETS``.
    """
    root = Path(root).absolute()
    manifest = read_manifest(root)
    source = Path(manifest["input"]["path"])
    if not source.is_file():
        raise InputError(f"the run's input {source} is gone: the results cannot be scored against its labels")
    models = list(result_folders(root, manifest))
    if not models:
        raise InputError(f"{root} holds no valid result to evaluate")
    labels = {**manifest.get("labels", {"cell_type": "cell_type", "batch": "batch"}), **(labels or {})}
    image = engine.image(METRICS_IMAGE.tag, build_hint="multiverse build metrics")
    run_id = new_run_id()
    store = ResultStore(root, run_id)
    with store.locked():
        staging = store.staging(REPORT_DIR)
        input_target = f"{protocol.INPUT_DIR}/{source.name}"
        spec = ContainerSpec(
            name="evaluation",
            image=image.id,
            command=[
                "--input", input_target,
                "--results", "/data/results",
                "--output", protocol.OUTPUT_DIR,
                "--models", json.dumps(models),
                "--labels", json.dumps(labels),
                "--seed", str(seed),
                "--metric-set", metric_set,
            ],
            read_only={source: input_target, root: "/data/results"},
            output=staging,
            limits=evaluation_limits(),
        )
        with SandboxedContainer(engine, spec, run_id, cancel) as box:
            outcome = box.run(on_line=on_line)
        scores_path = staging / SCORES_FILE
        if outcome.exit_code != 0 or not scores_path.is_file():
            failed = store.keep_failed(REPORT_DIR, staging, outcome.full_log)
            why = "timed out" if outcome.timed_out else "was interrupted" if outcome.cancelled else f"exited with code {outcome.exit_code}"
            tail = "\n".join(outcome.log_tail[-10:])
            raise EvaluationFailed(f"the evaluation {why} (log kept in {failed / CONTAINER_LOG}):\n{tail}")
        try:
            scores = json.loads(scores_path.read_text())
        except ValueError as exc:
            raise InfrastructureError(f"the evaluation wrote an unreadable {SCORES_FILE}: {exc}") from None
        folder = store.promote(REPORT_DIR, staging)
    return folder, scores, manifest
