#!/usr/bin/env python3
"""Benchmark: what multiverse adds on top of a bare `docker run`, and how fast a code change rebuilds.

1. Wall time of `multiverse run --models pca --force` against a bare
   `docker run --rm` of the same image with the same mounts and arguments,
   alternated, several rounds; medians and their ratio.
2. Wall time of `multiverse build pca` after a change to the method code only
   (the dependency layers stay cached), median of several rebuilds.

    python bench/orchestration_overhead.py [--input FILE] [--rounds 7] [--rebuilds 3]

Default input: the real multiome file in ../shared/data if present, else the
bundled synthetic data (data/synthetic.h5mu, made if missing).
"""

from __future__ import annotations

import argparse
import json
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

from multiverse.catalog import METHODS, image_of  # noqa: E402
from multiverse.inputs import inspect_input  # noqa: E402
from multiverse_methods.params import PcaParams  # noqa: E402

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


def bare_docker_run(image: str, data: Path, out: Path, kinds: dict, counts: dict) -> list[str]:
    params = json.dumps(PcaParams().to_dict(), sort_keys=True)
    return [
        "docker", "run", "--rm",
        "--user", f"{os.getuid()}:{os.getgid()}",
        "-v", f"{data}:/data/input/{data.name}:ro",
        "-v", f"{out}:/data/output",
        "-e", "NUMBA_CACHE_DIR=/tmp/numba", "-e", "MPLCONFIGDIR=/tmp/mpl", "-e", "HOME=/tmp",
        image,
        "--input", f"/data/input/{data.name}", "--output", "/data/output",
        "--params", params, "--modalities", json.dumps(kinds, sort_keys=True),
        "--counts", json.dumps(counts, sort_keys=True),
    ]


def overhead(data: Path, rounds: int) -> None:
    image = image_of(METHODS["pca"]).tag
    inspected = inspect_input(data)
    kinds, counts = inspected.kinds, inspected.counts
    ours, bare = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i in range(rounds + 1):  # the first round warms caches and is not counted
            out = tmp / f"bare{i}"
            out.mkdir()
            t_bare = timed(bare_docker_run(image, data, out, kinds, counts))
            t_ours = timed([*MULTIVERSE, "run", "--models", "pca", "--input", str(data),
                            "--output", str(tmp / "mv"), "--force", "--no-report"])
            if i:
                bare.append(t_bare)
                ours.append(t_ours)
    med_ours, med_bare = statistics.median(ours), statistics.median(bare)
    print(f"input: {data.name}; {rounds} alternated rounds after one warm-up")
    print(f"  bare docker run (pca image, same mounts): median {med_bare:.2f} s  (all: {', '.join(f'{t:.2f}' for t in bare)})")
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
