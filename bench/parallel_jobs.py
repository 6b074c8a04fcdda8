#!/usr/bin/env python3
"""Benchmark: the five methods with --jobs 1 against --jobs 2, and a fully cached rerun.

Each round runs every model of the config into a fresh output folder with
--jobs 1 and then --jobs 2 (alternating which goes first), then reruns the
--jobs 2 folder unchanged (every model "cached"). Prints the medians and the
ratio jobs1 / jobs2 (above 1: parallel runs are faster).

    python bench/parallel_jobs.py [--config configs/smoke.yaml] [--input FILE] [--rounds 3]

Default input: the bundled synthetic data (data/synthetic.h5mu, made if missing).
With --jobs 2 every model gets half the CPUs (the default CPU limit is the
host's CPUs divided by the parallel jobs), so the gain comes from overlapping
single-threaded phases (start-up, I/O, MOFA+'s and Mowgli's serial parts).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MULTIVERSE = [sys.executable, "-m", "multiverse"]


def timed_run(args: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([*MULTIVERSE, "run", *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"multiverse run {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "smoke.yaml")
    parser.add_argument("--input", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = args.input or REPO / "data" / "synthetic.h5mu"
    if not data.is_file():
        subprocess.run([*MULTIVERSE, "synth", str(data)], check=True)
    models = ["pca", "mofa", "multivi", "mowgli", "cobolt"]
    common = ["--config", str(args.config), "--input", str(data), "--models", *models]
    one, two, cached = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            order = [1, 2] if i % 2 == 0 else [2, 1]
            for jobs in order:
                out = Path(tmp) / f"j{jobs}-{i}"
                seconds = timed_run([*common, "--output", str(out), "--jobs", str(jobs)])
                (one if jobs == 1 else two).append(seconds)
            cached.append(timed_run([*common, "--output", str(Path(tmp) / f"j2-{i}"), "--jobs", "2"]))
    print(f"five models ({', '.join(models)}) on {data.name} with {args.config.name}; {args.rounds} rounds")
    print(f"  --jobs 1: median {statistics.median(one):.1f} s  (all: {', '.join(f'{t:.1f}' for t in one)})")
    print(f"  --jobs 2: median {statistics.median(two):.1f} s  (all: {', '.join(f'{t:.1f}' for t in two)})")
    print(f"  ratio jobs1 / jobs2: {statistics.median(one) / statistics.median(two):.2f}")
    print(f"  fully cached rerun: median {statistics.median(cached):.2f} s  (all: {', '.join(f'{t:.2f}' for t in cached)})")


if __name__ == "__main__":
    main()
