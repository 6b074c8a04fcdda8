"""From a resolved config and the checked inputs to the jobs to run: datasets x models x grid points x seeds.

Everything that can be checked before a container starts is checked here, and
every problem is reported at once (exit 2): label columns an input lacks,
output folders that are not multiverse's (a user's own ``pca/`` or
``report/`` is never replaced), parameters, models that suit none of the
inputs. A model that cannot model one dataset's modalities but suits another
is planned as "not applicable" there, never run.

Layout: each job's result is ``<output>/<dataset>/<entry>/seed-<seed>/``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from multiverse.catalog import image_of
from multiverse.config import LABEL_PARAMS, Dataset, Entry, Limits, RunnerConfig
from multiverse.errors import ConfigError, MultiverseError
from multiverse.inputs import InputData
from multiverse.runner.store import PROVENANCE_FILE, WORK_DIR, foreign

REPORT_DIR = "report"
#: The report folder's marker: the evaluation's scores, which only multiverse writes there.
REPORT_MARKER = "scores.json"
MANIFEST_FILE = "manifest.json"
#: Converted inputs (10x matrices, mixed-feature .h5ad) live here, named by the source's checksum.
CONVERTED_DIR = "inputs"


def job_name(dataset: str, entry: str, seed: int) -> str:
    """A job's name, which is also its result folder relative to the output root."""
    return f"{dataset}/{entry}/seed-{seed}"


@dataclass(frozen=True)
class Job:
    """One container to run: which image, on what, with which parameters and limits."""

    dataset: str
    entry: str
    method: str
    image: str
    params: dict
    limits: Limits
    input: InputData
    output_root: Path
    #: Overrides the image's entrypoint (controls run on another method's image).
    entrypoint: tuple[str, ...] | None = None
    #: The grid point of the entry (empty without a grid) and the entry's name in the config.
    grid: dict = field(default_factory=dict)
    base: str = ""
    #: A user's own image (its parameters are passed through unchecked).
    external: bool = False
    #: Why this job will not run (the method does not model this dataset's modalities).
    not_applicable: Optional[str] = None

    @property
    def name(self) -> str:
        return job_name(self.dataset, self.entry, self.seed)

    @property
    def output_dir(self) -> Path:
        return self.output_root / self.name

    @property
    def seed(self) -> int:
        return int(self.params.get("seed", 0))

    @property
    def threads(self) -> int:
        return max(1, int(self.limits.cpus or 1))


@dataclass(frozen=True)
class DatasetPlan:
    name: str
    input: InputData
    labels: dict


@dataclass(frozen=True)
class Plan:
    run_id: str
    output_root: Path
    datasets: dict[str, DatasetPlan]
    jobs: tuple[Job, ...]
    parallel: int
    report: bool = False
    #: What the plan decided on the user's behalf (e.g. a default label column an input lacks).
    notes: tuple[str, ...] = ()
    #: The config's backend and its ``slurm:`` section (the CLI's --backend overrides the first).
    backend: str = "docker"
    slurm: object = None
    #: The config's ``evaluation:`` section (limits and seed of the report's containers).
    evaluation: object = None

    @property
    def work_dir(self) -> Path:
        return self.output_root / WORK_DIR

    @property
    def input(self) -> InputData:
        """The input of a one-dataset run."""
        return next(iter(self.datasets.values())).input

    @property
    def labels(self) -> dict:
        return next(iter(self.datasets.values())).labels

    @property
    def runnable(self) -> tuple[Job, ...]:
        return tuple(job for job in self.jobs if job.not_applicable is None)


def new_run_id() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def _our_manifest(path: Path) -> bool:
    try:
        return os.path.isfile(path) and not os.path.islink(path) and "multiverse_version" in json.loads(path.read_text())
    except (OSError, ValueError, TypeError):
        return False


def _output_problems(root: Path, jobs: list[Job], report: bool, inputs: list[InputData]) -> list[str]:
    if root.exists() and not root.is_dir():
        return [f"the output {root} exists and is not a folder"]
    problems = []
    for job in jobs:
        folder = job.output_dir
        if any(folder == data.path or folder in data.path.parents for data in inputs):
            problems.append(f"an input lies inside {folder}, which the {job.name} result would replace")
        elif foreign(folder):
            problems.append(
                f"{folder} exists and is not a multiverse result (no {PROVENANCE_FILE}): multiverse never "
                f"replaces it. Move it away, choose another --output, or name the model otherwise"
            )
    if report and foreign(root / REPORT_DIR, REPORT_MARKER):
        problems.append(
            f"{root / REPORT_DIR} exists and is not a multiverse report (no {REPORT_MARKER}): multiverse never "
            f"replaces it. Move it away or choose another --output"
        )
    if os.path.lexists(root / MANIFEST_FILE) and not _our_manifest(root / MANIFEST_FILE):
        problems.append(f"{root / MANIFEST_FILE} exists and is not a multiverse manifest; move it away or choose another --output")
    return problems


