"""Score every valid result of an output folder in the evaluation image.

The evaluation container sees the input file and the output folder read-only
and writes ``scores.json``, UMAP coordinates and figures into a staging
folder, which is checked like any container's output (no links, nothing but
plain files). The report is rendered into that staging folder and only a
complete report replaces ``<output>/report/``: a failed evaluation or render
keeps the previous report.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Callable, Optional

from multiverse.backends.base import Backend, ContainerSpec, Mount, Resources
from multiverse.catalog import METRICS_IMAGE
from multiverse.collect import read_manifest, result_folders
from multiverse.errors import InfrastructureError, InputError, MultiverseError
from multiverse.plan import REPORT_DIR, REPORT_MARKER, new_run_id
from multiverse.runner.container import container_environment
from multiverse.runner.store import CONTAINER_LOG, OUTPUT, ResultStore, foreign
from multiverse.runner.untrusted import UnsafeTree, check_tree
from multiverse_methods import protocol
from multiverse_methods.scoring.metric_sets import DEFAULT_METRIC_SET

SCORES_FILE = REPORT_MARKER
#: The only figures the report embeds, by the names the evaluation is allowed to write.
ALLOWED_FIGURES = {"cell_type": "umap_cell_type.png", "batch": "umap_batch.png", "plain": "umap.png"}
#: Largest scores.json the host reads.
MAX_SCORES_BYTES = 64 * 2**20


class EvaluationFailed(MultiverseError):
    """The evaluation container did not produce scores."""


def evaluation_resources() -> Resources:
    return Resources(timeout_s=3600, memory_bytes=8 * 1024**3, cpus=float(os.cpu_count() or 1), pids=4096)


def _allowed_figures(folder: Path, scores: dict) -> dict:
    """The figures of scores.json that the report may embed: known names, plain files in ``folder``."""
    figures = scores.get("figures") if isinstance(scores.get("figures"), dict) else {}
    return {
        role: name
        for role, name in figures.items()
        if ALLOWED_FIGURES.get(role) == name and (folder / name).is_file() and not (folder / name).is_symlink()
    }


def evaluate(
    root: Path,
    backend: Backend,
    labels: Optional[dict] = None,
    seed: int = 0,
    on_line: Callable[[str], None] = lambda line: None,
    cancel: Optional[threading.Event] = None,
    metric_set: str = DEFAULT_METRIC_SET,
):
    """Run the evaluation image on ``root``'s valid results.

    Returns (store, staging folder, scores, manifest); the caller renders into the
    staging folder and promotes it with :func:`publish`. ``metric_set``: a name in
    ``multiverse_methods.scoring.metric_sets.METRIC_SETS``.
    """
    root = Path(root).absolute()
    manifest = read_manifest(root)
    source = Path(manifest["input"].get("model_path") or manifest["input"]["path"])
    if not source.is_file():
        raise InputError(f"the run's input {source} is gone: the results cannot be scored against its labels")
    if foreign(root / REPORT_DIR, REPORT_MARKER):
        raise InputError(
            f"{root / REPORT_DIR} exists and is not a multiverse report (no {REPORT_MARKER}): multiverse never "
            f"replaces it. Move it away first"
        )
    models = list(result_folders(root, manifest))
    if not models:
        raise InputError(f"{root} holds no valid result to evaluate")
    labels = {**manifest.get("labels", {"cell_type": "cell_type", "batch": "batch"}), **(labels or {})}
    image = backend.resolve_image(METRICS_IMAGE.tag, build_hint="multiverse build metrics")
    run_id = new_run_id()
    store = ResultStore(root, run_id)
    with store.locked():
        staging = store.staging(REPORT_DIR)
        output = staging / OUTPUT
        input_target = f"{protocol.INPUT_DIR}/{source.name}"
        resources = evaluation_resources()
        spec = ContainerSpec(
            name="evaluation",
            image=image,
            command=(
                "--input", input_target,
                "--results", "/data/results",
                "--output", protocol.OUTPUT_DIR,
                "--models", json.dumps(models),
                "--labels", json.dumps(labels),
                "--seed", str(seed),
                "--metric-set", metric_set,
            ),
            mounts=(Mount(source, input_target, True), Mount(root, "/data/results", True), Mount(output, protocol.OUTPUT_DIR, False)),
            resources=resources,
            environment=container_environment(resources),
            run_id=run_id,
        )
        outcome = backend.run(spec, cancel or threading.Event(), on_line)
        try:
            check_tree(output)
        except UnsafeTree as exc:
            failed = store.keep_failed(REPORT_DIR, staging, outcome.full_log)
            raise EvaluationFailed(f"the evaluation's output is unsafe ({exc}); kept in {failed}") from None
        scores_path = output / SCORES_FILE
        if outcome.exit_code != 0 or not scores_path.is_file():
            failed = store.keep_failed(REPORT_DIR, staging, outcome.full_log)
            why = "timed out" if outcome.timed_out else "was interrupted" if outcome.cancelled else f"exited with code {outcome.exit_code}"
            tail = "\n".join(outcome.log_tail[-10:])
            raise EvaluationFailed(f"the evaluation {why} (log kept in {failed / CONTAINER_LOG}):\n{tail}")
        try:
            if scores_path.stat().st_size > MAX_SCORES_BYTES:
                raise ValueError("larger than 64 MiB")
            scores = json.loads(scores_path.read_text())
        except ValueError as exc:
            raise InfrastructureError(f"the evaluation wrote an unreadable {SCORES_FILE}: {exc}") from None
        scores["figures"] = _allowed_figures(output, scores)
    return store, staging, scores, manifest


def publish(store: ResultStore, staging: Path) -> Path:
    """Move a rendered report into ``<output>/report/`` in one step (the old one goes only then)."""
    final = store.root / REPORT_DIR
    with store.locked():
        output = staging / OUTPUT
        old = None
        if os.path.lexists(final):
            if foreign(final, REPORT_MARKER):
                raise InputError(f"{final} is not a multiverse report any more; the new report stays in {staging}")
            old = store.work / "replaced" / store.run_id / REPORT_DIR
            old.parent.mkdir(parents=True, exist_ok=True)
            os.rename(final, old)
        os.rename(output, final)
        store.discard(staging)
        if old is not None:
            store.discard(old)
    return final
