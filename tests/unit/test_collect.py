"""`multiverse collect` gathers the embeddings without loading the input's matrices.

The input here holds ~600 MB of matrix data; collect must stay far below that
in resident memory (it reads cell annotations and embeddings only), for both
formats. The results come from the fake backend, so no engine is needed.
"""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest
import yaml

from multiverse import api
from multiverse.backends.fake import FakeBackend
from multiverse.catalog import METHODS, image_of
from tests.forms import read, write

#: Stored values in the big input's matrix (X and its counts layer are one dataset twice: 2 x 300 MB).
BIG_VALUES = 37_500_000


def big_input(tiny_h5mu, path):
    """The tiny fixture's cells and labels, with an RNA modality of ~300 MB stored values."""
    import anndata
    import pandas as pd
    import scipy.sparse as sp

    mdata = read(tiny_h5mu)
    n = mdata.n_obs
    per_cell = BIG_VALUES // n
    n_vars = per_cell * 2
    rng = np.random.default_rng(0)
    indptr = np.arange(n + 1, dtype=np.int64) * per_cell
    indices = np.concatenate([np.sort(rng.choice(n_vars, per_cell, replace=False)) for _ in range(n)]).astype(np.int32)
    data = np.ones(indptr[-1], dtype=np.float32)
    matrix = sp.csr_matrix((data, indices, indptr), shape=(n, n_vars))
    rna = anndata.AnnData(X=matrix, obs=mdata.obs.copy(), var=pd.DataFrame(index=[f"g{i}" for i in range(n_vars)]))
    rna.layers["counts"] = matrix
    mdata.mod["rna"] = rna
    mdata.update()
    return write(mdata, path)


def peak_rss_mb(*args) -> float:
    code = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024); sys.exit(p.returncode)")
    proc = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "multiverse", *map(str, args)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return float(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("fmt", ["h5ad", "h5mu"])
def test_collect_never_loads_the_inputs_matrices(fmt, tiny_h5mu, tmp_path):
    data = big_input(tiny_h5mu, tmp_path / "big.h5mu")
    with h5py.File(data, "r") as f:
        stored = sum(f[f"mod/rna/{k}/data"].nbytes + f[f"mod/rna/{k}/indices"].nbytes for k in ("X", "layers/counts"))
    assert stored > 500 * 2**20
    config = tmp_path / "runner_config.yaml"
    config.write_text(yaml.safe_dump({"input": str(data), "output": str(tmp_path / "out"),
                                      "models": {"control_random": {}, "pca": {}}}))
    backend = FakeBackend()
    for method in METHODS.values():
        backend.add_image(image_of(method).tag)
    results = api.execute(api.prepare(config), backend)
    assert all(r.status.succeeded for r in results)

    peak = peak_rss_mb("collect", tmp_path / "out", "--format", fmt)

    assert peak < stored / 2**20 / 3, f"collect peaked at {peak:.0f} MiB for {stored / 2**20:.0f} MiB of matrices"
    out = tmp_path / "out" / "big" / f"embeddings.{fmt}"
    if fmt == "h5ad":
        import anndata

        adata = anndata.read_h5ad(out)
        assert set(adata.obsm) == {"X_control_random", "X_pca"} and "cell_type" in adata.obs
    else:
        with h5py.File(out, "r") as f:
            assert {"X_control_random", "X_pca"} <= set(f["obsm"]) and "mod/rna/X" in f
        assert read(out).obsm["X_pca"].shape == (200, 4)
