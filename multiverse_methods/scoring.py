"""The numerical side of the evaluation image: scIB metrics of one embedding, and its UMAP.

Runs inside the metrics image (scib-metrics on CPU jax, scanpy). The command
line, the labels, the files and the figures are in ``evaluate.py``.

Metrics (scib-metrics' own functions; higher is better; every value in [0, 1]
except ARI, which falls a little below 0 for worse-than-chance clusterings),
on one k-nearest-neighbour search per embedding, cut to the neighbourhood sizes
scib-metrics' Benchmarker uses (15, 50 and 90 cells, self included):

bio-conservation
    ``nmi_leiden``, ``ari_leiden``: Leiden clusterings of the 15-neighbour
    graph at resolutions 0.2, 0.4, ..., 2.0, the one with the best NMI;
    ``silhouette_label``: cell-type ASW rescaled to [0, 1]; ``clisi``: scaled
    cell-type LISI on 90 neighbours; ``isolated_labels``: ASW of the labels
    present in the fewest batches.
batch correction
    ``silhouette_batch``: batch ASW within each cell type; ``ilisi``: scaled
    batch LISI on 90 neighbours; ``kbet``: kBET acceptance rate per cell type
    on 50 neighbours (diffusion-map neighbours within each type);
    ``graph_connectivity``: per cell type, on 15 neighbours.

Aggregates as in scIB (Luecken et al. 2022, Nature Methods) and scib-metrics'
Benchmarker: bio = mean of the bio metrics, batch = mean of the batch metrics,
total = 0.6 * bio + 0.4 * batch; when one group has no metric (its labels are
missing), total = the other group's mean, with a note.

Speed, with the same definitions (measured in ``bench/evaluation_time.py``).
scib-metrics' jax kernels compile anew for every array shape (the silhouette
and the kBET test run once per cell type, on subsets of different sizes, for
every embedding width), and pynndescent and umap-learn compile numba code in
every fresh process: a minute or more for five small embeddings. So
``install_fast_kernels`` swaps four kernels under scib-metrics' metric
functions, which keep their own logic (subsetting, scaling, aggregation):

- the kNN search is exact (scikit-learn) up to ``EXACT_KNN_MAX_CELLS`` cells,
  also for kBET's diffusion-map neighbours (scib-metrics' pynndescent above);
- silhouettes are scikit-learn's ``silhouette_samples``, which scib-metrics'
  jax function reimplements (same definition, 0 for singleton clusters);
- kBET's chi-square test and LISI's Simpson index (the perplexity bisection)
  are the same computations in numpy (float64), so no jax code runs at all;

``kernel_differences`` compares them with scib-metrics' own on random data
(differences 1e-7 to 4e-6), and the image build fails above 1e-4. kBET's
diffusion map also gets a fixed ARPACK start vector, so that scores do not
change from run to run. umap-learn's numba kernels are made cacheable, and the
image build runs ``python -m multiverse_methods.scoring`` once to fill a numba
cache (and matplotlib's font list) that ``evaluate`` copies to the writable
``NUMBA_CACHE_DIR`` (``MPLCONFIGDIR``) at start.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import time
import traceback
import warnings
from pathlib import Path

log = logging.getLogger("multiverse_methods.scoring")

EMBEDDING_KEY = "X_emb"

#: Metric keys, in display order, with their display names.
BIO_METRICS = {
    "nmi_leiden": "Leiden NMI",
    "ari_leiden": "Leiden ARI",
    "silhouette_label": "Silhouette label",
    "clisi": "cLISI",
    "isolated_labels": "Isolated labels",
}
BATCH_METRICS = {
    "silhouette_batch": "Silhouette batch",
    "ilisi": "iLISI",
    "kbet": "kBET",
    "graph_connectivity": "Graph connectivity",
}
#: Why a metric can come out undefined (NaN) although its labels are present.
UNDEFINED = {
    "kbet": "no cell type has 10 or more cells from more than one batch (kBET tests only those)",
}
#: scIB's weighting (Luecken et al. 2022), also scib-metrics' Benchmarker's.
BIO_WEIGHT, BATCH_WEIGHT = 0.6, 0.4
#: Neighbourhood sizes of scib-metrics' Benchmarker, all cut from one 90-NN search.
K_CLUSTER, K_KBET, K_LISI = 15, 50, 90
#: Above this many cells the kNN search is scib-metrics' pynndescent (approximate).
EXACT_KNN_MAX_CELLS = 50_000
#: Caches filled at image build (``numba/``, ``matplotlib/``), copied to NUMBA_CACHE_DIR and MPLCONFIGDIR at start.
PREWARMED_CACHES = Path(os.environ.get("MULTIVERSE_PREWARMED_CACHES", "/opt/multiverse/caches"))


# --------------------------------------------------------------------------- environment


def seed_caches() -> None:
    """Copy the numba and matplotlib caches made at image build to NUMBA_CACHE_DIR and MPLCONFIGDIR."""
    for name, variable in (("numba", "NUMBA_CACHE_DIR"), ("matplotlib", "MPLCONFIGDIR")):
        source, target = PREWARMED_CACHES / name, os.environ.get(variable)
        if not target or not source.is_dir() or Path(target).resolve() == source.resolve():
            continue
        try:
            shutil.copytree(source, target, dirs_exist_ok=True)
        except OSError as exc:  # a cold cache only costs time
            print(f"could not copy the {name} cache to {target}: {exc}", file=sys.stderr)


def enable_numba_caching() -> int:
    """Let umap-learn's numba kernels use the on-disk cache; returns how many were switched.

    umap-learn declares most kernels without ``cache=True``, so a fresh
    container compiles them again (10-20 s here). ``Dispatcher.enable_caching``
    is what ``cache=True`` does; it is called before anything is compiled.
    """
    import umap.layouts
    import umap.spectral
    import umap.umap_
    import umap.utils
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    count, seen = 0, set()
    for module in (umap.umap_, umap.layouts, umap.utils, umap.spectral):
        for obj in list(vars(module).values()):
            if isinstance(obj, Dispatcher) and id(obj) not in seen:
                seen.add(id(obj))
                if isinstance(obj._cache, NullCache):
                    obj.enable_caching()
                    count += 1
    return count


def quiet_libraries() -> None:
    import scib_metrics

    scib_metrics.settings.verbosity = logging.WARNING
    for name in ("jax", "absl", "numba", "h5py", "matplotlib", "PIL", "umap", "pynndescent"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*(n_jobs|random_state|cannot cache).*")
    try:
        from numba.core.errors import NumbaWarning

        warnings.filterwarnings("ignore", category=NumbaWarning)
    except ImportError:  # pragma: no cover
        pass


# --------------------------------------------------------------------------- faster kernels, same results

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
    if n > EXACT_KNN_MAX_CELLS and "pynndescent" in _ORIGINAL:
        return _ORIGINAL["pynndescent"](X, n_neighbors=n_neighbors, random_state=random_state, n_jobs=n_jobs)
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
    return NeighborsResults(indices=indices.astype(np.int64), distances=distances.astype(np.float32))


def sklearn_silhouette_samples(
    X, labels, chunk_size: int = 256, metric: str = "euclidean", between_cluster_distances: str = "nearest"
):
    """scikit-learn's ``silhouette_samples`` behind scib-metrics' signature.

    scib-metrics' jax function implements this definition (``nearest``,
    Euclidean or cosine, 0 for singleton clusters) but compiles anew for every
    array shape. Other variants (BRAS) and degenerate label sets go to it.
    """
    import numpy as np
    import pandas as pd
    from sklearn.metrics import silhouette_samples

    codes = np.asarray(pd.Categorical(np.asarray(labels)).codes)
    n_labels = len(np.unique(codes))
    if (
        between_cluster_distances != "nearest"
        or metric not in ("euclidean", "cosine")
        or not 2 <= n_labels <= X.shape[0] - 1
    ):
        return _ORIGINAL["silhouette_samples"](X, labels, chunk_size, metric, between_cluster_distances)
    return silhouette_samples(np.asarray(X, dtype=np.float64), codes, metric=metric).astype(np.float32)


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

    Without one, ARPACK starts from a random vector of its own, and kBET of a
    cell type with nearly equal eigenvalues changes from run to run.
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
        return _ORIGINAL["compute_eigen"](*args, **kwargs)
    finally:
        sparse_linalg.eigsh = original


def install_fast_kernels() -> list[str]:
    """Route scib-metrics' kernels (kNN, silhouette, kBET test, Simpson index) to the equivalents above.

    Written against scib-metrics 0.5.10 (pinned); the image build checks the equivalence.
    """
    import scib_metrics.metrics._isolated_labels as isolated_module
    import scib_metrics.metrics._kbet as kbet_module
    import scib_metrics.metrics._lisi as lisi_module
    import scib_metrics.metrics._silhouette as silhouette_module
    import scib_metrics.nearest_neighbors as nn_module
    import scib_metrics.utils._diffusion_nn as diffusion_module

    if not _ORIGINAL:
        _ORIGINAL["pynndescent"] = nn_module.pynndescent
        _ORIGINAL["silhouette_samples"] = silhouette_module.silhouette_samples
        _ORIGINAL["kbet"] = kbet_module.kbet
        nn_module.pynndescent = exact_knn  # kbet_per_label's diffusion-map neighbours
        kbet_module.kbet = numpy_kbet  # kbet_per_label's test on each cell type
        _ORIGINAL["compute_simpson_index"] = lisi_module.compute_simpson_index
        lisi_module.compute_simpson_index = numpy_simpson_index  # cLISI, iLISI
        _ORIGINAL["compute_eigen"] = diffusion_module._compute_eigen
        diffusion_module._compute_eigen = seeded_compute_eigen  # reproducible kBET
        silhouette_module.silhouette_samples = sklearn_silhouette_samples  # silhouette_label, silhouette_batch
        isolated_module.silhouette_samples = sklearn_silhouette_samples  # isolated_labels
    return ["exact kNN (scikit-learn)", "silhouette (scikit-learn)", "kBET test (numpy)",
            "LISI (numpy)", "seeded diffusion map (kBET)"]


def kernel_differences(seed: int = 0) -> dict[str, float]:
    """Largest differences between the replacements above and scib-metrics' own kernels, on random data."""
    import numpy as np

    install_fast_kernels()
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 8)).astype(np.float32)
    labels = rng.integers(0, 7, size=300).astype(str)
    labels[0] = "singleton"
    silhouette = np.abs(sklearn_silhouette_samples(X, labels) - _ORIGINAL["silhouette_samples"](X, labels))
    knn = exact_knn(X + np.eye(8, dtype=np.float32)[rng.integers(0, 3, size=300)], n_neighbors=31)
    batches = rng.choice(["a", "b", "c"], size=300, p=[0.5, 0.3, 0.2])
    ours, theirs = numpy_kbet(knn, batches), _ORIGINAL["kbet"](knn, batches)
    lisi_labels = rng.integers(0, 5, size=300)
    ours_lisi = numpy_simpson_index(knn.distances, knn.indices, np.arange(300)[:, None], lisi_labels, 5, 10)
    theirs_lisi = _ORIGINAL["compute_simpson_index"](knn.distances, knn.indices, np.arange(300)[:, None],
                                                     lisi_labels, 5, 10)
    return {
        "silhouette": float(silhouette.max()),
        "simpson_index": float(np.max(np.abs(ours_lisi - theirs_lisi))),
        "kbet_statistic_relative": float(np.max(np.abs(ours[1] - theirs[1]) / np.maximum(1, np.abs(theirs[1])))),
        "kbet_p_value": float(np.max(np.abs(ours[2] - theirs[2]))),
        "kbet_acceptance": float(abs(ours[0] - theirs[0])),
    }


