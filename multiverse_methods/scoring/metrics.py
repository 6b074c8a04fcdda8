"""Every metric of a metric set on one embedding: a value or None, and why a None is None.

Each metric is scib-metrics' own function (``kernels.install()`` makes four of
its kernels faster, with the same definitions), called with the arguments of
scib-metrics' Benchmarker, on one exact kNN search cut to 15, 50 and 90
neighbours (self included).

Unlabelled cells: ``cell_type`` and ``batch`` are arrays with None for a cell
without that label. A metric runs on the cells that carry every label it needs
(``metric_sets.Metric.needs``): the label-based metrics on the labelled cells
only (embedding rows and kNN graph of those cells, as if the others were not in
the data), the batch metrics that need no cell types (iLISI, PCR comparison) on
every cell with a batch.
"""

from __future__ import annotations

import logging
import math
import time
import traceback

from multiverse_methods.scoring.aggregate import aggregate
from multiverse_methods.scoring.kernels import exact_knn
from multiverse_methods.scoring.metric_sets import (
    BATCH, BATCH_LABEL, CELL_TYPE, K_CLUSTER, K_KBET, K_LISI, METRICS, UNINTEGRATED, MetricSet,
)

log = logging.getLogger("multiverse_methods.scoring")

#: Fewer cells than this carrying a metric's labels: the metric is skipped.
MIN_CELLS = 10
#: Why a metric can come out undefined (NaN) although its labels are present.
UNDEFINED = {
    "kbet": "no cell type has 10 or more cells from more than one batch (kBET tests only those)",
}


class Cells:
    """The embedding restricted to the cells that carry some labels, with its kNN graph (computed once)."""

    def __init__(self, X, cell_type, batch, unintegrated, mask, seed: int, threads: int):
        import numpy as np

        self.index = np.flatnonzero(mask)
        self.n = len(self.index)
        self.X = X[self.index]
        self.cell_type = None if cell_type is None else np.asarray(cell_type[self.index]).astype(str)
        self.batch = None if batch is None else np.asarray(batch[self.index]).astype(str)
        self.unintegrated = None if unintegrated is None else unintegrated[self.index]
        self.seed, self.threads = seed, threads
        self._knn = None
        self.knn_seconds = 0.0

    def knn(self, k: int):
        if self._knn is None:
            start = time.perf_counter()
            self._knn = exact_knn(self.X, n_neighbors=min(K_LISI, self.n), random_state=self.seed, n_jobs=self.threads)
            self.knn_seconds = time.perf_counter() - start
        return self._knn.subset_neighbors(min(k, self._knn.n_neighbors))


def _leiden(c: Cells) -> dict:
    import scib_metrics

    jobs = c.threads if c.n >= 20_000 else 1  # joblib's worker start-up costs more than it saves on small data
    result = scib_metrics.nmi_ari_cluster_labels_leiden(c.knn(K_CLUSTER), c.cell_type, optimize_resolution=True,
                                                        n_jobs=jobs, seed=c.seed)
    return {"nmi_leiden": result["nmi"], "ari_leiden": result["ari"]}


def _kmeans(c: Cells) -> dict:
    import scib_metrics

    result = scib_metrics.nmi_ari_cluster_labels_kmeans(c.X, c.cell_type)
    return {"nmi_kmeans": result["nmi"], "ari_kmeans": result["ari"]}


def _one(key: str, fn):
    return lambda c: {key: fn(c)}


def _jobs() -> dict:
    """metric key -> (job name, function of Cells returning {key: value}); one job may fill two keys."""
    import scib_metrics

    jobs = {
        "leiden": _leiden,
        "kmeans": _kmeans,
        "silhouette_label": _one("silhouette_label", lambda c: scib_metrics.silhouette_label(c.X, c.cell_type)),
        "clisi": _one("clisi", lambda c: scib_metrics.clisi_knn(c.knn(K_LISI), c.cell_type)),
        "isolated_labels": _one("isolated_labels", lambda c: scib_metrics.isolated_labels(c.X, c.cell_type, c.batch)),
        "silhouette_batch": _one("silhouette_batch",
                                 lambda c: scib_metrics.silhouette_batch(c.X, c.cell_type, c.batch)),
        "bras": _one("bras", lambda c: scib_metrics.bras(c.X, c.cell_type, c.batch)),
        "ilisi": _one("ilisi", lambda c: scib_metrics.ilisi_knn(c.knn(K_LISI), c.batch)),
        "kbet": _one("kbet", lambda c: scib_metrics.kbet_per_label(c.knn(K_KBET), c.batch, c.cell_type)),
        "graph_connectivity": _one("graph_connectivity",
                                   lambda c: scib_metrics.graph_connectivity(c.knn(K_CLUSTER), c.cell_type)),
        "pcr_comparison": _one("pcr_comparison",
                               lambda c: scib_metrics.pcr_comparison(c.unintegrated, c.X, c.batch, categorical=True)),
    }
    job_of = {"nmi_leiden": "leiden", "ari_leiden": "leiden", "nmi_kmeans": "kmeans", "ari_kmeans": "kmeans"}
    return {key: (job_of.get(key, key), jobs[job_of.get(key, key)]) for key in METRICS}


