"""From a resolved config and a checked input to the list of containers to run.

Everything that can be checked before a container starts is checked here, and
every problem is reported at once (exit 2): models that do not suit the
input's modalities, label columns the input lacks, and output folders that
are not multiverse's (a user's own ``pca/`` or ``report/`` is never replaced).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from multiverse.catalog import image_of
from multiverse.config import LABEL_PARAMS, Entry, Limits, RunnerConfig
from multiverse.errors import ConfigError, InputError
from multiverse.inputs import InputData
from multiverse.runner.store import PROVENANCE_FILE, WORK_DIR, foreign

REPORT_DIR = "report"
#: The report folder's marker: the evaluation's scores, which only multiverse writes there.
REPORT_MARKER = "scores.json"
MANIFEST_FILE = "manifest.json"
#: Converted inputs (10x matrices, mixed-feature .h5ad) live here, named by the source's checksum.
CONVERTED_DIR = "inputs"


@dataclass(frozen=True)
class Job:
    """One model to run: which image, on what, with which parameters and limits."""

    name: str
    method: str
    image: str
    params: dict
    limits: Limits
    input: InputData
    output_root: Path
    #: Overrides the image's entrypoint (controls run on another method's image).
    entrypoint: tuple[str, ...] | None = None

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
class Plan:
    run_id: str
    input: InputData
    output_root: Path
    jobs: tuple[Job, ...]
    parallel: int
    labels: dict
    report: bool = False
    #: What the plan decided on the user's behalf (e.g. a default label column the input lacks).
    notes: tuple[str, ...] = ()
    #: The config's backend and its ``slurm:`` section (the CLI's --backend overrides the first).
    backend: str = "docker"
    slurm: object = None

    @property
    def work_dir(self) -> Path:
        return self.output_root / WORK_DIR


def new_run_id() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def _modality_problems(entries: list[Entry], data: InputData) -> None:
    problems = [f"- {e.name}: {reason}" for e in entries if (reason := e.spec.check_modalities(data.kinds))]
    if problems:
        usable = [e.name for e in entries if not e.spec.check_modalities(data.kinds)]
        raise InputError(
            f"{data.path.name} ({data.describe()}) does not suit every model:\n"
            + "\n".join(problems)
            + (f"\nModels that can run on it: {', '.join(usable)}" if usable else "")
        )


def _column_problems(config: RunnerConfig, entries: list[Entry], data: InputData) -> list[str]:
    wanted = {f"labels.{role}": column for role, column in config.labels.explicit().items()}
    for entry in entries:
        wanted.update({f"models.{entry.name}.params.{p}": column for p, column in entry.columns.items()})
    missing = [f"{where}: {column!r}" for where, column in wanted.items() if column not in data.obs_columns]
    if not missing:
        return []
    have = ", ".join(data.obs_columns) or "none"
    return [f"the input's obs has no column {m} (its columns: {have})" for m in missing]


def _absent_defaults(config: RunnerConfig, entries: list[Entry], data: InputData) -> tuple[list[Entry], dict, list[str]]:
    """Default label columns the input lacks become null (and the run says so), never a silent no-op."""
    labels, notes = config.labels.model_dump(), []
    for role, column in list(labels.items()):
        if column and role not in config.labels.explicit() and column not in data.obs_columns:
            labels[role] = None
            notes.append(f"the input has no obs column {column!r}: no {role.replace('_', ' ')} labels "
                         f"(set labels.{role} in the config to name one)")
    fixed = []
    for entry in entries:
        params = dict(entry.params)
        for param, role in LABEL_PARAMS.items():
            if param in params and param not in entry.columns and params[param] and params[param] not in data.obs_columns:
                params[param] = None
        fixed.append(entry.model_copy(update={"params": params}))
    return fixed, labels, notes


def _output_problems(root: Path, entries: list[Entry], report: bool, data: InputData) -> list[str]:
    problems = []
    if root.exists() and not root.is_dir():
        return [f"the output {root} exists and is not a folder"]
    for entry in entries:
        folder = root / entry.name
        if folder in data.path.parents or folder == data.path:
            problems.append(f"the input {data.path} lies inside {folder}, which the {entry.name} result would replace")
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


def _our_manifest(path: Path) -> bool:
    import json

    try:
        return os.path.isfile(path) and not os.path.islink(path) and "multiverse_version" in json.loads(path.read_text())
    except (OSError, ValueError, TypeError):
        return False


def make_plan(config: RunnerConfig, entries: list[Entry], data: InputData) -> Plan:
    """Check every model against the input and the output root; every problem at once (exit 2)."""
    _modality_problems(entries, data)
    root = Path(config.output).absolute()
    problems = _column_problems(config, entries, data) + _output_problems(root, entries, config.report, data)
    if problems:
        raise ConfigError("cannot start:\n" + "\n".join(f"- {p}" for p in problems))
    entries, labels, notes = _absent_defaults(config, entries, data)
    if data.needs_conversion:
        data = dataclasses.replace(data, converted_path=root / WORK_DIR / CONVERTED_DIR / f"{data.sha256[:16]}.h5mu")
    jobs = tuple(
        Job(
            name=entry.name,
            method=entry.spec.name,
            image=image_of(entry.spec).tag,
            params=entry.params,
            limits=entry.limits,
            input=data,
            output_root=root,
            entrypoint=tuple(entry.spec.entrypoint) if entry.spec.entrypoint else None,
        )
        for entry in entries
    )
    return Plan(
        run_id=new_run_id(),
        input=data,
        output_root=root,
        jobs=jobs,
        parallel=min(config.jobs, len(jobs)),
        labels=labels,
        report=config.report,
        notes=tuple(notes),
        backend=config.backend,
        slurm=config.slurm,
    )
