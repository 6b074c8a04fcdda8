"""Docker (and Podman through its Docker-compatible API): the only module that imports the Docker SDK.

Every container runs sandboxed: as the calling user, without network, with every
capability dropped, no new privileges, a read-only root (a tmpfs at /tmp for
caches) and memory/CPU/pids limits. Its log is streamed line by line; a deadline
of our own kills it at the timeout (the SDK's ``wait(timeout=)`` is only an HTTP
read timeout); it is removed on exit whatever happened. While a run is going, a
watchdog process (``reaper.py``) removes the run's containers if this process
dies, however it dies.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import threading
import time
from collections import deque
from pathlib import Path
from typing import Optional

import docker
import docker.errors
import requests
from docker.types import DeviceRequest, Mount

from multiverse.backends.base import (
    LABEL,
    LABEL_HOST,
    LABEL_JOB,
    LABEL_PID,
    LABEL_RUN,
    LOG_TAIL_LINES,
    ContainerOutcome,
    ContainerSpec,
    LineCallback,
    split_lines,
)
from multiverse.backends.reaper import force_remove
from multiverse.errors import EngineUnavailable, ImageMissing, InfrastructureError

ENGINE_HELP = (
    "Start Docker (e.g. 'sudo systemctl start docker'), or on a Debian machine without it "
    "run 'make engine' (scripts/ensure-docker-engine.sh) as root."
)
_POLL_S = 0.2
#: How long a killed (or ended) container may take to show as exited.
_STOP_GRACE_S = 30.0
#: The engine's wait call is made in slices of this many seconds (an HTTP read timeout each).
_WAIT_SLICE_S = 30
#: How often the container's cgroup memory peak is read while it runs.
_MEMORY_POLL_S = 1.0
#: How long to wait after exit for the engine to finish storing a container's log.
_LOG_SETTLE_S = 5.0
#: Pause between the reads of a failed container's stored log, until two agree.
_FAILURE_SETTLE_S = 0.3
#: Output folder of every container, as the contract names it.
_TMPFS = {"/tmp": "rw,exec,nosuid,nodev,mode=1777"}


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def _container_name(spec: ContainerSpec) -> str:
    """A unique, valid container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*) for a job whose name may hold / [ = ,."""
    safe = re.sub(r"[^a-zA-Z0-9_.-]+", "-", spec.name).strip("-")
    return f"multiverse-{spec.run_id}-{safe}-{secrets.token_hex(2)}"[:250]


def our_labels(run_id: str, job: str) -> dict[str, str]:
    return {
        LABEL: "1",
        LABEL_JOB: job,
        LABEL_RUN: run_id,
        LABEL_HOST: socket.gethostname(),
        LABEL_PID: str(os.getpid()),
    }


def count_lines(text: str) -> int:
    """Lines in a log as split_lines delivers them (a last line without newline counts)."""
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DockerBackend:
    """Containers on a Docker engine, or on Podman's Docker-compatible service (``base_url``)."""

    def __init__(self, client: docker.DockerClient, name: str = "docker", base_url: Optional[str] = None):
        self.client = client
        self.name = name
        self.base_url = base_url

    @classmethod
    def connect(cls, base_url: Optional[str] = None, name: str = "docker", timeout: int = 60) -> "DockerBackend":
        """Connect to the engine at ``base_url`` (default: DOCKER_HOST or the local socket)."""
        try:
            client = docker.DockerClient(base_url=base_url, timeout=timeout) if base_url else docker.from_env(timeout=timeout)
            client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            where = f" at {base_url}" if base_url else ""
            help_text = ENGINE_HELP if name == "docker" else "Start it with scripts/ensure-podman.sh (see docs/CLUSTER.md)."
            raise EngineUnavailable(f"no {name} engine answers{where} ({_reason(exc)}). {help_text}") from None
        return cls(client, name=name, base_url=base_url)

    # ---------------------------------------------------------------- images

    def resolve_image(self, tag: str, build_hint: str = "") -> str:
        return self._image(tag, build_hint).id

    def _image(self, tag: str, build_hint: str = ""):
        try:
            return self.client.images.get(tag)
        except docker.errors.ImageNotFound:
            hint = f" Build it with: {build_hint}" if build_hint else ""
            raise ImageMissing(f"image {tag} is not present on {self.name} (multiverse never pulls method images).{hint}") from None
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise InfrastructureError(f"cannot look up image {tag}: {_reason(exc)}") from None

    def has_image(self, tag: str) -> bool:
        try:
            self.client.images.get(tag)
            return True
        except docker.errors.ImageNotFound:
            return False

    def image_size(self, tag: str) -> int:
        return int(self._image(tag).attrs.get("Size", 0))

    def try_pull(self, tag: str) -> bool:
        """Pull ``tag`` (only ever used for the Python base image); False when no registry answers."""
        try:
            self.client.images.pull(tag)
            return True
        except Exception:  # noqa: BLE001 - offline machines are the normal case here
            return False

    def save_image(self, tag: str, path: Path) -> None:
        """Write ``tag`` as a ``docker save`` archive (layers, config, its tag) to ``path``."""
        try:
            with open(path, "wb") as handle:
                for chunk in self._image(tag).save(named=tag):
                    handle.write(chunk)
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise InfrastructureError(f"cannot save image {tag} from {self.name}: {_reason(exc)}") from None

    def load_image(self, path: Path) -> list[str]:
        """Load a ``docker save`` archive into this engine; returns the ids of the images it held."""
        try:
            with open(path, "rb") as handle:
                return [image.id for image in self.client.images.load(handle)]
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise InfrastructureError(f"{self.name} cannot load the image archive {path}: {_reason(exc)}") from None

    def tag_image(self, image_id: str, tag: str) -> None:
        repository, _, version = tag.rpartition(":")
        try:
            self.client.images.get(image_id).tag(repository, version)
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise InfrastructureError(f"cannot tag image {image_id[:19]} as {tag} on {self.name}: {_reason(exc)}") from None

    def prune_dangling(self, label: str) -> None:
        """Remove untagged images carrying ``label`` (our own build leftovers), never anybody else's."""
        try:
            self.client.images.prune(filters={"dangling": True, "label": label})
        except Exception:  # noqa: BLE001 - tidying only
            pass

    # ---------------------------------------------------------------- containers

    def run(self, spec: ContainerSpec, cancel: threading.Event, on_line: LineCallback) -> ContainerOutcome:
        container = self._create(spec)
        try:
            return _Watch(self, container, spec, cancel, on_line).run()
        finally:
            self._remove(container)

    def _create(self, spec: ContainerSpec):
        res = spec.resources
        device_requests = [DeviceRequest(count=res.gpus, capabilities=[["gpu"]])] if res.gpus else None
        mounts = [
            Mount(target=m.target, source=str(Path(m.source).absolute()), type="bind", read_only=m.read_only)
            for m in spec.mounts
        ]
        try:
            return self.client.containers.create(
                image=spec.image,
                entrypoint=list(spec.entrypoint) if spec.entrypoint else None,
                command=list(spec.command),
                name=_container_name(spec),
                labels=our_labels(spec.run_id, spec.name),
                user=f"{os.getuid()}:{os.getgid()}",
                network_mode="none",
                read_only=True,
                tmpfs=_TMPFS,
                mounts=mounts,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                mem_limit=res.memory_bytes,
                memswap_limit=res.memory_bytes,  # no swap: exceeding the limit is an OOM kill
                nano_cpus=int((res.cpus or 1) * 1e9),
                pids_limit=res.pids,
                environment=dict(spec.environment),
                working_dir="/tmp",
                device_requests=device_requests,
                detach=True,
            )
        except docker.errors.ImageNotFound:
            raise InfrastructureError(f"image {spec.image} disappeared before {spec.name} could start") from None
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise InfrastructureError(f"cannot create the {spec.name} container: {_reason(exc)}") from None

    def _remove(self, container) -> None:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except (docker.errors.APIError, requests.exceptions.RequestException):
            pass  # the watchdog or the next run's clean-up removes it by its labels

    # ---------------------------------------------------------------- clean-up

    @contextlib.contextmanager
    def guard(self, run_id: str):
        from multiverse.backends.reaper import Watchdog

        with Watchdog(run_id, self.base_url):
            yield

    def reap(self) -> list[str]:
        """Remove containers that a multiverse process on this host started and that outlived it."""
        removed = []
        filters = {"label": [f"{LABEL}=1", f"{LABEL_HOST}={socket.gethostname()}"]}
        try:
            # sparse: the list's own labels suffice (not sparse, the SDK inspects every container listed)
            containers = self.client.containers.list(all=True, filters=filters, sparse=True)
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise InfrastructureError(f"cannot list containers on {self.name}: {_reason(exc)}") from None
        for container in containers:
            labels = container.attrs.get("Labels") or {}
            pid = int(labels.get(LABEL_PID, "0") or 0)
            if pid and _alive(pid):
                continue  # another multiverse run, still going
            try:
                if force_remove(container):  # its own run's watchdog may be removing it too
                    removed.append(labels.get(LABEL_JOB, container.short_id))
            except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
                raise InfrastructureError(
                    f"cannot remove the container {container.short_id} that an earlier, crashed run left on "
                    f"{self.name}: {_reason(exc)}; remove it with `docker rm -f {container.short_id}`"
                ) from None
        return removed

    def in_use(self) -> set[Path]:
        return set()  # a local container never outlives its run: the watchdog removes it

    def adopts(self, spec: ContainerSpec) -> bool:
        return False

    def containers_of(self, run_id: str) -> list:
        return self.client.containers.list(all=True, filters={"label": [f"{LABEL}=1", f"{LABEL_RUN}={run_id}"]})

    def describe(self) -> dict:
        try:
            version = self.client.version()
            info = self.client.info()
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise InfrastructureError(f"cannot describe the {self.name} engine: {_reason(exc)}") from None
        return {
            "kind": self.name,
            "version": version.get("Version", "?"),
            "api_version": version.get("ApiVersion", "?"),
            "os": info.get("OperatingSystem", "?"),
            "cpus": int(info.get("NCPU", 0) or 0),
            "memory": int(info.get("MemTotal", 0) or 0),
            "base_url": self.base_url,
        }


class _Watch:
    """Start one created container, stream its log, enforce the deadline, and read how it ended."""

    def __init__(self, backend: DockerBackend, container, spec: ContainerSpec, cancel: threading.Event, on_line: LineCallback):
        self.backend = backend
        self.container = container
        self.spec = spec
        self.cancel = cancel
        self.tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)

        self.streamed = 0  # lines the live stream delivered

        def keep(line: str) -> None:
            self.streamed += 1
            self.tail.append(line)
            on_line(line)

        self.feed = split_lines(keep)
        self.stream_ended = threading.Event()
        self.exited = threading.Event()
        self.wait_error: list[BaseException] = []
        self.peak = _MemoryPeak(backend, container)

    def _stream(self) -> None:
        try:
            for chunk in self.container.logs(stream=True, follow=True):
                self.feed(chunk.decode("utf-8", errors="replace"))
            self.feed(None)
            self.stream_ended.set()
        except Exception:  # noqa: BLE001 - the live stream is best effort; the full log is read after exit
            pass

    def _wait(self) -> None:
        # The SDK's wait(timeout=) is an HTTP read timeout: wait in slices until it returns.
        try:
            while True:
                try:
                    self.container.wait(timeout=_WAIT_SLICE_S)
                    return
                except requests.exceptions.RequestException as exc:
                    # Over a unix socket (Docker's and Podman's) the read timeout surfaces as
                    # ConnectionError("... Read timed out."), not as ReadTimeout.
                    if isinstance(exc, requests.exceptions.ReadTimeout) or "timed out" in str(exc).lower():
                        continue
                    raise
        except BaseException as exc:  # noqa: BLE001 - any end of the wait is news for the main loop
            self.wait_error.append(exc)
        finally:
            self.exited.set()

    def run(self) -> ContainerOutcome:
        spec = self.spec
        start = time.monotonic()
        try:
            self.container.start()
        except docker.errors.APIError as exc:
            explanation = str(exc.explanation or exc)
            if spec.resources.gpus and "device driver" in explanation:
                raise InfrastructureError(
                    f"{spec.name} asked for {spec.resources.gpus} GPU(s), but the {self.backend.name} engine cannot "
                    f"provide any ({explanation}). Install the NVIDIA Container Toolkit on a GPU host, "
                    f"or set gpus: 0 for this model."
                ) from None
            raise InfrastructureError(f"cannot start the {spec.name} container: {explanation}") from None
        except requests.exceptions.RequestException as exc:
            raise InfrastructureError(f"lost the {self.backend.name} engine starting {spec.name}: {_reason(exc)}") from None
        reader = threading.Thread(target=self._stream, name=f"logs-{spec.name}", daemon=True)
        reader.start()
        threading.Thread(target=self._wait, name=f"wait-{spec.name}", daemon=True).start()
        outcome = ContainerOutcome()
        deadline = start + (spec.resources.timeout_s or float("inf"))
        next_memory = start
        while not self.exited.wait(timeout=_POLL_S):
            now = time.monotonic()
            self.peak.read_oom()
            if now >= next_memory:
                self.peak.read()
                next_memory = now + _MEMORY_POLL_S
            if self.cancel.is_set():
                outcome.cancelled = True
                self._kill()
                break
            if now >= deadline:
                outcome.timed_out = True
                self._kill()
                break
        self._wait_stopped()
        outcome.duration_s = time.monotonic() - start
        state = self._state()
        outcome.exit_code = state.get("ExitCode")
        # Podman 4.x never sets OOMKilled (its conmon's OOM file is not read back); the cgroup's own
        # OOM-kill counter, read while the container ran, tells for both engines.
        outcome.oom_killed = bool(state.get("OOMKilled")) or self.peak.oom_kills > 0
        outcome.peak_memory_bytes = self.peak.value
        outcome.full_log, outcome.log_tail = self._final_log(reader, settle=outcome.exit_code != 0)
        return outcome

    def _final_log(self, reader: threading.Thread, settle: bool = False) -> tuple[str, list[str]]:
        """The whole log, read once the engine has stored all of it.

        The engine reports the container as exited while its log copier may still be
        writing the last lines (seen in CI: a traceback missing from the log read right
        after exit). The follow stream ends only once the copier is done, so wait for
        it, and never take a stored log shorter than what the stream already delivered.
        """
        reader.join(timeout=_LOG_SETTLE_S)
        end = time.monotonic() + _LOG_SETTLE_S
        full = None
        while True:
            try:
                full = self.container.logs(stdout=True, stderr=True).decode("utf-8", errors="replace")
            except (docker.errors.APIError, requests.exceptions.RequestException):
                break
            if count_lines(full) >= self.streamed or time.monotonic() >= end:
                break
            time.sleep(0.2)
        if settle and full is not None:
            # A failure's last lines are its reason, and under load they can reach the engine's
            # store after the stream has ended (seen in CI: a crash's message missing from the
            # reason). Read again until two reads agree; a success does not pay this wait.
            while time.monotonic() < end:
                time.sleep(_FAILURE_SETTLE_S)
                try:
                    again = self.container.logs(stdout=True, stderr=True).decode("utf-8", errors="replace")
                except (docker.errors.APIError, requests.exceptions.RequestException):
                    break
                if again == full:
                    break
                full = again
        if full is None or count_lines(full) < self.streamed:
            return "\n".join(self.tail), list(self.tail)
        return full, full.rstrip("\n").split("\n")[-LOG_TAIL_LINES:]

    def _state(self) -> dict:
        try:
            self.container.reload()
        except docker.errors.NotFound:
            raise InfrastructureError(
                f"the {self.spec.name} container was removed from outside while it ran "
                f"(docker rm -f, a prune, or the engine restarting); its result is lost"
            ) from None
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise InfrastructureError(f"lost the {self.backend.name} engine while {self.spec.name} ran: {_reason(exc)}") from None
        return self.container.attrs.get("State", {})

    def _kill(self) -> None:
        try:
            self.container.kill()
        except (docker.errors.APIError, requests.exceptions.RequestException):
            pass  # it exited (or vanished) meanwhile: _state says which

    def _wait_stopped(self) -> None:
        end = time.monotonic() + _STOP_GRACE_S
        while time.monotonic() < end:
            if self._state().get("Status") in ("exited", "dead"):
                return
            time.sleep(0.1)


