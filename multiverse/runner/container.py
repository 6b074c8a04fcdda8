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


def container_environment(job: Job) -> dict[str, str]:
    threads = str(max(1, int(job.limits.cpus or 1)))
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
        }
    )
    return env


def container_command(job: Job) -> list[str]:
    return [
        "--input",
        f"{protocol.INPUT_DIR}/{job.input.path.name}",
        "--output",
        protocol.OUTPUT_DIR,
        "--params",
        json.dumps(job.params, sort_keys=True),
        "--modalities",
        json.dumps(job.input.kinds, sort_keys=True),
    ]


class ModelContainer:
    """A method container for one job: created on enter, removed on exit.

    >>> with ModelContainer(engine, job, staging, run_id) as box:
    ...     outcome = box.run(on_line=print)
    """

    def __init__(
        self,
        engine: Engine,
        job: Job,
        staging: Path,
        run_id: str,
        cancel: Optional[threading.Event] = None,
        image_id: Optional[str] = None,
    ):
        self.engine = engine
        self.job = job
        self.staging = staging
        self.run_id = run_id
        self.cancel = cancel or threading.Event()
        self.image_id = image_id or job.image
        self.container = None

    def __enter__(self) -> "ModelContainer":
        job = self.job
        limits = job.limits
        device_requests = [DeviceRequest(count=limits.gpus, capabilities=[["gpu"]])] if limits.gpus else None
        try:
            self.container = self.engine.client.containers.create(
                image=self.image_id,
                command=container_command(job),
                name=f"multiverse-{self.run_id}-{job.name}",
                labels=self.engine.our_labels(self.run_id, job.name),
                user=f"{os.getuid()}:{os.getgid()}",
                network_mode="none",
                read_only=True,
                tmpfs={"/tmp": "rw,exec,nosuid,nodev,mode=1777"},
                mounts=[
                    Mount(
                        target=f"{protocol.INPUT_DIR}/{job.input.path.name}",
                        source=str(job.input.path),
                        type="bind",
                        read_only=True,
                    ),
                    Mount(target=protocol.OUTPUT_DIR, source=str(self.staging.absolute()), type="bind"),
                ],
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                mem_limit=limits.memory,
                memswap_limit=limits.memory,  # no swap: exceeding the limit is an OOM kill
                nano_cpus=int((limits.cpus or 1) * 1e9),
                pids_limit=limits.pids,
                environment=container_environment(job),
                working_dir="/tmp",
                device_requests=device_requests,
                detach=True,
            )
        except docker.errors.ImageNotFound:
            raise InfrastructureError(f"image {self.image_id} disappeared before {job.name} could start") from None
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise InfrastructureError(f"cannot create the {job.name} container: {exc}") from None
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
            if self.job.limits.gpus and "device driver" in explanation:
                raise InfrastructureError(
                    f"{self.job.name} asked for {self.job.limits.gpus} GPU(s), but the Docker engine cannot "
                    f"provide any ({explanation}). Install the NVIDIA Container Toolkit on a GPU host, "
                    f"or set gpus: 0 for this model."
                ) from None
            raise InfrastructureError(f"cannot start the {self.job.name} container: {explanation}") from None
        reader = threading.Thread(target=stream, name=f"logs-{self.job.name}", daemon=True)
        reader.start()
        threading.Thread(target=wait, name=f"wait-{self.job.name}", daemon=True).start()
        outcome = ContainerOutcome(exit_code=None)
        deadline = start + (self.job.limits.timeout or float("inf"))
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
            raise InfrastructureError(f"lost the Docker engine while {self.job.name} ran: {lost[0]}")
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
            raise InfrastructureError(f"the {self.job.name} container vanished while running") from None
        except requests.exceptions.RequestException as exc:
            raise InfrastructureError(f"lost the Docker engine while {self.job.name} ran: {exc}") from None
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
