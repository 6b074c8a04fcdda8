"""PCA baseline (scanpy): per-modality normalisation, scaling, balanced weighting.

Each modality is normalised as suits its kind (RNA log-normalised, ATAC TF-IDF,
ADT the CLR of Stoeckius et al.; see ``preprocess``), reduced to its selected
features (RNA: the genes of highest dispersion, ATAC: the most frequently open
peaks), centred and scaled to unit variance per feature (clipped at +-10 like
``sc.pp.scale(max_value=10)``), and weighted so every modality contributes the
same total variance; PCA (what ``sc.pp.pca`` runs: scikit-learn's, arpack, seeded)
then runs on the concatenation. The input is read from the file block by block of
cells (the entry point reads no matrix for PCA), twice per modality: once for the
statistics of the selection, once to write the selected, normalised features
straight into the one dense float32 matrix that PCA then centres in place. Only
that matrix and one block of cells are ever held.
"""

from __future__ import annotations

import logging

import numpy as np

from multiverse_methods import preprocess
from multiverse_methods.contract import Dataset, MethodResult
from multiverse_methods.params import PcaParams

PACKAGES = ("scanpy", "anndata", "mudata", "numpy", "scipy", "scikit-learn")
log = logging.getLogger("multiverse_methods.pca")


def _column_chunks(width: int, size: int = 1024):
    return (slice(start, min(start + size, width)) for start in range(0, width, size))


def scale_block(block: np.ndarray, weighting: str) -> np.ndarray:
    """Scale one modality's normalised features in place (``block``: its Fortran-ordered float32 slice
    of the joint matrix): centred, unit variance, clipped at +-10 like ``sc.pp.scale(max_value=10)``,
    then weighted so the modality's total variance is 1 ("balanced"). Returns the indices (into the
    block) of the features that vary; constant ones carry nothing and are dropped later. Column
    chunks keep every float64 temporary small."""
    varying, total = [], 0.0
    for cols in _column_chunks(block.shape[1]):
        chunk = block[:, cols]
        mean = chunk.mean(axis=0, dtype=np.float64)
        sd = np.sqrt(chunk.var(axis=0, dtype=np.float64))
        constant = chunk.max(axis=0) == chunk.min(axis=0)
        varying.append(np.flatnonzero(~constant) + cols.start)
        chunk -= mean.astype(np.float32)
        chunk /= np.where(constant, 1.0, sd).astype(np.float32)
        np.clip(chunk, -10, 10, out=chunk)
        total += float(chunk.var(axis=0, dtype=np.float64).sum())
    if weighting == "balanced" and total > 0:
        block /= np.float32(np.sqrt(total))
    return np.concatenate(varying) if varying else np.zeros(0, dtype=np.int64)


def _keep_columns(joint: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The leading columns of ``joint`` after moving the ``kept`` ones (increasing) to the front, in
    place: each column only moves left, onto columns already read."""
    if kept.size == joint.shape[1]:
        return joint
    for at in range(0, kept.size, 1024):
        cols = kept[at:at + 1024]
        joint[:, at:at + cols.size] = joint[:, cols]
    return joint[:, :kept.size]


def fit(data: Dataset, params: PcaParams) -> MethodResult:
    from sklearn.decomposition import PCA

    # Pass 1 over every modality: the statistics of its features and which ones to keep.
    chosen = {}
    for name in data.modalities:
        chosen[name] = preprocess.select(data.matrix(name), data.kinds[name], params.n_top_genes,
                                         params.n_top_peaks, name)
    width = sum(keep.size for keep, _ in chosen.values())
    # One dense matrix, the only one: pass 2 writes each modality's normalised, selected features
    # into its columns (Fortran order keeps each modality's slice contiguous), block by block of
    # cells; PCA then works on it in place.
    joint = np.empty((data.n_obs, width), dtype=np.float32, order="F")
    start, kept = 0, []
    for name, (keep, stats) in chosen.items():
        block = joint[:, start:start + keep.size]
        preprocess.write_normalized(data.matrix(name), data.kinds[name], keep, stats, block)
        data.release(name)  # the input matrix is no longer needed (when it was read at all)
        varying = scale_block(block, params.weighting)
        log.info("%s (%s): %d features after selection", name, data.kinds[name], varying.size)
        kept.append(varying + start)
        start += keep.size
    del chosen
    joint = _keep_columns(joint, np.concatenate(kept))
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
