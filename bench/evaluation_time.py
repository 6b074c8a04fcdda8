#!/usr/bin/env python3
"""Benchmark: the evaluation container on five embeddings, container start to exit.

Writes five embeddings of the input's cells in the contract's format
(``<results>/<model>/embeddings.h5ad``, ``obsm["X_emb"]``), then runs the
metrics image several times with the sandbox of the model containers (input
and results read-only, output writable, the caller's uid:gid, no network,
read-only root with a tmpfs at /tmp, all capabilities dropped) and prints the
median wall time of ``docker run`` (start to exit), the time the evaluation
reports itself, and the scores of the last run.

    python bench/evaluation_time.py [--input FILE] [--rounds 5] [--cpus 2] [--metric-set benchmarker]

Default input: ../shared/data/bmmc_cite_starter_600.h5mu (600 cells; labels in
obs["cell_type"], batch in obs["batch"]). The embeddings: PCA of the RNA
(50 and 20 components), PCA of the proteins (20), a random Gaussian one (16)
and one made from the cell-type labels (one-hot plus noise): the last must get
the best bio-conservation score and the random one the worst.
Needs the image: ``multiverse build metrics``.
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

from multiverse.catalog import IMAGES  # noqa: E402

DEFAULT_INPUT = REPO.parent / "shared" / "data" / "bmmc_cite_starter_600.h5mu"


def pca(X, n_components: int):
    import numpy as np

    X = np.asarray(X.todense() if hasattr(X, "todense") else X, dtype=np.float64)
    X = X - X.mean(axis=0)
    u, s, _ = np.linalg.svd(X, full_matrices=False)
    return u[:, :n_components] * s[:n_components]


def write_embeddings(data: Path, results: Path, label_key: str) -> list[str]:
    """Five embeddings of the input's cells, each in <results>/<name>/embeddings.h5ad."""
    import anndata
    import mudata
    import numpy as np
    import pandas as pd

    mdata = mudata.read_h5mu(data)
    rng = np.random.default_rng(0)
    rna = pca(mdata.mod["rna"][mdata.obs_names].X, 50)
    second = next(name for name in mdata.mod if name != "rna")
    codes = pd.Categorical(mdata.obs[label_key].astype(str)).codes
    embeddings = {
        "pca_rna_50": rna,
        "pca_rna_20": rna[:, :20],
        f"pca_{second}_20": pca(mdata.mod[second][mdata.obs_names].X, 20),
        "random": rng.normal(size=(mdata.n_obs, 16)),
        "labels": np.eye(codes.max() + 1)[codes] + rng.normal(scale=0.1, size=(mdata.n_obs, codes.max() + 1)),
    }
    for name, X in embeddings.items():
        adata = anndata.AnnData(obs=pd.DataFrame(index=mdata.obs_names.astype(str)))
        adata.obsm["X_emb"] = np.asarray(X, dtype=np.float32)
        adata.uns["multiverse_params"] = "{}"
        adata.uns["multiverse_method"] = name
        (results / name).mkdir(parents=True)
        adata.write_h5ad(results / name / "embeddings.h5ad")
    return list(embeddings)


