"""Per-modality preprocessing shared by the methods.

RNA: library-size normalisation and log1p; ATAC: TF-IDF (two variants, below);
ADT: a centred log-ratio (two variants, below). Feature selection: the genes of
highest dispersion, the most frequently open peaks, or scanpy's highly variable
features. numpy/scipy (scanpy only for ``highly_variable_seurat``); works with the
old numpy/scipy/scanpy of the Mowgli image as well.

Memory: inputs are sparse CSR float32 of every feature (tens of thousands of genes,
about 100,000 peaks). Per-feature statistics are computed from the stored values
without copying the matrix, the normalisations take ``columns`` to return only the
selected features (their per-cell terms still computed on every feature), and
nothing is made dense before the selection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from multiverse_methods.contract import InMemoryMatrix, NotApplicable, looks_integral


def _is_integral(x) -> bool:
    return looks_integral(x.data if sp.issparse(x) else np.asarray(x).ravel())


def _no_counts(name: str) -> NotApplicable:
    return NotApplicable(
        f"modality '{name}' has no raw counts: layers['counts'] is missing and .X is not "
        "integer-valued; this method models counts"
    )


def require_counts(matrix, name: str):
    """The matrix (``Dataset.matrix``) if it holds raw counts; NotApplicable otherwise."""
    if not matrix.is_counts:
        raise _no_counts(name)
    return matrix


def counts(adata, name: str, required: bool = True):
    """Raw counts of a modality: ``layers["counts"]`` when present, else ``.X`` if it holds counts.

    Returns a float32 CSR matrix, or None when ``required`` is False and no counts exist.
    """
    if "counts" in adata.layers:
        x = adata.layers["counts"]
    elif _is_integral(adata.X):
        x = adata.X
    elif required:
        raise _no_counts(name)
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


def _columns(x, columns):
    """x restricted to ``columns`` (a copy of those columns only), or x itself for None."""
    return x if columns is None else x[:, columns]


def log_normalize(x, target_sum: float = 1e4, columns=None):
    """log1p(target_sum * counts / library size); library sizes over every feature, result on ``columns``."""
    x = sp.csr_matrix(x, dtype=np.float32)
    lib = np.asarray(x.sum(axis=1)).ravel()
    lib[lib == 0] = 1.0
    x = x.copy() if columns is None else x[:, columns]
    # Rows scaled in place on that one copy (the same float32 products as diag(s) @ x).
    x.data *= np.repeat((target_sum / lib).astype(np.float32), np.diff(x.indptr))
    np.log1p(x.data, out=x.data)
    return x


def tfidf(x, columns=None, per_peak=None, n_cells=None):
    """TF-IDF of binarised accessibility: log1p(1e4 * tf * idf).

    tf = open peaks of the cell / peaks open in the cell, idf = log(1 + n_cells /
    (1 + cells in which the peak is open)). ``per_peak`` and ``n_cells`` (of the whole
    matrix) let a block of its rows be normalised as the whole would be.
    """
    x = sp.csr_matrix(x, dtype=np.float32)
    # Every stored entry counts as open (as when the whole matrix was binarised first).
    per_cell = np.diff(x.indptr).astype(np.float32)
    per_cell[per_cell == 0] = 1.0
    if per_peak is None:
        per_peak = np.bincount(x.indices, minlength=x.shape[1])
    per_peak = np.asarray(per_peak).astype(np.float32)
    idf = np.log1p((x.shape[0] if n_cells is None else n_cells) / (1.0 + per_peak)).astype(np.float32)
    if columns is None:
        x = x.copy()
    else:
        x, idf = x[:, columns], idf[columns]
    x.data[:] = 1.0  # accessibility as binary
    # In place on that one copy: the same float32 products as diag(1 / per_cell) @ x @ diag(idf).
    x.data *= np.repeat((1.0 / per_cell).astype(np.float32), np.diff(x.indptr))
    x.data *= idf[x.indices]
    x.data *= np.float32(1e4)
    np.log1p(x.data, out=x.data)
    return x


def tfidf_log_tf_log_idf(x, columns=None):
    """TF-IDF of accessibility counts as muon's ``atac.pp.tfidf`` defaults compute it.

    log1p(1e4 * counts / counts of the cell) * log1p(n_cells / counts of the peak),
    on the counts themselves (not binarised). Mowgli's authors preprocess ATAC so.
    """
    x = sp.csr_matrix(x)
    per_cell = np.asarray(x.sum(axis=1, dtype=np.float64)).ravel()
    per_cell[per_cell == 0] = 1.0
    per_peak = np.asarray(x.sum(axis=0, dtype=np.float64)).ravel()
    idf = np.log1p(x.shape[0] / np.where(per_peak > 0, per_peak, np.inf))
    if columns is not None:
        idf = idf[columns]
    # float64 on the selected columns only, as before on all of them.
    x = (sp.diags(1e4 / per_cell) @ sp.csr_matrix(_columns(x, columns), dtype=np.float64)).tocsr()
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


def _among(x, among):
    return np.arange(x.shape[1]) if among is None else np.asarray(among)


#: Stored values processed at a time by the per-feature statistics: their float64
#: temporaries stay at ~100 MB whatever the size of the matrix.
CHUNK = 1 << 23


def _chunks(nnz: int):
    return (slice(start, min(start + CHUNK, nnz)) for start in range(0, nnz, CHUNK))


def nonzero_per_feature(x) -> np.ndarray:
    """Cells in which each feature is non-zero, without copying the matrix."""
    if not sp.issparse(x):
        return np.count_nonzero(np.asarray(x), axis=0)
    x = sp.csr_matrix(x)
    counts = np.zeros(x.shape[1], dtype=np.int64)
    for part in _chunks(x.nnz):
        counts += np.bincount(x.indices[part][x.data[part] != 0], minlength=x.shape[1])
    return counts


def column_mean_var(x) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) variance of every column, from the stored values alone."""
    if sp.issparse(x):
        x = sp.csr_matrix(x)
        total = np.zeros(x.shape[1])
        sq = np.zeros(x.shape[1])
        for part in _chunks(x.nnz):
            values = x.data[part].astype(np.float64)
            total += np.bincount(x.indices[part], weights=values, minlength=x.shape[1])
            sq += np.bincount(x.indices[part], weights=np.square(values, out=values), minlength=x.shape[1])
    else:
        x = np.asarray(x)
        total, sq = x.sum(axis=0, dtype=np.float64), np.square(x, dtype=np.float64).sum(axis=0)
    mean = total / x.shape[0]
    return mean, sq / x.shape[0] - mean**2


