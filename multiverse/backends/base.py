"""The seam between the runner and whatever runs containers (Docker, Podman, Slurm, a fake).

The runner builds a backend-neutral :class:`ContainerSpec` and hands it to a
:class:`Backend`; the backend runs it to the end (or the deadline, or a cancel)
and returns a :class:`ContainerOutcome`. Everything engine-specific (SDKs,
their errors, labels, watchdogs) stays behind this interface; nothing here
imports the runner.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Mapping, Optional, Protocol

#: Labels on every container multiverse starts: ours, which run, which job, which host and process.
LABEL = "io.multiverse"
LABEL_RUN = "io.multiverse.run"
LABEL_JOB = "io.multiverse.model"
LABEL_HOST = "io.multiverse.host"
LABEL_PID = "io.multiverse.pid"


@dataclass(frozen=True)
class Resources:
    """What one container may use. ``None`` means no limit."""

    timeout_s: Optional[float] = None
    memory_bytes: Optional[int] = None
    cpus: float = 1.0
    pids: Optional[int] = None
    gpus: int = 0

    @property
    def threads(self) -> int:
        """Threads a method should use: its whole CPU share, at least one."""
        return max(1, int(self.cpus or 1))


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class ContainerSpec:
    """Everything one sandboxed container needs: what runs, what it sees, its limits."""

    name: str  # the job's name: labels and messages
    image: str  # an immutable image id, from Backend.resolve_image
    command: tuple[str, ...]
    mounts: tuple[Mount, ...]
    resources: Resources
    environment: Mapping[str, str] = field(default_factory=dict)
    entrypoint: Optional[tuple[str, ...]] = None
    run_id: str = ""

    @property
    def writable(self) -> list[Path]:
        return [m.source for m in self.mounts if not m.read_only]


@dataclass
class ContainerOutcome:
    """How a container ended. ``exit_code`` is None when it never exited by itself."""

    exit_code: Optional[int] = None
    oom_killed: bool = False
    timed_out: bool = False
    cancelled: bool = False
    duration_s: float = 0.0
    #: The container's memory peak as its cgroup counted it (RSS, page cache, tmpfs), if the backend saw it.
    peak_memory_bytes: Optional[int] = None
    log_tail: list[str] = field(default_factory=list)
    full_log: str = ""
    #: Backend-specific facts worth recording (e.g. a Slurm job id and state).
    details: dict = field(default_factory=dict)


LineCallback = Callable[[str], None]


class Backend(Protocol):
    """What the runner needs from an engine. Implementations: docker.py (also Podman), slurm.py, fake.py."""

    #: Short name for messages and the manifest ("docker", "podman", "slurm", "fake").
    name: str

    def resolve_image(self, tag: str, build_hint: str = "") -> str:
        """The immutable id of a local image; raises ImageMissing (never pulls)."""

    def has_image(self, tag: str) -> bool: ...

    def run(self, spec: ContainerSpec, cancel: threading.Event, on_line: LineCallback) -> ContainerOutcome:
        """Run ``spec`` to its end, its deadline or ``cancel``; the container is gone when this returns.

        Raises InfrastructureError when the engine or the container is lost."""

    def guard(self, run_id: str) -> ContextManager:
        """While entered, containers of ``run_id`` are removed if this process dies (a watchdog)."""

    def reap(self) -> list[str]:
        """Remove containers left by runs whose process has died; returns their job names."""

    def describe(self) -> dict:
        """Facts about the backend for the run manifest (kind, versions, host)."""

    def in_use(self) -> set[Path]:
        """Staging folders that jobs started by an earlier, dead run still write into or hold an
        uncollected result in (a Slurm job outlives the CLI); ``recover()`` must keep them."""

    def adopts(self, spec: ContainerSpec) -> bool:
        """Whether ``run(spec)`` would follow such an earlier job rather than start a container
        (then the staging folder must be kept as it is, not emptied)."""


#: Tail of a container's log kept for messages.
LOG_TAIL_LINES = 40


def split_lines(on_line: LineCallback) -> Callable[[str], None]:
    """A feed for text chunks that calls ``on_line`` once per complete line (flush with feed(None))."""
    pending = [""]

    def feed(chunk: Optional[str]) -> None:
        if chunk is None:
            if pending[0]:
                on_line(pending[0])
                pending[0] = ""
            return
        pending[0] += chunk
        *lines, pending[0] = pending[0].split("\n")
        for line in lines:
            on_line(line)

    return feed