def docker_run(image: str, data: Path, results: Path, out: Path, models: list[str], cpus: float,
               metric_set: str | None = None) -> list[str]:
    threads = str(max(1, int(cpus)))
    env = {
        "HOME": "/tmp", "XDG_CACHE_HOME": "/tmp/.cache", "NUMBA_CACHE_DIR": "/tmp/numba",
        "MPLCONFIGDIR": "/tmp/matplotlib", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
        "MULTIVERSE_THREADS": threads, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads, "NUMBA_NUM_THREADS": threads,
    }
    cmd = [
        "docker", "run", "--rm",
        "--user", f"{os.getuid()}:{os.getgid()}",
        "--network", "none", "--read-only", "--tmpfs", "/tmp:rw,exec,nosuid,nodev,mode=1777",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--cpus", str(cpus), "--memory", "8g", "--memory-swap", "8g", "--workdir", "/tmp",
        "-v", f"{data}:/data/input/{data.name}:ro",
        "-v", f"{results}:/data/results:ro",
        "-v", f"{out}:/data/output",
    ]
    for name, value in env.items():
        cmd += ["-e", f"{name}={value}"]
    return cmd + [
        image,
        "--input", f"/data/input/{data.name}", "--results", "/data/results", "--output", "/data/output",
        "--models", json.dumps(models), "--labels", json.dumps({"cell_type": "cell_type", "batch": "batch"}),
        "--seed", "0", *(["--metric-set", metric_set] if metric_set else []),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cpus", type=float, default=float(len(os.sched_getaffinity(0))))
    parser.add_argument("--image", default=IMAGES["metrics"].tag)
    parser.add_argument("--metric-set", help="leiden-asw or benchmarker (default: the container's, leiden-asw)")
    args = parser.parse_args()
    data = args.input.resolve()
    if not data.is_file():
        sys.exit(f"{data} not found (pass --input)")
    if subprocess.run(["docker", "image", "inspect", args.image], capture_output=True).returncode != 0:
        sys.exit(f"image {args.image} is not built: run 'multiverse build metrics'")

    walls, reported = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = write_embeddings(data, tmp / "results", "cell_type")
        print(f"{len(models)} embeddings of {data.name}: {', '.join(models)}; image {args.image}, {args.cpus:g} CPUs, "
              f"metric set {args.metric_set or 'default'}")
        for i in range(args.rounds):
            out = tmp / f"out{i}"
            out.mkdir()
            start = time.perf_counter()
            proc = subprocess.run(docker_run(args.image, data, tmp / "results", out, models, args.cpus, args.metric_set),
                                  capture_output=True, text=True)
            wall = time.perf_counter() - start
            if proc.returncode != 0:
                sys.exit(f"the evaluation failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
            scores = json.loads((out / "scores.json").read_text())
            walls.append(wall)
            reported.append(scores["timing_s"]["total"])
            stages = scores["timing_s"]
            print(f"round {i + 1}: {wall:.1f} s start to exit (evaluation {stages['total']:.1f} s: imports "
                  f"{stages['imports']:.1f}, figures {stages['figures']:.1f})")
        print(f"\nmedian of {len(walls)} rounds: {statistics.median(walls):.1f} s start to exit "
              f"(min {min(walls):.1f}, max {max(walls):.1f}); evaluation itself {statistics.median(reported):.1f} s")
        print("\nper model (last round): seconds, and the scores")
        print(f"{'model':14s} {'dims':>4s} {'time':>6s} {'knn':>5s} {'lisi':>5s} {'kbet':>5s} {'umap':>5s}"
              f" {'bio':>6s} {'batch':>6s} {'total':>6s}")
        for name, entry in scores["models"].items():
            t, agg = entry["timing_s"], entry["aggregates"]
            print(f"{name:14s} {entry['embedding_dim']:4d} {t['total']:6.2f} {t['knn']:5.2f} "
                  f"{t['clisi'] + t['ilisi']:5.2f} {t['kbet']:5.2f} {t.get('umap', 0):5.2f} "
                  f"{agg['bio_conservation']:6.3f} {agg['batch_correction']:6.3f} {agg['total']:6.3f}")
        print("\nmetrics (last round):")
        names = [*scores["metric_names"]["bio_conservation"], *scores["metric_names"]["batch_correction"]]
        print(f"{'model':14s} " + " ".join(f"{n[:9]:>9s}" for n in names))
        for name, entry in scores["models"].items():
            row = [entry["metrics"][n] for n in names]
            print(f"{name:14s} " + " ".join("      n/a" if v is None else f"{v:9.3f}" for v in row))


if __name__ == "__main__":
    main()
