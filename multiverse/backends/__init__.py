"""Engines that run the sandboxed containers, behind one seam (``base.Backend``).

    from multiverse.backends import connect
    backend = connect()            # the local Docker engine (DOCKER_HOST is honoured)
    backend = connect("podman")    # Podman's Docker-compatible service
    backend = connect("slurm", slurm=SlurmOptions(partition="cpu"), work_dir=root / ".multiverse" / "slurm")

Only ``docker.py`` imports the Docker SDK. ``slurm.py`` submits each container
as a Slurm job that runs it on the node's Docker or Podman (``node.py``).
``fake.py`` is an in-memory backend for the runner's tests.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from multiverse.backends.base import Backend, ContainerOutcome, ContainerSpec, Mount, Resources

#: Where Podman's Docker-compatible API listens when started as root by scripts/ensure-podman.sh.
PODMAN_SOCKET = "unix:///run/podman/podman.sock"
BACKENDS = ("docker", "podman", "slurm")


def connect(name: str = "docker", base_url: Optional[str] = None, timeout: int = 60, *,
            slurm=None, work_dir: Optional[Path] = None) -> Backend:
    """A connected backend by name; raises EngineUnavailable (exit 3) when it does not answer.

    ``slurm`` (a :class:`SlurmOptions`) and ``work_dir`` (shared storage for the jobs' files) are for "slurm"."""
    from multiverse.backends.docker import DockerBackend

    if name == "slurm":
        from multiverse.backends.slurm import SlurmBackend, SlurmOptions

        if work_dir is None:
            raise ValueError("the slurm backend needs a work_dir on shared storage")
        return SlurmBackend.connect(slurm or SlurmOptions(), work_dir)
    if name == "docker":
        return DockerBackend.connect(base_url, name="docker", timeout=timeout)
    if name == "podman":
        url = base_url or os.environ.get("MULTIVERSE_PODMAN_URL") or PODMAN_SOCKET
        return DockerBackend.connect(url, name="podman", timeout=timeout)
    from multiverse.errors import ConfigError

    raise ConfigError(f"unknown backend {name!r} (known: {', '.join(BACKENDS)})")


__all__ = ["Backend", "ContainerOutcome", "ContainerSpec", "Mount", "Resources", "connect", "BACKENDS"]
