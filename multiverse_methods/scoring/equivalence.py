"""Every metric value with the fast kernels against scib-metrics' own, unpatched functions.

One embedding, complete labels, both metric sets. Ours: ``metrics.score_embedding``
with ``kernels.install()``. The reference, with scib-metrics' own kernels back
in place (jax silhouette, kBET test and Simpson index; pynndescent and the
unseeded ARPACK eigensolver inside kBET's diffusion map):

- scib-metrics' ``Benchmarker`` itself with its default metrics, given the same
  unintegrated PCA and, through ``prepare(neighbor_computer=...)``, the same
  exact 90-NN graph: every value of the ``benchmarker`` set, and its
  bio-conservation, batch-correction and total scores;
- the three metrics of ``leiden-asw`` that the Benchmarker does not run in its
  defaults (Leiden NMI/ARI, batch ASW), called directly on that graph.

The main graph is the same exact one on both sides because the check is about
the kernels: pynndescent's approximate graph would move the values for reasons
that are not the kernels'. The graph itself is compared with pynndescent's
(``knn_agreement``: neighbour sets, and UMAP connectivities where the sets are
identical). How far a stock Benchmarker run (pynndescent graph) lies from ours
is measured too and printed (``stock_benchmarker``), not checked.

    python -m multiverse_methods.scoring.equivalence [--input FILE] [--json OUT]

Without ``--input``: the project's synthetic data (``multiverse.synthetic``).
The embedding: 20 principal components of the unintegrated RNA with half of
each batch's mean removed (a crude, partial batch correction, so that PCR
comparison and kBET are neither 0 nor 1). Exit 1 when a difference is beyond
its tolerance.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from multiverse_methods.scoring import kernels
from multiverse_methods.scoring.metric_sets import BATCH, BIO, METRIC_SETS
from multiverse_methods.scoring.metrics import score_embedding

log = logging.getLogger("multiverse_methods.scoring.equivalence")

#: Largest accepted |ours - scib-metrics'|, for every metric value and aggregate. The same
#: definitions in float64 instead of float32 differ by at most ~5e-7 (docs/EVALUATION.md).
TOLERANCE = 1e-5
#: Largest accepted difference of the UMAP connectivities built from our graph and from pynndescent's
#: where both hold the same neighbours (their float32 distances differ by ~2e-6; measured up to 4.4e-6).
KNN_TOLERANCE = 1e-4

#: The Benchmarker's result rows (``get_results(clean_names=False)``) -> our keys.
BENCHMARKER_ROWS = {
    "isolated_labels": "isolated_labels",
    "nmi_ari_cluster_labels_kmeans_nmi": "nmi_kmeans",
    "nmi_ari_cluster_labels_kmeans_ari": "ari_kmeans",
    "silhouette_label": "silhouette_label",
    "clisi_knn": "clisi",
    "bras": "bras",
    "ilisi_knn": "ilisi",
    "kbet_per_label": "kbet",
    "graph_connectivity": "graph_connectivity",
    "pcr_comparison": "pcr_comparison",
}
BENCHMARKER_AGGREGATES = {"Bio conservation": BIO, "Batch correction": BATCH, "Total": "total"}


def _benchmarker(X, cell_type, batch, unintegrated, threads: int, neighbors=None) -> dict:
    """scib-metrics' Benchmarker, default metrics, on one embedding: {row: value}."""
    import anndata
    import numpy as np
    import pandas as pd
    from scib_metrics.benchmark import Benchmarker

    adata = anndata.AnnData(obs=pd.DataFrame({"cell_type": cell_type, "batch": batch},
                                             index=pd.RangeIndex(len(X)).astype(str)))
    adata.obsm["X_emb"] = np.asarray(X, dtype=np.float32)
    adata.obsm["X_pre"] = np.asarray(unintegrated, dtype=np.float32)
    bm = Benchmarker(adata, batch_key="batch", label_key="cell_type", embedding_obsm_keys=["X_emb"],
                     pre_integrated_embedding_obsm_key="X_pre", n_jobs=threads, progress_bar=False)
    bm.prepare(neighbor_computer=neighbors)
    bm.benchmark()
    results = bm.get_results(min_max_scale=False, clean_names=False)
    return {row: float(results.loc["X_emb", row]) for row in [*BENCHMARKER_ROWS, *BENCHMARKER_AGGREGATES]}


def reference_values(X, cell_type, batch, unintegrated, seed: int = 0, threads: int = 1) -> dict:
    """Every metric of both sets, and the Benchmarker's aggregates, with scib-metrics' own kernels."""
    import scib_metrics

    from multiverse_methods.scoring.metric_sets import K_CLUSTER, K_LISI

    with kernels.original_kernels():
        knn = kernels.exact_knn(X, n_neighbors=min(K_LISI, len(X)), n_jobs=threads)
        rows = _benchmarker(X, cell_type, batch, unintegrated, threads,
                            neighbors=lambda data, k: kernels.exact_knn(data, n_neighbors=k, n_jobs=threads))
        leiden = scib_metrics.nmi_ari_cluster_labels_leiden(knn.subset_neighbors(K_CLUSTER), cell_type,
                                                            optimize_resolution=True, n_jobs=1, seed=seed)
        values = {ours: rows[row] for row, ours in BENCHMARKER_ROWS.items()}
        values.update(nmi_leiden=float(leiden["nmi"]), ari_leiden=float(leiden["ari"]),
                      silhouette_batch=float(scib_metrics.silhouette_batch(X, cell_type, batch)))
        aggregates = {ours: rows[row] for row, ours in BENCHMARKER_AGGREGATES.items()}
    return {"metrics": values, "benchmarker_aggregates": aggregates}