def top_variable(x, n: int, among=None) -> np.ndarray:
    """Indices of the n features (of ``among``, default all) with the highest dispersion (variance / mean) of x.

    On log-normalised expression, a plain ranking: unlike Seurat's (and scanpy's
    "seurat" flavour) dispersions are not normalised within bins of mean expression.
    """
    among = _among(x, among)
    if n <= 0 or n >= among.size:
        return among
    return _top_dispersion(*column_mean_var(x), n, among)


def _top_dispersion(mean: np.ndarray, var: np.ndarray, n: int, among: np.ndarray) -> np.ndarray:
    mean, var = mean[among], var[among]
    dispersion = np.where(mean > 0, var / np.maximum(mean, 1e-12), 0.0)
    return among[np.sort(np.argsort(-dispersion, kind="stable")[:n])]


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


def top_frequent(x, n: int, among=None) -> np.ndarray:
    """Indices of the n features (of ``among``, default all) non-zero in the most cells (counts: > 0)."""
    among = _among(x, among)
    if n <= 0 or n >= among.size:
        return among
    return _most_detected(nonzero_per_feature(x), n, among)


def _most_detected(detected: np.ndarray, n: int, among: np.ndarray) -> np.ndarray:
    """The n of ``among`` detected in the most cells, in column order (ties: the first columns)."""
    return among[np.sort(np.argsort(-detected[among], kind="stable")[:n])]


def select_features(x, kind: str, n_top_genes: int, n_top_peaks: int, among=None) -> np.ndarray:
    """Feature selection on counts: the genes of highest dispersion of the log-normalised
    RNA, the most frequently open peaks; ADT keeps every protein. Indices into x's columns,
    chosen among ``among`` (e.g. the non-empty features; default all)."""
    among = _among(x, among)
    if kind == "rna":
        if n_top_genes <= 0 or n_top_genes >= among.size:
            return among
        # Dispersions of the log-normalised genes, block by block: no log-normalised copy of x.
        stats = scan(InMemoryMatrix(sp.csr_matrix(x, dtype=np.float32), True), "rna")
        return _top_dispersion(*stats.lognorm_mean_var(), n_top_genes, among)
    if kind == "atac":
        return top_frequent(x, n_top_peaks, among)
    return among


def normalize(x, kind: str, is_counts: bool = True, columns=None):
    """The normalisation suited to the modality kind, of the features ``columns`` (default all);
    per-cell terms are computed on every feature. Already-normalised data pass through."""
    if not is_counts:
        return sp.csr_matrix(_columns(sp.csr_matrix(x), columns), dtype=np.float32)
    if kind == "rna":
        return log_normalize(x, columns=columns)
    if kind == "atac":
        return tfidf(x, columns=columns)
    if kind == "adt":
        return clr(_columns(sp.csr_matrix(x), columns))  # per cell over its proteins: all are kept
    raise NotApplicable(f"unknown modality kind {kind!r}")


