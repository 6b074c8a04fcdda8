#!/usr/bin/env python3
"""Benchmark: cost of every method and of the evaluation against the number of cells.

For each preset (multiome: 20,000 genes + 100,000 peaks; cite: 15,000 genes + 134
proteins, as ``multiverse synth --preset multiome-50k|cite-50k``) and size, writes
the synthetic data with ``multiverse synth --cells N`` (once; kept in --data-dir,
outside the repository), runs each method with ``multiverse run`` one at a time
(``--jobs 1``, default limits unless --config says otherwise), then scores the
results with ``multiverse report``. Prints one Markdown table: per preset, size
and method the container's wall time (start to exit, from the manifest), its
cgroup peak memory, the exit status and the Leiden ARI against the known cell
types (the report's ``ari_leiden``); one row per evaluation with its wall time.
Writes a log-log PNG of time and memory against cells (needs matplotlib on the
host: ``.venv/bin/pip install -e '.[bench]'``).

With ``--native PYTHON`` it also runs PCA and MOFA+ at ``--native-cells`` (20,000)
natively on the host beside their container (``bench/native_vs_container.py``:
the same code, arguments and thread settings, alternated) and prints the ratios.

Every measurement is appended to --out/results.jsonl; a measurement already there
is not repeated (--force repeats it), so the benchmark can be run in parts:

    python bench/scaling.py --sizes 1000 5000 20000 --presets multiome cite \\
        --methods pca mofa control_random control_labels
    python bench/scaling.py --sizes 1000 --methods multivi cobolt
    python bench/scaling.py --table-only        # table and plot from what was measured

A full run (every method at 50,000 cells) takes many hours on 2 CPUs; it is not
part of CI. Default folders: ../scale-data and ../scale-results beside the checkout
(or $MULTIVERSE_SCALE_DATA / --data-dir, --out).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MULTIVERSE = [sys.executable, "-m", "multiverse"]
ALL_METHODS = ["pca", "mofa", "multivi", "mowgli", "cobolt", "control_random", "control_labels"]
PRESETS = {"multiome": "multiome-50k", "cite": "cite-50k"}
EVALUATION = "evaluation"
#: results.jsonl rows of the native-against-container comparison (``--native``).
NATIVE = "native"


def dataset(data_dir: Path, preset: str, cells: int) -> Path:
    """The synthetic input of that preset and size, written once."""
    path = data_dir / f"{preset}-{cells}.h5mu"
    if not path.is_file():
        data_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.stem + ".writing.h5mu")
        print(f"writing {path} ...", flush=True)
        start = time.perf_counter()
        subprocess.run([*MULTIVERSE, "synth", str(partial), "--preset", PRESETS[preset], "--cells", str(cells)],
                       check=True, capture_output=True)
        partial.rename(path)
        print(f"  {time.perf_counter() - start:.0f} s", flush=True)
    return path


def load_results(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def record(path: Path, row: dict) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    print("  " + json.dumps(row), flush=True)


def run_method(data: Path, out: Path, method: str, config: Path | None) -> dict:
    cmd = [*MULTIVERSE, "run", "--models", method, "--input", str(data), "--output", str(out),
           "--jobs", "1", "--no-report", "--force"]
    if config:
        cmd[len(MULTIVERSE) + 1:len(MULTIVERSE) + 1] = ["--config", str(config)]
    started = time.time()
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    manifest = out / "manifest.json"
    jobs = json.loads(manifest.read_text())["jobs"] if manifest.is_file() else {}
    entry = next((e for name, e in jobs.items() if name.split("/")[1] == method), None)
    if entry is not None and _epoch(entry.get("finished_at")) < started - 1:
        entry = None  # an earlier run's record: this one ended before it started its job
    if entry is None:
        return {"status": "no result", "reason": proc.stderr[-500:], "cli_wall_s": round(elapsed, 1)}
    return {
        "status": entry["status"], "reason": entry.get("reason") or "",
        "exit_code": entry.get("exit_code"), "wall_s": entry.get("duration_s"),
        "peak_memory_mb": entry.get("peak_memory_mb"), "cli_wall_s": round(elapsed, 1),
    }


def _epoch(stamp) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(stamp).timestamp()
    except (TypeError, ValueError):
        return 0.0


def evaluate(out: Path, timeout: str, memory: str) -> tuple[dict, dict]:
    """Score every result in ``out``: (the evaluation's row, Leiden ARI per model)."""
    start = time.perf_counter()
    proc = subprocess.run([*MULTIVERSE, "report", str(out), "--timeout", timeout, "--memory", memory],
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    ari = {}
    for table in out.glob("**/metrics.csv"):
        if "report" not in table.parts:
            continue
        with table.open() as handle:
            for row in csv.DictReader(handle):
                try:
                    ari[row["model"].split("/")[0]] = float(row["ari_leiden"])
                except (KeyError, ValueError):
                    pass
    status = "ok" if proc.returncode == 0 and ari else f"failed ({proc.returncode})"
    return {"status": status, "reason": "" if status == "ok" else proc.stderr[-500:],
            "wall_s": round(elapsed, 1), "n_scored": len(ari)}, ari


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def label(r: dict) -> str:
    """The method column: the method, its config file if any, how many embeddings an evaluation scored."""
    text = r["method"] + (f" ({r['config']})" if r.get("config") else "")
    return text + (f" of {r['n_scored']} embeddings" if r.get("n_scored") else "")


def table(rows: list[dict]) -> str:
    lines = ["| preset | cells | method | status | wall time (s) | peak memory (MiB) | ARI (Leiden) |",
             "|---|---:|---|---|---:|---:|---:|"]
    order = {m: i for i, m in enumerate(ALL_METHODS + [EVALUATION])}
    for r in sorted(rows, key=lambda r: (r["preset"], r["cells"], order.get(r["method"], 99))):
        status = r["status"] + (f": {r['reason'][:80]}" if r.get("reason") and r["status"] != "ok" else "")
        lines.append(
            f"| {r['preset']} | {r['cells']:,} | {label(r)} | {status} | {fmt(r.get('wall_s'), '.1f')} | "
            f"{fmt(r.get('peak_memory_mb'), '.0f')} | {fmt(r.get('ari'), '.3f')} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib on the host: no plot (pip install matplotlib)", file=sys.stderr)
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    series: dict = {}
    for r in rows:
        if r["status"] == "ok" and r.get("wall_s"):
            series.setdefault((r["method"], r["preset"]), []).append(r)
    colours = plt.cm.tab20.colors  # 20 distinct colours: one per method and preset
    for i, ((method, preset), points) in enumerate(sorted(series.items())):
        points.sort(key=lambda r: r["cells"])
        cells = [r["cells"] for r in points]
        style = "-o" if preset == "multiome" else "--s"
        (line,) = axes[0].plot(cells, [r["wall_s"] for r in points], style, color=colours[i % 20],
                               label=f"{method} ({preset})")
        mem = [(r["cells"], r["peak_memory_mb"]) for r in points if r.get("peak_memory_mb")]
        if mem:  # the same colour in both panels (the evaluation has no memory series)
            axes[1].plot(*zip(*mem), style, color=line.get_color())
    axes[0].set_ylabel("wall time (s)")
    axes[1].set_ylabel("container peak memory (MiB)")
    axes[1].axhline(8 * 1024, color="grey", lw=0.8, ls=":")
    axes[1].text(1000, 8 * 1024 * 1.05, "default limit 8 GiB", fontsize=8, color="grey")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("cells")
        ax.grid(True, which="both", lw=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle("multiverse on 2 CPUs: cost against cells (bench/scaling.py)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000, 50000])
    parser.add_argument("--presets", nargs="+", choices=sorted(PRESETS), default=sorted(PRESETS))
    parser.add_argument("--methods", nargs="+", choices=ALL_METHODS, default=ALL_METHODS)
    parser.add_argument("--config", type=Path, help="runner config for the methods (limits, presets)")
    parser.add_argument("--no-evaluation", action="store_true", help="skip multiverse report")
    parser.add_argument("--eval-timeout", default="1h")
    parser.add_argument("--eval-memory", default="8g")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("MULTIVERSE_SCALE_DATA", REPO.parent / "scale-data")))
    parser.add_argument("--out", type=Path, default=REPO.parent / "scale-results")
    parser.add_argument("--force", action="store_true", help="measure again what results.jsonl holds")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--plot", type=Path, help="PNG path (default: OUT/scaling.png)")
    parser.add_argument("--native", metavar="PYTHON",
                        help="also time PCA and MOFA+ run natively with this interpreter against their container "
                             "(bench/native_vs_container.py says how to make it), at --native-cells")
    parser.add_argument("--native-cells", type=int, default=20000)
    parser.add_argument("--native-rounds", type=int, default=3)
    parser.add_argument("--only-native", action="store_true", help="only the native comparison")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"
    if not args.table_only:
        done = {(r["preset"], r["cells"], r["method"]) for r in load_results(results) if r.get("kind") != NATIVE}
        for cells in [] if args.only_native else args.sizes:
            for preset in args.presets:
                data = dataset(args.data_dir, preset, cells)
                out = args.out / f"{preset}-{cells}"
                ran = False
                for method in args.methods:
                    if (preset, cells, method) in done and not args.force:
                        continue
                    print(f"{preset} {cells:,} cells: {method}", flush=True)
                    record(results, {"preset": preset, "cells": cells, "method": method,
                                     "config": args.config.name if args.config else None,
                                     **run_method(data, out, method, args.config)})
                    ran = True
                if ran and not args.no_evaluation:
                    print(f"{preset} {cells:,} cells: evaluation of every result", flush=True)
                    row, ari = evaluate(out, args.eval_timeout, args.eval_memory)
                    record(results, {"preset": preset, "cells": cells, "method": EVALUATION, **row, "ari": ari})
        if args.native:
            native(args, results)
    everything = load_results(results)
    rows = latest([r for r in everything if r.get("kind") != NATIVE])
    print(table(rows))
    natives = [r for r in everything if r.get("kind") == NATIVE]
    if natives:
        print()
        print(native_table(natives))
    plot(rows, args.plot or args.out / "scaling.png")


def native(args, results: Path) -> None:
    """PCA and MOFA+ natively against their container, at --native-cells of each preset (--config's parameters)."""
    sys.path.insert(0, str(REPO / "bench"))
    from native_vs_container import compare

    for preset in args.presets:
        data = dataset(args.data_dir, preset, args.native_cells)
        for method in [m for m in ("pca", "mofa") if m in args.methods]:
            print(f"{preset} {args.native_cells:,} cells: {method}, native against container", flush=True)
            row = compare(data, method, args.native, args.native_rounds, args.config)
            record(results, {"kind": NATIVE, "preset": preset, "cells": args.native_cells,
                             "config": args.config.name if args.config else None, **row})


def native_table(rows: list[dict]) -> str:
    lines = ["| preset | cells | method | container (s) | native (s) | ratio | method's own time: container / native (s) | ratio |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['cells']:,} | {label(r)} | {r['container_wall_s']:.1f} | {r['native_wall_s']:.1f} | "
            f"**{r['wall_ratio']:.3f}** | {r['container_runtime_s']:.1f} / {r['native_runtime_s']:.1f} | "
            f"{r['runtime_ratio']:.3f} |"
        )
    return "\n".join(lines)


def latest(rows: list[dict]) -> list[dict]:
    """The last measurement of each (preset, cells, method), with the ARI of the last evaluation after it.

    Of the evaluations, the first of each folder: a later one reuses the scores the report
    cached for the models it had already scored, so its time is not that of scoring them all.
    """
    last: dict = {}
    ari: dict = {}
    for r in rows:
        if r["method"] == EVALUATION:
            for model, value in (r.get("ari") or {}).items():
                ari[(r["preset"], r["cells"], model)] = value
            if (r["preset"], r["cells"], EVALUATION) in last:
                continue
            r = {**r, "ari": None, "peak_memory_mb": None}
        last[(r["preset"], r["cells"], r["method"])] = r
    return [{**r, "ari": ari.get(key, r.get("ari"))} for key, r in last.items()]


if __name__ == "__main__":
    main()
