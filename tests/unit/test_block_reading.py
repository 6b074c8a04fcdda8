"""PCA reads its input block by block of cells and gets what reading it whole gives.

At 50,000 cells the input's ATAC matrix alone is several GB; PCA never reads it
whole: one pass over the file gathers what the feature selection needs, a second
keeps only the selected features. Both must pick the same features and give the
same normalised values as the in-memory path the other methods use, whatever
the storage (CSR, CSC, dense, cells stored in another order) and the block size.
"""

from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from multiverse_methods import contract, preprocess
from multiverse_methods.contract import NotApplicable, load_input

N = 200
KINDS = {"rna": "rna", "atac": "atac", "adt": "adt"}
COUNTS = {"rna": "layers/counts", "atac": "X", "adt": "X"}
N_GENES, N_PEAKS = 30, 40  # of 60 genes and 90 peaks: a real selection


def _counts(rng, n_features, density, scale):
    x = sp.random(N, n_features, density=density, format="csr", random_state=rng, dtype=np.float64)
    x.data = np.ceil(x.data * scale)
    keep = np.ones(n_features)
    keep[3] = 0  # an empty feature
    return sp.csr_matrix(x @ sp.diags(keep))


@pytest.fixture
def h5mu(tmp_path):
    rng = np.random.default_rng(0)
    cells = [f"c{i}" for i in range(N)]
    obs = pd.DataFrame(index=cells)
    rna_counts = _counts(rng, 60, 0.3, 20)
    rna = ad.AnnData(X=sp.csr_matrix(np.log1p(rna_counts.toarray())), obs=obs.copy(),
                     layers={"counts": rna_counts}, var=pd.DataFrame(index=[f"g{j}" for j in range(60)]))
    order = rng.permutation(N)  # ATAC stores its cells in another order, as CSC
    atac_x = _counts(rng, 90, 0.2, 4)
    atac = ad.AnnData(X=sp.csc_matrix(atac_x[order]), obs=obs.iloc[order].copy(),
                      var=pd.DataFrame(index=[f"p{j}" for j in range(90)]))
    adt = ad.AnnData(X=np.asarray(_counts(rng, 12, 0.9, 200).toarray()), obs=obs.copy(),  # dense
                     var=pd.DataFrame(index=[f"a{j}" for j in range(12)]))
    mdata = md.MuData({"rna": rna, "atac": atac, "adt": adt})
    path = tmp_path / "in.h5mu"
    mdata.write(path)
    return path


def in_memory(adata, name, kind):
    """The whole-matrix definition: select on it, then normalise the selection. The genes are ranked
    on a log-normalised copy of the whole matrix (``select_features`` itself now scans in blocks too,
    so it would not be an independent reference)."""
    x, is_counts = preprocess.expression(adata, name)
    nonempty = preprocess.drop_empty_features(x)
    if not is_counts:
        keep = nonempty
    elif kind == "rna":
        keep = nonempty[preprocess.top_variable(preprocess.log_normalize(x, columns=nonempty), N_GENES)]
    else:
        keep = preprocess.select_features(x, kind, N_GENES, N_PEAKS, among=nonempty)
    return preprocess.normalize(x, kind, is_counts, columns=keep), keep


@pytest.mark.parametrize("block_values", [None, 50, 1])
def test_block_by_block_selects_and_normalises_as_the_whole_matrix(h5mu, monkeypatch, block_values):
    if block_values:
        monkeypatch.setattr(contract, "BLOCK_VALUES", block_values)
    whole = load_input(h5mu, KINDS, COUNTS)
    blocks = load_input(h5mu, KINDS, COUNTS, matrices=False)
    assert all(a.X.nnz == 0 for a in blocks.modalities.values()), "no matrix read before the method asks"
    for name, kind in KINDS.items():
        expected, expected_keep = in_memory(whole.modalities[name], name, kind)
        y, keep = preprocess.selected_normalized(blocks.matrix(name), kind, N_GENES, N_PEAKS, name)
        np.testing.assert_array_equal(keep, expected_keep, err_msg=name)
        assert y.shape == (N, len(keep)) and y.dtype == np.float32
        np.testing.assert_allclose(y.toarray(), expected.toarray(), rtol=1e-6, atol=1e-6, err_msg=name)
    assert len(expected_keep) == 11  # adt: every non-empty protein


