"""Find a docker client that builds with BuildKit.

The first ``docker`` on PATH may be a recent client without the buildx plugin,
which then refuses ``DOCKER_BUILDKIT=1``; a client older than 23 (Debian's
``docker.io``) has BuildKit built in. The Docker SDK's ``images.build()`` only
drives the legacy builder, which cannot bind-mount the wheelhouse.
"""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache
from pathlib import Path

from multiverse.errors import BuildError


def _docker_clients() -> list[Path]:
    seen, found = set(), []
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(folder or ".") / "docker"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            real = candidate.resolve()
            if real not in seen:
                seen.add(real)
                found.append(candidate)
    return found


def _can_buildkit(client: Path) -> bool:
    def ok(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(client), *args], capture_output=True, text=True, timeout=30)

    if ok("buildx", "version").returncode == 0:
        return True
    version = ok("version", "--format", "{{.Client.Version}}").stdout.strip()
    try:
        return int(version.split(".")[0]) < 23
    except ValueError:
        return False


@lru_cache(maxsize=1)
def buildkit_client() -> Path:
    for client in _docker_clients():
        if _can_buildkit(client):
            return client
    raise BuildError(
        "no docker client on PATH can build with BuildKit. Install the buildx plugin "
        "(e.g. the docker-buildx package) or Debian's docker.io."
    )


def buildkit_env() -> dict[str, str]:
    return {**os.environ, "DOCKER_BUILDKIT": "1"}
