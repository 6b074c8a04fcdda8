#!/usr/bin/env python3
"""Benchmark: the scheduling overhead of a 40-job campaign against 40 bare `docker run`s.

The campaign: the two control methods x 20 seeds on one small dataset
(`multiverse run --force --no-report --jobs 1`, so every job runs). The
reference: the same 40 containers started one after the other with plain
`docker run --rm` (same image, mounts and arguments, no checks). Alternated,
median of --rounds; prints both medians, the ratio and the overhead per job.

    python bench/campaign_overhead.py [--rounds 3] [--seeds 20] [--input FILE]

Default input: a 600-cell synthetic dataset made in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
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

MULTIVERSE = [sys.executable, "-m", "multiverse"]
CONTROLS = ("control_random", "control_labels")


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd[:6])} ...\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def bare_runs(data: Path, out: Path, seeds: int) -> float:
    inspected = inspect_input(data)
    image = image_of(METHODS["pca"]).tag
    start = time.perf_counter()
    for seed in range(seeds):
        for control in CONTROLS:
            folder = out / f"{control}-{seed}"
            folder.mkdir(parents=True)
            params = {"seed": seed, **({"label_key": "cell_type", "noise": 0.1} if control == "control_labels" else {"n_dims": 10})}
            timed([
                "docker", "run", "--rm", "--user", f"{os.getuid()}:{os.getgid()}", "--network", "none",
                "-v", f"{data}:/data/input/{data.name}:ro", "-v", f"{folder}:/data/output",
                "-e", "HOME=/tmp", "--entrypoint", "python", image, "-m", "multiverse_methods", control,
                "--input", f"/data/input/{data.name}", "--output", "/data/output",
                "--params", json.dumps(params, sort_keys=True),
                "--modalities", json.dumps(inspected.kinds), "--counts", json.dumps(inspected.counts),
            ])
    return time.perf_counter() - start


def campaign(data: Path, out: Path, seeds: int, config: Path) -> float:
    config.write_text(json.dumps({
        "input": str(data), "output": str(out), "jobs": 1, "seeds": list(range(seeds)),
        "models": {control: {} for control in CONTROLS},
    }))
    return timed([*MULTIVERSE, "run", "--config", str(config), "--force", "--no-report"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--input", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = args.input.resolve() if args.input else None
        if data is None:
            from multiverse.synthetic import write_synthetic

            data = write_synthetic(tmp / "synthetic.h5mu")
        ours, bare = [], []
        for i in range(args.rounds):
            bare.append(bare_runs(data, tmp / f"bare{i}", args.seeds))
            ours.append(campaign(data, tmp / "campaign", args.seeds, tmp / "campaign.yaml"))
    jobs = 2 * args.seeds
    m_ours, m_bare = statistics.median(ours), statistics.median(bare)
    print(f"{jobs} jobs (2 controls x {args.seeds} seeds) on {data.name}, {args.rounds} alternated rounds")
    print(f"  {jobs} bare docker runs, one after the other: median {m_bare:.1f} s (all: {', '.join(f'{t:.1f}' for t in bare)})")
    print(f"  multiverse run, the same {jobs} jobs, --jobs 1: median {m_ours:.1f} s (all: {', '.join(f'{t:.1f}' for t in ours)})")
    print(f"  ratio multiverse / bare: {m_ours / m_bare:.2f}; overhead {(m_ours - m_bare) / jobs:+.2f} s per job")


if __name__ == "__main__":
    main()
