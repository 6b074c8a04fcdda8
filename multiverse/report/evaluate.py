"""Score every valid result of an output folder in the evaluation image, dataset by dataset.

Each dataset's evaluation container sees that dataset's input and result
folder read-only and writes ``scores.json``, UMAP coordinates and figures into
its own part of a staging folder, which is checked like any container's
output (no links, nothing but plain files). With several datasets, or several
seeds, a last container draws the summary figure of the campaign. The report
is rendered into the staging folder and only a complete report replaces
``<output>/report/``: a failed evaluation or render keeps the previous report.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from multiverse.backends.base import Backend, ContainerSpec, Mount, Resources
from multiverse.catalog import METRICS_IMAGE
from multiverse.collect import read_manifest, result_folders
from multiverse.errors import InfrastructureError, InputError, MultiverseError
from multiverse.plan import REPORT_DIR, REPORT_MARKER, new_run_id
from multiverse.runner.container import container_environment
from multiverse.runner.provenance import manifest_view
from multiverse.runner.store import CONTAINER_LOG, OUTPUT, ResultStore, foreign
from multiverse.runner.untrusted import UnsafeTree, check_tree, write_new_file
from multiverse_methods import protocol
from multiverse_methods.scoring.metric_sets import DEFAULT_METRIC_SET

SCORES_FILE = REPORT_MARKER
#: The only figures the report embeds, by the names the evaluation is allowed to write.
ALLOWED_FIGURES = {"cell_type": "umap_cell_type.png", "batch": "umap_batch.png", "plain": "umap.png"}
SUMMARY_FIGURE = "summary.png"
#: Largest scores.json the host reads.
MAX_SCORES_BYTES = 64 * 2**20


class EvaluationFailed(MultiverseError):
    """The evaluation container did not produce scores."""


@dataclass(frozen=True)
class EvaluationOptions:
    """The evaluation container's limits and seed (config ``evaluation:``, ``multiverse report`` flags)."""

    timeout_s: float = 3600.0
    memory_bytes: int = 8 * 1024**3
    cpus: Optional[float] = None  # None: every CPU of the host
    seed: int = 0
    metric_set: str = DEFAULT_METRIC_SET

    @property
    def resources(self) -> Resources:
        return Resources(timeout_s=self.timeout_s, memory_bytes=self.memory_bytes,
                         cpus=float(self.cpus or os.cpu_count() or 1), pids=4096)

    @classmethod
    def from_settings(cls, settings, metric_set: Optional[str] = None) -> "EvaluationOptions":
        return cls(timeout_s=settings.timeout, memory_bytes=settings.memory, cpus=settings.cpus, seed=settings.seed,
                   metric_set=metric_set or DEFAULT_METRIC_SET)


def _allowed_figures(folder: Path, scores: dict) -> dict:
    """The figures of scores.json that the report may embed: known names, plain files in ``folder``."""
    figures = scores.get("figures") if isinstance(scores.get("figures"), dict) else {}
    return {
        role: name
        for role, name in figures.items()
        if ALLOWED_FIGURES.get(role) == name and (folder / name).is_file() and not (folder / name).is_symlink()
    }


def _read_scores(path: Path) -> dict:
    try:
        if path.stat().st_size > MAX_SCORES_BYTES:
            raise ValueError("larger than 64 MiB")
        return json.loads(path.read_text())
    except ValueError as exc:
        raise InfrastructureError(f"the evaluation wrote an unreadable {path.name}: {exc}") from None