def _labels_for(dataset: Dataset, data: InputData, notes: list[str]) -> tuple[dict, list[str]]:
    """The dataset's label columns: named ones must exist; a default one the input lacks becomes null."""
    labels, problems = dataset.labels.model_dump(), []
    have = ", ".join(data.obs_columns) or "none"
    for role, column in dataset.labels.explicit().items():
        if column not in data.obs_columns:
            problems.append(f"{dataset.name}: the input's obs has no column labels.{role}: {column!r} (its columns: {have})")
    for role, column in list(labels.items()):
        if column and role not in dataset.labels.explicit() and column not in data.obs_columns:
            labels[role] = None
            notes.append(f"{dataset.name}: the input has no obs column {column!r}: no {role.replace('_', ' ')} "
                         f"labels (set labels.{role} in the config to name one)")
    return labels, problems


def _jobs_for(dataset: Dataset, data: InputData, entry: Entry, root: Path, problems: list[str]) -> list[Job]:
    reason = entry.spec.check_modalities(data.kinds)
    jobs = []
    for seed in entry.seeds:
        try:
            params, columns = entry.resolve(dataset.labels, seed)
        except ConfigError as exc:
            problems.append(exc.message)
            continue
        have = ", ".join(data.obs_columns) or "none"
        for param, column in columns.items():
            if column not in data.obs_columns:
                problems.append(f"{dataset.name}: the input's obs has no column models.{entry.base}.params.{param}: "
                                f"{column!r} (its columns: {have})")
        for param in LABEL_PARAMS:  # a default column the input lacks: the method trains without it
            if param in params and param not in columns and params[param] and params[param] not in data.obs_columns:
                params[param] = None
        jobs.append(Job(
            dataset=dataset.name, entry=entry.name, method=entry.spec.name, image=image_of(entry.spec).tag,
            params=params, limits=entry.limits, input=data, output_root=root,
            entrypoint=tuple(entry.spec.entrypoint) if entry.spec.entrypoint else None,
            grid=dict(entry.grid), base=entry.base, external=entry.external, not_applicable=reason,
        ))
    return jobs


def make_plan(config: RunnerConfig, entries: list[Entry], inputs: list[tuple[Dataset, InputData]]) -> Plan:
    """Check every model against every input and the output root; every problem at once (exit 2)."""
    root = Path(config.output).absolute()
    problems, notes, jobs, datasets = [], [], [], {}
    for dataset, data in inputs:
        if data.needs_conversion:
            data = dataclasses.replace(data, converted_path=root / WORK_DIR / CONVERTED_DIR / f"{data.sha256[:16]}.h5mu")
        labels, label_problems = _labels_for(dataset, data, notes)
        problems += label_problems
        datasets[dataset.name] = DatasetPlan(dataset.name, data, labels)
        for entry in entries:
            jobs += _jobs_for(dataset, data, entry, root, problems)
    for entry in entries:
        reasons = [f"{dataset.name} ({data.describe()}): {r}" for dataset, data in inputs
                   if (r := entry.spec.check_modalities(data.kinds))]
        if len(reasons) == len(inputs):
            usable = [e.name for e in entries if any(not e.spec.check_modalities(d.kinds) for _, d in inputs)]
            problems.append(f"{entry.name} suits none of the inputs: {'; '.join(reasons)}"
                            + (f". Models that can run: {', '.join(usable)}" if usable else ""))
    problems += _output_problems(root, jobs, config.report, [data for _, data in inputs])
    if problems:
        raise ConfigError("cannot start:\n" + "\n".join(f"- {p}" for p in problems))
    return Plan(
        run_id=new_run_id(),
        output_root=root,
        datasets=datasets,
        jobs=tuple(jobs),
        parallel=max(1, min(config.jobs, len([j for j in jobs if not j.not_applicable]) or 1)),
        report=config.report,
        notes=tuple(notes),
        backend=config.backend,
        slurm=config.slurm,
        evaluation=config.evaluation,
    )


def inspect_datasets(datasets: list[Dataset]) -> list[tuple[Dataset, InputData]]:
    """Every dataset's input, checked; all problems at once."""
    from multiverse.inputs import inspect_input

    inspected, problems = [], []
    for dataset in datasets:
        try:
            inspected.append((dataset, inspect_input(dataset.path, dataset.modalities, dataset.counts_layer)))
        except MultiverseError as exc:
            problems.append(exc.message if len(datasets) == 1 else f"{dataset.name}: {exc.message}")
    if problems:
        if len(problems) == 1 and len(datasets) == 1:
            from multiverse.errors import InputError

            raise InputError(problems[0])
        raise ConfigError("cannot start:\n" + "\n".join(f"- {p}" for p in problems))
    return inspected
