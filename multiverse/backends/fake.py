"""An in-memory backend for the runner's own tests: containers that do what the test says.

Nothing is started: :meth:`FakeBackend.run` looks up what the test wants of
the job (a :class:`FakeRun`), lets it write into the job's output mount as a
container would, and returns the outcome (exit code, OOM, timeout, cancel,
vanished). The real-engine tests stay; this one lets the runner's logic
(classification, staging and promotion, resume, cancellation, one failure not
stopping others) be tested in seconds.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

from multiverse.backends.base import ContainerOutcome, ContainerSpec, LineCallback
from multiverse.errors import ImageMissing, InfrastructureError

Writer = Callable[[Path, ContainerSpec], None]


@dataclass
class FakeRun:
    """What one fake container does."""

    exit_code: int = 0
    log: str = ""
    #: Writes the container's files into its output folder (host path), e.g. :func:`write_valid_result`.
    writes: Optional[Writer] = None
    #: Runs until cancelled or past its timeout.
    hang: bool = False
    oom: bool = False
    #: Removed from outside while running.
    vanishes: bool = False
    #: Fails while being created (e.g. the engine refuses).
    refused: Optional[str] = None


def command_args(spec: ContainerSpec) -> dict[str, str]:
    """``--name value`` pairs of the container's command."""
    args, items = {}, list(spec.command)
    for i, item in enumerate(items):
        if item.startswith("--") and i + 1 < len(items) and not items[i + 1].startswith("--"):
            args[item[2:]] = items[i + 1]
    return args


def host_path(spec: ContainerSpec, container_path: str) -> Path:
    for mount in spec.mounts:
        if container_path == mount.target or container_path.startswith(mount.target.rstrip("/") + "/"):
            return Path(mount.source) / container_path[len(mount.target):].lstrip("/")
    raise KeyError(container_path)


def output_dir(spec: ContainerSpec) -> Path:
    [folder] = spec.writable
    return Path(folder)


def write_valid_result(folder: Path, spec: ContainerSpec, dims: int = 4) -> None:
    """What a well-behaved method writes: the three files, the input's cells in order, its parameters echoed."""
    import anndata
    import numpy as np
    import pandas as pd

    from multiverse.inputs import read_obs_names
    from multiverse_methods import protocol

    args = command_args(spec)
    names = read_obs_names(host_path(spec, args["input"]))
    adata = anndata.AnnData(obs=pd.DataFrame(index=pd.Index(names)))
    adata.obsm[protocol.EMBEDDING_KEY] = np.random.default_rng(0).normal(size=(len(names), dims)).astype("float32")
    adata.uns[protocol.PARAMS_KEY] = args.get("params", "{}")
    adata.write_h5ad(folder / protocol.EMBEDDINGS_FILE)
    metrics = {"runtime_s": 0.01, "peak_memory_mb": 1.0, "params": json.loads(args.get("params", "{}")), "versions": {}}
    (folder / protocol.METRICS_FILE).write_text(json.dumps(metrics))
    (folder / protocol.LOG_FILE).write_text("fake method: done\n")


class FakeBackend:
    """A backend whose containers are :class:`FakeRun` s, chosen per job name (or by a function)."""

    name = "fake"

    def __init__(
        self,
        runs: Union[dict[str, FakeRun], Callable[[ContainerSpec], FakeRun], None] = None,
        images: Optional[dict[str, str]] = None,
        adopted: Optional[dict[str, Path]] = None,
    ):
        self._runs = runs or {}
        #: Job name -> staging folder of a job that "an earlier run" left running (like Slurm's).
        self.adopted = dict(adopted or {})
        self.images = images if images is not None else {}
        self.started: list[ContainerSpec] = []
        self.running: set[str] = set()
        self.guarded: list[str] = []
        self._lock = threading.Lock()

    def add_image(self, tag: str, image_id: Optional[str] = None) -> None:
        self.images[tag] = image_id or f"sha256:{abs(hash(tag)):064x}"[:71]

    def resolve_image(self, tag: str, build_hint: str = "") -> str:
        if tag not in self.images:
            raise ImageMissing(f"image {tag} is not present on fake (multiverse never pulls method images).")
        return self.images[tag]

    def has_image(self, tag: str) -> bool:
        return tag in self.images

    def _run_for(self, spec: ContainerSpec) -> FakeRun:
        if callable(self._runs):
            return self._runs(spec)
        # A job's name is <dataset>/<entry>/seed-<s>: a test may name the whole job or just its entry.
        parts = spec.name.split("/")
        entry = parts[1] if len(parts) == 3 else spec.name
        return self._runs.get(spec.name) or self._runs.get(entry) or FakeRun(writes=write_valid_result)

    def run(self, spec: ContainerSpec, cancel: threading.Event, on_line: LineCallback) -> ContainerOutcome:
        plan = self._run_for(spec)
        if plan.refused:
            raise InfrastructureError(f"cannot create the {spec.name} container: {plan.refused}")
        with self._lock:
            self.started.append(spec)
            self.running.add(spec.name)
        start = time.monotonic()
        outcome = ContainerOutcome()
        try:
            for line in plan.log.splitlines():
                on_line(line)
            if plan.writes:
                plan.writes(output_dir(spec), spec)
            if plan.vanishes:
                raise InfrastructureError(f"the {spec.name} container was removed from outside while it ran")
            if plan.hang:
                timeout = spec.resources.timeout_s or float("inf")
                while not cancel.is_set() and time.monotonic() - start < timeout:
                    time.sleep(0.01)
                outcome.cancelled = cancel.is_set()
                outcome.timed_out = not outcome.cancelled
                outcome.exit_code = 137
            elif plan.oom:
                outcome.oom_killed, outcome.exit_code = True, 137
            else:
                outcome.exit_code = plan.exit_code
        finally:
            with self._lock:
                self.running.discard(spec.name)
        outcome.duration_s = time.monotonic() - start
        outcome.full_log = plan.log
        outcome.log_tail = plan.log.splitlines()[-40:]
        return outcome

    @contextlib.contextmanager
    def guard(self, run_id: str):
        self.guarded.append(run_id)
        yield

    def reap(self) -> list[str]:
        return []

    def in_use(self) -> set[Path]:
        return set(self.adopted.values())

    def adopts(self, spec: ContainerSpec) -> bool:
        parts = spec.name.split("/")
        name = spec.name if spec.name in self.adopted else (parts[1] if len(parts) == 3 else spec.name)
        return name in self.adopted and output_dir(spec).parent == self.adopted[name]

    def describe(self) -> dict:
        return {"kind": "fake", "version": "0"}
