"""Mowgli (Huizing et al., Nature Communications 2023): integrative NMF with optimal transport.

Runs the real method, the ``mowgli`` package 0.4.0 (GPL-3.0), on the stack it
declares (torch 1.13, numpy 1.26, anndata 0.8, mudata 0.2): forced onto torch 2
its LBFGS steps make no progress. The image is ``docker/mowgli.Dockerfile``.

Every modality is made dense (after the feature selection) and non-negative, as Mowgli needs, the way its
authors' preprocessing scripts prepare these NeurIPS 2021 BMMC data
(cantinilab/mowgli_reproducibility): RNA library-size normalised to 10^4 and
log1p; ATAC TF-IDF as muon's ``atac.pp.tfidf`` defaults compute it; ADT Seurat's
CLR of each protein across the cells (muon's ``prot.pp.clr`` default). The
``n_top_genes`` / ``n_top_peaks`` most variable features of the normalised data
(scanpy's ``highly_variable_genes``, flavour "seurat", as Mowgli's PBMC vignette
selects them) and every protein are kept and marked in
``var["highly_variable"]``, which is what Mowgli trains on.
Training is ``MowgliModel.train`` on the CPU in float64 with LBFGS (its defaults),
seeded; the embedding is ``obsm["W_OT"]`` (cells x latent_dim, non-negative, rows
summing to 1).

Training must make real progress (``check_progress``): a run whose loss rose
between outer iterations (inner optimisations stopped far from their optimum, the
loss zig-zags and Mowgli's early stopping ends training) or whose loss did not
fall at all is an error, not a result.
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



def _normalise(x, kind: str, columns):
    """The normalisation of Mowgli's authors' preprocessing scripts, on raw counts, of ``columns``.

    Sparse for RNA and ATAC (made dense only after the selection); ADT (a few hundred
    proteins at most) dense.
    """
    if kind == "rna":
        return preprocess.log_normalize(x, columns=columns)
    if kind == "atac":
        return preprocess.tfidf_log_tf_log_idf(x, columns=columns)
    if kind == "adt":
        return preprocess.clr_seurat(x[:, columns], axis=0)
    raise NotApplicable(f"unknown modality kind {kind!r}")


def _select(normalised, kind: str, params: MowgliParams) -> np.ndarray:
    """Highly variable features of the normalised data (scanpy, flavour "seurat"); ADT keeps all."""
    if kind == "rna":
        return preprocess.highly_variable_seurat(normalised, params.n_top_genes)
    if kind == "atac":
        return preprocess.highly_variable_seurat(normalised, params.n_top_peaks)
    return np.arange(normalised.shape[1])


def _dense(x) -> np.ndarray:
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def modality_anndata(adata, name: str, kind: str, params: MowgliParams):
    """A dense, non-negative AnnData of the selected features, all marked highly variable."""
    import anndata

    x, is_counts = preprocess.expression(adata, name)
    n_all = x.shape[1]
    keep = preprocess.drop_empty_features(x)
    if is_counts:
        normalised = _normalise(x, kind, keep)
    else:
        if x.data.size and x.data.min() < 0:
            raise NotApplicable(
                f"modality '{name}' has no raw counts and its .X has negative values; "
                "Mowgli needs non-negative data"
            )
        normalised = x[:, keep]
    del x
    chosen = _select(normalised, kind, params)
    # Dense only now, on the chosen features.
    dense = _dense(normalised[:, chosen])
    del normalised
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
        data.release(name)  # the selected features are all Mowgli needs
        mod.obs_names = obs_names
        mods[name] = mod
    return mudata.MuData(mods)


def stop_reason(losses: list[float], max_iter_outer: int, tol_outer: float) -> str:
    """Why Mowgli's outer loop ended, by its own rule (``mowgli.utils.early_stop``).

    ``losses`` holds two values per outer iteration (after the W, then the H
    update). After each iteration Mowgli stops when the loss after the H update
    rose by more than ``tol_outer`` since the previous iteration, or when the two
    values of the iteration differ by less than ``tol_outer``.
    """
    if len(losses) >= 3:
        if losses[-1] - losses[-3] > tol_outer:
            return "loss rose"
        if abs(losses[-1] - losses[-2]) < tol_outer:
            return "converged"
    if len(losses) // 2 >= max_iter_outer:
        return "max_iter_outer"
    return "interrupted"


def check_progress(losses: list[float], reason: str, params: MowgliParams) -> None:
    """Refuse an embedding that is not a solution of Mowgli's problem.

    Alternating exact minimisations of W and H never raise the loss, so a rise
    means that the inner LBFGS optimisations stopped far from their optimum; with
    too few inner steps the loss zig-zags and Mowgli's own early stopping ends
    training after a few outer iterations, with a first value high enough that
    "the last loss is below the first" holds anyway. A run that stopped at
    ``max_iter_outer`` while the loss still fell is kept (and says so in
    ``stop_reason``).
    """
    if reason == "loss rose":
        raise RuntimeError(
            f"Mowgli stopped after {len(losses) // 2} outer iteration(s) because its loss rose "
            f"({losses[-3]:.6g} -> {losses[-1]:.6g}): the W and H optimisations did not converge in "
            f"max_iter_inner={params.max_iter_inner} LBFGS steps, so the embedding is not a solution "
            "of Mowgli's problem. Raise max_iter_inner (Mowgli's default is 1000). "
            f"Loss history: {[round(v, 6) for v in losses]}"
        )
    if len(losses) >= 2 and not losses[-1] < losses[0]:
        raise RuntimeError(
            f"Mowgli's optimiser made no progress: the total loss went from {losses[0]:.6g} to "
            f"{losses[-1]:.6g} (loss history {[round(v, 6) for v in losses]})"
        )


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
    reason = stop_reason(losses, params.max_iter_outer, params.tol_outer)
    log.info(
        "trained in %.1f s: %d outer iterations, total loss %.6g -> %.6g; stopped: %s",
        train_s, outer_done, first, last, reason,
    )
    check_progress(losses, reason, params)
    embedding = np.asarray(mdata.obsm["W_OT"], dtype=np.float32)
    return MethodResult(
        embedding=embedding,
        extra_metrics={
            # Two values per outer iteration: after the W update, then after the H update.
            "loss_history": [round(v, 9) for v in losses],
            "loss_first": round(first, 9),
            "loss_last": round(last, 9),
            "outer_iterations": outer_done,
            "stop_reason": reason,
            "inner_loss_history": [round(float(v), 9) for v in model.losses_h],
            "train_seconds": round(train_s, 2),
            "seconds_per_outer_iteration": round(train_s / max(outer_done, 1), 2),
            "features": {name: int(mod.n_vars) for name, mod in mdata.mod.items()},
        },
    )