class _MemoryPeak:
    """The container's memory peak and OOM kills as its cgroup counts them, read while it runs.

    The cgroup disappears with the container, so the peak is read every second
    while it runs (it only grows): from the host's cgroup file system when the
    engine is local (cgroup v2 ``memory.peak``, v1 ``memory.max_usage_in_bytes``),
    else from the engine's stats (``max_usage``, v1 only). None when neither says.
    The OOM-kill counter (v2 ``memory.events``, v1 ``memory.oom_control``) is read
    at every poll: the cgroup outlives the killed process by a second or more.
    """

    def __init__(self, backend: DockerBackend, container):
        self.backend = backend
        self.container = container
        self.value: Optional[int] = None
        self.oom_kills = 0
        self._path: Optional[Path] = None
        self._oom_path: Optional[Path] = None
        self._resolved = False

    def _find_path(self) -> Optional[Path]:
        try:
            self.container.reload()
            pid = int(self.container.attrs.get("State", {}).get("Pid") or 0)
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines() if pid else []
        except Exception:  # noqa: BLE001 - not local, or already gone
            return None
        for line in lines:
            _, controllers, path = line.split(":", 2)
            if controllers == "memory":
                candidate = Path("/sys/fs/cgroup/memory") / path.lstrip("/") / "memory.max_usage_in_bytes"
            elif controllers == "":
                candidate = Path("/sys/fs/cgroup") / path.lstrip("/") / "memory.peak"
            else:
                continue
            if candidate.is_file():
                return candidate
        return None

    def _resolve(self) -> None:
        if not self._resolved:
            self._path, self._resolved = self._find_path(), True
            if self._path is not None:
                oom = self._path.parent / ("memory.events" if self._path.name == "memory.peak" else "memory.oom_control")
                self._oom_path = oom if oom.is_file() else None

    def read_oom(self) -> None:
        self._resolve()
        if self._oom_path is None:
            return
        try:
            words = self._oom_path.read_text().split()
        except OSError:
            return  # the cgroup is gone: the last count read stands
        for name, value in zip(words, words[1:]):
            if name == "oom_kill" and value.isdigit():
                self.oom_kills = max(self.oom_kills, int(value))

    def read(self) -> None:
        self._resolve()
        value = None
        if self._path is not None:
            try:
                value = int(self._path.read_text().strip())
            except (OSError, ValueError):
                value = None
        else:
            try:
                value = self.container.stats(stream=False, one_shot=True).get("memory_stats", {}).get("max_usage")
            except Exception:  # noqa: BLE001 - no figure is better than a failed run
                value = None
        if value:
            self.value = max(self.value or 0, int(value))
