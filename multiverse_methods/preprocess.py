"""Per-modality preprocessing shared by the methods.

RNA: library-size normalisation and log1p; ATAC: TF-IDF (two variants, below);
ADT: a centred log-ratio (two variants, below). Feature selection: the genes of
highest dispersion, the most frequently open peaks, or scanpy's highly variable
features. numpy/scipy (scanpy only for ``highly_variable_seurat``); works with the
old numpy/scipy/scanpy of the Mowgli image as well.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from multiverse_methods.contract import NotApplicable


def _is_integral(x) -> bool:
    values = x.data if sp.issparse(x) else np.asarray(x)
    sample = values[: 1_000_000]
    return bool(np.all(sample >= 0) and np.all(np.equal(np.mod(sample, 1), 0)))


def counts(adata, name: str, required: bool = True):
    """Raw counts of a modality: ``layers["counts"]`` when present, else ``.X`` if it holds counts.

    Returns a float32 CSR matrix, or None when ``required`` is False and no counts exist.
    """
    if "counts" in adata.layers:
        x = adata.layers["counts"]
    elif _is_integral(adata.X):
        x = adata.X
    elif required:
        raise NotApplicable(
            f"modality '{name}' has no raw counts: layers['counts'] is missing and .X is not "
            "integer-valued; this method models counts"
        )
    else:
        return None
    x = sp.csr_matrix(x, dtype=np.float32)
    if x.data.size and x.data.min() < 0:
        raise NotApplicable(f"modality '{name}' has negative counts")
    return x


def expression(adata, name: str):
    """Counts if available, otherwise the (already normalised) ``.X``; float32 CSR."""
    x = counts(adata, name, required=False)
    if x is None:
        return sp.csr_matrix(adata.X, dtype=np.float32), False
    return x, True


def log_normalize(x, target_sum: float = 1e4):
    x = sp.csr_matrix(x, dtype=np.float32, copy=True)
    lib = np.asarray(x.sum(axis=1)).ravel()
    lib[lib == 0] = 1.0
    x = sp.diags((target_sum / lib).astype(np.float32)) @ x
    x.data = np.log1p(x.data)
    return x.tocsr()


def tfidf(x):
    """TF-IDF of binarised accessibility: log1p(1e4 * tf * idf).

    tf = open peaks of the cell / peaks open in the cell, idf = log(1 + n_cells /
    (1 + cells in which the peak is open)).
    """
    x = sp.csr_matrix(x, dtype=np.float32, copy=True)
    x.data[:] = 1.0  # accessibility as binary
    per_cell = np.asarray(x.sum(axis=1)).ravel()
    per_cell[per_cell == 0] = 1.0
    per_peak = np.asarray(x.sum(axis=0)).ravel()
    idf = np.log1p(x.shape[0] / (1.0 + per_peak)).astype(np.float32)
    x = sp.diags((1.0 / per_cell).astype(np.float32)) @ x @ sp.diags(idf)
    x = x.tocsr()
    x.data = np.log1p(x.data * 1e4)
    return x


def tfidf_log_tf_log_idf(x):
    """TF-IDF of accessibility counts as muon's ``atac.pp.tfidf`` defaults compute it.

    log1p(1e4 * counts / counts of the cell) * log1p(n_cells / counts of the peak),
    on the counts themselves (not binarised). Mowgli's authors preprocess ATAC so.
    """
    x = sp.csr_matrix(x, dtype=np.float64, copy=True)
    per_cell = np.asarray(x.sum(axis=1)).ravel()
    per_cell[per_cell == 0] = 1.0
    per_peak = np.asarray(x.sum(axis=0)).ravel()
    idf = np.log1p(x.shape[0] / np.where(per_peak > 0, per_peak, np.inf))
    x = (sp.diags(1e4 / per_cell) @ x).tocsr()
    x.data = np.log1p(x.data)
    return (x @ sp.diags(idf)).tocsr().astype(np.float32)


def clr(x):
    """The CLR of Stoeckius et al. (2017), per cell: log(1 + x) minus its mean over the cell's proteins.

    Negative values occur. (muon's ``prot.pp.clr(flavor="stoeckius", axis=1)``.)
    """
    dense = np.log1p(np.asarray(sp.csr_matrix(x).toarray(), dtype=np.float32))
    return sp.csr_matrix(dense - dense.mean(axis=1, keepdims=True))


def clr_seurat(x, axis: int = 0) -> np.ndarray:
    """Seurat's CLR: log1p(x / exp(mean(log1p(x)))), never negative; dense float64.

    ``axis=0`` (muon's ``prot.pp.clr`` default, Seurat's ``margin = 1``): each
    protein across the cells. ``axis=1`` (Seurat's ``margin = 2``): each cell
    across its proteins.
    """
    dense = np.asarray(sp.csr_matrix(x).toarray(), dtype=np.float64)
    geometric = np.exp(np.log1p(dense).mean(axis=axis, keepdims=True))
    return np.log1p(dense / geometric)


def top_variable(x, n: int) -> np.ndarray:
    """Indices of the n features with the highest dispersion (variance / mean) of x.

    On log-normalised expression, a plain ranking: unlike Seurat's (and scanpy's
    "seurat" flavour) dispersions are not normalised within bins of mean expression.
    """
    if n <= 0 or n >= x.shape[1]:
        return np.arange(x.shape[1])
    mean = np.asarray(x.mean(axis=0)).ravel()
    sq = x.multiply(x) if sp.issparse(x) else x * x
    var = np.asarray(sq.mean(axis=0)).ravel() - mean**2
    dispersion = np.where(mean > 0, var / np.maximum(mean, 1e-12), 0.0)
    return np.sort(np.argsort(-dispersion, kind="stable")[:n])


def highly_variable_seurat(x, n: int) -> np.ndarray:
    """Indices of the n most variable features of log-normalised data x, as scanpy picks them.

    scanpy's ``highly_variable_genes(flavor="seurat", n_top_genes=n)``: dispersions
    of expm1(x), normalised within 20 bins of mean expression, ranked. Needs scanpy
    (every method image has it).
    """
    if n <= 0 or n >= x.shape[1]:
        return np.arange(x.shape[1])
    import anndata
    import scanpy as sc

    adata = anndata.AnnData(X=sp.csr_matrix(x, dtype=np.float32))
    sc.pp.highly_variable_genes(adata, flavor="seurat", n_top_genes=n)
    return np.flatnonzero(adata.var["highly_variable"].to_numpy())


def top_frequent(x, n: int) -> np.ndarray:
    """Indices of the n features non-zero in the most cells."""
    if n <= 0 or n >= x.shape[1]:
        return np.arange(x.shape[1])
    detected = np.asarray((x > 0).sum(axis=0)).ravel()
    return np.sort(np.argsort(-detected, kind="stable")[:n])


def select_features(x, kind: str, n_top_genes: int, n_top_peaks: int) -> np.ndarray:
    """Feature selection on counts: the genes of highest dispersion of the log-normalised
    RNA, the most frequently open peaks; ADT keeps every protein."""
    if kind == "rna":
        return top_variable(log_normalize(x), n_top_genes)
    if kind == "atac":
        return top_frequent(x, n_top_peaks)
    return np.arange(x.shape[1])


def normalize(x, kind: str, is_counts: bool = True):
    """The normalisation suited to the modality kind; already-normalised data pass through."""
    if not is_counts:
        return sp.csr_matrix(x, dtype=np.float32)
    if kind == "rna":
        return log_normalize(x)
    if kind == "atac":
        return tfidf(x)
    if kind == "adt":
        return clr(x)
    raise NotApplicable(f"unknown modality kind {kind!r}")


def drop_empty_features(x) -> np.ndarray:
    """Indices of features detected in at least one cell."""
    return np.flatnonzero(np.asarray((x != 0).sum(axis=0)).ravel() > 0)
