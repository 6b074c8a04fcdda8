"""Entry point of the evaluation image: score embeddings against cell-type and batch labels.

    python -m multiverse_methods.evaluate --input /data/input/<file> \
        --results /data/results --output /data/output \
        --models '["pca", "mofa"]' \
        --labels '{"cell_type": "cell_type", "batch": "batch"}' --seed 0

Reads the labels from the input's obs (the global obs of an .h5mu; a column
found only in the modalities' obs is taken from there when they agree) and,
for every model, ``<results>/<model>/embeddings.h5ad`` (``obsm["X_emb"]``,
cells in the input's order). Scores each embedding with the scIB metrics
(``scoring.py`` has the definitions and the aggregation), computes its 2-D UMAP
and draws them all.

Labels are never invented: without a usable cell-type column (missing, with
empty values, or a single type) every bio-conservation metric, and every batch
metric defined per cell type, is skipped with the reason; without a usable
batch column (or with a single batch) every batch metric is.

Writes to ``--output``:

- ``scores.json``: per model every metric (a number or null), why a null is
  null, the aggregates, timing; the labels used, the number of cells, versions
- ``umap.npz``: ``umap_<model>`` (cells x 2, float32) for every model scored,
  ``obs_names``, and ``cell_type`` / ``batch`` (strings) when present
- ``umap_cell_type.png``, ``umap_batch.png``: one panel per model, the same
  colour for a label in every panel, one legend (only for the labels present;
  ``umap.png`` without colours when neither is)
- ``log.txt``

Exit code 0 once scores.json is written (a model whose embedding cannot be read
gets ``"status": "error"`` and the others are scored); 1, with the traceback
in the log, when nothing could be scored or anything else fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from multiverse_methods import scoring

log = logging.getLogger("multiverse_methods.evaluate")

SCHEMA_VERSION = 1
SCORES_FILE = "scores.json"
UMAP_FILE = "umap.npz"
LOG_FILE = "log.txt"
EMBEDDINGS_FILE = "embeddings.h5ad"
FIGURES = {"cell_type": "umap_cell_type.png", "batch": "umap_batch.png", "plain": "umap.png"}


# --------------------------------------------------------------------------- environment


def threads_from_env() -> int:
    try:
        return max(1, int(os.environ.get("MULTIVERSE_THREADS", "")))
    except ValueError:
        return max(1, len(os.sched_getaffinity(0)))


def prepare_environment(threads: int) -> None:
    """Caches under /tmp (the root is read-only), thread counts, jax on CPU: before heavy imports."""
    tmp = Path(tempfile.gettempdir())
    defaults = {
        "HOME": str(tmp),
        "NUMBA_CACHE_DIR": str(tmp / "numba-cache"),
        "MPLCONFIGDIR": str(tmp / "matplotlib"),
        "XDG_CACHE_HOME": str(tmp / "cache"),
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": str(tmp / "jax-cache"),
        "MPLBACKEND": "Agg",
    }
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        defaults[name] = str(threads)
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    if not os.access(os.environ["HOME"], os.W_OK):
        os.environ["HOME"] = str(tmp)
    if threads == 1 and "intra_op_parallelism_threads" not in os.environ.get("XLA_FLAGS", ""):
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()
    scoring.seed_caches()


# --------------------------------------------------------------------------- labels


@dataclass
class Labels:
    """The labels read from the input: arrays (or None, with the reason) and what scores.json says of them."""

    obs_names: object  # pandas.Index of str
    cell_type: object = None  # numpy array of str, or None
    batch: object = None
    info: dict = field(default_factory=dict)  # role -> {"column", "present", "source", "categories", "reason"}

    def reason(self, role: str) -> str | None:
        return self.info[role].get("reason")


def read_obs(path: Path):
    """The global obs of an .h5mu (and each modality's obs), or the obs of an .h5ad; no matrices are read."""
    import h5py

    try:
        from anndata.io import read_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import read_elem

    with h5py.File(path, "r") as f:
        obs = read_elem(f["obs"])
        mod_obs = {}
        if "mod" in f:
            for name in f["mod"]:
                mod_obs[name] = read_elem(f["mod"][name]["obs"])
    obs.index = obs.index.astype(str)
    for frame in mod_obs.values():
        frame.index = frame.index.astype(str)
    return obs, mod_obs


def _label_column(obs, mod_obs: dict, column: str):
    """(series, source) of ``column``: the global obs, else the modalities' obs if they agree."""
    import pandas as pd

    if column in obs.columns:
        return obs[column], "obs"
    found = {}
    for name, frame in mod_obs.items():
        if column in frame.columns and len(frame) == len(obs) and frame.index.isin(obs.index).all():
            found[name] = frame[column].reindex(obs.index)
    if not found:
        return None, f"the input has no obs column {column!r}"
    first_name, first = next(iter(found.items()))
    for name, series in found.items():
        if not series.astype(str).equals(first.astype(str)):
            return None, f"obs column {column!r} is only in the modalities, and mod/{first_name} and mod/{name} disagree"
    return pd.Series(first.to_numpy(), index=obs.index, dtype=first.dtype), f"mod/{first_name}/obs"


def load_labels(path: Path, columns: dict) -> Labels:
    import numpy as np

    obs, mod_obs = read_obs(path)
    labels = Labels(obs_names=obs.index)
    for role in ("cell_type", "batch"):
        column = columns.get(role)
        entry = {"column": column, "present": False}
        labels.info[role] = entry
        if not column:
            entry["reason"] = f"no {role} column was given"
            continue
        series, source = _label_column(obs, mod_obs, column)
        if series is None:
            entry["reason"] = source
            continue
        if series.isna().any():
            entry["reason"] = f"obs[{column!r}] has {int(series.isna().sum())} of {len(series)} cells without a value"
            continue
        values = series.astype(str).to_numpy()
        present = set(values)
        if hasattr(series, "cat"):
            categories = [str(c) for c in series.cat.categories if str(c) in present]
        else:
            categories = sorted(present)
        entry.update(source=source, n_categories=len(categories), categories=categories)
        if len(categories) < 2:
            entry["reason"] = f"obs[{column!r}] has a single value ({categories[0]!r})"
            continue
        entry["present"] = True
        setattr(labels, role, np.asarray(values))
    return labels


# --------------------------------------------------------------------------- embeddings


class ModelError(Exception):
    """This model's embedding cannot be scored; the message says why."""


def load_embedding(results: Path, model: str, obs_names):
    """obsm["X_emb"] of the model's embeddings.h5ad, in the input's cell order, and notes."""
    import anndata
    import numpy as np

    path = results / model / EMBEDDINGS_FILE
    if not path.is_file():
        raise ModelError(f"{model}/{EMBEDDINGS_FILE} does not exist")
    adata = anndata.read_h5ad(path)
    if scoring.EMBEDDING_KEY not in adata.obsm:
        raise ModelError(f"{model}/{EMBEDDINGS_FILE} has no obsm[{scoring.EMBEDDING_KEY!r}]")
    X = np.asarray(adata.obsm[scoring.EMBEDDING_KEY], dtype=np.float32)
    names = adata.obs_names.astype(str)
    notes = []
    if not names.equals(obs_names):
        if len(names) == len(obs_names) and names.is_unique and set(names) == set(obs_names):
            X = X[names.get_indexer(obs_names)]
            notes.append("the embedding's cells were not in the input's order; reordered by obs_names")
        else:
            raise ModelError(f"the embedding's {len(names)} cells are not the input's {len(obs_names)} cells")
    if X.ndim != 2 or X.shape[1] < 1 or X.shape[0] < 3:
        raise ModelError(f"obsm[{scoring.EMBEDDING_KEY!r}] has shape {X.shape}")
    if not np.isfinite(X).all():
        raise ModelError(f"obsm[{scoring.EMBEDDING_KEY!r}] holds NaN or infinite values")
    return X, notes


# --------------------------------------------------------------------------- figures


def palette(n: int) -> list:
    """n distinct colours: tab10 / tab20 / tab20+tab20b+tab20c (up to 60), else a hue wheel."""
    import matplotlib
    import numpy as np

    if n <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [matplotlib.colormaps["tab20"](i) for i in range(n)]
    if n <= 60:
        return [matplotlib.colormaps[name](i) for name in ("tab20", "tab20b", "tab20c") for i in range(20)][:n]
    return [matplotlib.colormaps["hsv"](x) for x in np.linspace(0, 1, n, endpoint=False)]


def plot_umaps(coords: dict, values, categories: list, title: str, path: Path, seed: int = 0) -> None:
    """A grid of UMAPs, one panel per model; a label has the same colour in every panel; one legend.

    At most 4 panels a row (5 and 6 models: 3 a row), the legend to the right
    in as many columns as 40 cell types need, points drawn in one random order
    so that no label always lies on top.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.lines import Line2D

    models = list(coords)
    ncols = math.ceil(len(models) / math.ceil(len(models) / 4))
    nrows = math.ceil(len(models) / ncols)
    panel = 3.2
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel * ncols, panel * nrows + 0.5), squeeze=False)
    n_cells = len(next(iter(coords.values())))
    size = float(np.clip(5000 / max(n_cells, 1), 0.3, 16))
    order = np.random.default_rng(seed).permutation(n_cells)
    n_cat = len(categories) if values is not None else 0
    colours = palette(n_cat)
    if n_cat:
        lookup = {c: i for i, c in enumerate(categories)}
        point_colours = np.array(colours)[np.array([lookup[v] for v in values])][order]
    else:
        point_colours = "0.35"
    for ax, model in zip(axes.flat, models):
        xy = coords[model][order]
        ax.scatter(xy[:, 0], xy[:, 1], s=size, c=point_colours, linewidths=0, rasterized=True)
        ax.set_title(model, fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("UMAP 1", fontsize=8)
        ax.set_ylabel("UMAP 2", fontsize=8)
    for ax in list(axes.flat)[len(models):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    if n_cat:
        rows_per_column = max(12, int(panel * nrows * 5))  # about 5 legend rows per inch of height
        handles = [Line2D([], [], marker="o", linestyle="", markersize=6, markerfacecolor=c, markeredgewidth=0)
                   for c in colours]
        fig.legend(handles, categories, loc="center left", bbox_to_anchor=(1.0, 0.5),
                   ncol=math.ceil(n_cat / rows_per_column), fontsize=8, frameon=False,
                   handletextpad=0.1, columnspacing=0.8, borderaxespad=0.2)
    fig.savefig(path, dpi=110, bbox_inches="tight")  # "tight" takes the legend in
    plt.close(fig)


# --------------------------------------------------------------------------- main


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m multiverse_methods.evaluate",
                                     description="Score embeddings against cell-type and batch labels.")
    parser.add_argument("--input", required=True, type=Path, help="the input .h5mu/.h5ad (its obs holds the labels)")
    parser.add_argument("--results", required=True, type=Path, help="folder with <model>/embeddings.h5ad")
    parser.add_argument("--output", required=True, type=Path, help="writable folder for the outputs")
    parser.add_argument("--models", required=True, help="JSON list of model names")
    parser.add_argument("--labels", default='{"cell_type": "cell_type", "batch": "batch"}',
                        help='JSON object {"cell_type": obs column or null, "batch": obs column or null}')
    parser.add_argument("--seed", type=int, default=0, help="seed of the Leiden clusterings and the UMAPs")
    parser.add_argument("--no-umap", action="store_true", help="no UMAPs, no figures")
    return parser.parse_args(argv)


def setup_logging(out_dir: Path) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(out_dir / LOG_FILE)):
        handler.setFormatter(fmt)
        root.addHandler(handler)


def score_model(model: str, ctx: dict, threads: int = 1):
    """(model, scores.json entry, UMAP coordinates or None) of one model's embedding.

    ``ctx``: ``results`` (folder), ``labels`` (Labels), ``seed``, ``umap`` (bool).
    """
    labels = ctx["labels"]
    model_start = time.perf_counter()
    try:
        X, notes = load_embedding(ctx["results"], model, labels.obs_names)
    except Exception as exc:  # noqa: BLE001 - an unreadable result is reported, the others are scored
        message = str(exc) if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
        log.error("%s: cannot be scored: %s", model, message)
        return model, {"status": "error", "error": message}, None
    log.info("%s: %d cells x %d dimensions", model, *X.shape)
    entry = {"status": "ok", "error": None, "n_cells": int(X.shape[0]), "embedding_dim": int(X.shape[1])}
    entry.update(scoring.score_embedding(
        X, labels.cell_type, labels.batch,
        no_cell_type=labels.reason("cell_type"), no_batch=labels.reason("batch"),
        seed=ctx["seed"], threads=threads,
    ))
    entry["notes"] = notes + entry["notes"]
    xy = None
    if ctx["umap"]:
        umap_start = time.perf_counter()
        try:
            xy = scoring.compute_umap(X, ctx["seed"])
        except Exception as exc:  # noqa: BLE001 - scores without a UMAP are still worth having
            log.warning("%s: UMAP failed: %s\n%s", model, exc, traceback.format_exc())
            entry["notes"].append(f"UMAP failed: {type(exc).__name__}: {exc}")
        entry["timing_s"]["umap"] = round(time.perf_counter() - umap_start, 3)
    entry["timing_s"]["total"] = round(time.perf_counter() - model_start, 3)
    agg = entry["aggregates"]
    log.info("%s: bio %s, batch %s, total %s (%.1f s)", model, _fmt(agg["bio_conservation"]),
             _fmt(agg["batch_correction"]), _fmt(agg["total"]), entry["timing_s"]["total"])
    return model, entry, xy


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def evaluate(args, threads: int, started: float) -> int:
    import numpy as np

    from multiverse_methods.contract import package_versions

    models = json.loads(args.models)
    columns = json.loads(args.labels)
    if not isinstance(models, list) or not models or not all(isinstance(m, str) and m for m in models):
        raise ValueError(f"--models must be a non-empty JSON list of model names, got {args.models!r}")
    bad = [m for m in models if m.startswith(".") or not re.fullmatch(r"[A-Za-z0-9_.-]+", m)]
    if bad:
        raise ValueError(f"--models: not a model name: {bad}")
    if len(set(models)) != len(models):
        raise ValueError(f"--models names a model twice: {models}")
    if not isinstance(columns, dict) or set(columns) - {"cell_type", "batch"}:
        raise ValueError(f'--labels must be a JSON object with keys "cell_type" and "batch", got {args.labels!r}')

    timing = {}
    start = time.perf_counter()
    import scib_metrics  # noqa: F401 - jax, pynndescent, umap: the slow imports

    scoring.quiet_libraries()
    cacheable = scoring.enable_numba_caching()
    kernels = scoring.install_fast_kernels()
    timing["imports"] = time.perf_counter() - start
    log.info("libraries loaded in %.1f s (%d umap kernels made cacheable; %s)",
             timing["imports"], cacheable, ", ".join(kernels))

    start = time.perf_counter()
    labels = load_labels(args.input, columns)
    timing["read_labels"] = time.perf_counter() - start
    for role, entry in labels.info.items():
        if entry["present"]:
            log.info("%s: obs[%r] (%s), %d categories", role, entry["column"], entry["source"], entry["n_categories"])
        else:
            log.warning("%s: %s; the metrics that need it are skipped", role, entry["reason"])

    per_model, coords = {}, {}
    context = {"results": args.results, "labels": labels, "seed": args.seed, "umap": not args.no_umap}
    for model in models:  # one after the other: forked workers measured no faster on 2 cores
        _, entry, xy = score_model(model, context, threads)
        per_model[model] = entry
        if xy is not None:
            coords[model] = xy

    figures = {}
    start = time.perf_counter()
    if coords:
        arrays = {f"umap_{model}": xy for model, xy in coords.items()}
        arrays["obs_names"] = np.asarray(labels.obs_names, dtype=str)
        for role in ("cell_type", "batch"):
            if getattr(labels, role) is not None:
                arrays[role] = np.asarray(getattr(labels, role), dtype=str)
        np.savez_compressed(args.output / UMAP_FILE, **arrays)
        for role, what in (("cell_type", "cell type"), ("batch", "batch")):
            if getattr(labels, role) is not None:
                info = labels.info[role]
                plot_umaps(coords, getattr(labels, role), info["categories"],
                           f"UMAP of each embedding, coloured by {what} (obs[{info['column']!r}])",
                           args.output / FIGURES[role], args.seed)
                figures[role] = FIGURES[role]
        if not figures:
            plot_umaps(coords, None, [], "UMAP of each embedding (no labels)", args.output / FIGURES["plain"], args.seed)
            figures["plain"] = FIGURES["plain"]
    timing["figures"] = time.perf_counter() - start

    skipped = {}
    for model_entry in per_model.values():  # the skips every scored model shares: the labels' doing
        for name, reason in model_entry.get("skipped", {}).items():
            if all(name in e.get("skipped", {}) for e in per_model.values() if e["status"] == "ok"):
                skipped[name] = reason
    timing["total"] = time.perf_counter() - started
    scores = {
        "schema_version": SCHEMA_VERSION,
        "input": args.input.name,
        "n_cells": len(labels.obs_names),
        "seed": args.seed,
        "threads": threads,
        "labels": labels.info,
        "metric_names": {"bio_conservation": scoring.BIO_METRICS, "batch_correction": scoring.BATCH_METRICS},
        "aggregation": {
            "bio_conservation": "mean of the bio-conservation metrics computed",
            "batch_correction": "mean of the batch-correction metrics computed",
            "total": f"{scoring.BIO_WEIGHT} * bio_conservation + {scoring.BATCH_WEIGHT} * batch_correction "
                     "(scIB, Luecken et al. 2022); the one group alone when the other has no metric",
            "bio_weight": scoring.BIO_WEIGHT,
            "batch_weight": scoring.BATCH_WEIGHT,
        },
        "neighbors": {
            "search": f"exact Euclidean (scikit-learn) up to {scoring.EXACT_KNN_MAX_CELLS} cells, else pynndescent",
            "leiden_and_graph_connectivity": scoring.K_CLUSTER,
            "kbet": scoring.K_KBET,
            "lisi": scoring.K_LISI,
        },
        "skipped": skipped,
        "models": per_model,
        "umap": {"file": UMAP_FILE if coords else None, "models": list(coords)},
        "figures": figures,
        "versions": package_versions(
            ["scib-metrics", "jax", "jaxlib", "scanpy", "anndata", "scikit-learn", "umap-learn",
             "leidenalg", "igraph", "numpy", "matplotlib"]
        ),
        "timing_s": {name: round(seconds, 3) for name, seconds in timing.items()},
    }
    partial = args.output / (SCORES_FILE + ".partial")
    partial.write_text(json.dumps(scores, indent=2, allow_nan=False))
    partial.replace(args.output / SCORES_FILE)
    log.info("wrote %s for %d model(s) in %.1f s", SCORES_FILE, len(per_model), timing["total"])
    if all(entry["status"] == "error" for entry in per_model.values()):
        log.error("no model could be scored")
        return 1
    return 0


def main(argv=None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    threads = threads_from_env()
    prepare_environment(threads)
    args.output.mkdir(parents=True, exist_ok=True)
    setup_logging(args.output)
    log.info("evaluate: models %s, labels %s, seed %d, %d thread(s)", args.models, args.labels, args.seed, threads)
    try:
        return evaluate(args, threads, started)
    except Exception:  # noqa: BLE001 - any failure is reported with its traceback
        log.error("evaluation failed:\n%s", traceback.format_exc())
        return 1


if __name__ == "__main__":
    sys.exit(main())
