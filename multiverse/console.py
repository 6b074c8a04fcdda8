"""What the user sees during and after a run: live progress and the summary table.

On a terminal, a live table has one row per model (state, elapsed time, last
log line); otherwise (CI, pipes, files) every log line is printed with its
model's name in front, like ``docker compose logs``.
"""

from __future__ import annotations

import threading
import time

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from multiverse.plan import Job, Plan
from multiverse.runner.results import JobResult, Status

STATUS_STYLE = {
    Status.OK: "green",
    Status.CACHED: "green",
    Status.NOT_APPLICABLE: "yellow",
    Status.INTERRUPTED: "yellow",
}


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}" if minutes else f"{seconds:.1f} s"


class PlainReporter:
    """Prefixed log lines, for logs and non-terminals."""

    def __init__(self, console: Console, plan: Plan):
        self.console = console
        self.width = max(len(job.name) for job in plan.jobs)
        self._lock = threading.Lock()

    def _print(self, name: str, text: str, style: str = "") -> None:
        with self._lock:
            self.console.print(Text(f"{name:<{self.width}} | ", style="cyan") + Text(text, style=style), soft_wrap=True)

    def note(self, text: str) -> None:
        with self._lock:
            self.console.print(Text(text), soft_wrap=True)

    def started(self, job: Job) -> None:
        self._print(job.name, f"started ({job.image})", "bold")

    def line(self, job: Job, text: str) -> None:
        self._print(job.name, text)

    def finished(self, result: JobResult) -> None:
        text = f"{result.status.value}" + (f": {result.reason}" if result.reason else "")
        self._print(result.name, text, "bold " + STATUS_STYLE.get(result.status, "red"))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class LiveReporter:
    """A live table, one row per model: state, elapsed time, last log line."""

    def __init__(self, console: Console, plan: Plan):
        self.console = console
        self.jobs = list(plan.jobs)
        self.state = {job.name: "waiting" for job in self.jobs}
        self.started_at: dict[str, float] = {}
        self.elapsed: dict[str, float] = {}
        self.last = {job.name: "" for job in self.jobs}
        self.live = Live(console=console, refresh_per_second=4, get_renderable=self._table, transient=False)

    def _table(self) -> Table:
        table = Table(expand=True, box=None, pad_edge=False)
        table.add_column("model", style="cyan", no_wrap=True)
        table.add_column("state", no_wrap=True)
        table.add_column("time", justify="right", no_wrap=True)
        table.add_column("last log line", overflow="ellipsis", no_wrap=True, ratio=1)
        now = time.monotonic()
        for job in self.jobs:
            name = job.name
            elapsed = self.elapsed.get(name, now - self.started_at[name] if name in self.started_at else None)
            table.add_row(Text(name), self.state[name], fmt_seconds(elapsed), Text(self.last[name]))
        return table

    def note(self, text: str) -> None:
        self.console.print(Text(text), soft_wrap=True)

    def started(self, job: Job) -> None:
        self.state[job.name] = "[bold]running[/]"
        self.started_at[job.name] = time.monotonic()

    def line(self, job: Job, text: str) -> None:
        if text.strip():
            self.last[job.name] = text.strip()

    def finished(self, result: JobResult) -> None:
        style = STATUS_STYLE.get(result.status, "red")
        self.state[result.name] = f"[{style}]{result.status.value}[/]"
        if result.name in self.started_at:
            self.elapsed[result.name] = time.monotonic() - self.started_at[result.name]
        if result.reason:
            self.last[result.name] = result.reason

    def __enter__(self):
        self.live.start()
        return self

    def __exit__(self, *exc):
        self.live.stop()
        return False


def reporter_for(console: Console, plan: Plan):
    return LiveReporter(console, plan) if console.is_terminal else PlainReporter(console, plan)


def print_summary(console: Console, results: list[JobResult]) -> None:
    table = Table(title="multiverse run", title_justify="left")
    table.add_column("job", style="cyan", overflow="fold")
    table.add_column("status")
    table.add_column("time", justify="right")
    table.add_column("peak memory", justify="right")
    table.add_column("reason", overflow="fold")
    for result in results:
        peak = result.peak_memory_mb
        runtime = result.metrics.get("runtime_s", result.duration_s)
        # A result's folder is <output>/<job>: the job column says it; the width goes to the reasons.
        where = "" if result.status.succeeded else result.reason or ""
        table.add_row(
            Text(result.name),
            Text(result.status.value, style=STATUS_STYLE.get(result.status, "red")),
            fmt_seconds(runtime),
            f"{peak:.0f} MiB" if isinstance(peak, (int, float)) else "-",
            Text(where),
        )
    console.print(table)
    roots = {str(r.output_dir)[: -len(r.name)].rstrip("/") for r in results
             if r.status.succeeded and r.output_dir and str(r.output_dir).endswith(r.name)}
    if len(roots) == 1:
        console.print(Text(f"results in {roots.pop()}/<job>/"))
    for result in results:
        if not result.status.succeeded and result.log_tail and result.status is not Status.INTERRUPTED:
            console.print(Text(result.name, style="bold red") + Text(" last log lines:"))
            for line in result.log_tail[-10:]:
                console.print(Text("  " + line), soft_wrap=True)
            if result.failed_dir:
                console.print(Text(f"  (kept for inspection: {result.failed_dir})"))