def stock_benchmarker(X, cell_type, batch, unintegrated, threads: int = 1) -> dict:
    """The Benchmarker as it runs out of the box (its pynndescent graph, its own kernels): {our key: value}."""
    with kernels.original_kernels():
        rows = _benchmarker(X, cell_type, batch, unintegrated, threads)
    out = {ours: rows[row] for row, ours in BENCHMARKER_ROWS.items()}
    out.update({ours: rows[row] for row, ours in BENCHMARKER_AGGREGATES.items()})
    return out


def knn_agreement(X, threads: int = 1) -> dict:
    """Our exact graph against scib-metrics' pynndescent graph: the neighbour sets, and the UMAP connectivities.

    Where pynndescent finds every cell's exact neighbours (it is approximate, and
    usually does at these sizes), the connectivities that Leiden, graph
    connectivity and kBET build from the graph must agree within KNN_TOLERANCE;
    otherwise only the share of identical neighbour sets is reported.
    """
    import numpy as np
    from scipy.sparse import csr_matrix

    from multiverse_methods.scoring.metric_sets import K_CLUSTER, K_KBET, K_LISI

    k = min(K_LISI, len(X))
    exact = kernels.exact_knn(X, n_neighbors=k, n_jobs=threads)
    with kernels.original_kernels():
        import scib_metrics.nearest_neighbors as nn_module

        approx = nn_module.pynndescent(X, n_neighbors=k, random_state=0, n_jobs=threads)
    out = {}
    for n in sorted({min(K_CLUSTER, k), min(K_KBET, k), k}):
        e, a = exact.subset_neighbors(n), approx.subset_neighbors(n)
        same = float(np.mean(np.all(np.sort(e.indices, axis=1) == np.sort(a.indices, axis=1), axis=1)))
        entry = {"identical_neighbour_sets": same}
        if same == 1.0 and n != K_LISI:  # LISI uses the distances, not the connectivities
            difference = float(abs(csr_matrix(e.knn_graph_connectivities) - csr_matrix(a.knn_graph_connectivities)).max())
            entry.update(connectivity_difference=difference, tolerance=KNN_TOLERANCE, ok=difference <= KNN_TOLERANCE)
        out[f"{n}_neighbours"] = entry
    return out


def _entry(ours, theirs, bound: float) -> dict:
    import math

    if ours is None or theirs is None or not (math.isfinite(ours) and math.isfinite(theirs)):
        same = (ours is None or not math.isfinite(ours)) and (theirs is None or not math.isfinite(theirs))
        return {"ours": ours, "scib_metrics": theirs, "difference": None, "tolerance": bound, "ok": same}
    difference = abs(ours - theirs)
    return {"ours": ours, "scib_metrics": theirs, "difference": difference, "tolerance": bound,
            "ok": difference <= bound}


def compare(X, cell_type, batch, unintegrated, seed: int = 0, threads: int = 1, stock: bool = True) -> dict:
    """Ours vs scib-metrics' own for every metric of both sets; ``ok`` is False if any is beyond tolerance."""
    import numpy as np

    cell_type, batch = np.asarray(cell_type, dtype=object), np.asarray(batch, dtype=object)
    timing = {}
    start = time.perf_counter()
    kernels.install()
    ours, ours_aggregates = {}, {}
    for name, metric_set in METRIC_SETS.items():
        result = score_embedding(X, cell_type, batch, metric_set=metric_set, unintegrated=unintegrated,
                                 seed=seed, threads=threads)
        if result["errors"]:
            raise RuntimeError(f"metric set {name}: {result['errors']}")
        ours.update(result["metrics"])
        ours_aggregates[name] = result["aggregates"]
    timing["ours"] = time.perf_counter() - start
    start = time.perf_counter()
    reference = reference_values(X, cell_type.astype(str), batch.astype(str), unintegrated, seed, threads)
    timing["scib_metrics"] = time.perf_counter() - start
    metrics = {key: _entry(ours[key], value, TOLERANCE) for key, value in reference["metrics"].items()}
    aggregates = {key: _entry(ours_aggregates["benchmarker"][key], value, TOLERANCE)
                  for key, value in reference["benchmarker_aggregates"].items()}
    knn = knn_agreement(X, threads)
    report = {
        "n_cells": int(X.shape[0]), "embedding_dim": int(X.shape[1]),
        "n_cell_types": int(len(set(cell_type))), "n_batches": int(len(set(batch))),
        "metrics": metrics, "benchmarker_aggregates": aggregates, "knn": knn,
        "ok": all(e.get("ok", True) for e in [*metrics.values(), *aggregates.values(), *knn.values()]),
    }
    if stock:
        start = time.perf_counter()
        stock_values = stock_benchmarker(X, cell_type.astype(str), batch.astype(str), unintegrated, threads)
        timing["stock_benchmarker"] = time.perf_counter() - start
        mine = {**ours, **ours_aggregates["benchmarker"]}
        report["stock_benchmarker"] = {key: {"stock": value, "ours": mine[key], "difference": abs(mine[key] - value)}
                                       for key, value in stock_values.items()}
    report["timing_s"] = {name: round(seconds, 1) for name, seconds in timing.items()}
    return report


