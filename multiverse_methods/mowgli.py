"""Mowgli (Huizing et al., Nature Communications 2023): integrative NMF with optimal transport.

Runs the real method, the ``mowgli`` package 0.4.0 (GPL-3.0), on the stack it
declares (torch 1.13, numpy 1.26, anndata 0.8, mudata 0.2): forced onto torch 2
its LBFGS steps make no progress. The image is ``docker/mowgli.Dockerfile``.

Every modality is made dense and non-negative, as Mowgli needs, following the
preprocessing of Mowgli's vignettes and reproducibility scripts: RNA library-size
normalised to 10^4 and log1p, ATAC TF-IDF, ADT the centred log-ratio of Seurat and
muon (log1p(x / geometric mean), non-negative, unlike a centred CLR). Features are
chosen on the raw counts (``preprocess.select_features``) and marked in
``var["highly_variable"]``; only those are kept, which is what Mowgli trains on.
Training is ``MowgliModel.train`` on the CPU in float64 with LBFGS (its defaults),
seeded; the embedding is ``obsm["W_OT"]`` (cells x latent_dim, non-negative, rows
summing to 1).

A run whose total loss does not fall is an error, not a result: that is what an
optimiser that makes no progress looks like.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp

from multiverse_methods import preprocess
from multiverse_methods.torch_threads import set_torch_threads
from multiverse_methods.contract import Dataset, MethodResult, NotApplicable
from multiverse_methods.params import MowgliParams

PACKAGES = ("mowgli", "torch", "numpy", "scipy", "anndata", "mudata", "scanpy")
log = logging.getLogger("multiverse_methods.mowgli")

#: The total loss must end at least this fraction of its first value lower.
MIN_RELATIVE_DECREASE = 1e-3




def clr_nonnegative(x) -> np.ndarray:
    """Seurat's (and muon's) CLR per cell: log1p(x / exp(mean(log1p(x)))), never negative."""
    dense = np.asarray(sp.csr_matrix(x).toarray(), dtype=np.float64)
    geometric = np.exp(np.log1p(dense).mean(axis=1, keepdims=True))
    return np.log1p(dense / geometric)


def _normalise(x, kind: str) -> np.ndarray:
    if kind == "rna":
        return preprocess.log_normalize(x).toarray()
    if kind == "atac":
        return preprocess.tfidf(x).toarray()
    if kind == "adt":
        return clr_nonnegative(x)
    raise NotApplicable(f"unknown modality kind {kind!r}")


def _select_normalised(x, kind: str, params: MowgliParams) -> np.ndarray:
    """Feature selection on data that arrive already normalised (no raw counts)."""
    if kind == "rna":
        return preprocess.top_variable(x, params.n_top_genes)
    if kind == "atac":
        return preprocess.top_frequent(x, params.n_top_peaks)
    return np.arange(x.shape[1])


def modality_anndata(adata, name: str, kind: str, params: MowgliParams):
    """A dense, non-negative AnnData of the selected features, all marked highly variable."""
    import anndata

    x, is_counts = preprocess.expression(adata, name)
    n_all = x.shape[1]
    keep = preprocess.drop_empty_features(x)
    x = x[:, keep]
    if is_counts:
        chosen = preprocess.select_features(x, kind, params.n_top_genes, params.n_top_peaks)
        dense = _normalise(x[:, chosen], kind)
    else:
        if x.data.size and x.data.min() < 0:
            raise NotApplicable(
                f"modality '{name}' has no raw counts and its .X has negative values; "
                "Mowgli needs non-negative data"
            )
        chosen = _select_normalised(x, kind, params)
        dense = x[:, chosen].toarray()
    if dense.shape[1] == 0:
        raise NotApplicable(f"modality '{name}' has no feature with a non-zero value")
    # float32 is anndata 0.8's default dtype (no conversion warning); Mowgli trains in float64.
    dense = np.ascontiguousarray(dense, dtype=np.float32)
    if not np.isfinite(dense).all() or dense.min() < 0:
        raise RuntimeError(f"modality '{name}': preprocessing produced negative or non-finite values")
    var_names = np.asarray(adata.var_names.astype(str))[keep][chosen]
    out = anndata.AnnData(X=dense)
    out.var_names = [f"{name}:{v}" for v in var_names]
    out.var["highly_variable"] = np.ones(dense.shape[1], dtype=bool)
    log.info(
        "%s (%s): %d of %d features, %s", name, kind, dense.shape[1], n_all,
        "from counts" if is_counts else "from the normalised .X",
    )
    return out


def build_mudata(data: Dataset, params: MowgliParams):
    import mudata
    import pandas as pd

    mods = {}
    obs_names = pd.Index(data.obs_names.astype(str))
    for name, adata in data.modalities.items():
        mod = modality_anndata(adata, name, data.kinds[name], params)
        mod.obs_names = obs_names
        mods[name] = mod
    return mudata.MuData(mods)


class _LogProgress:
    """Stands in for Mowgli's tqdm bar: one log line per outer iteration, not a stream of \\r."""

    #: The model being trained (set before ``train``), to read its loss history.
    model = None

    def __init__(self, total=None, **_):
        self.total = total
        self.count = 0
        self.postfix: dict = {}
        self.start = time.perf_counter()

    def update(self, n=1):
        self.count += n
        if self.count % 2 == 0:  # Mowgli updates twice per outer iteration (W, then H)
            losses = getattr(self.model, "losses", None) or [None]
            log.info(
                "outer iteration %d/%d: total loss after the W step %s, last inner loss %s, %.1f s",
                self.count // 2, (self.total or 0) // 2, _fmt(losses[-1]),
                _fmt(self.postfix.get("loss_inner")), time.perf_counter() - self.start,
            )

    def set_postfix(self, values=None, **kwargs):
        self.postfix = dict(values or {}, **kwargs)

    def close(self):
        pass


