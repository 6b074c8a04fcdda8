"""PCA baseline (scanpy): per-modality normalisation, scaling, balanced weighting.

Each modality is normalised as suits its kind (RNA log-normalised, ATAC TF-IDF,
ADT the CLR of Stoeckius et al.; see ``preprocess``), reduced to its selected
features (RNA: the genes of highest dispersion, ATAC: the most frequently open
peaks), centred and scaled to unit variance per feature (clipped at +-10 like
``sc.pp.scale(max_value=10)``), and weighted so every modality contributes the
same total variance; PCA (what ``sc.pp.pca`` runs: scikit-learn's, arpack, seeded)
then runs on the concatenation. Only the selected features are ever dense, in one
float32 matrix that PCA centres in place.
"""

from __future__ import annotations

import logging

import numpy as np

from multiverse_methods import preprocess
from multiverse_methods.contract import Dataset, MethodResult
from multiverse_methods.params import PcaParams

PACKAGES = ("scanpy", "anndata", "mudata", "numpy", "scipy", "scikit-learn")
log = logging.getLogger("multiverse_methods.pca")


def selected_features(adata, name: str, kind: str, params: PcaParams):
    """The normalised, selected features of one modality that vary across cells: a sparse matrix
    (float32) and each column's mean and standard deviation (float64)."""
    x, is_counts = preprocess.expression(adata, name)
    nonempty = preprocess.drop_empty_features(x)
    keep = (
        preprocess.select_features(x, kind, params.n_top_genes, params.n_top_peaks, among=nonempty)
        if is_counts else nonempty
    )
    # Normalised with per-cell terms from every feature (library sizes, TF-IDF), then selected.
    y = preprocess.normalize(x, kind, is_counts, columns=keep)
    varying = np.flatnonzero(y.max(axis=0).toarray().ravel() != y.min(axis=0).toarray().ravel())
    if varying.size < y.shape[1]:
        y = y[:, varying]
    mean, var = preprocess.column_mean_var(y)
    log.info("%s (%s): %d features after selection", name, kind, y.shape[1])
    return y, mean, np.sqrt(var)


def _column_chunks(width: int, size: int = 1024):
    return (slice(start, min(start + size, width)) for start in range(0, width, size))


def fill_block(block: np.ndarray, y, mean: np.ndarray, sd: np.ndarray, weighting: str) -> None:
    """Write the scaled modality into ``block`` (a Fortran-ordered float32 slice of the joint matrix):
    centred, unit variance, clipped at +-10 like ``sc.pp.scale(max_value=10)``, then weighted so the
    modality's total variance is 1 ("balanced"). Column chunks keep every float64 temporary small."""
    for cols in _column_chunks(block.shape[1], 4096):  # no CSC copy of the whole of y
        block[:, cols] = y[:, cols].toarray()
    mean32, sd32 = mean.astype(np.float32), sd.astype(np.float32)
    total = 0.0
    for cols in _column_chunks(block.shape[1]):
        chunk = block[:, cols]
        chunk -= mean32[cols]
        chunk /= sd32[cols]
        np.clip(chunk, -10, 10, out=chunk)
        total += float(chunk.var(axis=0, dtype=np.float64).sum())
    if weighting == "balanced":
        block /= np.float32(np.sqrt(total))


def fit(data: Dataset, params: PcaParams) -> MethodResult:
    from sklearn.decomposition import PCA

    parts = []
    for name, adata in data.modalities.items():
        parts.append(selected_features(adata, name, data.kinds[name], params))
        data.release(name)  # the input matrix is no longer needed
    width = sum(y.shape[1] for y, _, _ in parts)
    # One dense matrix, the only one: each modality is written into its columns (Fortran order
    # makes each modality's slice contiguous) and PCA works on it in place.
    joint = np.empty((data.n_obs, width), dtype=np.float32, order="F")
    start = 0
    while parts:
        y, mean, sd = parts.pop(0)
        fill_block(joint[:, start:start + y.shape[1]], y, mean, sd, params.weighting)
        start += y.shape[1]
        del y
    n_comps = min(params.n_components, joint.shape[0] - 1, joint.shape[1] - 1)
    if n_comps < params.n_components:
        log.warning("n_components lowered from %d to %d (data too small)", params.n_components, n_comps)
    # What sc.pp.pca(zero_center=True, svd_solver="arpack") runs on a dense matrix (scanpy 1.11:
    # scikit-learn's PCA, seeded the same), without its copy of the input: copy=False centres it
    # in place, which halves the peak memory.
    pca_ = PCA(n_components=n_comps, svd_solver="arpack", random_state=params.seed, copy=False)
    embedding = pca_.fit_transform(joint).astype(np.float32)
    del joint
    ratio = pca_.explained_variance_ratio_
    log.info("PCA: %d components explain %.1f%% of the variance", n_comps, 100 * ratio.sum())
    return MethodResult(
        embedding=embedding,
        extra_metrics={"variance_ratio": [round(float(v), 5) for v in ratio]},
    )
