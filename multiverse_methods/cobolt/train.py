"""Training Cobolt as the authors' package does, and the embedding it reports.

Every epoch visits the modality subsets in turn (for RNA + ATAC: the ATAC-only,
the RNA-only and the joint posterior); for each subset it makes one shuffled
pass over the cells in mini-batches and takes one Adam step per mini-batch on
that subset's negative ELBO. The KL term is weighted by (e - 1) / A in epoch e
(0 in the first) for the first A epochs (``annealing_epochs``), then by 1. The
embedding is the posterior mean of z given all modalities, centred per cell
(each cell's mean over the K coordinates removed), as the authors' corrected
latent is.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from multiverse_methods.cobolt.model import Cobolt, modality_subsets

log = logging.getLogger("multiverse_methods.cobolt")

#: Inputs up to this size (float32, all modalities) are densified once; larger
#: ones are kept sparse and densified one mini-batch at a time.
DENSE_LIMIT_BYTES = 512 * 2**20


class CountRows:
    """Each modality's counts (cells x features), served as float32 tensors for a set of rows."""

    def __init__(self, matrices: dict, dense_limit_bytes: int = DENSE_LIMIT_BYTES):
        self.names = list(matrices)
        self.n_obs = next(iter(matrices.values())).shape[0]
        size = sum(4 * x.shape[0] * x.shape[1] for x in matrices.values())
        self.dense = size <= dense_limit_bytes
        if self.dense:
            self.data = {
                n: torch.from_numpy(np.asarray(_toarray(x), dtype=np.float32)) for n, x in matrices.items()
            }
        else:  # as given (e.g. compact uint8 counts): only a mini-batch is float32 at a time
            self.data = {n: sp.csr_matrix(x) for n, x in matrices.items()}

    def rows(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.dense:
            return {n: x[index] for n, x in self.data.items()}
        idx = index.numpy()
        return {n: torch.from_numpy(x[idx].toarray().astype(np.float32, copy=False)) for n, x in self.data.items()}


def _toarray(x):
    return x.toarray() if sp.issparse(x) else x


def kl_weight(epoch: int, annealing_epochs: int) -> float:
    """Weight of the KL term in (1-based) ``epoch``: (epoch - 1) / A, 0 in the first, 1 from epoch A + 1.

    The authors' schedule: their epoch counter starts at 0.
    """
    if annealing_epochs <= 0:
        return 1.0
    return min(1.0, (epoch - 1) / annealing_epochs)


def minibatches(n_obs: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A shuffled partition of the cells into mini-batches of ``batch_size``.

    A last batch of a single cell is merged into the one before it (BatchNorm
    needs at least two cells in training mode).
    """
    order = torch.randperm(n_obs, generator=generator)
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) < 2:
        last = batches.pop()
        batches[-1] = torch.cat([batches[-1], last])
    return batches


def train(
    model: Cobolt,
    counts: CountRows,
    batch: np.ndarray,
    *,
    n_epochs: int,
    lr: float,
    batch_size: int,
    annealing_epochs: int,
    generator: torch.Generator,
    subsets: Sequence[tuple[str, ...]] | None = None,
    log_every: int | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train ``model`` in place; returns one record per epoch.

    Each record holds ``loss`` (the negative ELBO per cell, summed over the
    subsets, with the KL at full weight), its ``reconstruction`` and ``kl``
    parts, the epoch's ``kl_weight`` and the annealed ``objective`` that the
    optimiser saw, per cell of the epoch (each subset from its own pass over the cells).
    """
    subsets = modality_subsets(model.names) if subsets is None else list(subsets)
    batch_t = torch.as_tensor(np.asarray(batch), dtype=torch.long)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    log_every = log_every or max(1, n_epochs // 10)
    history: list[dict] = []
    start = time.perf_counter()
    model.train()
    for epoch in range(1, n_epochs + 1):
        weight = kl_weight(epoch, annealing_epochs)
        sums = {"reconstruction": 0.0, "kl": 0.0, "objective": 0.0}
        for subset in subsets:
            # One pass per subset, one step per mini-batch (not one summed objective).
            for index in minibatches(counts.n_obs, batch_size, generator):
                objective, reconstruction, kl = model.loss(counts.rows(index), batch_t[index], subset, weight)
                optimiser.zero_grad(set_to_none=True)
                objective.backward()
                optimiser.step()
                sums["reconstruction"] += reconstruction
                sums["kl"] += kl
                sums["objective"] += float(objective.detach())
        record = {key: value / counts.n_obs for key, value in sums.items()}
        record.update(epoch=epoch, kl_weight=weight, loss=record["reconstruction"] + record["kl"])
        if not np.isfinite(record["loss"]):
            raise FloatingPointError(f"Cobolt's loss is not finite at epoch {epoch}: {record}")
        history.append(record)
        if epoch % log_every == 0 or epoch in (1, n_epochs):
            log.info(
                "epoch %d/%d: loss %.2f (reconstruction %.2f, KL %.2f, KL weight %.2f), %.1f s",
                epoch, n_epochs, record["loss"], record["reconstruction"], record["kl"], weight,
                time.perf_counter() - start,
            )
        if on_epoch is not None:
            on_epoch(record)
    return history


def centre(latent: np.ndarray) -> np.ndarray:
    """Each row minus its mean over the coordinates.

    The decoders see z only through softmax(z), which ignores a shift of all K
    coordinates; the authors remove that direction from every cell's latent
    before clustering and UMAP (their "corrected" latent, joint cells included).
    """
    return latent - latent.mean(axis=1, keepdims=True)


#: Dense values (cells x features, all modalities) made at a time to embed the cells: 128 MB in
#: float32, whatever the width (120,000 features: 279 cells a chunk).
EMBED_VALUES = 2**25


@torch.no_grad()
def embed(
    model: Cobolt,
    counts: CountRows,
    subset: Sequence[str] | None = None,
    chunk: int = 4096,
    centred: bool = True,
) -> np.ndarray:
    """Posterior means of z given ``subset`` (default: all modalities) for every cell, in order.

    Evaluation mode (BatchNorm's running statistics), so a cell's embedding does
    not depend on the cells it is computed with; centred per cell unless
    ``centred`` is False. At most ``chunk`` cells, and EMBED_VALUES dense values, at a time.
    """
    model.eval()
    width = sum(x.shape[1] for x in counts.data.values())  # rows() makes every modality dense
    chunk = max(1, min(chunk, EMBED_VALUES // max(1, width)))
    out = []
    for start in range(0, counts.n_obs, chunk):
        index = torch.arange(start, min(start + chunk, counts.n_obs))
        mean, _ = model.posterior(model.experts(counts.rows(index), subset), subset)
        out.append(mean)
    latent = torch.cat(out).numpy()
    return centre(latent) if centred else latent
