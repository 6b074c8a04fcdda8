"""Run a plan: one container per model, within limits, in parallel if asked.

Each model's outcome becomes a :class:`ModelResult`; a failing model never
stops the others. Results are promoted atomically by the :class:`ResultStore`.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from multiverse.engine import Engine
from multiverse.errors import InfrastructureError
from multiverse.plan import Job, Plan
from multiverse.runner.container import ContainerOutcome, SandboxedContainer, job_container
from multiverse.runner.provenance import Manifest, model_record, read_provenance, result_key, write_provenance
from multiverse.runner.results import ModelResult, Status
from multiverse.runner.store import ResultStore
from multiverse.runner.validate import InvalidOutput, validate_output
from multiverse_methods import protocol


class Reporter(Protocol):
    """Receives progress: the CLI shows it as a live table or as plain lines."""

    def note(self, text: str) -> None: ...
    def started(self, job: Job) -> None: ...
    def line(self, job: Job, text: str) -> None: ...
    def finished(self, result: ModelResult) -> None: ...


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _last_message(lines: list[str], prefix: str = "") -> str:
    for line in reversed(lines):
        text = line.strip()
        if text and (not prefix or prefix in text):
            return text.split(prefix, 1)[1].strip() if prefix else text
    return ""


def _size(n: int | None) -> str:
    return f"{n / 1024**3:.1f} GiB" if n else "?"


def classify(job: Job, outcome: ContainerOutcome) -> tuple[Status, str]:
    """The status and reason a container's outcome amounts to (before validation)."""
    code = outcome.exit_code
    if outcome.cancelled:
        return Status.INTERRUPTED, "stopped by the user (Ctrl-C or SIGTERM)"
    if outcome.timed_out:
        return Status.TIMEOUT, (
            f"ran past its timeout of {job.limits.timeout:g} s and was killed; "
            f"raise models.{job.name}.timeout in the config if it needs longer"
        )
    if outcome.oom_killed:
        return Status.OUT_OF_MEMORY, (
            f"exceeded its memory limit of {_size(job.limits.memory)} and was killed; "
            f"raise models.{job.name}.memory in the config or use fewer cells/features"
        )
    if code == protocol.EXIT_NOT_APPLICABLE:
        return Status.NOT_APPLICABLE, _last_message(outcome.log_tail, "not applicable:") or "not applicable"
    if code == 137:
        return Status.METHOD_ERROR, "killed by SIGKILL (exit 137), possibly by the kernel's out-of-memory killer"
    if code != protocol.EXIT_OK:
        last = _last_message(outcome.log_tail)
        return Status.METHOD_ERROR, f"exited with code {code}" + (f": {last}" if last else "")
    return Status.OK, ""


class Execution:
    """One run of a plan against an engine."""

    def __init__(
        self,
        plan: Plan,
        engine: Engine,
        reporter: Reporter,
        cancel: threading.Event | None = None,
        force: bool = False,
    ):
        self.plan = plan
        self.engine = engine
        self.reporter = reporter
        self.cancel = cancel or threading.Event()
        self.force = force
        self.store = ResultStore(plan.output_root, plan.run_id)
        self.manifest: Manifest | None = None
        self._manifest_lock = threading.Lock()

    def run(self) -> list[ModelResult]:
        with self.store.locked():
            self.store.recover()
            removed = self.engine.remove_leftovers()
            if removed:
                self.reporter.note(f"removed {len(removed)} container(s) left by an earlier, crashed run: {', '.join(removed)}")
            self.manifest = Manifest(self.plan, self.engine.info())
            with ThreadPoolExecutor(max_workers=self.plan.parallel, thread_name_prefix="model") as pool:
                futures = [pool.submit(self.run_job, job) for job in self.plan.jobs]
                results = [future.result() for future in futures]
            self.manifest.finish()
            return results

    def run_job(self, job: Job) -> ModelResult:
        result = ModelResult(name=job.name, method=job.method, status=Status.INTERRUPTED, image=job.image)
        key = {}
        if self.cancel.is_set():
            result.reason = "not started: the run was stopped"
        else:
            result.started_at = _now()
            try:
                image = self.engine.image(job.image, build_hint=f"multiverse build {job.method}")
                result.image_id = image.id
                key = result_key(job, image.id)
                if self.force or not self._reuse(job, key, result):
                    self._run_container(job, key, result)
            except InfrastructureError as exc:
                result.status, result.reason = Status.INFRASTRUCTURE_ERROR, exc.message
            result.finished_at = result.finished_at or _now()
        self._record(job, result, key)
        self.reporter.finished(result)
        return result

    def _reuse(self, job: Job, key: dict, result: ModelResult) -> bool:
        """Keep an earlier result whose key matches and whose files still validate."""
        previous = read_provenance(job.output_dir)
        if not previous or previous.get("key") != json.loads(json.dumps(key)):
            return False
        try:
            result.metrics = validate_output(job.output_dir, job.input.obs_names, job.params)
        except InvalidOutput:
            return False
        result.status, result.output_dir = Status.CACHED, job.output_dir
        result.reason = f"kept the result of run {previous.get('run_id', '?')} (same image, input and parameters)"
        result.started_at, result.finished_at = previous.get("started_at"), previous.get("finished_at")
        result.duration_s, result.exit_code = previous.get("duration_s"), previous.get("exit_code")
        return True

    def _record(self, job: Job, result: ModelResult, key: dict) -> None:
        record = model_record(job, result, key or {"image_id": result.image_id})
        record["run_id"] = self.plan.run_id
        if result.status is Status.CACHED:
            record = {**(read_provenance(job.output_dir) or record), "status": result.status.value}
        if self.manifest is not None:
            with self._manifest_lock:
                self.manifest.record(job.name, record)

    def _run_container(self, job: Job, key: dict, result: ModelResult) -> None:
        image_id = key["image_id"]
        staging = self.store.staging(job.name)
        outcome = ContainerOutcome(exit_code=None)
        try:
            with SandboxedContainer(self.engine, job_container(job, staging, image_id), self.plan.run_id, self.cancel) as box:
                self.reporter.started(job)
                outcome = box.run(on_line=lambda text: self.reporter.line(job, text))
        finally:
            result.exit_code, result.duration_s = outcome.exit_code, round(outcome.duration_s, 2)
            result.log_tail = outcome.log_tail
        result.status, result.reason = classify(job, outcome)
        if result.status is Status.OK:
            try:
                result.metrics = validate_output(staging, job.input.obs_names, job.params)
            except InvalidOutput as exc:
                result.status, result.reason = Status.INVALID_OUTPUT, str(exc)
        if result.status is Status.OK:
            result.finished_at = _now()
            record = model_record(job, result, key)
            record["run_id"] = self.plan.run_id
            write_provenance(staging, record)
            result.output_dir = self.store.promote(job.name, staging)
            self.store.clear_failed(job.name)
        else:
            result.failed_dir = self.store.keep_failed(job.name, staging, outcome.full_log)