def _fmt(value) -> str:
    try:
        return f"{float(value):.6g}"
    except (TypeError, ValueError):
        return str(value)


def fit(data: Dataset, params: MowgliParams) -> MethodResult:
    import torch
    import mowgli
    import mowgli.models

    if data.n_obs < 2:
        raise NotApplicable(f"Mowgli needs at least 2 cells, the input has {data.n_obs}")
    set_torch_threads(log)
    mdata = build_mudata(data, params)

    h_regularization = {
        name: getattr(params, f"h_regularization_{data.kinds[name]}") for name in mdata.mod
    }
    model = mowgli.models.MowgliModel(
        latent_dim=params.latent_dim,
        h_regularization=h_regularization,
        w_regularization=params.w_regularization,
        eps=params.eps,
        cost=params.cost,
    )
    _LogProgress.model = model
    mowgli.models.tqdm = _LogProgress  # Mowgli's progress bar becomes log lines
    torch.manual_seed(params.seed)  # H and W are initialised with torch.rand
    np.random.seed(params.seed)
    log.info(
        "Mowgli %s: latent_dim %d, at most %d outer x %d inner LBFGS steps, eps %g, "
        "h_regularization %s, w_regularization %g, cost %s",
        mowgli.__version__, params.latent_dim, params.max_iter_outer, params.max_iter_inner,
        params.eps, h_regularization, params.w_regularization, params.cost,
    )
    start = time.perf_counter()
    model.train(
        mdata,
        max_iter_inner=params.max_iter_inner,
        max_iter=params.max_iter_outer,
        device="cpu",
        dtype=torch.double,
        tol_inner=params.tol_inner,
        tol_outer=params.tol_outer,
    )
    train_s = time.perf_counter() - start

    losses = [float(v) for v in model.losses]
    if not losses:
        raise RuntimeError("Mowgli recorded no loss: training did not run")
    if not np.all(np.isfinite(losses)):
        raise RuntimeError(f"Mowgli's loss is not finite: {losses}")
    first, last = losses[0], losses[-1]
    outer_done = len(losses) // 2
    log.info(
        "trained in %.1f s: %d outer iterations, total loss %.6g -> %.6g", train_s, outer_done, first, last
    )
    if not last < first - MIN_RELATIVE_DECREASE * abs(first):
        raise RuntimeError(
            f"Mowgli's optimiser made no progress: the total loss went from {first:.6g} to {last:.6g} "
            f"in {outer_done} outer iterations (loss history {[round(v, 6) for v in losses]})"
        )
    embedding = np.asarray(mdata.obsm["W_OT"], dtype=np.float32)
    return MethodResult(
        embedding=embedding,
        extra_metrics={
            # Two values per outer iteration: after the W update, then after the H update.
            "loss_history": [round(v, 6) for v in losses],
            "loss_first": round(first, 6),
            "loss_last": round(last, 6),
            "outer_iterations": outer_done,
            "inner_loss_history": [round(float(v), 6) for v in model.losses_h],
            "train_seconds": round(train_s, 2),
            "features": {name: int(mod.n_vars) for name, mod in mdata.mod.items()},
        },
    )
