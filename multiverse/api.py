"""The Python API behind ``multiverse run``: prepare a plan, then execute it on a backend.

    from multiverse import api
    plan = api.prepare(models=["pca"], input="data.h5mu", output="results")
    results = api.execute(plan)
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional

from rich.console import Console

from multiverse.backends import Backend, connect
from multiverse.catalog import METHODS, Method
from multiverse.config import datasets_of, load_config
from multiverse.errors import ConfigError
from multiverse.plan import Plan, inspect_datasets, make_plan
from multiverse.runner.execute import Execution, Reporter
from multiverse.runner.results import JobResult


def prepare(
    config: Optional[Path] = None,
    *,
    models: Optional[list[str]] = None,
    input: Optional[Path] = None,
    output: Optional[Path] = None,
    jobs: Optional[int] = None,
    report: Optional[bool] = None,
    catalog: dict[str, Method] = METHODS,
) -> Plan:
    """Validate the config and the input, and plan the run; starts nothing.

    Raises ConfigError or InputError (exit code 2 at the CLI) on any problem.
    """
    cfg, resolved = load_config(
        Path(config) if config else None,
        models=models,
        input=Path(input) if input else None,
        output=Path(output) if output else None,
        jobs=jobs,
        catalog=catalog,
    )
    if cfg.input is None and not cfg.datasets:
        raise ConfigError("no input: give --input FILE, or set 'input:' or 'datasets:' in runner_config.yaml")
    if report is not None:
        cfg.report = report
    return make_plan(cfg, resolved, inspect_datasets(datasets_of(cfg)))


def execute(
    plan: Plan,
    backend: Optional[Backend] = None,
    reporter: Optional[Reporter] = None,
    cancel: Optional[threading.Event] = None,
    force: bool = False,
) -> list[JobResult]:
    """Run every job of the plan in its container; one JobResult per job, in plan order.

    A job whose earlier result is valid and has the same key (everything that
    reaches its container) is kept, unless ``force``.
    """
    from multiverse.console import PlainReporter

    backend = backend or connect()
    reporter = reporter or PlainReporter(Console(quiet=True), plan)
    return Execution(plan, backend, reporter, cancel, force=force).run()