def _as_score(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def known_mask(values):
    """True where a label array (None for a cell without the label) has a value."""
    import numpy as np

    return np.array([v is not None for v in values], dtype=bool)


def _why_not(metric, c: Cells, have: dict, reasons: dict) -> str | None:
    """Why ``metric`` cannot run on these cells, or None."""
    import numpy as np

    for need in metric.needs:
        if not have[need]:
            prefix = "defined per cell type; " if need == CELL_TYPE and metric.group == BATCH else ""
            return prefix + reasons.get(need, f"no {need}")
    if c.n < MIN_CELLS:
        return f"only {c.n} cells carry the labels it needs ({', '.join(n for n in metric.needs if n != UNINTEGRATED)})"
    if CELL_TYPE in metric.needs and len(np.unique(c.cell_type)) < 2:
        return "fewer than 2 cell types among the cells that carry its labels"
    if BATCH_LABEL in metric.needs and len(np.unique(c.batch)) < 2:
        return "fewer than 2 batches among the cells that carry its labels"
    if metric.group == BATCH and CELL_TYPE in metric.needs and metric.key != "graph_connectivity":
        if not any(len(np.unique(c.batch[c.cell_type == t])) > 1 for t in np.unique(c.cell_type)):
            return "no cell type is present in more than one batch"
    return None


def score_embedding(
    X,
    cell_type=None,
    batch=None,
    *,
    metric_set: MetricSet,
    unintegrated=None,
    reasons: dict | None = None,
    seed: int = 0,
    threads: int = 1,
) -> dict:
    """Every metric of ``metric_set`` on one embedding, why missing ones are missing, aggregates, timing.

    ``cell_type`` / ``batch``: arrays (None for a cell without the label), or
    None when there is no usable column; ``unintegrated``: the unintegrated
    PCA (cells x components) for ``pcr_comparison``, or None. ``reasons``:
    why a None is None, by CELL_TYPE / BATCH_LABEL / UNINTEGRATED. Call
    ``kernels.install()`` first for the fast kernels.
    """
    import numpy as np

    reasons = {CELL_TYPE: "no cell-type labels", BATCH_LABEL: "no batch labels",
               UNINTEGRATED: "no unintegrated data", **(reasons or {})}
    n = X.shape[0]
    have = {CELL_TYPE: cell_type is not None, BATCH_LABEL: batch is not None, UNINTEGRATED: unintegrated is not None}
    known = {CELL_TYPE: known_mask(cell_type) if have[CELL_TYPE] else None,
             BATCH_LABEL: known_mask(batch) if have[BATCH_LABEL] else None}
    values = {key: None for key in metric_set.keys}
    skipped, errors, timing, cells = {}, {}, {}, {}
    subsets: dict[bytes, Cells] = {}
    done: dict[str, dict] = {}
    jobs = _jobs()

    for metric in metric_set.metrics:
        mask = np.ones(n, dtype=bool)
        for need in metric.needs:
            if known.get(need) is not None:
                mask &= known[need]
        c = subsets.get(mask.tobytes())
        if c is None:
            c = subsets[mask.tobytes()] = Cells(X, cell_type, batch, unintegrated, mask, seed, threads)
        reason = _why_not(metric, c, have, reasons)
        if reason:
            skipped[metric.key] = reason
            continue
        cells[metric.key] = c.n
        job, fn = jobs[metric.key]
        if job not in done:
            start = time.perf_counter()
            try:
                done[job] = {k: _as_score(v) for k, v in fn(c).items()}
            except Exception as exc:  # noqa: BLE001 - one metric failing does not sink the others
                log.warning("%s failed: %s\n%s", job, exc, traceback.format_exc())
                done[job] = {"error": f"{type(exc).__name__}: {exc}"}
            timing[job] = time.perf_counter() - start
            log.info("  %s: %.1f s on %d cells", job, timing[job], c.n)  # progress, metric by metric
        if "error" in done[job]:
            errors[metric.key] = done[job]["error"]
            continue
        values[metric.key] = done[job][metric.key]
        if values[metric.key] is None:
            skipped[metric.key] = UNDEFINED.get(metric.key, "undefined for these labels (the metric returned NaN)")
    timing["knn"] = sum(c.knn_seconds for c in subsets.values())

    aggregates, notes = aggregate(values, metric_set)
    return {
        "metrics": values,
        "skipped": skipped,
        "errors": errors,
        "aggregates": aggregates,
        "notes": notes,
        "cells": cells,
        "timing_s": {name: round(seconds, 3) for name, seconds in timing.items()},
    }
