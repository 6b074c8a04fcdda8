#!/usr/bin/env python3
"""Benchmark: generating the 50,000-cell presets of ``multiverse synth``.

For each preset, runs the generator in a fresh Python process (the same code
as ``multiverse synth --preset NAME``) and prints its wall time (process start
to exit, imports and the fit included), its peak resident memory
(``ru_maxrss`` of that process), the file's size, the stored non-zeros and
the density, beside what the counts would take as a dense float32 matrix.
The file is deleted afterwards unless --keep.

    python bench/synth.py [--presets multiome-50k cite-50k] [--out DIR] [--chunk-size 1000] [--keep]

Needs the reference files (../shared/data or $MULTIVERSE_REAL_DATA). The
multiome preset writes about 8 GB; --out chooses where (default: a temporary
folder).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from multiverse.synth.presets import DEFAULT_CHUNK, PRESETS  # noqa: E402

_CHILD = """
import json, resource, sys
from pathlib import Path
from multiverse.synth.generate import generate
from multiverse.synth.presets import PRESETS, default_reference
preset = PRESETS[sys.argv[2]]
made = generate(Path(sys.argv[1]), preset.cells, {"rna": preset.genes, preset.second: preset.second_features},
                default_reference(preset.second), seed=0, chunk_size=int(sys.argv[3]))
print(json.dumps({"seconds_inside": made.seconds, "nnz": made.nnz, "features": made.features,
                  "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def run_preset(name: str, out: Path, chunk_size: int) -> dict:
    path = out / f"{name}.h5mu"
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path), name, str(chunk_size)],
                          capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr}")
    result = json.loads(proc.stdout.splitlines()[-1])
    result.update(name=name, wall=wall, path=path, size=path.stat().st_size)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--presets", nargs="+", default=["multiome-50k", "cite-50k"], choices=list(PRESETS))
    parser.add_argument("--out", type=Path, help="folder for the files (default: a temporary one)")
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK)
    parser.add_argument("--keep", action="store_true", help="keep the generated files (in --out)")
    args = parser.parse_args()

    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        out = args.out if args.keep and args.out else Path(tmp)
        print(f"chunk size {args.chunk_size} cells; files in {out}")
        header = f"{'preset':<14}{'shape':<50}{'wall s':>8}{'peak RSS':>11}{'file':>10}{'non-zeros':>15}{'density':>9}{'dense f32':>11}"
        header += "\n" + f"{'':<72}{'GiB':>11}{'GB':>10}{'':<24}{'GB':>11}"
        rows = []
        for name in args.presets:
            r = run_preset(name, out, args.chunk_size)
            preset = PRESETS[name]
            n_features = sum(r["features"].values())
            nnz = sum(r["nnz"].values())
            dense = preset.cells * n_features * 4
            rows.append(
                f"{name:<14}{preset.describe():<50}{r['wall']:>8.0f}{r['peak_kib'] / 2**20:>11.2f}"
                f"{r['size'] / 1e9:>10.2f}{nnz:>15,}{nnz / (preset.cells * n_features):>9.3f}{dense / 1e9:>11.1f}"
            )
            per = ", ".join(f"{m} {v / (preset.cells * r['features'][m]):.3f}" for m, v in r["nnz"].items())
            rows.append(f"{'':<14}density per modality: {per}; generator's own time {r['seconds_inside']:.0f} s")
            if not args.keep:
                r["path"].unlink()
        print(header)
        print("\n".join(rows))


if __name__ == "__main__":
    main()