# --------------------------------------------------------------------------- scores


def _as_score(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def score_embedding(
    X,
    cell_type=None,
    batch=None,
    *,
    no_cell_type: str | None = None,
    no_batch: str | None = None,
    seed: int = 0,
    threads: int = 1,
) -> dict:
    """Every metric of one embedding (value or None), why missing ones are missing, aggregates, timing.

    ``cell_type`` / ``batch``: arrays of labels, or None with the reason in
    ``no_cell_type`` / ``no_batch``. Call ``install_fast_kernels()`` first.
    """
    import numpy as np
    import scib_metrics

    values: dict[str, float | None] = {name: None for name in (*BIO_METRICS, *BATCH_METRICS)}
    skipped: dict[str, str] = {}
    errors: dict[str, str] = {}
    timing: dict[str, float] = {}
    n = X.shape[0]
    if cell_type is None:
        no_cell_type = f"no cell-type labels: {no_cell_type or 'none given'}"
    else:
        no_cell_type = None
    if batch is None:
        no_batch = f"no batch labels: {no_batch or 'none given'}"
    else:
        no_batch = None

    not_shared = None
    if cell_type is not None and batch is not None:
        cell_type, batch = np.asarray(cell_type), np.asarray(batch)
        if not any(len(np.unique(batch[cell_type == t])) > 1 for t in np.unique(cell_type)):
            not_shared = "no cell type is present in more than one batch"

    start = time.perf_counter()
    knn = exact_knn(X, n_neighbors=min(K_LISI, n), random_state=seed, n_jobs=threads)
    knn15 = knn.subset_neighbors(min(K_CLUSTER, knn.n_neighbors))
    knn50 = knn.subset_neighbors(min(K_KBET, knn.n_neighbors))
    timing["knn"] = time.perf_counter() - start

    def run(names, fn, *needs):
        reasons = [reason for reason in needs if reason]
        if reasons:
            skipped.update({name: reasons[0] for name in names})
            return
        start = time.perf_counter()
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - one metric failing does not sink the others
            log.warning("%s failed: %s\n%s", "/".join(names), exc, traceback.format_exc())
            errors.update({name: f"{type(exc).__name__}: {exc}" for name in names})
            return
        finally:
            timing["/".join(names)] = time.perf_counter() - start
        for name, value in zip(names, result if isinstance(result, tuple) else (result,)):
            values[name] = _as_score(value)
            if values[name] is None:
                skipped[name] = UNDEFINED.get(name, f"undefined for these labels (the metric returned {value!r})")

    def leiden():
        jobs = threads if n >= 20_000 else 1  # joblib's worker start-up costs more than it saves on small data
        result = scib_metrics.nmi_ari_cluster_labels_leiden(knn15, cell_type, optimize_resolution=True,
                                                            n_jobs=jobs, seed=seed)
        return result["nmi"], result["ari"]

    # bio conservation
    run(("nmi_leiden", "ari_leiden"), leiden, no_cell_type)
    run(("silhouette_label",), lambda: scib_metrics.silhouette_label(X, cell_type), no_cell_type)
    run(("clisi",), lambda: scib_metrics.clisi_knn(knn, cell_type), no_cell_type)
    run(("isolated_labels",), lambda: scib_metrics.isolated_labels(X, cell_type, batch), no_cell_type, no_batch)
    # batch correction: all but iLISI compare batches within each cell type
    per_type = no_cell_type and f"defined per cell type; {no_cell_type}"
    run(("silhouette_batch",), lambda: scib_metrics.silhouette_batch(X, cell_type, batch),
        no_batch, per_type, not_shared)
    run(("ilisi",), lambda: scib_metrics.ilisi_knn(knn, batch), no_batch)
    run(("kbet",), lambda: scib_metrics.kbet_per_label(knn50, batch, cell_type), no_batch, per_type, not_shared)
    run(("graph_connectivity",), lambda: scib_metrics.graph_connectivity(knn15, cell_type), no_batch, per_type)

    aggregates, notes = aggregate(values)
    return {
        "metrics": values,
        "skipped": skipped,
        "errors": errors,
        "aggregates": aggregates,
        "notes": notes,
        "timing_s": {name: round(seconds, 3) for name, seconds in timing.items()},
    }


def aggregate(values: dict) -> tuple[dict, list[str]]:
    """bio = mean of the bio metrics computed, batch likewise, total = 0.6 bio + 0.4 batch."""
    notes = []

    def mean_of(group: str, names) -> float | None:
        got = [values[name] for name in names if values.get(name) is not None]
        if got and len(got) < len(names):
            missing = ", ".join(name for name in names if values.get(name) is None)
            notes.append(f"{group} is the mean of {len(got)} of {len(names)} metrics (missing: {missing})")
        return sum(got) / len(got) if got else None

    bio = mean_of("bio conservation", BIO_METRICS)
    batch = mean_of("batch correction", BATCH_METRICS)
    if bio is not None and batch is not None:
        total = BIO_WEIGHT * bio + BATCH_WEIGHT * batch
    elif bio is not None:
        total = bio
        notes.append("total = bio conservation alone: no batch-correction metric could be computed")
    elif batch is not None:
        total = batch
        notes.append("total = batch correction alone: no bio-conservation metric could be computed")
    else:
        total = None
        notes.append("no metric could be computed")
    return {"bio_conservation": bio, "batch_correction": batch, "total": total}, notes


def compute_umap(X, seed: int):
    """2-D UMAP coordinates of one embedding: scanpy's neighbours (15) on it, then ``tl.umap``."""
    import anndata
    import numpy as np
    import pandas as pd
    import scanpy as sc

    adata = anndata.AnnData(obs=pd.DataFrame(index=pd.RangeIndex(X.shape[0]).astype(str)))
    adata.obsm[EMBEDDING_KEY] = np.asarray(X, dtype=np.float32)
    sc.pp.neighbors(adata, use_rep=EMBEDDING_KEY, n_neighbors=min(15, X.shape[0] - 1), random_state=seed)
    sc.tl.umap(adata, random_state=seed)
    return np.asarray(adata.obsm["X_umap"], dtype=np.float32)


# --------------------------------------------------------------------------- image build


def warmup() -> int:
    """At image build: compile and cache the numba kernels, and check the replacement kernels.

    Run with NUMBA_CACHE_DIR and MPLCONFIGDIR in ``PREWARMED_CACHES``. Only this module
    (and the libraries) are copied into the image before it runs, so a change to
    ``evaluate.py`` does not repeat it.
    """
    import numpy as np

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    start = time.perf_counter()
    import matplotlib.font_manager  # noqa: F401 - builds matplotlib's font list in MPLCONFIGDIR

    quiet_libraries()
    enable_numba_caching()
    install_fast_kernels()
    rng = np.random.default_rng(0)
    n = 400
    cell_type = rng.integers(0, 8, size=n)
    batch = rng.choice(["a", "b"], size=n)
    for dim in (10, 30):
        X = (np.eye(8)[cell_type] @ rng.normal(size=(8, dim)) + rng.normal(scale=0.5, size=(n, dim)))
        X = X.astype(np.float32)
        result = score_embedding(X, cell_type.astype(str), batch, seed=0)
        compute_umap(X, seed=0)
        log.info("warm-up, %d dimensions: %s", dim, result["aggregates"])
    differences = kernel_differences()
    log.info("largest differences from scib-metrics' own kernels: %s", differences)
    log.info("warm-up done in %.1f s", time.perf_counter() - start)
    too_far = {name: value for name, value in differences.items() if value > 1e-4}
    if too_far:
        log.error("the replacement kernels do not match scib-metrics' own: %s", too_far)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(warmup())
