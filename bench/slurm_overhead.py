#!/usr/bin/env python3
"""Benchmark: what running a job through Slurm costs over running it on the local engine.

1. Per-job overhead: one random-control job (the lightest container there is),
   alternately through the local Docker engine and through Slurm (sbatch ->
   node-side process -> the same container on the node's Docker), each into a
   fresh output folder, ``--rounds`` times each. Prints both medians, their
   difference (the overhead per job) and their ratio.
2. Ten concurrent control jobs through Slurm (``--jobs 10``, 1 CPU and 1 GiB
   each, so the one-node cluster's CPUs decide how many run at once), beside
   the same ten on the local engine.

3. With ``--submitit`` (``pip install submitit==1.5.3 'setuptools<81'`` first,
   it imports pkg_resources; not a dependency of multiverse): what submitit reports of a 1-second job and of a cancelled one on
   this cluster, the measurement behind using plain sbatch/squeue (docs/CLUSTER.md).

Times are of ``api.execute`` (planning and the input scan excluded), with the
queue polled every ``--poll`` seconds. Needs the pca image, Docker and a Slurm
cluster whose nodes see this machine's /tmp (scripts/ensure-slurm.sh).

    python bench/slurm_overhead.py [--rounds 5] [--poll 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from multiverse import api
from multiverse.cli import _connect_backend


def timed(folder: Path, data: Path, backend: str, models: dict, jobs: int, poll: float) -> float:
    folder.mkdir(parents=True)
    config = folder / "runner_config.yaml"
    config.write_text(yaml.safe_dump({
        "input": str(data), "output": str(folder / "out"), "backend": backend, "jobs": jobs,
        "slurm": {"poll": poll}, "models": models,
    }))
    plan = api.prepare(config)
    engine = _connect_backend(plan.backend, plan)
    start = time.perf_counter()
    results = api.execute(plan, engine)
    elapsed = time.perf_counter() - start
    failed = [f"{r.name}: {r.status.value} {r.reason}" for r in results if r.status.value != "ok"]
    if failed:
        raise SystemExit(f"{backend}: " + "; ".join(failed))
    return elapsed


def _sleep_and_double(x: int) -> int:
    time.sleep(1)
    return 2 * x


def submitit_states(folder: Path) -> None:
    """The states submitit sees of a finished and of a cancelled job, and when it calls them done."""
    import logging

    import submitit

    logging.getLogger("submitit").setLevel(logging.ERROR)  # it warns at every failed sacct call
    executor = submitit.SlurmExecutor(folder=folder / "submitit")
    executor.update_parameters(time=2, cpus_per_task=1, mem="1G")
    start = time.perf_counter()
    job = executor.submit(_sleep_and_double, 21)
    seen = set()
    while not job.done() and time.perf_counter() - start < 60:
        seen.add(job.state)
        time.sleep(0.2)
    print(f"submitit, a 1 s job: done() is {job.done()} after {time.perf_counter() - start:.2f} s, "
          f"states seen while it ran: {', '.join(sorted(seen)) or 'none'}")
    job = executor.submit(_sleep_and_double, 1)
    time.sleep(0.5)
    job.cancel()
    start = time.perf_counter()
    while not job.done() and time.perf_counter() - start < 20:
        time.sleep(0.5)
    print(f"submitit, a cancelled job: done() is {job.done()} after {time.perf_counter() - start:.0f} s, state {job.state}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--poll", type=float, default=2.0, help="slurm.poll: seconds between two looks at the queue")
    parser.add_argument("--concurrent", type=int, default=10)
    parser.add_argument("--submitit", action="store_true", help="also measure what submitit reports here")
    args = parser.parse_args()
    from multiverse.synthetic import write_synthetic

    with tempfile.TemporaryDirectory(prefix="multiverse-bench-") as tmp:
        tmp = Path(tmp)
        data = write_synthetic(tmp / "data.h5mu", n_cells=200, n_genes=400, n_peaks=600)
        one = {"control_random": {"cpus": 1, "memory": "1g"}}
        times = {"docker": [], "slurm": []}
        for i in range(args.rounds):
            for backend in (("docker", "slurm") if i % 2 == 0 else ("slurm", "docker")):
                times[backend].append(timed(tmp / f"{backend}-{i}", data, backend, one, 1, args.poll))
        local, slurm = statistics.median(times["docker"]), statistics.median(times["slurm"])
        print(f"one control job, {args.rounds} rounds each, slurm.poll {args.poll:g} s")
        for backend, values in times.items():
            print(f"  {backend:6s}: median {statistics.median(values):.2f} s  (all: {', '.join(f'{t:.2f}' for t in values)})")
        print(f"  Slurm overhead per job: {slurm - local:+.2f} s; ratio slurm / local: {slurm / local:.2f}")

        many = {f"control_{i}": {"method": "control_random", "cpus": 1, "memory": "1g"} for i in range(args.concurrent)}
        walls = {backend: timed(tmp / f"many-{backend}", data, backend, many, args.concurrent, args.poll)
                 for backend in ("slurm", "docker")}
        print(f"{args.concurrent} concurrent control jobs (--jobs {args.concurrent}, 1 CPU and 1 GiB each)")
        print(f"  through Slurm: {walls['slurm']:.1f} s wall; on the local engine: {walls['docker']:.1f} s wall")
        if args.submitit:
            submitit_states(tmp)


if __name__ == "__main__":
    main()