def drop_empty_features(x) -> np.ndarray:
    """Indices of features detected in at least one cell."""
    return np.flatnonzero(nonzero_per_feature(x) > 0)


# ---------------------------------------------------------------- block by block

@dataclass
class FeatureScan:
    """Per-feature statistics of a whole matrix, gathered block by block of rows (one pass)."""

    n_cells: int
    nonzero: np.ndarray  # (F,) cells in which the feature is non-zero
    stored: np.ndarray  # (F,) stored entries (what TF-IDF counts as open)
    lognorm_sum: np.ndarray | None = None  # (F,) float64: sum of the log-normalised values (RNA counts)
    lognorm_sq: np.ndarray | None = None  # (F,) float64: sum of their squares
    max_value: float = 0.0  # the largest stored value

    def lognorm_mean_var(self) -> tuple[np.ndarray, np.ndarray]:
        mean = self.lognorm_sum / self.n_cells
        return mean, self.lognorm_sq / self.n_cells - mean**2


def scan(matrix, kind: str, name: str = "", lognorm: bool | None = None) -> FeatureScan:
    """One pass over a matrix (``contract.StoredMatrix`` or ``InMemoryMatrix``): what feature
    selection and the per-feature terms of the normalisations need. ``lognorm``: gather the
    log-normalised genes' sums (default: for RNA counts; False when only detection is needed)."""
    n_cells, n_features = matrix.shape
    nonzero = np.zeros(n_features, dtype=np.int64)
    stored = np.zeros(n_features, dtype=np.int64)
    lognorm = (kind == "rna" and matrix.is_counts) if lognorm is None else lognorm
    total = np.zeros(n_features) if lognorm else None
    sq = np.zeros(n_features) if lognorm else None
    top = 0.0
    for _, block in matrix.blocks():
        if matrix.is_counts and block.nnz and block.data.min() < 0:
            raise NotApplicable(f"modality '{name}' has negative counts")
        top = max(top, float(block.data.max())) if block.nnz else top
        nonzero += np.bincount(block.indices[block.data != 0], minlength=n_features)
        stored += np.bincount(block.indices, minlength=n_features)
        if lognorm:
            y = log_normalize(block)  # library sizes are per cell: a block's rows are normalised as in the whole
            values = y.data.astype(np.float64)
            total += np.bincount(y.indices, weights=values, minlength=n_features)
            sq += np.bincount(y.indices, weights=np.square(values, out=values), minlength=n_features)
            del y, values
    return FeatureScan(n_cells, nonzero, stored, total, sq, top)


def select(matrix, kind: str, n_top_genes: int, n_top_peaks: int, name: str = "") -> tuple[np.ndarray, FeatureScan]:
    """The features to keep (indices, as ``select_features`` on the whole matrix picks them; without
    counts every non-empty feature) and the statistics of one pass over ``matrix``."""
    stats = scan(matrix, kind, name)
    nonempty = np.flatnonzero(stats.nonzero > 0)
    keep = nonempty
    if matrix.is_counts and kind == "rna" and 0 < n_top_genes < nonempty.size:
        keep = _top_dispersion(*stats.lognorm_mean_var(), n_top_genes, nonempty)
    elif matrix.is_counts and kind == "atac" and 0 < n_top_peaks < nonempty.size:
        keep = _most_detected(stats.nonzero, n_top_peaks, nonempty)
    return keep, stats


def _normalized_block(block, kind: str, is_counts: bool, keep: np.ndarray, stats: FeatureScan) -> sp.csr_matrix:
    """A block of rows, normalised as the whole matrix would be, restricted to ``keep``."""
    if not is_counts:
        return sp.csr_matrix(block[:, keep], dtype=np.float32)
    if kind == "atac":  # the per-peak terms are the whole matrix's
        return tfidf(block, columns=keep, per_peak=stats.stored, n_cells=stats.n_cells)
    return sp.csr_matrix(normalize(block, kind, True, columns=keep), dtype=np.float32)  # per-cell terms only


def selected_normalized(matrix, kind: str, n_top_genes: int, n_top_peaks: int, name: str = "", chosen=None):
    """The normalised, selected features of a matrix, read block by block of rows (twice: once for
    the statistics, once for the selected columns): a float32 CSR in the Dataset's cell order and the
    indices of its columns. The same features and values as ``select_features`` then ``normalize`` on
    the whole matrix in memory, but only the selected features are ever held whole. ``chosen``: what
    ``select`` already returned for this matrix (the first pass is then skipped)."""
    keep, stats = chosen or select(matrix, kind, n_top_genes, n_top_peaks, name)
    parts = [_normalized_block(block, kind, matrix.is_counts, keep, stats) for _, block in matrix.blocks()]
    y = _stack_rows(parts, len(keep))
    if matrix.order is not None:
        y = y[matrix.order]
    return y, keep


