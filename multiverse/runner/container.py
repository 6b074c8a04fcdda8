"""From a job to the backend-neutral container that runs it under the contract."""

from __future__ import annotations

import json
from pathlib import Path

from multiverse.backends.base import ContainerSpec, Mount, Resources
from multiverse.config import Limits
from multiverse.plan import Job
from multiverse_methods import protocol

#: Thread-count variables matched to the container's CPU limit.
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
#: The container's own deadline comes this long after the runner's, which normally acts first.
DEADLINE_GRACE_S = 15.0


def resources_of(limits: Limits) -> Resources:
    return Resources(
        timeout_s=limits.timeout,
        memory_bytes=limits.memory,
        cpus=float(limits.cpus or 1),
        pids=limits.pids,
        gpus=int(limits.gpus or 0),
    )


def container_environment(resources: Resources) -> dict[str, str]:
    threads = str(resources.threads)
    env = {name: threads for name in THREAD_VARS}
    env.update(
        {
            "HOME": "/tmp",
            "XDG_CACHE_HOME": "/tmp/.cache",
            "NUMBA_CACHE_DIR": "/tmp/numba",
            "MPLCONFIGDIR": "/tmp/matplotlib",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            protocol.THREADS_ENV: threads,
            # Idle OpenMP threads sleep instead of spinning: on shared or limited CPUs spinning
            # made torch training steps up to 25x slower (measured with Cobolt here).
            "OMP_WAIT_POLICY": "PASSIVE",
        }
    )
    if resources.timeout_s:
        env[protocol.DEADLINE_ENV] = f"{resources.timeout_s + DEADLINE_GRACE_S:g}"
    return env


def job_container(job: Job, output: Path, image_id: str, run_id: str) -> ContainerSpec:
    """The container of one job: the input read-only, its own output folder writable."""
    target = f"{protocol.INPUT_DIR}/{job.input.container_name}"
    resources = resources_of(job.limits)
    return ContainerSpec(
        name=job.name,
        image=image_id,
        command=(
            "--input", target,
            "--output", protocol.OUTPUT_DIR,
            "--params", json.dumps(job.params, sort_keys=True),
            "--modalities", json.dumps(job.input.kinds, sort_keys=True),
            "--counts", json.dumps(job.input.counts, sort_keys=True),
        ),
        mounts=(
            Mount(job.input.model_path, target, read_only=True),
            Mount(output, protocol.OUTPUT_DIR, read_only=False),
        ),
        resources=resources,
        environment=container_environment(resources),
        entrypoint=tuple(job.entrypoint) if job.entrypoint else None,
        run_id=run_id,
    )