def _seed_groups(models: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for job in models:
        groups.setdefault(job.rsplit("/seed-", 1)[0], []).append(job)
    return {entry: jobs for entry, jobs in groups.items() if len(jobs) > 1}


def _umap_models(models: list[str]) -> list[str]:
    """One UMAP panel per entry: its first seed."""
    first = {}
    for job in models:
        first.setdefault(job.rsplit("/seed-", 1)[0], job)
    return list(first.values())


def _fail(store: ResultStore, staging: Path, outcome, what: str) -> EvaluationFailed:
    failed = store.keep_failed(REPORT_DIR, staging, outcome.full_log)
    why = ("timed out" if outcome.timed_out else "was interrupted" if outcome.cancelled
           else "ran out of memory" if outcome.oom_killed else f"exited with code {outcome.exit_code}")
    tail = "\n".join(outcome.log_tail[-10:])
    return EvaluationFailed(f"{what} {why} (log kept in {failed / CONTAINER_LOG}):\n{tail}")


def evaluate(
    root: Path,
    backend: Backend,
    labels: Optional[dict] = None,
    options: EvaluationOptions = EvaluationOptions(),
    on_line: Callable[[str], None] = lambda line: None,
    cancel: Optional[threading.Event] = None,
):
    """Run the evaluation image on every dataset's valid results in ``root``.

    Returns (store, staging folder, {dataset: (scores, manifest view)}, manifest); the caller
    renders into the staging folder and promotes it with :func:`publish`.
    """
    root = Path(root).absolute()
    manifest = read_manifest(root)
    if foreign(root / REPORT_DIR, REPORT_MARKER):
        raise InputError(
            f"{root / REPORT_DIR} exists and is not a multiverse report (no {REPORT_MARKER}): multiverse never "
            f"replaces it. Move it away first"
        )
    work = {}
    for dataset, info in manifest.get("datasets", {}).items():
        folders = result_folders(root, manifest, dataset)
        source = Path(info["input"].get("model_path") or info["input"]["path"])
        if folders and not source.is_file():
            raise InputError(f"dataset {dataset}: its input {source} is gone; its results cannot be scored against its labels")
        if folders:
            work[dataset] = (source, list(folders), {**info.get("labels", {}), **(labels or {})})
    if not work:
        raise InputError(f"{root} holds no valid result to evaluate")
    image = backend.resolve_image(METRICS_IMAGE.tag, build_hint="multiverse build metrics")
    run_id = new_run_id()
    store = ResultStore(root, run_id)
    cancel = cancel or threading.Event()
    resources = options.resources
    results = {}
    with store.locked(), backend.guard(run_id):
        staging = store.staging(REPORT_DIR)
        output = staging / OUTPUT
        for dataset, (source, models, columns) in work.items():
            part = output / dataset
            part.mkdir()
            input_target = f"{protocol.INPUT_DIR}/{source.name}"
            spec = ContainerSpec(
                name=f"evaluation/{dataset}",
                image=image,
                command=(
                    "--input", input_target,
                    "--results", "/data/results",
                    "--output", protocol.OUTPUT_DIR,
                    "--models", json.dumps(models),
                    "--labels", json.dumps(columns),
                    "--seed", str(options.seed),
                    "--metric-set", options.metric_set,
                    "--umap-models", json.dumps(_umap_models(models)),
                    "--seed-groups", json.dumps(_seed_groups(models)),
                ),
                mounts=(Mount(source, input_target, True), Mount(root / dataset, "/data/results", True),
                        Mount(part, protocol.OUTPUT_DIR, False)),
                resources=resources,
                environment=container_environment(resources),
                run_id=run_id,
            )
            on_line(f"evaluating {dataset}: {len(models)} result(s)")
            outcome = backend.run(spec, cancel, lambda line, d=dataset: on_line(f"{d} | {line}"))
            try:
                check_tree(part)
            except UnsafeTree as exc:
                failed = store.keep_failed(REPORT_DIR, staging, outcome.full_log)
                raise EvaluationFailed(f"the evaluation of {dataset} left an unsafe output ({exc}); kept in {failed}") from None
            if outcome.exit_code != 0 or not (part / SCORES_FILE).is_file():
                raise _fail(store, staging, outcome, f"the evaluation of {dataset}")
            scores = _read_scores(part / SCORES_FILE)
            scores["figures"] = _allowed_figures(part, scores)
            results[dataset] = (scores, manifest_view(manifest, dataset))
    return store, staging, results, manifest


def draw_summary(backend: Backend, store: ResultStore, staging: Path, overall: dict, options: EvaluationOptions,
                 cancel: Optional[threading.Event] = None) -> bool:
    """The campaign's summary figure, drawn in the metrics image into the staging folder; False if it failed."""
    import tempfile

    output = staging / OUTPUT
    with tempfile.TemporaryDirectory(prefix="multiverse-summary-") as tmp, backend.guard(store.run_id):
        table = Path(tmp) / "overall.json"
        table.write_text(json.dumps(overall))
        figure_dir = Path(tmp) / "out"
        figure_dir.mkdir()
        resources = Resources(timeout_s=600, memory_bytes=2 * 2**30, cpus=1.0, pids=256)
        spec = ContainerSpec(
            name="evaluation/summary",
            image=backend.resolve_image(METRICS_IMAGE.tag, build_hint="multiverse build metrics"),
            entrypoint=("python", "-m", "multiverse_methods.summary_figure"),
            command=("--table", f"{protocol.INPUT_DIR}/overall.json", "--output", protocol.OUTPUT_DIR),
            mounts=(Mount(table, f"{protocol.INPUT_DIR}/overall.json", True), Mount(figure_dir, protocol.OUTPUT_DIR, False)),
            resources=resources,
            environment=container_environment(resources),
            run_id=store.run_id,
        )
        outcome = backend.run(spec, cancel or threading.Event(), lambda line: None)
        produced = figure_dir / SUMMARY_FIGURE
        try:
            check_tree(figure_dir)
        except UnsafeTree:
            return False
        if outcome.exit_code != 0 or not produced.is_file():
            return False
        write_new_file(output / SUMMARY_FIGURE, "")  # claim the name: fails if anything is there
        os.replace(produced, output / SUMMARY_FIGURE)
        return True


def publish(store: ResultStore, staging: Path, combined: dict) -> Path:
    """Write the report's marker and move the rendered report into ``<output>/report/`` in one step."""
    final = store.root / REPORT_DIR
    output = staging / OUTPUT
    write_new_file(output / SCORES_FILE, json.dumps(combined, indent=2) + "\n")
    with store.locked():
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
