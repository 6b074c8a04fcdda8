"""Run a plan on a backend: one container per job, within limits, in parallel if asked.

Each job's outcome becomes a :class:`JobResult`; whatever goes wrong while one
job runs, is validated or is recorded becomes that job's result (a method or
infrastructure error with the message), and the other jobs run on. The
manifest is finished however the run ends.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from multiverse.backends.base import Backend, ContainerOutcome
from multiverse.errors import MultiverseError
from multiverse.inputs.convert import ensure_converted
from multiverse.plan import Job, Plan
from multiverse.runner.classify import classify
from multiverse.runner.container import job_container
from multiverse.runner.provenance import Manifest, job_record, normalised, read_provenance, result_key
from multiverse.runner.results import JobResult, Status
from multiverse.runner.store import OUTPUT, PROVENANCE_FILE, ResultStore
from multiverse.runner.untrusted import UnsafeTree, check_tree
from multiverse.runner.validate import InvalidOutput, prepare, validate_output

log = logging.getLogger("multiverse.runner")


class Reporter(Protocol):
    """Receives progress: the CLI shows it as a live table or as plain lines."""

    def note(self, text: str) -> None: ...
    def started(self, job: Job) -> None: ...
    def line(self, job: Job, text: str) -> None: ...
    def finished(self, result: JobResult) -> None: ...


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _unexpected(exc: BaseException) -> str:
    return f"unexpected error in multiverse: {type(exc).__name__}: {exc} (please report it with the log)"


def cached_result(job: Job, key: dict) -> tuple[dict, dict] | None:
    """(provenance, metrics) of the earlier result this job would keep, or None if it must run."""
    previous = read_provenance(job.output_dir)
    if not previous or previous.get("key") != normalised(key):
        return None
    try:
        check_tree(job.output_dir)
        return previous, validate_output(job.output_dir, job.input.obs_names, job.params)
    except (InvalidOutput, UnsafeTree, OSError):
        return None


class Execution:
    """One run of a plan on a backend."""

    def __init__(
        self,
        plan: Plan,
        backend: Backend,
        reporter: Reporter,
        cancel: threading.Event | None = None,
        force: bool = False,
    ):
        self.plan = plan
        self.backend = backend
        self.reporter = reporter
        self.cancel = cancel or threading.Event()
        self.force = force
        self.store = ResultStore(plan.output_root, plan.run_id)
        self.manifest: Manifest | None = None
        self._manifest_lock = threading.Lock()
        self._first_start = threading.Event()
        self._finished = False

    def run(self) -> list[JobResult]:
        with self.store.locked():
            self.store.recover(keep=self.backend.in_use())
            removed = self.backend.reap()
            if removed:
                self.reporter.note(f"removed {len(removed)} container(s) left by an earlier, crashed run: {', '.join(removed)}")
            # Under the guard from the first container on: the conversion's too dies with a killed CLI.
            with self.backend.guard(self.plan.run_id):
                for dataset in self.plan.datasets.values():
                    ensure_converted(dataset.input, self.backend, self.store, self.cancel,
                                     lambda text, name=dataset.name: self.reporter.note(f"convert {name} | {text}"))
                self.manifest = Manifest(self.plan, self.backend.describe())
                threading.Thread(target=self._prepare_validation, name="prepare-validation", daemon=True).start()
                try:
                    with ThreadPoolExecutor(max_workers=self.plan.parallel, thread_name_prefix="job") as pool:
                        return list(pool.map(self.run_job, self.plan.jobs))
                finally:
                    self._finished = True
                    self._first_start.set()  # the preparing thread ends, if no container ever started
                    self.manifest.finish()

    def _prepare_validation(self) -> None:
        """Once the first container runs, read what validating its output needs (h5py, the inputs'
        cell names) while it works, rather than after it exits: a short job's result is then
        ready sooner. Anything that fails here is simply done again, and reported, by validation."""
        self._first_start.wait()
        if self._finished:
            return
        try:
            prepare()
            for dataset in self.plan.datasets.values():
                dataset.input.obs_names  # noqa: B018 - read and kept for validation
        except Exception:  # noqa: BLE001
            pass

    def run_job(self, job: Job) -> JobResult:
        result = JobResult(name=job.name, method=job.method, status=Status.INTERRUPTED, image=job.image,
                           backend=self.backend.name)
        key: dict = {}
        if job.not_applicable or self.cancel.is_set():
            self._first_start.set()  # no container comes: nothing to wait for
        if job.not_applicable:
            result.status, result.reason = Status.NOT_APPLICABLE, f"not run: {job.not_applicable}"
        elif self.cancel.is_set():
            result.reason = "not started: the run was stopped"
        else:
            result.started_at = _now()
            try:
                result.image_id = self.backend.resolve_image(job.image, build_hint=f"multiverse build {job.method}")
                key = result_key(job, result.image_id)
                if self.force or not self._reuse(job, key, result):
                    self._run_container(job, key, result)
            except MultiverseError as exc:
                result.status, result.reason = Status.INFRASTRUCTURE_ERROR, exc.message
            except Exception as exc:  # noqa: BLE001 - one job's surprise must not end the run
                log.error("%s: %s", job.name, traceback.format_exc())
                result.status, result.reason = Status.INFRASTRUCTURE_ERROR, _unexpected(exc)
            result.finished_at = result.finished_at or _now()
        try:
            self._record(job, result, key)
        except Exception as exc:  # noqa: BLE001 - e.g. a full disk: the job failed, the run goes on
            result.status, result.reason = Status.INFRASTRUCTURE_ERROR, f"cannot record the result: {exc}"
        try:
            self.reporter.finished(result)
        except Exception:  # noqa: BLE001 - a display problem is not the job's
            log.error("reporting %s failed: %s", job.name, traceback.format_exc())
        return result

    def _reuse(self, job: Job, key: dict, result: JobResult) -> bool:
        """Keep an earlier result whose key matches and whose files still validate."""
        found = cached_result(job, key)
        if found is None:
            return False
        previous, result.metrics = found
        result.status, result.output_dir = Status.CACHED, job.output_dir
        result.reason = f"kept the result of run {previous.get('run_id', '?')} (same image, input and parameters)"
        result.started_at, result.finished_at = previous.get("started_at"), previous.get("finished_at")
        result.duration_s, result.exit_code = previous.get("duration_s"), previous.get("exit_code")
        result.peak_memory_mb = previous.get("peak_memory_mb")
        return True

    def _record(self, job: Job, result: JobResult, key: dict) -> None:
        if self.manifest is None:
            return
        if result.status is Status.CACHED:
            record = {**(read_provenance(job.output_dir) or {}), "status": result.status.value}
        else:
            record = job_record(job, result, key or {"image_id": result.image_id})
            record["run_id"] = self.plan.run_id
        with self._manifest_lock:
            self.manifest.record(job.name, record)

    def _run_container(self, job: Job, key: dict, result: JobResult) -> None:
        # One staging folder per job and key, the same in every run: a backend whose job outlived an
        # earlier run (Slurm) adopts it there, and its folder is then kept as it is.
        tag = hashlib.sha256(json.dumps(normalised(key), sort_keys=True).encode()).hexdigest()[:16]
        output = self.store.staging_path(job.name, tag) / OUTPUT
        spec = job_container(job, output, key["image_id"], self.plan.run_id)
        staging = self.store.staging(job.name, tag, fresh=not self.backend.adopts(spec))
        outcome = ContainerOutcome()
        try:
            self.reporter.started(job)
            outcome = self.backend.run(spec, self.cancel, lambda text: self._line(job, text))
            result.exit_code, result.duration_s = outcome.exit_code, round(outcome.duration_s, 2)
            result.log_tail = outcome.log_tail
            result.status, result.reason = classify(job, outcome)
            self._check(job, output, outcome, result)
        except BaseException:
            self._keep_failed(job, staging, outcome, result)
            raise
        if result.status is not Status.OK:
            self._keep_failed(job, staging, outcome, result)
            return
        result.finished_at = _now()
        record = job_record(job, result, key)
        record["run_id"] = self.plan.run_id
        result.output_dir = self.store.promote(job.output_dir, staging, record)
        self.store.clear_failed(job.name)

    def _line(self, job: Job, text: str) -> None:
        self._first_start.set()  # the container has started: it writes its log
        self.reporter.line(job, text)

    def _check(self, job: Job, output, outcome: ContainerOutcome, result: JobResult) -> None:
        """The tree check (always: a failed container's folder is kept too), then validation of a success."""
        try:
            check_tree(output, reserved=(PROVENANCE_FILE,))
        except UnsafeTree as exc:
            result.status, result.reason = Status.INVALID_OUTPUT, f"the container's output is unsafe: {exc}"
            return
        if result.status is Status.OK:
            try:
                result.metrics = validate_output(output, job.input.obs_names, job.params)
            except InvalidOutput as exc:
                result.status, result.reason = Status.INVALID_OUTPUT, str(exc)
        reported = result.metrics.get("peak_memory_mb") if result.metrics else None
        measured = outcome.peak_memory_bytes / 2**20 if outcome.peak_memory_bytes else None
        candidates = [v for v in (measured, reported) if isinstance(v, (int, float))]
        result.peak_memory_mb = round(max(candidates), 1) if candidates else None

    def _keep_failed(self, job: Job, staging, outcome: ContainerOutcome, result: JobResult) -> None:
        try:
            result.failed_dir = self.store.keep_failed(job.name, staging, outcome.full_log)
        except OSError as exc:
            log.error("%s: cannot keep the failed attempt: %s", job.name, exc)
