"""Slurm: each container becomes one Slurm job that runs it, sandboxed, on the node's engine.

The submitting side (this module) writes the job's folder under the output root
(shared storage, seen by the nodes): ``spec.json`` (the :class:`ContainerSpec`),
``job.sh`` (the resources as ``#SBATCH`` lines) and later ``job.log`` (Slurm's
output: the container's log) and ``outcome.json`` (how the container ended,
written on the node by ``python -m multiverse.backends.node``). It submits with
``sbatch --parsable``, follows the job's state with ``squeue`` (one call for all
jobs of the run), streams ``job.log`` to ``on_line``, cancels with ``scancel``,
and maps Slurm's end states onto the outcome flags so that the runner classifies
a Slurm time or memory kill, or a ``scancel``, like its local counterpart.

Why plain sbatch/squeue and not submitit or PySlurm: docs/CLUSTER.md (measured).

A job survives the submitting process: a CLI killed mid-run and started again
picks up (adopts) a job whose spec is unchanged instead of submitting it twice
(:meth:`SlurmBackend.in_use`, :meth:`SlurmBackend.adopts`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from multiverse.backends.base import LOG_TAIL_LINES, ContainerOutcome, ContainerSpec, LineCallback, Mount, Resources
from multiverse.errors import ConfigError, EngineUnavailable, ImageMissing, InfrastructureError, MultiverseError

SPEC_FILE = "spec.json"
SCRIPT_FILE = "job.sh"
LOG_FILE = "job.log"
OUTCOME_FILE = "outcome.json"
RECORD_FILE = "slurm.json"
#: Prefix of the lines the node-side process itself writes into job.log.
NODE_PREFIX = "multiverse-node:"

#: Our own word for "squeue did not answer this time": a busy slurmctld is not the end of a job.
UNANSWERED = "UNANSWERED"
#: Slurm states of a job that has not ended yet (squeue's long names).
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
          "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "SPECIAL_EXIT",
          UNANSWERED}
#: How long squeue may fail in a row before the run gives up on the cluster.
QUEUE_PATIENCE_S = 300.0
#: Ended without a container outcome because the machine, not the method, failed.
LOST = {"NODE_FAIL", "BOOT_FAIL", "DEADLINE", "PREEMPTED", "REVOKED"}

#: Added to the container's memory limit for --mem: the node-side Python process is counted by
#: Slurm, the container by its engine (it runs outside the job's cgroup).
NODE_MEMORY_MARGIN_MB = 256
#: Added to the container's timeout for --time: loading an image from the archive, starting, the
#: container's own deadline grace. The node side enforces the timeout itself; Slurm's limit is the backstop.
TIME_MARGIN_S = 180
#: How long a job's end may take to show in its files on shared storage (NFS attribute caches).
SETTLE_S = 10.0


@dataclass(frozen=True)
class SlurmOptions:
    """What the config's ``slurm:`` section says (see multiverse/config.py)."""

    partition: Optional[str] = None
    account: Optional[str] = None
    #: More sbatch options, e.g. ("--qos=short",); they come after multiverse's own, so they win.
    options: tuple[str, ...] = ()
    #: The engine on the nodes, and its API address there (None: its usual socket).
    engine: str = "docker"
    engine_url: Optional[str] = None
    #: Image archives on shared storage (``multiverse images save DIR``); None: the nodes have the images.
    images: Optional[Path] = None
    #: The Python with multiverse installed, as the nodes see it.
    python: Optional[str] = None
    #: Seconds between two looks at the queue.
    poll_s: float = 1.0


