"""From a resolved config and a checked input to the list of containers to run."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path

from multiverse.catalog import image_of
from multiverse.config import Limits, ModelConfig, RunnerConfig
from multiverse.errors import ConfigError, InputError
from multiverse.inputs import InputData

#: Hidden folder under the output root: staging areas, failed attempts, the run lock.
WORK_DIR = ".multiverse"


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


@dataclass(frozen=True)
class Plan:
    run_id: str
    input: InputData
    output_root: Path
    jobs: tuple[Job, ...]
    parallel: int
    labels: dict
    report: bool = False

    @property
    def work_dir(self) -> Path:
        return self.output_root / WORK_DIR


def new_run_id() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def make_plan(config: RunnerConfig, models: list[ModelConfig], data: InputData) -> Plan:
    """Check every model applies to the input and that the output root is usable."""
    problems = [
        f"- {model.name}: {reason}"
        for model in models
        if (reason := model.spec.check_modalities(data.kinds))
    ]
    if problems:
        usable = [model.name for model in models if not model.spec.check_modalities(data.kinds)]
        raise InputError(
            f"{data.path.name} ({data.describe()}) does not suit every model:\n"
            + "\n".join(problems)
            + (f"\nModels that can run on it: {', '.join(usable)}" if usable else "")
        )
    root = Path(config.output).absolute()
    if root.exists() and not root.is_dir():
        raise ConfigError(f"output {root} exists and is not a folder")
    for model in models:
        folder = root / model.name
        if folder in data.path.parents:
            raise ConfigError(f"the input {data.path} lies inside {folder}, which the {model.name} result replaces")
    jobs = tuple(
        Job(
            name=model.name,
            method=model.spec.name,
            image=image_of(model.spec).tag,
            params=model.params,
            limits=model.limits,
            input=data,
            output_root=root,
            entrypoint=tuple(model.spec.entrypoint) if model.spec.entrypoint else None,
        )
        for model in models
    )
    return Plan(
        run_id=new_run_id(),
        input=data,
        output_root=root,
        jobs=jobs,
        parallel=min(config.jobs, len(jobs)),
        labels=config.labels.model_dump(),
        report=config.report,
    )