def check_embedding(unintegrated, batch, n_components: int = 20, correction: float = 0.5):
    """The embedding of the check: the first PCs of the unintegrated RNA, ``correction`` of each batch's mean removed."""
    import numpy as np

    X = np.array(unintegrated[:, :n_components], dtype=np.float64)
    batch = np.asarray(batch).astype(str)
    for b in np.unique(batch):
        X[batch == b] -= correction * X[batch == b].mean(axis=0)
    return X.astype(np.float32)


def from_file(path: Path, columns: dict):
    """(embedding, cell types, batches, unintegrated PCA) of the labelled cells of a real input."""
    import numpy as np

    from multiverse_methods.labels import load_labels
    from multiverse_methods.scoring.unintegrated import read_unintegrated

    labels = load_labels(path, columns)
    for role in ("cell_type", "batch"):
        if getattr(labels, role) is None:
            raise SystemExit(f"{path.name}: {labels.reason(role)}")
    unintegrated, info = read_unintegrated(path, labels.obs_names)
    if unintegrated is None:
        raise SystemExit(f"{path.name}: {info['reason']}")
    keep = np.array([c is not None and b is not None for c, b in zip(labels.cell_type, labels.batch)])
    X = check_embedding(unintegrated[keep], labels.batch[keep])
    return X, labels.cell_type[keep], labels.batch[keep], unintegrated[keep]


def from_synthetic(n_cells: int = 600, seed: int = 0):
    """The same from the project's synthetic generator (RNA + ATAC, 6 types, 2 batches)."""
    from multiverse.synthetic import make_synthetic
    from multiverse_methods.scoring.unintegrated import unintegrated_pca

    mdata = make_synthetic(n_cells=n_cells, seed=seed)
    unintegrated, _ = unintegrated_pca(mdata.mod["rna"])
    cell_type = mdata.obs["cell_type"].astype(str).to_numpy()
    batch = mdata.obs["batch"].astype(str).to_numpy()
    return check_embedding(unintegrated, batch), cell_type, batch, unintegrated


def log_report(report: dict) -> None:
    for section in ("metrics", "benchmarker_aggregates"):
        for key, e in report[section].items():
            log.info("%-20s ours %s  scib-metrics %s  |diff| %s  (tolerance %g)%s", key, _f(e["ours"]),
                     _f(e["scib_metrics"]), _f(e["difference"], ".1e"), e["tolerance"], "" if e["ok"] else "  TOO FAR")
    for key, e in report["knn"].items():
        log.info("kNN graph, %s: identical neighbour sets %.4f, connectivities |diff| %s%s", key,
                 e["identical_neighbour_sets"], _f(e.get("connectivity_difference"), ".1e"),
                 "  TOO FAR" if e.get("ok") is False else "")
    for key, e in report.get("stock_benchmarker", {}).items():
        log.info("stock Benchmarker (pynndescent graph) %-20s %s vs ours %s, |diff| %.1e",
                 key, _f(e["stock"]), _f(e["ours"]), e["difference"])


def _f(value, spec: str = ".6f") -> str:
    return "n/a" if value is None else format(value, spec)


def main(argv=None) -> int:
    from multiverse_methods.scoring.environment import prepare_environment, quiet_libraries, threads_from_env

    parser = argparse.ArgumentParser(prog="python -m multiverse_methods.scoring.equivalence", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, help="a labelled .h5mu/.h5ad (default: the synthetic data)")
    parser.add_argument("--cell-type-key", default="cell_type")
    parser.add_argument("--batch-key", default="batch")
    parser.add_argument("--json", type=Path, help="write the comparison here")
    parser.add_argument("--no-stock", action="store_true", help="skip the stock Benchmarker run (pynndescent)")
    args = parser.parse_args(argv)
    threads = threads_from_env()
    prepare_environment(threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    quiet_libraries()
    if args.input:
        data = from_file(args.input, {"cell_type": args.cell_type_key, "batch": args.batch_key})
    else:
        data = from_synthetic()
    report = compare(*data, threads=threads, stock=not args.no_stock)
    report["input"] = args.input.name if args.input else "synthetic (multiverse.synthetic, 600 cells)"
    log_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if not report["ok"]:
        log.error("the fast kernels do not reproduce scib-metrics' values within tolerance")
        return 1
    log.info("every metric value within tolerance of scib-metrics' own (%s)", report["timing_s"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
