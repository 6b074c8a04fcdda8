"""A thin layer over the Docker SDK: connect, find images, clean up our containers.

Every container multiverse starts carries labels saying it is ours, which run
and which process started it, so that a later run can remove what a crashed
one left behind without touching anybody else's containers.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import docker
import docker.errors
import requests

from multiverse.errors import EngineUnavailable, ImageMissing, InfrastructureError

LABEL = "io.multiverse"
LABEL_MODEL = "io.multiverse.model"
LABEL_RUN = "io.multiverse.run"
LABEL_HOST = "io.multiverse.host"
LABEL_PID = "io.multiverse.pid"

ENGINE_HELP = (
    "Start Docker (e.g. 'sudo systemctl start docker'), or on a Debian machine without it "
    "run 'make engine' (scripts/ensure-docker-engine.sh) as root."
)


@dataclass(frozen=True)
class EngineInfo:
    server_version: str
    api_version: str
    os: str
    cpus: int
    memory: int


class Engine:
    """A connected Docker engine."""

    def __init__(self, client: docker.DockerClient):
        self.client = client

    @classmethod
    def connect(cls, timeout: int = 60) -> "Engine":
        try:
            client = docker.from_env(timeout=timeout)
            client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise EngineUnavailable(f"no Docker engine answers ({_reason(exc)}). {ENGINE_HELP}") from None
        return cls(client)

    def info(self) -> EngineInfo:
        version = self.client.version()
        info = self.client.info()
        return EngineInfo(
            server_version=version.get("Version", "?"),
            api_version=version.get("ApiVersion", "?"),
            os=info.get("OperatingSystem", "?"),
            cpus=int(info.get("NCPU", 0)),
            memory=int(info.get("MemTotal", 0)),
        )

    def image(self, tag: str, build_hint: str = ""):
        """The local image ``tag``; never pulls it."""
        try:
            return self.client.images.get(tag)
        except docker.errors.ImageNotFound:
            hint = f" Build it with: {build_hint}" if build_hint else ""
            raise ImageMissing(f"image {tag} is not built (multiverse never pulls method images).{hint}") from None
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise InfrastructureError(f"cannot look up image {tag}: {_reason(exc)}") from None

    def has_image(self, tag: str) -> bool:
        try:
            self.client.images.get(tag)
            return True
        except docker.errors.ImageNotFound:
            return False

    def our_labels(self, run_id: str, model: str) -> dict[str, str]:
        return {
            LABEL: "1",
            LABEL_MODEL: model,
            LABEL_RUN: run_id,
            LABEL_HOST: socket.gethostname(),
            LABEL_PID: str(os.getpid()),
        }

    def remove_leftovers(self) -> list[str]:
        """Remove containers that a multiverse process on this host started and that outlived it."""
        removed = []
        filters = {"label": [f"{LABEL}=1", f"{LABEL_HOST}={socket.gethostname()}"]}
        for container in self.client.containers.list(all=True, filters=filters):
            pid = int(container.labels.get(LABEL_PID, "0") or 0)
            if pid and _alive(pid):
                continue  # another multiverse run, still going
            try:
                container.remove(force=True)
                removed.append(container.labels.get(LABEL_MODEL, container.short_id))
            except docker.errors.NotFound:
                pass
        return removed

    def running_ours(self, run_id: str | None = None) -> list:
        label = [f"{LABEL}=1"] + ([f"{LABEL_RUN}={run_id}"] if run_id else [])
        return self.client.containers.list(all=True, filters={"label": label})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