def _run(command: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise EngineUnavailable(
            f"{command[0]} is not on PATH: the Slurm backend needs Slurm's client commands (sbatch, squeue, "
            f"scancel) on the submitting machine. On a Debian test machine: scripts/ensure-slurm.sh"
        ) from None
    except subprocess.TimeoutExpired:
        raise InfrastructureError(f"{command[0]} did not answer within {timeout:g} s (is slurmctld up?)") from None


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


# ---------------------------------------------------------------- specs on disk


def spec_to_json(spec: ContainerSpec) -> dict:
    data = dataclasses.asdict(spec)
    data["mounts"] = [{"source": str(m.source), "target": m.target, "read_only": m.read_only} for m in spec.mounts]
    return data


def spec_from_json(data: dict) -> ContainerSpec:
    return ContainerSpec(
        name=data["name"],
        image=data["image"],
        command=tuple(data["command"]),
        mounts=tuple(Mount(Path(m["source"]), m["target"], m["read_only"]) for m in data["mounts"]),
        resources=Resources(**data["resources"]),
        environment=dict(data.get("environment") or {}),
        entrypoint=tuple(data["entrypoint"]) if data.get("entrypoint") else None,
        run_id=data.get("run_id", ""),
    )


def spec_digest(spec: ContainerSpec) -> str:
    """What makes two specs the same container, whichever run made them (the run id is left out)."""
    data = spec_to_json(spec)
    data.pop("run_id", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- resources -> sbatch


def sbatch_directives(spec: ContainerSpec, options: SlurmOptions, folder: Path) -> list[str]:
    """The job's resources from the container's limits, then partition/account."""
    res = spec.resources
    lines = [
        f"--job-name=multiverse-{spec.name}",
        f"--output={folder / LOG_FILE}",
        f"--chdir={folder}",
        f"--cpus-per-task={max(1, math.ceil(res.cpus or 1))}",
        "--nodes=1",
        "--ntasks=1",
        # A requeued job would run the container twice into one output folder.
        "--no-requeue",
    ]
    if res.memory_bytes:
        lines.append(f"--mem={math.ceil(res.memory_bytes / 2**20) + NODE_MEMORY_MARGIN_MB}M")
    if res.timeout_s:
        lines.append(f"--time={math.ceil((res.timeout_s + TIME_MARGIN_S) / 60)}")
    if res.gpus:
        lines.append(f"--gres=gpu:{res.gpus}")
    if options.partition:
        lines.append(f"--partition={options.partition}")
    if options.account:
        lines.append(f"--account={options.account}")
    return lines


def job_script(spec: ContainerSpec, options: SlurmOptions, folder: Path) -> str:
    python = options.python or sys.executable
    directives = "\n".join(f"#SBATCH {line}" for line in sbatch_directives(spec, options, folder))
    return (
        "#!/bin/sh\n"
        f"# multiverse: the {spec.name} container, run on the node's {options.engine} engine.\n"
        f"{directives}\n"
        # exec: Slurm's SIGTERM (scancel, time limit) reaches the Python process, which stops the container.
        f"exec {shlex.quote(python)} -m multiverse.backends.node {shlex.quote(str(folder))}\n"
    )


# ---------------------------------------------------------------- Slurm states -> outcome


def outcome_from(state: str, node: Optional[dict], cancelled_here: bool) -> ContainerOutcome:
    """How the container ended, from the node's own account (``outcome.json``) and the job's Slurm state.

    The node knows the exit code, OOM and its own deadline; Slurm knows why it stopped the job
    (a SIGTERM looks the same on the node whether it came from scancel or the time limit)."""
    node = node or {}
    if node.get("error"):
        raise InfrastructureError(node["error"])
    outcome = ContainerOutcome(
        exit_code=node.get("exit_code"),
        oom_killed=bool(node.get("oom_killed")),
        timed_out=bool(node.get("timed_out")),
        cancelled=bool(node.get("cancelled")),
        duration_s=float(node.get("duration_s") or 0.0),
        peak_memory_bytes=node.get("peak_memory_bytes"),
        log_tail=list(node.get("log_tail") or []),
    )
    base = state.split()[0] if state else ""
    if base == "TIMEOUT":
        outcome.timed_out, outcome.cancelled = True, False
    elif base == "OUT_OF_MEMORY":
        outcome.oom_killed, outcome.cancelled = True, False
    elif base == "CANCELLED":
        outcome.cancelled = True
    elif base in LOST:
        raise InfrastructureError(f"the Slurm job ended {base} (the cluster, not the method, failed); run again")
    elif not node:
        if cancelled_here:
            outcome.cancelled = True
        elif base == "COMPLETED":
            raise InfrastructureError("the Slurm job completed but its node-side process left no outcome.json")
        else:
            raise InfrastructureError(f"the Slurm job ended {base or 'in an unknown state'} before its container ended")
    return outcome


class _Queue:
    """The states of every job this process follows, from one ``squeue`` call per poll interval."""

    def __init__(self, poll_s: float):
        self.poll_s = poll_s
        self.lock = threading.Lock()
        self.followed: set[str] = set()
        self.states: dict[str, str] = {}
        self.at = float("-inf")
        self.answered_at = time.monotonic()

    def follow(self, job_id: str) -> None:
        with self.lock:
            self.followed.add(job_id)
            self.at = float("-inf")

    def forget(self, job_id: str) -> None:
        with self.lock:
            self.followed.discard(job_id)

    def state(self, job_id: str, fresh: bool = False) -> Optional[str]:
        """``STATE`` or ``STATE (reason)``; None when Slurm no longer knows the job."""
        with self.lock:
            if fresh or time.monotonic() - self.at >= self.poll_s:
                try:
                    self.states = query_states(sorted(self.followed | {job_id}))
                    self.answered_at = time.monotonic()
                except InfrastructureError:
                    if time.monotonic() - self.answered_at > QUEUE_PATIENCE_S:
                        raise
                    self.states = {job: UNANSWERED for job in self.followed | {job_id}}
                self.at = time.monotonic()
            return self.states.get(job_id)


def query_states(job_ids: list[str]) -> dict[str, str]:
    """Slurm's state of each job (ended jobs stay listed for MinJobAge), then sacct for older ones."""
    if not job_ids:
        return {}
    proc = _run(["squeue", "--noheader", "--states=all", f"--jobs={','.join(job_ids)}", "--format=%i|%T|%r"])
    if proc.returncode != 0 and "Invalid job id" not in proc.stderr:  # that one: none of them is known any more
        raise InfrastructureError(f"squeue failed: {_first_line(proc.stderr)}")
    states = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            job, state, reason = parts
            states[job] = f"{state} ({reason})" if reason and reason != "None" else state
    missing = [j for j in job_ids if j not in states]
    if missing:
        # Purged from slurmctld's memory: only accounting (slurmdbd) still knows, where there is one.
        proc = _run(["sacct", "--noheader", "--parsable2", "--allocations", f"--jobs={','.join(missing)}",
                     "--format=JobIDRaw,State"])
        if proc.returncode == 0:
            for line in proc.stdout.splitlines():
                parts = line.strip().split("|")
                if len(parts) == 2 and parts[0] in missing:
                    states[parts[0]] = parts[1]
    return states


class _LogTail:
    """New complete lines of a growing file."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.pending = ""

    def lines(self, final: bool = False) -> list[str]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        self.pending += chunk.decode("utf-8", errors="replace")
        *lines, self.pending = self.pending.split("\n")
        if final and self.pending:
            lines.append(self.pending)
            self.pending = ""
        return lines


# ---------------------------------------------------------------- the backend


class SlurmBackend:
    """Containers as Slurm jobs; their files live in ``work_dir`` (shared storage)."""

    name = "slurm"

    def __init__(self, options: SlurmOptions, work_dir: Path):
        self.options = options
        self.work = Path(work_dir)
        self.queue = _Queue(options.poll_s)
        self._engine = None

    @classmethod
    def connect(cls, options: SlurmOptions, work_dir: Path) -> "SlurmBackend":
        """Check that Slurm answers here; raises EngineUnavailable (exit 3) when it does not."""
        proc = _run(["sinfo", "--noheader", "--format=%P"], timeout=30)
        if proc.returncode != 0:
            raise EngineUnavailable(f"Slurm does not answer here (sinfo: {_first_line(proc.stderr)}); "
                                    f"is slurmctld up? On a Debian test machine: scripts/ensure-slurm.sh")
        partitions = [p.rstrip("*") for p in proc.stdout.split()]
        if options.partition and options.partition not in partitions:
            raise ConfigError(f"slurm.partition {options.partition!r} is not a partition of this cluster "
                              f"(sinfo lists: {', '.join(partitions) or 'none'})")
        if options.images and not Path(options.images).is_dir():
            raise ConfigError(f"slurm.images: {options.images} is not a folder; "
                              f"write it with 'multiverse images save {options.images}'")
        return cls(options, work_dir)

    # ---------------------------------------------------------------- images

    def _local_engine(self):
        """The engine of this (submitting) machine, if it has one: only to read image ids."""
        if self._engine is None:
            from multiverse.backends import connect

            self._engine = connect(self.options.engine, self.options.engine_url, timeout=10)
        return self._engine

    def resolve_image(self, tag: str, build_hint: str = "") -> str:
        """The image id the nodes will run: the archive's (slurm.images), else this machine's engine's."""
        from multiverse.images.archive import archived_id

        archived = archived_id(self.options.images, tag) if self.options.images else None
        try:
            local = self._local_engine().resolve_image(tag, build_hint)
        except (EngineUnavailable, ImageMissing):
            local = None
        if archived and local and archived != local:
            raise ImageMissing(
                f"the archive in {self.options.images} holds an older build of {tag} than this machine's engine; "
                f"refresh it with: multiverse images save {self.options.images}"
            )
        if archived or local:
            return archived or local
        where = f"in the archive {self.options.images} nor " if self.options.images else ""
        hint = f" Build it with: {build_hint}" if build_hint else ""
        raise ImageMissing(
            f"image {tag} is neither {where}on this machine's {self.options.engine} engine, so the nodes cannot "
            f"run it.{hint} Then 'multiverse images save DIR' and set slurm.images: DIR for nodes that lack it."
        )

    def has_image(self, tag: str) -> bool:
        try:
            self.resolve_image(tag)
            return True
        except ImageMissing:
            return False

    # ---------------------------------------------------------------- jobs

    def _folder(self, spec: ContainerSpec) -> Path:
        # One flat folder per job ("+" never occurs in a job's name, which nests as dataset/entry/seed-s).
        return self.work / spec.name.replace("/", "+")

    def _record(self, folder: Path) -> Optional[dict]:
        return read_json(folder / RECORD_FILE)

    def adopts(self, spec: ContainerSpec) -> bool:
        """Whether :meth:`run` would follow an already submitted job for this very spec instead of submitting."""
        record = self._record(self._folder(spec))
        return bool(record and record.get("digest") == spec_digest(spec))

    def in_use(self) -> set[Path]:
        """Staging folders that submitted jobs still write into, or that hold a finished job's output
        not yet collected; records of jobs that ended without an outcome are dropped."""
        if not self.work.is_dir():
            return set()
        records = {folder: r for folder in self.work.iterdir() if (r := self._record(folder))}
        states = query_states(sorted({str(r["job_id"]) for r in records.values()})) if records else {}
        kept = set()
        for folder, record in records.items():
            state = states.get(str(record["job_id"]), "")
            alive = state.split(" ")[0] in ACTIVE
            if alive or (folder / OUTCOME_FILE).is_file():
                kept.update(Path(p) for p in record.get("staging", []))
            else:
                shutil.rmtree(folder, ignore_errors=True)
        return kept

    def run(self, spec: ContainerSpec, cancel: threading.Event, on_line: LineCallback) -> ContainerOutcome:
        folder = self._folder(spec)
        record = self._record(folder)
        if record and record.get("digest") == spec_digest(spec):
            on_line(f"slurm: picked up job {record['job_id']}, submitted by run {record.get('run_id', '?')}")
        else:
            if record:
                self._supersede(record, on_line)
            record = self._submit(folder, spec)
            on_line(f"slurm: submitted job {record['job_id']}")
        try:
            return self._follow(folder, record, cancel, on_line)
        except BaseException:
            # Nobody will follow this job any more: it must not run on unseen.
            with contextlib.suppress(MultiverseError, OSError):
                _run(["scancel", str(record["job_id"])])
            raise
        finally:
            self.queue.forget(str(record["job_id"]))
            shutil.rmtree(folder, ignore_errors=True)

    def _supersede(self, record: dict, on_line: LineCallback) -> None:
        """An earlier run's job for this model with other settings: it must not write beside the new one."""
        job_id = str(record["job_id"])
        if (self.queue.state(job_id, fresh=True) or "").split(" ")[0] in ACTIVE:
            _run(["scancel", job_id])
            on_line(f"slurm: cancelled job {job_id} of run {record.get('run_id', '?')} (its settings changed)")

    def _submit(self, folder: Path, spec: ContainerSpec) -> dict:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        write_json(folder / SPEC_FILE, {
            "spec": spec_to_json(spec),
            "engine": self.options.engine,
            "engine_url": self.options.engine_url,
            "images": str(self.options.images) if self.options.images else None,
        })
        (folder / SCRIPT_FILE).write_text(job_script(spec, self.options, folder))
        command = ["sbatch", "--parsable", *self.options.options, str(folder / SCRIPT_FILE)]
        proc = _run(command)
        if proc.returncode != 0:
            raise InfrastructureError(f"sbatch refused the {spec.name} job: {_first_line(proc.stderr)} "
                                      f"(command: {shlex.join(command)})")
        job_id = proc.stdout.strip().split(";")[0]
        record = {
            "job_id": job_id,
            "digest": spec_digest(spec),
            "run_id": spec.run_id,
            "staging": [str(Path(p).parent) for p in spec.writable],
            "submitted_at": time.time(),
        }
        write_json(folder / RECORD_FILE, record)
        return record

    def _follow(self, folder: Path, record: dict, cancel: threading.Event, on_line: LineCallback) -> ContainerOutcome:
        job_id = str(record["job_id"])
        self.queue.follow(job_id)
        log = _LogTail(folder / LOG_FILE)
        shown, cancelled_here, state = None, False, ""
        while True:
            for line in log.lines():
                on_line(line)
            if cancel.is_set() and not cancelled_here:
                _run(["scancel", job_id])
                cancelled_here = True
            state = self.queue.state(job_id) or ""
            if state != shown:
                on_line(f"slurm: job {job_id} {state or 'unknown to Slurm'}")
                shown = state
            if state.split(" ")[0] not in ACTIVE:
                break
            time.sleep(min(self.options.poll_s, 0.5))
        node = self._node_outcome(folder, state)
        for line in log.lines(final=True):
            on_line(line)
        if not state and node is None:
            raise InfrastructureError(f"Slurm no longer knows job {job_id} and it left no outcome.json in {folder}")
        outcome = outcome_from(state, node, cancelled_here)
        outcome.full_log = _read_text(folder / LOG_FILE)
        if not outcome.log_tail:
            outcome.log_tail = outcome.full_log.rstrip("\n").split("\n")[-LOG_TAIL_LINES:]
        outcome.details = {"slurm_job_id": job_id, "slurm_state": state}
        return outcome

    def _node_outcome(self, folder: Path, state: str) -> Optional[dict]:
        """The node's account; a job that ended normally may take a moment to show it on shared storage."""
        path = folder / OUTCOME_FILE
        end = time.monotonic() + (SETTLE_S if state.startswith("COMPLETED") or state.startswith("FAILED") else 2.0)
        while True:
            node = read_json(path)
            if node is not None or time.monotonic() >= end:
                return node
            time.sleep(0.2)

    # ---------------------------------------------------------------- clean-up and description

    @contextlib.contextmanager
    def guard(self, run_id: str):
        # Jobs outlive a killed CLI on purpose (the next run picks them up); Ctrl-C cancels them (run()).
        yield

    def reap(self) -> list[str]:
        # Nothing runs on this machine: a node-side process removes its own container (and its
        # watchdog does if it dies); the container's own deadline is the last line.
        return []

    def describe(self) -> dict:
        version = _run(["sinfo", "--version"]).stdout.strip()
        return {
            "kind": "slurm",
            "version": version,
            "partition": self.options.partition,
            "account": self.options.account,
            "options": list(self.options.options),
            "node_engine": self.options.engine,
            "images": str(self.options.images) if self.options.images else None,
        }


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


__all__ = ["SlurmBackend", "SlurmOptions", "outcome_from", "sbatch_directives", "spec_digest"]