def counts_dtype(max_value: float):
    """The narrowest type that holds counts up to ``max_value`` exactly (uint8, uint16, else float32).

    A 50,000-cell multiome input holds ~700 million ATAC counts, 5.6 GB as float32 with their
    int32 column indices, 3.5 GB as uint8: the methods that keep every feature (MultiVI, Cobolt)
    hold them compact and make each mini-batch float32 as they train."""
    if max_value <= np.iinfo(np.uint8).max:
        return np.uint8
    if max_value <= np.iinfo(np.uint16).max:
        return np.uint16
    return np.float32


def _as_type(block: sp.csr_matrix, dtype, name: str) -> sp.csr_matrix:
    if dtype == np.float32 or block.dtype == dtype:
        return sp.csr_matrix(block, dtype=dtype)
    values = block.data.astype(dtype)
    if not np.array_equal(values, block.data):  # only whole numbers go into an integer type
        raise NotApplicable(f"modality '{name}': its counts are not all whole numbers")
    return sp.csr_matrix((values, block.indices, block.indptr), shape=block.shape)


def selected_raw(matrix, keep: np.ndarray, dtype=np.float32, name: str = "", stats: FeatureScan | None = None):
    """The columns ``keep`` of a matrix as stored (counts, or .X), read block by block: a CSR of
    ``dtype`` (float32, or a ``counts_dtype`` for counts) in the Dataset's cell order.

    With the matrix's ``stats`` the result's size is known before reading, and each block is
    written straight into it: nothing but the result and one block is ever held (gathering the
    blocks first held twice the result at the end, and the allocator did not give it all back)."""
    if stats is None:
        y = _stack_rows([_as_type(block[:, keep], dtype, name) for _, block in matrix.blocks()], len(keep), dtype)
    else:
        y = _fill_rows(matrix, keep, dtype, name, int(stats.stored[keep].sum()))
    return y if matrix.order is None else y[matrix.order]


def _fill_rows(matrix, keep: np.ndarray, dtype, name: str, nnz: int) -> sp.csr_matrix:
    n_rows = matrix.shape[0]
    data = np.empty(nnz, dtype=dtype)
    indices = np.empty(nnz, dtype=np.int32 if len(keep) < 2**31 else np.int64)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    at = 0
    for start, block in matrix.blocks():
        part = _as_type(block[:, keep], dtype, name)
        if at + part.nnz > nnz:
            raise RuntimeError(f"modality '{name}' changed while it was read: more values than its first pass found")
        data[at:at + part.nnz] = part.data
        indices[at:at + part.nnz] = part.indices
        indptr[start + 1:start + part.shape[0] + 1] = part.indptr[1:] + at
        at += part.nnz
    if at != nnz:
        raise RuntimeError(f"modality '{name}' changed while it was read: fewer values than its first pass found")
    return sp.csr_matrix((data, indices, indptr), shape=(n_rows, len(keep)))


def write_normalized(matrix, kind: str, keep: np.ndarray, stats: FeatureScan, out: np.ndarray) -> None:
    """Write the normalised features ``keep`` of a matrix into the dense ``out`` (cells x len(keep), in
    the Dataset's cell order), block by block of rows: not even the sparse selection is held whole."""
    inverse = None if matrix.order is None else np.argsort(matrix.order)
    for start, block in matrix.blocks():
        stop = start + block.shape[0]
        rows = slice(start, stop) if inverse is None else inverse[start:stop]
        out[rows] = _normalized_block(block, kind, matrix.is_counts, keep, stats).toarray()


def _stack_rows(parts: list, n_cols: int, dtype=np.float32) -> sp.csr_matrix:
    """The CSR blocks one under the other; each block is dropped once copied."""
    nnz = sum(p.nnz for p in parts)
    rows = sum(p.shape[0] for p in parts)
    data = np.empty(nnz, dtype=dtype)
    indices = np.empty(nnz, dtype=np.int32 if n_cols < 2**31 else np.int64)
    indptr = np.zeros(rows + 1, dtype=np.int64)
    at, row = 0, 0
    while parts:
        p = parts.pop(0)
        data[at:at + p.nnz] = p.data
        indices[at:at + p.nnz] = p.indices
        indptr[row + 1:row + p.shape[0] + 1] = p.indptr[1:] + at
        at, row = at + p.nnz, row + p.shape[0]
    return sp.csr_matrix((data, indices, indptr), shape=(rows, n_cols))
