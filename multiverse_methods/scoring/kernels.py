"""Faster drop-ins for four scib-metrics 0.5.10 kernels, with the same definitions.

scib-metrics' jax kernels compile anew for every array shape (the silhouette
and the kBET test run once per cell type, on subsets of different sizes, for
every embedding width), and pynndescent compiles numba code in every fresh
process: a minute or more for five small embeddings. ``install`` swaps these
kernels under scib-metrics' metric functions, which keep their own logic
(subsetting, scaling, aggregation):

- the kNN search is exact (scikit-learn) up to ``EXACT_KNN_MAX_CELLS`` cells,
  also for kBET's diffusion-map neighbours (scib-metrics' pynndescent above);
- silhouettes are scikit-learn's ``silhouette_samples`` (the standard, "nearest"
  silhouette that scib-metrics' jax function reimplements), and BRAS's
  "mean_other" variant is the same sums in numpy;
- kBET's chi-square test and LISI's Simpson index (the perplexity bisection)
  are the same computations in numpy (float64);
- kBET's diffusion map gets a fixed ARPACK start vector, so that scores do not
  depend on what ran before in the process.

``uninstall`` (or ``original_kernels()``) puts scib-metrics' own back: the
equivalence check (``equivalence.py``) compares every metric value both ways.
Written against scib-metrics 0.5.10 (pinned).
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager

#: Above this many cells the kNN search is scib-metrics' pynndescent (approximate).
EXACT_KNN_MAX_CELLS = 50_000

_ORIGINAL: dict = {}


def exact_knn(X, n_neighbors: int, random_state: int = 0, n_jobs: int = 1):
    """Exact Euclidean k nearest neighbours, each cell first in its own list, as NeighborsResults.

    A drop-in for ``scib_metrics.nearest_neighbors.pynndescent`` (same
    signature and result type); above ``EXACT_KNN_MAX_CELLS`` cells it calls that one.
    """
    import numpy as np
    from scib_metrics.nearest_neighbors import NeighborsResults
    from sklearn.neighbors import NearestNeighbors

    X = np.asarray(X)
    n = X.shape[0]
    if n > EXACT_KNN_MAX_CELLS:
        return _originals()["pynndescent"](X, n_neighbors=n_neighbors, random_state=random_state, n_jobs=n_jobs)
    if n_neighbors > n:
        # As with pynndescent, there are not that many cells; kbet_per_label catches
        # this ValueError for a tiny cell-type component (and counts it as rejected).
        raise ValueError(f"Expected n_neighbors <= n_samples, got {n_neighbors} > {n}")
    X = X.astype(np.float64, copy=False)
    search = NearestNeighbors(n_neighbors=n_neighbors, n_jobs=n_jobs).fit(X)
    distances, indices = search.kneighbors(X)
    # With duplicate cells another cell may come first: every cell is its own first neighbour.
    for i in np.flatnonzero(indices[:, 0] != np.arange(n)):
        keep = indices[i] != i
        indices[i] = np.concatenate([[i], indices[i][keep][: n_neighbors - 1]])
        distances[i] = np.concatenate([[0.0], distances[i][keep][: n_neighbors - 1]])
    # scikit-learn's Euclidean distances leave rounding residue (~1e-7) on the self
    # distance; pynndescent gives 0. UMAP's connectivities (Leiden, kBET) take the
    # first non-zero distance as each cell's offset, so the residue would move them.
    distances[:, 0] = 0.0
    return NeighborsResults(indices=indices.astype(np.int64), distances=distances.astype(np.float32))


def _mean_other_silhouette(X, codes, metric: str, chunk: int = 2048):
    """BRAS's silhouette: a = mean distance within the cell's batch, b = mean distance to every other cell.

    The same sums as scib-metrics' ``_silhouette_reduce(..., "mean_other")``;
    0 where a and b are both 0 or the cell's batch is a singleton (NaN there, set to 0 as scib-metrics does).
    """
    import numpy as np
    from sklearn.metrics import pairwise_distances

    n = X.shape[0]
    freqs = np.bincount(codes).astype(np.float64)
    onehot = np.eye(len(freqs))[codes]
    out = np.empty(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        for lo in range(0, n, chunk):
            D = pairwise_distances(X[lo:lo + chunk], X, metric=metric)
            if metric == "cosine":
                D = np.clip(D, 0.0, 2.0)
            own = codes[lo:lo + chunk]
            per_cluster = D @ onehot
            intra_sum = per_cluster[np.arange(len(own)), own]
            intra = intra_sum / (freqs[own] - 1)
            inter = (per_cluster.sum(axis=1) - intra_sum) / (n - freqs[own])
            out[lo:lo + chunk] = (inter - intra) / np.maximum(intra, inter)
    return np.nan_to_num(out)


#: The last per-cell silhouettes computed ("nearest"), by a weak reference to their embedding.
_LAST_SILHOUETTE: dict = {}


def fast_silhouette_samples(
    X, labels, chunk_size: int = 256, metric: str = "euclidean", between_cluster_distances: str = "nearest"
):
    """scib-metrics' ``silhouette_samples`` (same signature): scikit-learn for "nearest", numpy for "mean_other".

    scib-metrics' jax function implements scikit-learn's definition for
    ``nearest`` (Euclidean or cosine, 0 for singleton clusters) and BRAS's
    ``mean_other`` variant, but compiles anew for every array shape. The
    ``furthest`` variant and degenerate label sets go to the original.
    """
    import numpy as np
    import pandas as pd
    from sklearn.metrics import silhouette_samples

    codes = np.asarray(pd.Categorical(np.asarray(labels)).codes)
    n_labels = len(np.unique(codes))
    if metric not in ("euclidean", "cosine") or not 2 <= n_labels <= X.shape[0] - 1:
        return _originals()["silhouette_samples"](X, labels, chunk_size, metric, between_cluster_distances)
    if between_cluster_distances == "nearest":
        # silhouette_label and isolated_labels both ask for the silhouettes of the same embedding
        # and cell types: the second call reuses the first's (at 50,000 cells, 20-30 s each).
        cached = _LAST_SILHOUETTE.get("value")
        if cached is not None and _LAST_SILHOUETTE["X"]() is X and _LAST_SILHOUETTE["metric"] == metric \
                and np.array_equal(_LAST_SILHOUETTE["codes"], codes):
            return cached.copy()
        value = silhouette_samples(np.asarray(X, dtype=np.float64), codes, metric=metric).astype(np.float32)
        try:
            _LAST_SILHOUETTE.update(X=weakref.ref(X), metric=metric, codes=codes, value=value)
        except TypeError:  # an object without weak references (not a numpy array): no reuse
            _LAST_SILHOUETTE.clear()
        return value.copy()
    X = np.asarray(X, dtype=np.float64)
    if between_cluster_distances == "mean_other":
        return _mean_other_silhouette(X, codes, metric).astype(np.float32)
    return _originals()["silhouette_samples"](X, labels, chunk_size, metric, between_cluster_distances)


def numpy_kbet(X, batches, alpha: float = 0.05):
    """scib-metrics' ``kbet`` (chi-square test of the batch mix of each cell's neighbours) in numpy.

    The same statistic and p-value (the chi-square CDF as the regularised
    incomplete gamma function) as scib-metrics' jax ``_kbet``, which compiles
    anew for every cell type's subset size; computed in float64 instead of
    float32. Returns (acceptance rate, statistics, p-values) like the original.
    """
    import numpy as np
    import pandas as pd
    from scipy.special import gammainc

    if len(batches) != len(X.indices):
        raise ValueError("Length of batches does not match number of cells.")
    codes = np.asarray(pd.Categorical(batches).codes)
    n_batches = len(np.unique(codes))
    neighbour_batches = codes[np.asarray(X.indices)]
    expected_freq = np.bincount(codes, minlength=n_batches) / len(codes)
    observed = (neighbour_batches[:, :, None] == np.arange(n_batches)).sum(axis=1)
    expected = expected_freq * neighbour_batches.shape[1]
    statistics = np.sum((observed - expected) ** 2 / expected, axis=1)
    p_values = 1 - gammainc((n_batches - 1) / 2, statistics / 2)
    return (p_values >= alpha).mean(), statistics, p_values


def numpy_simpson_index(knn_dists, knn_idx, row_idx, labels, n_labels: int, perplexity: float = 30,
                        tol: float = 1e-5, chunk: int = 20_000):
    """scib-metrics' ``compute_simpson_index`` (the core of LISI) in numpy, all cells at once.

    Per cell, the same bisection as scib-metrics (and Harmony's LISI): find the
    Gaussian kernel precision ``beta`` whose neighbour distribution has entropy
    log(perplexity) (at most 50 steps, tolerance ``tol``; the cell itself
    excluded), then the Simpson index sum_l (P of the neighbours labelled l)^2;
    -1 where every neighbour weight vanishes. scib-metrics' jax version
    compiles for every new number of cells; this one runs in float64.
    """
    import numpy as np

    knn_dists = np.asarray(knn_dists, dtype=np.float64)
    knn_idx = np.asarray(knn_idx)
    labels = np.asarray(labels)
    row_idx = np.asarray(row_idx).reshape(-1, 1)
    out = np.empty(knn_dists.shape[0])
    target = np.log(perplexity)
    for lo in range(0, knn_dists.shape[0], chunk):
        D = knn_dists[lo:lo + chunk]
        not_self = knn_idx[lo:lo + chunk] != row_idx[lo:lo + chunk]
        n = D.shape[0]
        beta = np.ones(n)
        beta_min = np.full(n, -np.inf)
        beta_max = np.full(n, np.inf)

        def entropy(beta):
            P = np.where(not_self, np.exp(-D * beta[:, None]), 0.0)
            total = P.sum(axis=1)
            safe = np.where(total == 0, 1.0, total)
            H = np.where(total == 0, 0.0, np.log(safe) + beta * (D * P).sum(axis=1) / safe)
            return H, P / safe[:, None]

        H, P = entropy(beta)
        diff = H - target
        active = np.abs(diff) >= tol
        for _ in range(50):
            if not active.any():
                break
            up = diff > 0
            new_beta = np.where(
                up,
                np.where(np.isinf(beta_max), beta * 2, (beta + beta_max) / 2),
                np.where(np.isinf(beta_min), beta / 2, (beta + beta_min) / 2),
            )
            beta_min = np.where(active & up, beta, beta_min)
            beta_max = np.where(active & ~up, beta, beta_max)
            beta = np.where(active, new_beta, beta)
            H_new, P_new = entropy(beta)
            H = np.where(active, H_new, H)
            P = np.where(active[:, None], P_new, P)
            diff = H - target
            active &= np.abs(diff) >= tol
        neighbour_labels = labels[knn_idx[lo:lo + chunk]]
        per_label = np.zeros((n, n_labels))
        np.add.at(per_label, (np.repeat(np.arange(n), D.shape[1]), neighbour_labels.ravel()), P.ravel())
        out[lo:lo + chunk] = np.where(H == 0, -1.0, (per_label ** 2).sum(axis=1))
    return out


def seeded_compute_eigen(*args, **kwargs):
    """scib-metrics' diffusion-map eigendecomposition (in kBET) with a fixed ARPACK start vector.

    Without one, ARPACK draws its start vector from a generator that carries on
    from call to call, so kBET of a cell type with nearly equal eigenvalues
    depends on everything computed before it in the process.
    """
    import numpy as np
    import scipy.sparse.linalg as sparse_linalg

    original = sparse_linalg.eigsh

    def eigsh(A, k=6, *rest, v0=None, **options):
        if v0 is None:
            v0 = np.random.default_rng(0).uniform(-1.0, 1.0, size=A.shape[0])
        return original(A, k, *rest, v0=v0, **options)

    sparse_linalg.eigsh = eigsh
    try:
        return _originals()["compute_eigen"](*args, **kwargs)
    finally:
        sparse_linalg.eigsh = original


def _targets():
    """(module, attribute, replacement) of every swap."""
    import scib_metrics.metrics._isolated_labels as isolated_module
    import scib_metrics.metrics._kbet as kbet_module
    import scib_metrics.metrics._lisi as lisi_module
    import scib_metrics.metrics._silhouette as silhouette_module
    import scib_metrics.nearest_neighbors as nn_module
    import scib_metrics.utils._diffusion_nn as diffusion_module

    return [
        (nn_module, "pynndescent", exact_knn),  # kbet_per_label's diffusion-map neighbours
        (kbet_module, "kbet", numpy_kbet),  # kbet_per_label's test on each cell type
        (lisi_module, "compute_simpson_index", numpy_simpson_index),  # cLISI, iLISI
        (diffusion_module, "_compute_eigen", seeded_compute_eigen),  # reproducible kBET
        (silhouette_module, "silhouette_samples", fast_silhouette_samples),  # label/batch ASW, BRAS
        (isolated_module, "silhouette_samples", fast_silhouette_samples),  # isolated_labels
    ]


def _originals() -> dict:
    if not _ORIGINAL:
        import scib_metrics.metrics._kbet as kbet_module
        import scib_metrics.metrics._lisi as lisi_module
        import scib_metrics.metrics._silhouette as silhouette_module
        import scib_metrics.nearest_neighbors as nn_module
        import scib_metrics.utils._diffusion_nn as diffusion_module

        _ORIGINAL.update(
            pynndescent=nn_module.pynndescent,
            kbet=kbet_module.kbet,
            compute_simpson_index=lisi_module.compute_simpson_index,
            compute_eigen=diffusion_module._compute_eigen,
            silhouette_samples=silhouette_module.silhouette_samples,
        )
    return _ORIGINAL


KERNELS = ["exact kNN (scikit-learn)", "silhouette (scikit-learn; BRAS's in numpy)", "kBET test (numpy)",
           "LISI (numpy)", "seeded diffusion map (kBET)"]


def install() -> list[str]:
    """Route scib-metrics' kernels to the equivalents above; returns their names."""
    _originals()
    for module, name, replacement in _targets():
        setattr(module, name, replacement)
    return KERNELS


def uninstall() -> None:
    """Put scib-metrics' own kernels back."""
    originals = _originals()
    key = {"_compute_eigen": "compute_eigen"}
    for module, name, _ in _targets():
        setattr(module, name, originals[key.get(name, name)])


def installed() -> bool:
    import scib_metrics.metrics._kbet as kbet_module

    return kbet_module.kbet is numpy_kbet


@contextmanager
def original_kernels():
    """Run the block with scib-metrics' own kernels, then restore what was installed before."""
    was = installed()
    uninstall()
    try:
        yield
    finally:
        if was:
            install()