def test_the_in_memory_matrix_gives_the_same_blocks(h5mu, monkeypatch):
    monkeypatch.setattr(contract, "BLOCK_VALUES", 100)
    whole = load_input(h5mu, KINDS, COUNTS)
    matrix = whole.matrix("rna")
    pieces = list(matrix.blocks())
    assert len(pieces) > 5
    np.testing.assert_array_equal(sp.vstack([b for _, b in pieces]).toarray(), matrix.x.toarray())


def test_negative_counts_are_refused_while_reading_blocks(tmp_path):
    x = sp.csr_matrix(np.array([[1.0, -2.0], [0.0, 3.0]] * 5))
    adata = ad.AnnData(X=x, obs=pd.DataFrame(index=[f"c{i}" for i in range(10)]), layers={"counts": x})
    path = tmp_path / "neg.h5ad"
    adata.write_h5ad(path)
    data = load_input(path, {"rna": "rna"}, {"rna": "layers/counts"}, matrices=False)
    with pytest.raises(NotApplicable, match="negative counts"):
        preprocess.selected_normalized(data.matrix("rna"), "rna", 1, 1, "rna")


def test_selected_columns_as_stored_come_back_in_the_cell_order(h5mu, monkeypatch):
    """MOFA+'s Bernoulli and Poisson views take the selected counts themselves."""
    monkeypatch.setattr(contract, "BLOCK_VALUES", 50)
    whole = load_input(h5mu, KINDS, COUNTS)
    blocks = load_input(h5mu, KINDS, COUNTS, matrices=False)
    keep = np.array([0, 5, 7, 10])  # the narrowest modality has 12 features
    for name in KINDS:
        expected, _ = preprocess.expression(whole.modalities[name], name)
        np.testing.assert_array_equal(preprocess.selected_raw(blocks.matrix(name), keep).toarray(),
                                      expected[:, keep].toarray(), err_msg=name)


def test_multivi_and_cobolt_take_the_counts_they_keep_as_reading_them_whole_gives(h5mu, monkeypatch):
    """MultiVI keeps the features detected in enough cells, Cobolt the selected ones; both read
    only those columns, block by block, and get the whole matrix's counts of them."""
    from multiverse_methods import cobolt, multivi
    from multiverse_methods.params import CoboltParams

    monkeypatch.setattr(contract, "BLOCK_VALUES", 50)
    whole = load_input(h5mu, KINDS, COUNTS)
    blocks = load_input(h5mu, KINDS, COUNTS, matrices=False)
    chosen = cobolt._counts_of(blocks, CoboltParams(n_top_genes=N_GENES, n_top_peaks=N_PEAKS))
    for name, kind in KINDS.items():
        x, _ = preprocess.expression(whole.modalities[name], name)
        detected = np.asarray((x > 0).sum(axis=0)).ravel()
        ad_ = multivi.count_modality(blocks.matrix(name), blocks.modalities[name].var_names, name, 20)
        np.testing.assert_array_equal(ad_.X.toarray(), x[:, detected >= 20].toarray(), err_msg=name)
        assert list(ad_.var_names) == [f"{name}:{v}" for v in whole.modalities[name].var_names[detected >= 20]]
        keep = preprocess.select_features(x, kind, N_GENES, N_PEAKS, among=np.flatnonzero(detected > 0))
        np.testing.assert_array_equal(chosen[name].toarray(), x[:, keep].toarray(), err_msg=name)
        assert chosen[name].dtype == np.uint8 and ad_.X.dtype == np.uint8, "counts up to 200 are held as uint8"


