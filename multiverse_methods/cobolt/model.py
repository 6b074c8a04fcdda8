"""The Cobolt generative model and its inference networks, in PyTorch.

Written from the description in Gong, Zhou & Purdom, "Cobolt: integrative
analysis of multimodal single-cell sequencing data", Genome Biology 22:351
(2021), and the papers it builds on: ProdLDA (Srivastava & Sutton, "Autoencoding
variational inference for topic models", ICLR 2017) for the topic decoder and the
Laplace approximation of the Dirichlet prior, and MVAE (Wu & Goodman, "Multimodal
generative models for scalable weakly-supervised learning", NeurIPS 2018) for the
product-of-experts posterior. It was then compared with the authors' package
(github.com/epurdom/cobolt, GPL-3.0: read, nothing copied) and brought in line
with it; ``docs/COBOLT.md`` lists what follows the authors' code and what still
differs, with measurements.

Generative model, for a cell ``c`` in batch ``b`` with modalities ``m``:

    z_c ~ N(mu_0, diag(var_0))                 (Laplace approximation of Dirichlet(alpha))
    theta_c = softmax(z_c)                      (topic proportions, K topics)
    x_c^m ~ Multinomial(n_c^m, softmax((theta_c beta^m) * (1 + s_b^m) + t_b^m))

where ``beta^m`` (K x J_m) holds the topics of modality ``m`` and ``s_b^m``,
``t_b^m`` (J_m each) are the per-batch slope and intercept of that modality.

Inference: every modality has an encoder giving a Gaussian "expert"
``N(mean_m(x^m), var_m(x^m))``; the posterior of a cell given a subset S of its
modalities is the product of the prior expert and the experts in S, which is
Gaussian in closed form (precisions add).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: Bounds on every expert's log-variance: keeps the precisions of the product
#: of experts finite in float32 (exp(12) ~ 1.6e5).
LOGVAR_MIN, LOGVAR_MAX = -12.0, 12.0


def laplace_dirichlet_prior(alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of the Gaussian on ``z`` that approximates Dirichlet(alpha) on softmax(z).

    MacKay's Laplace approximation in the softmax basis, as used by ProdLDA and
    Cobolt: ``mu_k = log a_k - (1/K) sum_i log a_i`` and
    ``var_k = (1/a_k)(1 - 2/K) + (1/K^2) sum_i 1/a_i`` (diagonal covariance).
    """
    alpha = torch.as_tensor(alpha, dtype=torch.float32)
    k = alpha.numel()
    log_alpha = alpha.log()
    mean = log_alpha - log_alpha.mean()
    var = (1.0 / alpha) * (1.0 - 2.0 / k) + (1.0 / alpha).sum() / k**2
    return mean, var


def product_of_experts(means: Sequence[torch.Tensor], logvars: Sequence[torch.Tensor]):
    """The product of diagonal Gaussians N(mean_i, exp(logvar_i)), renormalised: (mean, logvar).

    Precisions add; the mean is the precision-weighted average of the means.
    Tensors broadcast, so the prior expert may be a single (K,) vector.
    """
    precisions = [torch.exp(-lv) for lv in logvars]
    total = sum(precisions)
    mean = sum(m * p for m, p in zip(means, precisions)) / total
    return mean, -torch.log(total)


def gaussian_kl(mean_q, logvar_q, mean_p, var_p) -> torch.Tensor:
    """KL( N(mean_q, exp(logvar_q)) || N(mean_p, var_p) ) of diagonal Gaussians, summed over the last axis."""
    var_q = torch.exp(logvar_q)
    return 0.5 * (
        var_q / var_p + (mean_q - mean_p) ** 2 / var_p - 1.0 + torch.log(var_p) - logvar_q
    ).sum(-1)


