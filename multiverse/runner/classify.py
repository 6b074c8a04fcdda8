"""What a container's outcome amounts to, before its files are looked at."""

from __future__ import annotations

from multiverse.backends.base import ContainerOutcome
from multiverse.plan import Job
from multiverse.runner.results import Status
from multiverse_methods import protocol


def _last_message(lines: list[str], prefix: str = "") -> str:
    for line in reversed(lines):
        text = line.strip()
        if text and (not prefix or prefix in text):
            return text.split(prefix, 1)[1].strip() if prefix else text
    return ""


def _size(n: int | None) -> str:
    return f"{n / 1024**3:.1f} GiB" if n else "?"


def classify(job: Job, outcome: ContainerOutcome) -> tuple[Status, str]:
    """The status and reason of a container's outcome."""
    code = outcome.exit_code
    if outcome.cancelled:
        return Status.INTERRUPTED, "stopped by the user (Ctrl-C, SIGTERM or SIGHUP)"
    if outcome.timed_out or code == protocol.EXIT_TIMEOUT:
        who = "was killed" if outcome.timed_out else "stopped itself at its own deadline"
        return Status.TIMEOUT, (
            f"ran past its timeout of {job.limits.timeout:g} s and {who}; "
            f"raise models.{job.name}.timeout in the config if it needs longer"
        )
    if outcome.oom_killed:
        return Status.OUT_OF_MEMORY, (
            f"exceeded its memory limit of {_size(job.limits.memory)} and was killed; "
            f"raise models.{job.name}.memory in the config or use fewer cells/features"
        )
    if code == protocol.EXIT_NOT_APPLICABLE:
        return Status.NOT_APPLICABLE, _last_message(outcome.log_tail, "not applicable:") or "not applicable"
    if code == 137:
        return Status.METHOD_ERROR, "killed by SIGKILL (exit 137), possibly by the kernel's out-of-memory killer"
    if code != protocol.EXIT_OK:
        last = _last_message(outcome.log_tail)
        return Status.METHOD_ERROR, f"exited with code {code}" + (f": {last}" if last else "")
    return Status.OK, ""
