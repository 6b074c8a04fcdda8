#!/usr/bin/env python3
"""Benchmark: what multiverse adds on top of a bare `docker run`, and how fast a code change rebuilds.

1. Wall time of `multiverse run --models pca --force` against a bare
   `docker run --rm` of the same container (the image, mounts, arguments,
   sandbox options, limits and environment multiverse gives it), alternated,
   several rounds; medians and their ratio.
2. Wall time of `multiverse build pca` after a change to the method code only
   (the dependency layers stay cached), median of several rebuilds.

    python bench/orchestration_overhead.py [--input FILE] [--rounds 7] [--rebuilds 3]

Default input: the real multiome file in ../shared/data if present, else the
bundled synthetic data (data/synthetic.h5mu, made if missing).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from multiverse import api  # noqa: E402
from multiverse.catalog import METHODS, image_of  # noqa: E402
from multiverse.runner.container import job_container  # noqa: E402
from multiverse_methods import protocol  # noqa: E402

MULTIVERSE = [sys.executable, "-m", "multiverse"]


def default_input() -> Path:
    real = REPO.parent / "shared" / "data" / "bmmc_multiome_starter_500.h5mu"
    if real.is_file():
        return real
    synthetic = REPO / "data" / "synthetic.h5mu"
    if not synthetic.is_file():
        subprocess.run([*MULTIVERSE, "synth", str(synthetic)], check=True)
    return synthetic


def timed(cmd: list[str], **kwargs) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def bare_docker_run(spec, output: Path) -> list[str]:
    """`docker run` of exactly the container multiverse creates for the job (same sandbox, limits, environment)."""
    res = spec.resources
    cmd = [
        "docker", "run", "--rm",
        "--user", f"{os.getuid()}:{os.getgid()}",
        "--network", "none", "--read-only", "--tmpfs", "/tmp:rw,exec,nosuid,nodev,mode=1777",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--memory", str(res.memory_bytes), "--memory-swap", str(res.memory_bytes),
        "--cpus", f"{res.cpus:g}", "--workdir", "/tmp",
    ]
    if res.pids:
        cmd += ["--pids-limit", str(res.pids)]
    for mount in spec.mounts:
        source = output if mount.target == protocol.OUTPUT_DIR else Path(mount.source).absolute()
        cmd += ["-v", f"{source}:{mount.target}" + (":ro" if mount.read_only else "")]
    for name, value in sorted(spec.environment.items()):
        cmd += ["-e", f"{name}={value}"]
    return cmd + [spec.image, *spec.command]


def overhead(data: Path, rounds: int) -> None:
    plan = api.prepare(models=["pca"], input=data, output=Path(tempfile.gettempdir()) / "unused")
    job = plan.jobs[0]
    image = image_of(METHODS["pca"]).tag
    ours, bare = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i in range(rounds + 1):  # the first round warms caches and is not counted
            out = tmp / f"bare{i}"
            out.mkdir()
            t_bare = timed(bare_docker_run(job_container(job, out, image, "bench"), out))
            t_ours = timed([*MULTIVERSE, "run", "--models", "pca", "--input", str(data),
                            "--output", str(tmp / "mv"), "--force", "--no-report"])
            if i:
                bare.append(t_bare)
                ours.append(t_ours)
    med_ours, med_bare = statistics.median(ours), statistics.median(bare)
    print(f"input: {data.name}; {rounds} alternated rounds after one warm-up")
    print(f"  bare docker run (the same container: sandbox, limits, environment): "
          f"median {med_bare:.2f} s  (all: {', '.join(f'{t:.2f}' for t in bare)})")
    print(f"  multiverse run --models pca --force:      median {med_ours:.2f} s  (all: {', '.join(f'{t:.2f}' for t in ours)})")
    print(f"  ratio multiverse / bare: {med_ours / med_bare:.2f}  (overhead {med_ours - med_bare:+.2f} s: "
          "CLI start-up, input checks and checksum, validation of the output, manifest)")


def rebuild(rebuilds: int) -> None:
    marker = REPO / "multiverse_methods" / "_bench_code_change.py"
    times = []
    try:
        timed([*MULTIVERSE, "build", "pca"])  # everything cached before we start
        for i in range(rebuilds):
            marker.write_text(f"# a code-only change for the rebuild benchmark: {time.time_ns()}\n")
            times.append(timed([*MULTIVERSE, "build", "pca"]))
    finally:
        marker.unlink(missing_ok=True)
        timed([*MULTIVERSE, "build", "pca"])
    print(f"rebuild of the pca image (and its cached base) after a code-only change: "
          f"median {statistics.median(times):.2f} s  (all: {', '.join(f'{t:.2f}' for t in times)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--rebuilds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("docker") is None:
        sys.exit("needs the docker CLI and a running engine (make engine)")
    overhead((args.input or default_input()).resolve(), args.rounds)
    if args.rebuilds:
        rebuild(args.rebuilds)


if __name__ == "__main__":
    main()