def modality_subsets(names: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset of the modalities, in the order the authors' training visits them.

    Binary counting with the first modality as the most significant bit: for
    (rna, atac) that is (atac,), (rna,), (rna, atac), so every epoch ends with
    the joint posterior. (The authors' package trains on all subsets for up to
    three modalities; from four on it samples a few, which multiverse does not.)
    """
    names = list(names)
    n = len(names)
    return [
        tuple(name for i, name in enumerate(names) if code >> (n - 1 - i) & 1)
        for code in range(1, 2**n)
    ]


class Encoder(nn.Module):
    """One modality's expert: log(1 + counts) -> [Linear, BatchNorm, LeakyReLU] x layers -> mean, log-variance."""

    def __init__(self, n_features: int, hidden_dims: Sequence[int], n_latent: int):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for hidden in hidden_dims:
            layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.mean = nn.Linear(width, n_latent)
        self.logvar = nn.Linear(width, n_latent)

    def forward(self, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(torch.log1p(counts))
        return self.mean(h), self.logvar(h).clamp(LOGVAR_MIN, LOGVAR_MAX)


class Decoder(nn.Module):
    """One modality's topics ``beta`` (K x J) and per-batch slope and intercept (n_batches x J).

    The per-cell feature probabilities are
    ``softmax((theta @ beta) * (1 + slope[b]) + intercept[b])``: a product-of-experts
    topic model (ProdLDA) whose topic weights are rescaled and shifted per batch.
    As in the authors' package, ``beta`` and the intercepts start Glorot-uniform
    and the slopes uniform on [0, 1), so batches differ from the first step.
    """

    def __init__(self, n_latent: int, n_features: int, n_batches: int):
        super().__init__()
        self.beta = nn.Parameter(torch.empty(n_latent, n_features))
        self.slope = nn.Parameter(torch.empty(n_batches, n_features))
        self.intercept = nn.Parameter(torch.empty(n_batches, n_features))
        nn.init.xavier_uniform_(self.beta)
        nn.init.uniform_(self.slope, 0.0, 1.0)
        nn.init.xavier_uniform_(self.intercept)

    def forward(self, theta: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """Log-probabilities of every feature per cell (each row's exp sums to 1)."""
        # One-hot products rather than slope[batch]: the backward pass of indexing
        # accumulates with multiple threads in a varying order (not reproducible).
        onehot = F.one_hot(batch, self.slope.shape[0]).to(theta.dtype)
        logits = (theta @ self.beta) * (1.0 + onehot @ self.slope) + onehot @ self.intercept
        return F.log_softmax(logits, dim=-1)


class Cobolt(nn.Module):
    """Cobolt: a multimodal topic model with a product-of-experts variational posterior.

    ``n_features`` maps each modality's name to its number of features, in the
    order the modalities are used everywhere else.
    """

    def __init__(
        self,
        n_features: dict[str, int],
        n_latent: int = 10,
        hidden_dims: Sequence[int] = (128, 64),
        n_batches: int = 1,
        alpha: float | None = None,
    ):
        super().__init__()
        self.names = list(n_features)
        self.n_latent = n_latent
        # ModuleDict keys must be plain identifiers; modality names may not be.
        self._key = {name: f"m{i}" for i, name in enumerate(self.names)}
        self.encoders = nn.ModuleDict(
            {self._key[n]: Encoder(j, hidden_dims, n_latent) for n, j in n_features.items()}
        )
        self.decoders = nn.ModuleDict(
            {self._key[n]: Decoder(n_latent, j, n_batches) for n, j in n_features.items()}
        )
        alpha = 50.0 / n_latent if alpha is None else alpha
        prior_mean, prior_var = laplace_dirichlet_prior(torch.full((n_latent,), float(alpha)))
        self.register_buffer("prior_mean", prior_mean)
        self.register_buffer("prior_var", prior_var)

    def encoder(self, name: str) -> Encoder:
        return self.encoders[self._key[name]]

    def decoder(self, name: str) -> Decoder:
        return self.decoders[self._key[name]]

    def experts(
        self, xs: dict[str, torch.Tensor], subset: Sequence[str] | None = None
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The Gaussian expert (mean, logvar) of each modality in ``subset`` (default: all in ``xs``).

        Only the subset's encoders run, as in the authors' training: a pass over
        the RNA-only subset leaves the ATAC encoder (and its BatchNorm) untouched.
        """
        names = [n for n in self.names if n in xs] if subset is None else list(subset)
        return {name: self.encoder(name)(xs[name]) for name in names}

    def posterior(self, experts: dict, subset: Sequence[str] | None = None):
        """(mean, logvar) of q(z | the modalities in ``subset``): the prior expert times theirs."""
        subset = self.names if subset is None else subset
        means = [self.prior_mean] + [experts[name][0] for name in subset]
        logvars = [torch.log(self.prior_var)] + [experts[name][1] for name in subset]
        return product_of_experts(means, logvars)

    def elbo_terms(self, xs, experts, batch, subset, noise: torch.Tensor | None = None):
        """Per-cell reconstruction loss (-log-likelihood) and KL of the posterior given ``subset``.

        As in the authors' code (and MVAE's training on sub-sampled modalities),
        the posterior built from a subset reconstructs the modalities of that
        subset only. ``noise`` is the standard normal draw of the
        reparameterisation (drawn here if None).
        """
        mean, logvar = self.posterior(experts, subset)
        if noise is None:
            noise = torch.randn_like(mean)
        z = mean + torch.exp(0.5 * logvar) * noise
        theta = F.softmax(z, dim=-1)
        reconstruction = torch.zeros_like(mean[:, 0])
        for name in subset:
            log_p = self.decoder(name)(theta, batch)
            # Multinomial log-likelihood without its constant (the multinomial coefficient).
            reconstruction = reconstruction - (xs[name] * log_p).sum(-1)
        kl = gaussian_kl(mean, logvar, self.prior_mean, self.prior_var)
        return reconstruction, kl

    def loss(self, xs, batch, subset: Sequence[str], kl_weight: float = 1.0):
        """The objective of one optimiser step: the negative ELBO of one subset, summed over the cells.

        ``reconstruction + kl_weight * KL`` of the posterior given ``subset``,
        summed over the mini-batch's cells as in the authors' code. Returns
        (objective, reconstruction, kl); the last two are detached, unweighted sums.
        """
        experts = self.experts(xs, subset)
        rec, kl = self.elbo_terms(xs, experts, batch, subset)
        rec, kl = rec.sum(), kl.sum()
        return rec + kl_weight * kl, float(rec.detach()), float(kl.detach())
