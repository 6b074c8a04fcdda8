"""Run one method container under the contract, and always clean it up.

The container runs as the calling user, without network, with every
capability dropped, no new privileges, a read-only root (a tmpfs at /tmp for
caches) and memory/CPU/pids limits. Its logs are streamed line by line; a
deadline of our own kills it at the timeout (the SDK's ``wait(timeout=)`` is
only an HTTP read timeout); it is removed on exit whatever happened.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import docker.errors
import requests
from docker.types import DeviceRequest, Mount

from multiverse.engine import Engine
from multiverse.errors import InfrastructureError
from multiverse.config import Limits
from multiverse.plan import Job
from multiverse_methods import protocol

LOG_TAIL_LINES = 40
_POLL_S = 0.2

#: Thread-count variables matched to the container's CPU limit.
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


@dataclass
class ContainerOutcome:
    exit_code: Optional[int]
    oom_killed: bool = False
    timed_out: bool = False
    cancelled: bool = False
    duration_s: float = 0.0
    log_tail: list[str] = field(default_factory=list)
    full_log: str = ""


@dataclass(frozen=True)
class ContainerSpec:
    """Everything one sandboxed container needs: what to run, what it sees, its limits."""

    name: str  # the model's (or task's) name: labels, messages
    image: str  # tag or id
    command: list[str]
    #: Host path -> container path, mounted read-only.
    read_only: dict[Path, str]
    #: Host folder mounted writable at /data/output.
    output: Path
    limits: Limits
    entrypoint: Optional[list[str]] = None


def container_environment(limits: Limits) -> dict[str, str]:
    threads = str(max(1, int(limits.cpus or 1)))
    env = {name: threads for name in THREAD_VARS}
    env.update(
        {
            "HOME": "/tmp",
            "XDG_CACHE_HOME": "/tmp/.cache",
            "NUMBA_CACHE_DIR": "/tmp/numba",
            "MPLCONFIGDIR": "/tmp/matplotlib",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "MULTIVERSE_THREADS": threads,
            # Idle OpenMP threads sleep instead of spinning: on shared or limited CPUs spinning
            # made torch training steps up to 25x slower (measured with Cobolt here).
            "OMP_WAIT_POLICY": "PASSIVE",
        }
    )
    return env


def job_container(job: Job, staging: Path, image_id: str) -> ContainerSpec:
    """The container of one model: the input read-only, its staging folder writable."""
    target = f"{protocol.INPUT_DIR}/{job.input.path.name}"
    return ContainerSpec(
        name=job.name,
        image=image_id,
        command=[
            "--input", target,
            "--output", protocol.OUTPUT_DIR,
            "--params", json.dumps(job.params, sort_keys=True),
            "--modalities", json.dumps(job.input.kinds, sort_keys=True),
        ],
        read_only={job.input.path: target},
        output=staging,
        limits=job.limits,
        entrypoint=list(job.entrypoint) if job.entrypoint else None,
    )


class SandboxedContainer:
    """One container under the contract's sandbox: created on enter, removed on exit.

    >>> with SandboxedContainer(engine, job_container(job, staging, image_id), run_id) as box:
    ...     outcome = box.run(on_line=print)
    """

    def __init__(self, engine: Engine, spec: ContainerSpec, run_id: str, cancel: Optional[threading.Event] = None):
        self.engine = engine
        self.spec = spec
        self.run_id = run_id
        self.cancel = cancel or threading.Event()
        self.container = None

    def __enter__(self) -> "SandboxedContainer":
        spec = self.spec
        limits = spec.limits
        device_requests = [DeviceRequest(count=limits.gpus, capabilities=[["gpu"]])] if limits.gpus else None
        mounts = [Mount(target=target, source=str(source), type="bind", read_only=True) for source, target in spec.read_only.items()]
        mounts.append(Mount(target=protocol.OUTPUT_DIR, source=str(spec.output.absolute()), type="bind"))
        try:
            self.container = self.engine.client.containers.create(
                image=spec.image,
                entrypoint=spec.entrypoint,
                command=spec.command,
                name=f"multiverse-{self.run_id}-{spec.name}",
                labels=self.engine.our_labels(self.run_id, spec.name),
                user=f"{os.getuid()}:{os.getgid()}",
                network_mode="none",
                read_only=True,
                tmpfs={"/tmp": "rw,exec,nosuid,nodev,mode=1777"},
                mounts=mounts,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                mem_limit=limits.memory,
                memswap_limit=limits.memory,  # no swap: exceeding the limit is an OOM kill
                nano_cpus=int((limits.cpus or 1) * 1e9),
                pids_limit=limits.pids,
                environment=container_environment(limits),
                working_dir="/tmp",
                device_requests=device_requests,
                detach=True,
            )
        except docker.errors.ImageNotFound:
            raise InfrastructureError(f"image {spec.image} disappeared before {spec.name} could start") from None
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise InfrastructureError(f"cannot create the {spec.name} container: {exc}") from None
        return self

    def __exit__(self, *exc_info) -> bool:
        if self.container is not None:
            try:
                self.container.remove(force=True)
            except docker.errors.NotFound:
                pass
            except (docker.errors.APIError, requests.exceptions.RequestException):
                pass  # the next run's clean-up removes it by its labels
        return False

    def run(self, on_line: Callable[[str], None] = lambda line: None) -> ContainerOutcome:
        """Start the container, stream its log lines, and wait for it within the deadline."""
        tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)

        def stream() -> None:
            pending = ""
            try:
                for chunk in self.container.logs(stream=True, follow=True):
                    pending += chunk.decode("utf-8", errors="replace")
                    *lines, pending = pending.split("\n")
                    for line in lines:
                        tail.append(line)
                        on_line(line)
                if pending:
                    tail.append(pending)
                    on_line(pending)
            except Exception:  # noqa: BLE001 - the log stream is best effort; the final logs are read after exit
                pass

        exited = threading.Event()
        lost: list[str] = []

        def wait() -> None:
            # The SDK's wait(timeout=) is an HTTP read timeout: wait in slices until it returns.
            while True:
                try:
                    self.container.wait(timeout=30)
                    break
                except requests.exceptions.RequestException as exc:
                    try:
                        self.engine.client.ping()
                    except Exception:  # noqa: BLE001 - the engine is gone: say so below
                        lost.append(str(exc))
                        break
            exited.set()

        start = time.monotonic()
        try:
            self.container.start()
        except docker.errors.APIError as exc:
            explanation = str(exc.explanation or exc)
            if self.spec.limits.gpus and "device driver" in explanation:
                raise InfrastructureError(
                    f"{self.spec.name} asked for {self.spec.limits.gpus} GPU(s), but the Docker engine cannot "
                    f"provide any ({explanation}). Install the NVIDIA Container Toolkit on a GPU host, "
                    f"or set gpus: 0 for this model."
                ) from None
            raise InfrastructureError(f"cannot start the {self.spec.name} container: {explanation}") from None
        reader = threading.Thread(target=stream, name=f"logs-{self.spec.name}", daemon=True)
        reader.start()
        threading.Thread(target=wait, name=f"wait-{self.spec.name}", daemon=True).start()
        outcome = ContainerOutcome(exit_code=None)
        deadline = start + (self.spec.limits.timeout or float("inf"))
        while not exited.wait(timeout=_POLL_S):
            if self.cancel.is_set():
                outcome.cancelled = True
                self._kill()
                break
            if time.monotonic() >= deadline:
                outcome.timed_out = True
                self._kill()
                break
        if lost:
            raise InfrastructureError(f"lost the Docker engine while {self.spec.name} ran: {lost[0]}")
        self._wait_stopped()
        outcome.duration_s = time.monotonic() - start
        reader.join(timeout=2.0)
        self.container.reload()
        state = self.container.attrs["State"]
        outcome.exit_code = state.get("ExitCode")
        outcome.oom_killed = bool(state.get("OOMKilled"))
        try:
            outcome.full_log = self.container.logs(stdout=True, stderr=True).decode("utf-8", errors="replace")
            outcome.log_tail = outcome.full_log.rstrip("\n").split("\n")[-LOG_TAIL_LINES:]
        except (docker.errors.APIError, requests.exceptions.RequestException):
            outcome.log_tail = list(tail)
        return outcome

    def _exited(self) -> bool:
        try:
            self.container.reload()
        except docker.errors.NotFound:
            raise InfrastructureError(f"the {self.spec.name} container vanished while running") from None
        except requests.exceptions.RequestException as exc:
            raise InfrastructureError(f"lost the Docker engine while {self.spec.name} ran: {exc}") from None
        return self.container.status in ("exited", "dead")

    def _kill(self) -> None:
        try:
            self.container.kill()
        except docker.errors.APIError:
            pass  # it exited on its own meanwhile

    def _wait_stopped(self, grace_s: float = 30.0) -> None:
        end = time.monotonic() + grace_s
        while not self._exited() and time.monotonic() < end:
            time.sleep(0.1)
