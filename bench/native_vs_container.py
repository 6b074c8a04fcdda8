#!/usr/bin/env python3
"""Benchmark: what the container costs a method, against the same method code run natively.

For each method, the container multiverse would start for the job (`docker run` with
its sandbox, limits, mounts and environment, as bench/orchestration_overhead.py
builds it) against `PYTHON -m multiverse_methods` on the host with the same
arguments and environment, the input and output folders being the host's own;
alternated, several rounds; medians of the method's own `runtime_s`
(metrics.json: from reading the input to writing the outputs) and of the wall
time of each command, and their ratios container / native.

PYTHON is a virtual environment holding the image's pinned requirements, e.g.
made from the wheelhouse `multiverse build` leaves in build/wheelhouse:

    python3.11 -m venv ../native-venv
    ../native-venv/bin/pip install --no-index --no-deps --find-links build/wheelhouse/scverse-base \\
        -r docker/requirements-scverse-base.txt
    ../native-venv/bin/pip install --no-index --no-deps --find-links build/wheelhouse/mofa \\
        -r docker/requirements-mofa.txt
    python bench/native_vs_container.py --python ../native-venv/bin/python --input FILE \\
        --methods pca mofa [--config CONFIG] [--rounds 3]

(PCA and MOFA+ share the scverse base; the deep models' stacks are not covered.)
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
sys.path.insert(0, str(REPO / "bench"))

from orchestration_overhead import bare_docker_run  # noqa: E402

from multiverse import api  # noqa: E402
from multiverse.catalog import METHODS, image_of  # noqa: E402
from multiverse.runner.container import job_container  # noqa: E402
from multiverse_methods import protocol  # noqa: E402


def native_command(spec, method: str, python: str, output: Path) -> tuple[list[str], dict]:
    """The container's command and environment for the host: its paths mapped back to the host's."""
    paths = {m.target: str(output if m.target == protocol.OUTPUT_DIR else Path(m.source).absolute())
             for m in spec.mounts}
    args = [paths.get(a, a) for a in spec.command]
    env = {**os.environ, **spec.environment, "PYTHONPATH": str(REPO), "MULTIVERSE_METHOD": method,
           "HOME": str(output.parent), "XDG_CACHE_HOME": str(output.parent / ".cache"),
           "MPLCONFIGDIR": str(output.parent / "mpl"), "NUMBA_CACHE_DIR": str(output.parent / "numba")}
    return [python, "-m", "multiverse_methods", *args], env


def _run(cmd: list[str], output: Path, **kwargs) -> tuple[float, float]:
    """(wall seconds, the method's runtime_s) of one run into a fresh output folder."""
    output.mkdir(parents=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd[:6])} ...\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")
    metrics = json.loads((output / protocol.METRICS_FILE).read_text())
    return wall, float(metrics["runtime_s"])


def compare(data: Path, method: str, python: str, rounds: int, config: Path | None = None) -> dict:
    """Alternated container and native runs of one method on ``data``: medians and ratios."""
    plan = api.prepare(config, models=[method], input=data, output=Path(tempfile.gettempdir()) / "unused")
    job = plan.jobs[0]
    figures = {"container": [], "native": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            for arm in ("container", "native") if i % 2 == 0 else ("native", "container"):
                out = Path(tmp) / f"{arm}{i}" / "output"
                spec = job_container(job, out, image_of(METHODS[method]).tag, "bench")
                if arm == "container":
                    figures[arm].append(_run(bare_docker_run(spec, out), out))
                else:
                    cmd, env = native_command(spec, method, python, out)
                    figures[arm].append(_run(cmd, out, env=env))
    med = {arm: (statistics.median(w for w, _ in runs), statistics.median(r for _, r in runs))
           for arm, runs in figures.items()}
    return {
        "method": method, "rounds": rounds,
        "container_wall_s": round(med["container"][0], 2), "native_wall_s": round(med["native"][0], 2),
        "container_runtime_s": round(med["container"][1], 2), "native_runtime_s": round(med["native"][1], 2),
        "wall_ratio": round(med["container"][0] / med["native"][0], 3),
        "runtime_ratio": round(med["container"][1] / med["native"][1], 3),
        "all": {arm: [[round(w, 2), round(r, 2)] for w, r in runs] for arm, runs in figures.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", required=True, help="the native environment's interpreter")
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--methods", nargs="+", default=["pca", "mofa"])
    parser.add_argument("--config", type=Path, help="runner config (parameters, limits)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for method in args.methods:
        row = compare(args.input.resolve(), method, args.python, args.rounds, args.config)
        print(f"{method} on {args.input.name}, {args.rounds} alternated rounds: container {row['container_wall_s']:.1f} s "
              f"(method {row['container_runtime_s']:.1f} s), native {row['native_wall_s']:.1f} s "
              f"(method {row['native_runtime_s']:.1f} s); ratio container / native {row['wall_ratio']:.3f} "
              f"(method's own time {row['runtime_ratio']:.3f})", flush=True)


if __name__ == "__main__":
    main()
