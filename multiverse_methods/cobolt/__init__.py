"""Cobolt (Gong, Zhou & Purdom, Genome Biology 2021), reimplemented in PyTorch.

A multimodal topic model of raw counts: every modality is a multinomial whose
probabilities are a product-of-experts topic model of the cell's topic
proportions softmax(z); z has a Laplace approximation of a Dirichlet prior; the
posterior of z is a product of Gaussian experts, one per modality plus the
prior. The embedding is the posterior mean of z given all of a cell's
modalities, centred per cell as in the authors' corrected latent.
``model.py`` holds the model, ``train.py`` the training loop,
``docs/COBOLT.md`` the correspondence with the authors' code.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np

from multiverse_methods import preprocess
from multiverse_methods.torch_threads import set_torch_threads
from multiverse_methods.contract import Dataset, MethodResult, NotApplicable
from multiverse_methods.params import CoboltParams

PACKAGES = ("torch", "numpy", "scipy", "anndata", "mudata")
log = logging.getLogger("multiverse_methods.cobolt")

# OpenMP threads that spin while waiting make torch 10-20x slower on this model's
# small matrices when the container's cores are shared (measured: 2 threads,
# 40 ms -> 700 ms per step). Passive waiting costs little when the cores are free.
# Read once, when torch loads its OpenMP runtime, so set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _counts_of(data: Dataset, params: CoboltParams) -> dict:
    """Every modality's raw counts, without empty features, after the optional feature selection;
    read block by block, so only the features kept are ever held whole."""
    matrices = {}
    for name in data.modalities:
        matrix = preprocess.require_counts(data.matrix(name), name)
        keep, stats = preprocess.select(matrix, data.kinds[name], params.n_top_genes, params.n_top_peaks, name)
        if keep.size == 0:
            raise NotApplicable(f"modality '{name}' has no feature with a non-zero count")
        # Held compact; CountRows makes each mini-batch float32.
        x = preprocess.selected_raw(matrix, keep, preprocess.counts_dtype(stats.max_value), name, stats)
        log.info("%s (%s): %d of %d features used (%s counts)", name, data.kinds[name], x.shape[1],
                 matrix.shape[1], x.dtype.name)
        data.release(name)  # the selected counts are all Cobolt needs
        matrices[name] = x
    return matrices


def _batches(data: Dataset, batch_key: str | None) -> tuple[np.ndarray, list[str]]:
    """Each cell's batch code and the batch names; one batch when the key is unset or absent."""
    if not batch_key:
        log.info("no batch_key: one set of decoder slopes and intercepts for all cells")
        return np.zeros(data.n_obs, dtype=np.int64), ["all"]
    if batch_key not in data.obs.columns:
        log.info("batch_key '%s' is not a column of obs: ignored, all cells in one batch", batch_key)
        return np.zeros(data.n_obs, dtype=np.int64), ["all"]
    import pandas as pd

    labels = pd.Categorical(data.obs[batch_key].astype(str))
    names = [str(c) for c in labels.categories]
    log.info("batch_key '%s': %d batches (%s)", batch_key, len(names), ", ".join(names[:10]))
    return np.asarray(labels.codes, dtype=np.int64), names


def train_model(data: Dataset, params: CoboltParams):
    """Prepare the counts, build the model and train it: (model, counts, history, facts)."""
    if data.n_obs < 2:
        raise NotApplicable(f"Cobolt needs at least 2 cells, the input has {data.n_obs}")
    matrices = _counts_of(data, params)  # refuses inputs without counts before torch loads
    batch, batch_names = _batches(data, params.batch_key)

    import torch

    from multiverse_methods.cobolt.model import Cobolt, modality_subsets
    from multiverse_methods.cobolt.train import CountRows, train

    set_torch_threads(log)
    torch.manual_seed(params.seed)
    np.random.seed(params.seed)
    generator = torch.Generator().manual_seed(params.seed)
    alpha = params.alpha if params.alpha is not None else 50.0 / params.n_latent
    model = Cobolt(
        {name: x.shape[1] for name, x in matrices.items()},
        n_latent=params.n_latent,
        hidden_dims=params.hidden_dims,
        n_batches=len(batch_names),
        alpha=alpha,
    )
    subsets = modality_subsets(model.names)
    log.info(
        "Cobolt: K=%d, alpha=%.3g, hidden %s, %d epochs, batch size %d, lr %g; subsets %s",
        params.n_latent, alpha, list(params.hidden_dims), params.n_epochs, params.batch_size, params.lr,
        ", ".join("{" + ", ".join(s) + "}" for s in subsets),
    )
    counts = CountRows(matrices)
    start = time.perf_counter()
    history = train(
        model,
        counts,
        batch,
        n_epochs=params.n_epochs,
        lr=params.lr,
        batch_size=params.batch_size,
        annealing_epochs=params.annealing_epochs,
        generator=generator,
        subsets=subsets,
    )
    facts = {
        "train_time_s": round(time.perf_counter() - start, 3),
        "alpha": alpha,
        "modality_subsets": [list(s) for s in subsets],
        "n_batches": len(batch_names),
        "features_used": {name: int(x.shape[1]) for name, x in matrices.items()},
    }
    return model, counts, history, facts


def fit(data: Dataset, params: CoboltParams) -> MethodResult:
    from multiverse_methods.cobolt.train import embed

    model, counts, history, facts = train_model(data, params)
    embedding = embed(model, counts)
    log.info("trained in %.1f s; embedding: posterior mean of z given all modalities, centred per cell",
             facts["train_time_s"])
    return MethodResult(
        embedding=embedding,
        extra_metrics={
            "loss_history": [round(r["loss"], 4) for r in history],
            "reconstruction_history": [round(r["reconstruction"], 4) for r in history],
            "kl_history": [round(r["kl"], 4) for r in history],
            "final_loss": round(history[-1]["loss"], 4),
            **facts,
            "embedding": "posterior mean of z (product of experts over all modalities and the prior), "
            "each cell's mean over the latent coordinates removed",
        },
    )
