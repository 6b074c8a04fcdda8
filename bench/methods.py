#!/usr/bin/env python3
"""Benchmark: every method on each dataset - wall time, peak memory, image size, agreement.

For each dataset, runs the five methods and both controls one at a time
(``--jobs 1``, so no method competes with another for the CPUs) with the
parameters of ``configs/real_data.yaml`` (each method's documented defaults),
evaluates them (``--report``), and prints one
Markdown table per dataset:

- wall time: the container's life, start to exit (median over ``--rounds``);
- peak memory: the container's peak resident memory (cgroup), median;
- image: the size of the method's image;
- ARI / NMI: agreement of the Leiden clustering (best resolution) of the
  embedding with the known cell types, from the report's evaluation;
- bio / batch / total: the report's aggregate scores (docs/EVALUATION.md).

    python bench/methods.py [--config configs/real_data.yaml] [--rounds 1] [--out bench-results/methods] [DATA ...]

Default data: the bundled synthetic data and, when present, the two real files
in ../shared/data (or $MULTIVERSE_REAL_DATA). The reports stay in --out.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MULTIVERSE = [sys.executable, "-m", "multiverse"]
METHODS = ["pca", "mofa", "multivi", "mowgli", "cobolt"]
CONTROLS = ["control_random", "control_labels"]
REAL = Path(os.environ.get("MULTIVERSE_REAL_DATA", REPO.parent / "shared" / "data"))
DEFAULT_DATA = [
    REPO / "data" / "synthetic.h5mu",
    REAL / "bmmc_multiome_starter_500.h5mu",
    REAL / "bmmc_cite_starter_600.h5mu",
]


def image_sizes() -> dict[str, float]:
    """Image size in MB per model, as `docker images` shows it."""
    import docker

    from multiverse.catalog import METHODS, image_of

    client = docker.from_env()
    sizes = {}
    for name, spec in METHODS.items():
        try:
            sizes[name] = client.images.get(image_of(spec).tag).attrs["Size"] / 1e6
        except docker.errors.ImageNotFound:
            sizes[name] = float("nan")
    return sizes


def run_once(data: Path, out: Path, config: Path) -> tuple[dict, dict, float]:
    start = time.perf_counter()
    proc = subprocess.run(
        [*MULTIVERSE, "run", "--config", str(config), "--models", *METHODS, *CONTROLS,
         "--input", str(data), "--output", str(out), "--jobs", "1", "--report", "--force"],
        capture_output=True, text=True,
    )
    elapsed = time.perf_counter() - start
    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        sys.exit(f"multiverse run on {data} wrote no manifest ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    manifest = json.loads(manifest_path.read_text())["models"]
    scores = {}
    table = out / "report" / "metrics.csv"
    if table.is_file():
        with table.open() as handle:
            scores = {row["model"]: row for row in csv.DictReader(handle)}
    else:
        print(f"warning: no report for {data.name}:\n{proc.stderr[-2000:]}", file=sys.stderr)
    return manifest, scores, elapsed


def number(row: dict, key: str) -> str:
    try:
        return f"{float(row.get(key, 'nan')):.3f}"
    except ValueError:
        return "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="*", type=Path)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "real_data.yaml")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "methods")
    args = parser.parse_args()

    datasets = args.data or [d for d in DEFAULT_DATA if d.is_file() or d.parent == REPO / "data"]
    synthetic = REPO / "data" / "synthetic.h5mu"
    if synthetic in datasets and not synthetic.is_file():
        subprocess.run([*MULTIVERSE, "synth", str(synthetic)], check=True)
    sizes = image_sizes()
    print(f"config {args.config.name}, --jobs 1, {args.rounds} round(s); medians over rounds\n")
    for data in datasets:
        wall: dict[str, list[float]] = {}
        memory: dict[str, list[float]] = {}
        status: dict[str, str] = {}
        scores: dict = {}
        total = []
        for i in range(args.rounds):
            manifest, scores, elapsed = run_once(data, args.out / data.stem, args.config)
            total.append(elapsed)
            for model, entry in manifest.items():
                status[model] = entry["status"] + (f" ({entry['reason']})" if entry.get("reason") else "")
                if entry.get("duration_s") is not None:
                    wall.setdefault(model, []).append(entry["duration_s"])
                if entry.get("peak_memory_mb") is not None:
                    memory.setdefault(model, []).append(entry["peak_memory_mb"])
        print(f"### {data.name} (whole run incl. evaluation: median {statistics.median(total):.0f} s)\n")
        print("| model | status | wall time (s) | peak memory (MiB) | image (MB) | ARI | NMI | bio | batch | total |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for model in METHODS + CONTROLS:
            row = scores.get(model, {})
            w = f"{statistics.median(wall[model]):.1f}" if model in wall else "-"
            m = f"{statistics.median(memory[model]):.0f}" if model in memory else "-"
            print(
                f"| {model} | {status.get(model, 'not run')} | {w} | {m} | {sizes.get(model, float('nan')):.0f} | "
                f"{number(row, 'ari_leiden')} | {number(row, 'nmi_leiden')} | {number(row, 'bio_conservation')} | "
                f"{number(row, 'batch_correction')} | {number(row, 'total')} |"
            )
        print(f"\nreport: {args.out / data.stem / 'report' / 'report.html'}\n", flush=True)


if __name__ == "__main__":
    main()
