"""What a method reads of its input: the modalities named, one matrix each, sparse float32.

A 50,000-cell input holds several matrices per modality (counts, normalised .X,
other layers); reading all of them is what made the methods run out of memory.
"""

from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from multiverse_methods.contract import NotApplicable, load_input

N = 30


@pytest.fixture
def h5mu(tmp_path):
    rng = np.random.default_rng(0)
    cells = [f"c{i}" for i in range(N)]
    obs = pd.DataFrame({"cell_type": pd.Categorical(rng.choice(["a", "b"], N))}, index=cells)
    rna_counts = sp.random(N, 8, density=0.4, format="csr", random_state=1, dtype=np.float64)
    rna_counts.data = np.ceil(rna_counts.data * 10)
    rna = ad.AnnData(
        X=sp.csr_matrix(np.log1p(rna_counts.toarray())), obs=obs.copy(),
        var=pd.DataFrame(index=[f"g{j}" for j in range(8)]),
        layers={"counts": rna_counts.astype(np.int64), "other": sp.csr_matrix(np.ones((N, 8)))},
    )
    atac_x = sp.random(N, 12, density=0.3, format="csc", random_state=2, dtype=np.float64)
    atac_x.data = np.ceil(atac_x.data * 3)
    # The ATAC modality stores its cells in another order than the global obs.
    order = rng.permutation(N)
    atac = ad.AnnData(X=atac_x[order], obs=obs.iloc[order].copy(),
                      var=pd.DataFrame(index=[f"p{j}" for j in range(12)]),
                      layers={"big": sp.csr_matrix(np.ones((N, 12)))})
    mdata = md.MuData({"rna": rna, "atac": atac})
    mdata.obs = obs
    path = tmp_path / "in.h5mu"
    mdata.write(path)
    return path, rna_counts, atac_x


KINDS = {"rna": "rna", "atac": "atac"}


def test_only_the_counts_are_read_sparse_float32_in_the_global_cell_order(h5mu):
    path, rna_counts, atac_x = h5mu
    data = load_input(path, KINDS, {"rna": "layers/counts", "atac": "X"})
    assert list(data.modalities) == ["rna", "atac"]  # mudata's order, not HDF5's alphabetical one
    for name, expected in (("rna", rna_counts), ("atac", atac_x)):
        adata = data.modalities[name]
        assert list(adata.layers) == ["counts"], "no other layer is read"
        assert adata.layers["counts"] is adata.X, "the counts are held once"
        assert sp.isspmatrix_csr(adata.X) and adata.X.dtype == np.float32
        np.testing.assert_array_equal(adata.X.toarray(), expected.toarray())
        assert list(adata.obs_names) == list(data.obs_names)


def test_without_counts_only_x_is_read(h5mu):
    path, _, _ = h5mu
    data = load_input(path, KINDS, {"rna": None, "atac": "X"})
    rna = data.modalities["rna"]
    assert "counts" not in rna.layers
    assert not np.allclose(rna.X.data, np.round(rna.X.data)), ".X (normalised) was read"


def test_without_the_hosts_map_a_counts_layer_is_used(h5mu):
    path, rna_counts, _ = h5mu
    rna = load_input(path, KINDS).modalities["rna"]
    np.testing.assert_array_equal(rna.layers["counts"].toarray(), rna_counts.toarray())


def test_controls_read_no_values(h5mu):
    path, _, _ = h5mu
    data = load_input(path, KINDS, {"rna": "layers/counts", "atac": "X"}, matrices=False)
    assert data.n_obs == N
    assert {n: a.shape for n, a in data.modalities.items()} == {"rna": (N, 8), "atac": (N, 12)}
    assert all(a.X.nnz == 0 for a in data.modalities.values())


def test_a_modality_of_unknown_kind_is_refused(h5mu):
    path, _, _ = h5mu
    with pytest.raises(NotApplicable, match="no known kind"):
        load_input(path, {"rna": "rna"}, {"rna": "layers/counts"})


def test_release_drops_a_modalitys_values_only_inside_the_image(h5mu):
    path, rna_counts, _ = h5mu
    data = load_input(path, KINDS, {"rna": "layers/counts", "atac": "X"})
    data.release("rna")  # a caller that keeps its Dataset (a test, a notebook): nothing dropped
    assert data.modalities["rna"].X.nnz == rna_counts.nnz
    data.release_after_use = True  # as the image's entry point sets it
    data.release("rna")
    rna = data.modalities["rna"]
    assert rna.X.nnz == 0 and not list(rna.layers) and rna.shape == (N, 8)
    assert data.modalities["atac"].X.nnz > 0
