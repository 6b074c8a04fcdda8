"""What became of each job in a run."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional


class Status(str, enum.Enum):
    """The outcome of one job. Only OK and CACHED count as success."""

    OK = "ok"
    CACHED = "cached"  # a valid earlier result with the same key was kept
    NOT_APPLICABLE = "not applicable"
    OUT_OF_MEMORY = "out of memory"
    TIMEOUT = "timeout"
    INVALID_OUTPUT = "invalid output"
    METHOD_ERROR = "method error"
    INFRASTRUCTURE_ERROR = "infrastructure error"
    INTERRUPTED = "interrupted"

    @property
    def succeeded(self) -> bool:
        return self in (Status.OK, Status.CACHED)


@dataclass
class JobResult:
    name: str
    method: str
    status: Status
    reason: str = ""
    log_tail: list[str] = field(default_factory=list)
    exit_code: Optional[int] = None
    duration_s: Optional[float] = None
    #: The container's memory peak (its cgroup's count, else what the method reported), MiB.
    peak_memory_mb: Optional[float] = None
    output_dir: Optional[Path] = None
    #: Where the folder of a failed attempt was kept for inspection.
    failed_dir: Optional[Path] = None
    metrics: dict = field(default_factory=dict)
    image: str = ""
    image_id: str = ""
    backend: str = ""
    started_at: Optional[str] = None
    finished_at: Optional[str] = None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["status"] = self.status.value
        for key in ("output_dir", "failed_dir"):
            data[key] = str(data[key]) if data[key] else None
        return data