def test_counts_are_held_in_the_narrowest_type_that_holds_them_exactly(tmp_path):
    assert [preprocess.counts_dtype(v) for v in (0, 255, 256, 65535, 65536)] == \
        [np.uint8, np.uint8, np.uint16, np.uint16, np.float32]
    x = sp.csr_matrix(np.array([[0, 300.0], [2.0, 70000.0]], dtype=np.float32))
    for dtype in (np.uint16, np.float32):
        y = preprocess.selected_raw(contract.InMemoryMatrix(x, True), np.array([0]), dtype, "rna")
        assert y.dtype == dtype and y.toarray().ravel().tolist() == [0, 2]
    halves = contract.InMemoryMatrix(sp.csr_matrix(np.array([[0.5, 1.0]], dtype=np.float32)), True)
    with pytest.raises(NotApplicable, match="modality 'rna': its counts are not all whole numbers"):
        preprocess.selected_raw(halves, np.array([0, 1]), np.uint8, "rna")


def test_multivi_and_cobolt_refuse_a_modality_without_counts(h5mu):
    from multiverse_methods import cobolt, multivi
    from multiverse_methods.params import CoboltParams

    data = load_input(h5mu, KINDS, {"rna": None, "atac": "X", "adt": "X"}, matrices=False)  # rna's X: log1p
    with pytest.raises(NotApplicable, match="modality 'rna' has no raw counts"):
        multivi.count_modality(data.matrix("rna"), data.modalities["rna"].var_names, "rna", 1)
    with pytest.raises(NotApplicable, match="modality 'rna' has no raw counts"):
        cobolt._counts_of(data, CoboltParams())


def test_multivi_and_cobolt_never_hold_the_whole_sparse_input(tmp_path, monkeypatch):
    """A wide input whose stored values take 16 MB: reading the few features kept allocates a
    fraction of it (Python's allocation tracer counts numpy's buffers)."""
    import tracemalloc

    from multiverse_methods import cobolt, multivi
    from multiverse_methods.params import CoboltParams

    rng = np.random.default_rng(1)
    n_cells, n_peaks = 2_000, 20_000
    x = sp.random(n_cells, n_peaks - 10, density=0.05, format="csr", random_state=rng, dtype=np.float32)
    x.data = np.ceil(x.data * 3)
    x = sp.hstack([np.ones((n_cells, 10), dtype=np.float32), x], format="csr")  # ten peaks open in every cell
    stored_bytes = x.data.nbytes + x.indices.nbytes  # 2 million values: 16 MB
    obs = pd.DataFrame(index=[f"c{i}" for i in range(n_cells)])
    path = tmp_path / "wide.h5mu"
    md.MuData({"atac": ad.AnnData(X=x, obs=obs)}).write(path)
    monkeypatch.setattr(contract, "BLOCK_VALUES", 100_000)
    data = load_input(path, {"atac": "atac"}, {"atac": "X"}, matrices=False)

    def peak_of(call) -> int:
        tracemalloc.start()
        try:
            result = call()
            return tracemalloc.get_traced_memory()[1], result
        finally:
            tracemalloc.stop()

    peak, kept = peak_of(lambda: multivi.count_modality(data.matrix("atac"), data.modalities["atac"].var_names,
                                                        "atac", n_cells))
    assert kept.n_vars == 10
    assert peak < 0.25 * stored_bytes, f"MultiVI's reading peaked at {peak / 1e6:.1f} MB of {stored_bytes / 1e6:.1f}"
    peak, chosen = peak_of(lambda: cobolt._counts_of(data, CoboltParams(n_top_peaks=10)))
    assert chosen["atac"].shape == (n_cells, 10)
    assert peak < 0.25 * stored_bytes, f"Cobolt's reading peaked at {peak / 1e6:.1f} MB of {stored_bytes / 1e6:.1f}"
