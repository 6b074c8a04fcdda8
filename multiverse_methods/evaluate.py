"""Entry point of the evaluation image: score embeddings against cell-type and batch labels.

    python -m multiverse_methods.evaluate --input /data/input/<file> \\
        --results /data/results --output /data/output \\
        --models '["pca", "mofa"]' \\
        --labels '{"cell_type": "cell_type", "batch": "batch"}' --seed 0 \\
        [--metric-set leiden-asw|benchmarker] [--no-umap]

The command line and the files: reads the labels (``labels.py``) and, for every
model, ``<results>/<model>/embeddings.h5ad`` (``obsm["X_emb"]``, cells in the
input's order); scores each embedding with the chosen metric set
(``scoring/``), computes its 2-D UMAP and draws them all (``figures.py``).

Writes to ``--output``:

- ``scores.json``: per model every metric (a number or null), why a null is
  null, the aggregates, timing; the metric set, the labels used (with how many
  cells are unlabelled), the number of cells each metric used, versions
- ``umap.npz``: ``umap_<model>`` (cells x 2, float32) for every model scored,
  ``obs_names``, and ``cell_type`` / ``batch`` (strings, "" for unlabelled) when present
- ``umap_cell_type.png``, ``umap_batch.png``: one panel per model (only for
  the labels present; ``umap.png`` without colours when neither is)
- ``log.txt``

Exit code 0 once scores.json is written (a model whose embedding cannot be read
gets ``"status": "error"`` and the others are scored); 1, with the traceback
in the log, when nothing could be scored or anything else fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
import traceback
from pathlib import Path

from multiverse_methods.protocol import EMBEDDING_KEY, EMBEDDINGS_FILE, LOG_FILE
from multiverse_methods.scoring.environment import prepare_environment, threads_from_env
from multiverse_methods.scoring.metric_sets import (
    BATCH, BATCH_LABEL, BATCH_WEIGHT, BIO, BIO_WEIGHT, CELL_TYPE, DEFAULT_METRIC_SET, K_CLUSTER, K_KBET, K_LISI,
    METRIC_SETS, UNINTEGRATED,
)

log = logging.getLogger("multiverse_methods.evaluate")

SCHEMA_VERSION = 2
MODEL_NAME = re.compile(r"[A-Za-z0-9_.,=\[\]-]+(/seed-[0-9]+)?")
SCORES_FILE = "scores.json"
UMAP_FILE = "umap.npz"
FIGURES = {"cell_type": "umap_cell_type.png", "batch": "umap_batch.png", "plain": "umap.png"}


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
    if EMBEDDING_KEY not in adata.obsm:
        raise ModelError(f"{model}/{EMBEDDINGS_FILE} has no obsm[{EMBEDDING_KEY!r}]")
    X = np.asarray(adata.obsm[EMBEDDING_KEY], dtype=np.float32)
    names = adata.obs_names.astype(str)
    notes = []
    if not names.equals(obs_names):
        if len(names) == len(obs_names) and names.is_unique and set(names) == set(obs_names):
            X = X[names.get_indexer(obs_names)]
            notes.append("the embedding's cells were not in the input's order; reordered by obs_names")
        else:
            raise ModelError(f"the embedding's {len(names)} cells are not the input's {len(obs_names)} cells")
    if X.ndim != 2 or X.shape[1] < 1 or X.shape[0] < 3:
        raise ModelError(f"obsm[{EMBEDDING_KEY!r}] has shape {X.shape}")
    if not np.isfinite(X).all():
        raise ModelError(f"obsm[{EMBEDDING_KEY!r}] holds NaN or infinite values")
    return X, notes


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
    parser.add_argument("--metric-set", default=DEFAULT_METRIC_SET, choices=sorted(METRIC_SETS),
                        help=f"which metrics to compute (default {DEFAULT_METRIC_SET})")
    parser.add_argument("--no-umap", action="store_true", help="no UMAPs, no figures")
    parser.add_argument("--umap-models", default=None,
                        help="JSON list: the models to draw UMAPs of (default: every model)")
    parser.add_argument("--seed-groups", default="{}",
                        help='JSON object: a name -> the models that are one entry run with different seeds; '
                             "their neighbourhoods' agreement goes to scores.json's seed_agreement")
    return parser.parse_args(argv)


def check_args(args) -> tuple[list, dict]:
    models = json.loads(args.models)
    columns = json.loads(args.labels)
    if not isinstance(models, list) or not models or not all(isinstance(m, str) and m for m in models):
        raise ValueError(f"--models must be a non-empty JSON list of model names, got {args.models!r}")
    # An entry (a grid point may hold [ ] = ,) and optionally its seed: pca, multivi[n_latent=20]/seed-1.
    bad = [m for m in models if m.startswith(".") or ".." in m or not MODEL_NAME.fullmatch(m)]
    if bad:
        raise ValueError(f"--models: not a model name: {bad}")
    if len(set(models)) != len(models):
        raise ValueError(f"--models names a model twice: {models}")
    if not isinstance(columns, dict) or set(columns) - {"cell_type", "batch"}:
        raise ValueError(f'--labels must be a JSON object with keys "cell_type" and "batch", got {args.labels!r}')
    return models, columns


def setup_logging(out_dir: Path) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(out_dir / LOG_FILE)):
        handler.setFormatter(fmt)
        root.addHandler(handler)


def score_model(model: str, ctx: dict, threads: int = 1, keep: dict | None = None):
    """(model, scores.json entry, UMAP coordinates or None) of one model's embedding.

    ``ctx``: ``results`` (folder), ``labels`` (Labels), ``metric_set``, ``unintegrated`` (array or None),
    ``reasons`` (why a label or the unintegrated data is absent), ``seed``, ``umap`` (bool).
    """
    from multiverse_methods.scoring.metrics import score_embedding
    from multiverse_methods.scoring.umap_layout import compute_umap

    labels = ctx["labels"]
    model_start = time.perf_counter()
    try:
        X, notes = load_embedding(ctx["results"], model, labels.obs_names)
    except Exception as exc:  # noqa: BLE001 - an unreadable result is reported, the others are scored
        message = str(exc) if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
        log.error("%s: cannot be scored: %s", model, message)
        return model, {"status": "error", "error": message}, None
    log.info("%s: %d cells x %d dimensions", model, *X.shape)
    if keep is not None:
        keep[model] = X
    entry = {"status": "ok", "error": None, "n_cells": int(X.shape[0]), "embedding_dim": int(X.shape[1])}
    entry.update(score_embedding(
        X, labels.cell_type, labels.batch, metric_set=ctx["metric_set"], unintegrated=ctx["unintegrated"],
        reasons=ctx["reasons"], seed=ctx["seed"], threads=threads,
    ))
    entry["notes"] = notes + entry["notes"]
    xy = None
    if ctx["umap"]:
        umap_start = time.perf_counter()
        try:
            xy = compute_umap(X, ctx["seed"])
        except Exception as exc:  # noqa: BLE001 - scores without a UMAP are still worth having
            log.warning("%s: UMAP failed: %s\n%s", model, exc, traceback.format_exc())
            entry["notes"].append(f"UMAP failed: {type(exc).__name__}: {exc}")
        entry["timing_s"]["umap"] = round(time.perf_counter() - umap_start, 3)
    entry["timing_s"]["total"] = round(time.perf_counter() - model_start, 3)
    agg = entry["aggregates"]
    log.info("%s: bio %s, batch %s, total %s (%.1f s)", model, _fmt(agg[BIO]), _fmt(agg[BATCH]),
             _fmt(agg["total"]), entry["timing_s"]["total"])
    return model, entry, xy


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _reasons(labels, unintegrated_info: dict) -> dict:
    reasons = {}
    for role, need in (("cell_type", CELL_TYPE), ("batch", BATCH_LABEL)):
        if labels.reason(role):
            reasons[need] = f"no {role.replace('_', '-')} labels: {labels.reason(role)}"
    if unintegrated_info.get("reason"):
        reasons[UNINTEGRATED] = f"no unintegrated data: {unintegrated_info['reason']}"
    return reasons


def write_figures(out: Path, coords: dict, labels, seed: int) -> dict:
    """umap.npz and the UMAP figures; returns role -> file."""
    import numpy as np

    from multiverse_methods.figures import plot_umaps

    arrays = {f"umap_{model}": xy for model, xy in coords.items()}
    arrays["obs_names"] = np.asarray(labels.obs_names, dtype=str)
    figures = {}
    for role, what in (("cell_type", "cell type"), ("batch", "batch")):
        values = getattr(labels, role)
        if values is None:
            continue
        arrays[role] = np.array(["" if v is None else v for v in values], dtype=str)
        info = labels.info[role]
        plot_umaps(coords, values, info["categories"],
                   f"UMAP of each embedding, coloured by {what} (obs[{info['column']!r}])", out / FIGURES[role], seed)
        figures[role] = FIGURES[role]
    np.savez_compressed(out / UMAP_FILE, **arrays)
    if not figures:
        plot_umaps(coords, None, [], "UMAP of each embedding (no labels)", out / FIGURES["plain"], seed)
        figures["plain"] = FIGURES["plain"]
    return figures


def evaluate(args, threads: int, started: float) -> int:
    from multiverse_methods.contract import package_versions
    from multiverse_methods.labels import load_labels, unlabelled_rule

    models, columns = check_args(args)
    metric_set = METRIC_SETS[args.metric_set]

    timing = {}
    start = time.perf_counter()
    import scib_metrics  # noqa: F401 - jax, pynndescent, umap: the slow imports

    from multiverse_methods.scoring import kernels
    from multiverse_methods.scoring.environment import enable_numba_caching, quiet_libraries

    quiet_libraries()
    cacheable = enable_numba_caching()
    swapped = kernels.install()
    timing["imports"] = time.perf_counter() - start
    log.info("libraries loaded in %.1f s (%d umap kernels made cacheable; %s)",
             timing["imports"], cacheable, ", ".join(swapped))

    start = time.perf_counter()
    labels = load_labels(args.input, columns)
    timing["read_labels"] = time.perf_counter() - start
    for role, info in labels.info.items():
        if info["present"]:
            log.info("%s: obs[%r] (%s), %d categories, %d of %d cells unlabelled", role, info["column"],
                     info["source"], info["n_categories"], info["n_unlabelled"], info["n_cells"])
        else:
            log.warning("%s: %s; the metrics that need it are skipped", role, info["reason"])

    unintegrated, unintegrated_info = None, {"present": False, "reason": f"metric set {metric_set.name} needs none"}
    if metric_set.needs(UNINTEGRATED):
        from multiverse_methods.scoring.unintegrated import read_unintegrated

        start = time.perf_counter()
        try:
            unintegrated, unintegrated_info = read_unintegrated(args.input, labels.obs_names)
        except Exception as exc:  # noqa: BLE001 - only pcr_comparison needs it
            log.warning("unintegrated reference failed:\n%s", traceback.format_exc())
            unintegrated_info = {"present": False, "reason": f"computing it failed: {type(exc).__name__}: {exc}"}
        timing["unintegrated"] = time.perf_counter() - start
        log.info("unintegrated reference: %s", unintegrated_info.get("what") or unintegrated_info["reason"])

    per_model, coords = {}, {}
    umap_models = set(json.loads(args.umap_models)) if args.umap_models else set(models)
    groups = json.loads(args.seed_groups)
    grouped = {m for members in groups.values() for m in members}
    embeddings = {}
    context = {"results": args.results, "labels": labels, "seed": args.seed, "umap": not args.no_umap,
               "metric_set": metric_set, "unintegrated": unintegrated,
               "reasons": _reasons(labels, unintegrated_info)}
    for number, model in enumerate(models, start=1):  # one after the other: forked workers measured no faster on 2 cores
        log.info("model %d of %d: %s", number, len(models), model)
        _, entry, xy = score_model(model, {**context, "umap": context["umap"] and model in umap_models}, threads,
                                   keep=embeddings if model in grouped else None)
        per_model[model] = entry
        if xy is not None:
            coords[model] = xy
    seed_agreement = {}
    if groups:
        from multiverse_methods.scoring.stability import knn_overlap

        start = time.perf_counter()
        for name, members in groups.items():
            present = [embeddings[m] for m in members if m in embeddings]
            if len(present) >= 2:
                seed_agreement[name] = {**knn_overlap(present), "models": [m for m in members if m in embeddings]}
                log.info("%s: %d seeds share %.3f of their 15 nearest neighbours", name, len(present),
                         seed_agreement[name]["knn_overlap"])
        timing["seed_agreement"] = time.perf_counter() - start

    start = time.perf_counter()
    figures = write_figures(args.output, coords, labels, args.seed) if coords else {}
    timing["figures"] = time.perf_counter() - start

    scored = [e for e in per_model.values() if e["status"] == "ok"]
    skipped = {}  # the skips every scored model shares: the labels' doing
    for entry in scored:
        for name, reason in entry["skipped"].items():
            if all(name in e["skipped"] for e in scored):
                skipped[name] = reason
    metric_cells = {}
    for entry in scored:
        metric_cells.update(entry["cells"])
    timing["total"] = time.perf_counter() - started
    scores = {
        "schema_version": SCHEMA_VERSION,
        "input": args.input.name,
        "n_cells": len(labels.obs_names),
        "seed": args.seed,
        "threads": threads,
        "metric_set": {
            "name": metric_set.name,
            "description": metric_set.description,
            "metrics": {m.key: {"name": m.name, "group": m.group, "needs": list(m.needs), "what": m.what}
                        for m in metric_set.metrics},
        },
        "labels": labels.info,
        "unlabelled": unlabelled_rule(),
        "metric_cells": metric_cells,
        "unintegrated": unintegrated_info,
        "metric_names": {group: {m.key: m.name for m in metric_set.metrics if m.group == group}
                         for group in (BIO, BATCH)},
        "aggregation": {
            BIO: "mean of the bio-conservation metrics computed",
            BATCH: "mean of the batch-correction metrics computed",
            "total": f"{BIO_WEIGHT} * {BIO} + {BATCH_WEIGHT} * {BATCH} (scIB, Luecken et al. 2022); "
                     "null unless both groups have a score",
            "bio_weight": BIO_WEIGHT,
            "batch_weight": BATCH_WEIGHT,
        },
        "neighbors": {
            "search": f"exact Euclidean (scikit-learn) up to {kernels.EXACT_KNN_MAX_CELLS} cells, else pynndescent; "
                      "one search per set of cells a metric runs on",
            "leiden_and_graph_connectivity": K_CLUSTER,
            "kbet": K_KBET,
            "lisi": K_LISI,
        },
        "skipped": skipped,
        "models": per_model,
        "seed_agreement": seed_agreement,
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
    if not scored:
        log.error("no model could be scored")
        return 1
    return 0


def main(argv=None) -> int:
    from multiverse_methods import deadline

    deadline.start()
    started = time.perf_counter()
    args = parse_args(argv)
    threads = threads_from_env()
    prepare_environment(threads)
    args.output.mkdir(parents=True, exist_ok=True)
    setup_logging(args.output)
    log.info("evaluate: models %s, labels %s, metric set %s, seed %d, %d thread(s)",
             args.models, args.labels, args.metric_set, args.seed, threads)
    try:
        return evaluate(args, threads, started)
    except Exception:  # noqa: BLE001 - any failure is reported with its traceback
        log.error("evaluation failed:\n%s", traceback.format_exc())
        return 1


if __name__ == "__main__":
    sys.exit(main())
