"""MOFA+ (mofapy2): a Bayesian factor model with one likelihood per modality.

Each modality becomes one MOFA view, prepared for the likelihood it is given
(gaussian for every kind by default, as mofapy2's and muon's defaults):

- RNA: the genes of highest dispersion; log-normalised counts with a gaussian
  likelihood, or the raw counts of those genes with a poisson likelihood.
- ATAC: the most frequently open peaks; TF-IDF with a gaussian likelihood, or
  binarised with a bernoulli likelihood.
- ADT: every protein, the CLR of Stoeckius et al. per cell, gaussian.

Normalisation is computed on every feature of the modality, then reduced to the
selection. mofapy2's ``entry_point`` builds the model with its own defaults (one
group, features centred, no view scaling unless ``scale_views``, ARD prior on the
weights, spike-and-slab weights, the ELBO every 5 iterations) and trains it by
variational Bayes until the ELBO converges ("fast" by default) or ``max_iter``
iterations are done. The embedding is the expectation of the factor node Z
(cells x factors, in input order). Nothing is written to disk: the trained model
is not saved.

Training runs on one thread whatever the container's CPU share: mofapy2 makes
many small numpy calls, and multi-threaded BLAS made them slower (2 threads:
about 2x the CPU time per iteration, 5x the wall time on a busy 2-core host).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import time

import numpy as np
import scipy.sparse as sp

from multiverse_methods import preprocess
from multiverse_methods.contract import Dataset, MethodResult, NotApplicable
from multiverse_methods.params import MofaParams

PACKAGES = ("mofapy2", "numpy", "scipy", "anndata", "mudata", "scanpy")
log = logging.getLogger("multiverse_methods.mofa")

#: Iterations whose ELBO mofapy2 computes: the first, then every FREQ_ELBO-th.
FREQ_ELBO = 5


class _LineLogger(io.TextIOBase):
    """A text stream that sends mofapy2's prints, line by line, to the log."""

    def __init__(self, logger: logging.Logger):
        self.logger = logger
        self.buffer = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.buffer += text.replace("\a", "")
        *lines, self.buffer = self.buffer.split("\n")
        for line in lines:
            line = line.rstrip()
            if not line.strip() or line.lstrip().startswith("###"):  # the ASCII banner
                continue
            # Iterations without an ELBO evaluation say only their time: keep them out of the log.
            quiet = line.startswith("Iteration ") and "ELBO" not in line
            self.logger.log(logging.DEBUG if quiet else logging.INFO, "mofapy2: %s", line.strip())
        return len(text)

    def flush(self) -> None:
        if self.buffer.strip():
            self.logger.info("mofapy2: %s", self.buffer.strip())
        self.buffer = ""


def likelihood_of(kind: str, params: MofaParams) -> str:
    return {"rna": params.likelihood_rna, "atac": params.likelihood_atac, "adt": params.likelihood_adt}[kind]


def prepare_view(matrix, var_names, name: str, kind: str, likelihood: str, params: MofaParams,
                 dtype=np.float64):
    """The dense cells x features matrix of one view, and its feature names.

    ``matrix`` (``Dataset.matrix``) is read block by block of cells: once for the selection's
    statistics, once for the selected features; the whole input is never in memory.
    """
    is_counts = matrix.is_counts
    if not is_counts and kind != "adt":
        log.warning("%s (%s): no raw counts; using .X as it is, without feature selection", name, kind)
    if likelihood == "poisson" and not is_counts:
        raise NotApplicable(
            f"likelihood_{kind}='poisson' needs raw counts, but modality '{name}' has none "
            "(no layers['counts'] and .X is not integer-valued); use 'gaussian'"
        )
    keep, stats = preprocess.select(matrix, kind, params.n_top_genes, params.n_top_peaks, name)
    var_names = np.asarray(var_names.astype(str))[keep]

    if likelihood == "bernoulli":  # ATAC: open (any non-zero value) or not
        y = (preprocess.selected_raw(matrix, keep, stats=stats) != 0).astype(np.float64)
    elif likelihood == "poisson":  # RNA: the counts themselves
        y = preprocess.selected_raw(matrix, keep, stats=stats)
    else:  # gaussian on the normalisation suited to the kind, computed on every feature, then selected
        y, _ = preprocess.selected_normalized(matrix, kind, params.n_top_genes, params.n_top_peaks, name,
                                              chosen=(keep, stats))
    # Dense only after the selection, in the precision mofapy2 trains in (use_float32).
    y = np.asarray(y.toarray() if sp.issparse(y) else y, dtype=dtype)

    # Constant features carry nothing and mofapy2 warns about them (bernoulli: all open or all closed).
    informative = y.std(axis=0) > 0
    y, var_names = y[:, informative], var_names[informative]
    if y.shape[1] == 0:
        raise NotApplicable(f"modality '{name}' has no informative feature left after selection")
    log.info(
        "view %s (%s): %d cells x %d features, %s likelihood%s",
        name, kind, y.shape[0], y.shape[1], likelihood, "" if is_counts else " (input was not counts)",
    )
    return y, [f"{name}:{v}" for v in var_names]


def _elbo_trace(elbo: np.ndarray) -> list[list]:
    """[iteration, ELBO] for every iteration whose ELBO mofapy2 computed (index 0: before training)."""
    return [[int(i), round(float(v), 3)] for i, v in enumerate(elbo) if np.isfinite(v)]


def fit(data: Dataset, params: MofaParams) -> MethodResult:
    from threadpoolctl import threadpool_limits

    cpu_start = time.process_time()
    names = list(data.modalities)
    likelihoods = [likelihood_of(data.kinds[n], params) for n in names]
    float32 = params.float32_for(data.n_obs)
    log.info("MOFA+ trains in %s%s", "float32" if float32 else "float64",
             "" if params.use_float32 is not None else f" (use_float32 null: float32 from {params.FLOAT32_FROM_CELLS:,} cells)")
    views, features = [], []
    for name, likelihood in zip(names, likelihoods):
        y, feats = prepare_view(data.matrix(name), data.modalities[name].var_names, name, data.kinds[name],
                                likelihood, params, dtype=np.float32 if float32 else np.float64)
        data.release(name)  # the view holds what MOFA+ needs
        views.append([y])
        features.append(feats)

    if os.environ.get("MULTIVERSE_THREADS", "1") != "1":
        log.info("MOFA+ runs on one thread: mofapy2's many small BLAS calls only slow down with more")
    stream = _LineLogger(log)
    with threadpool_limits(limits=1), contextlib.redirect_stdout(stream):
        try:
            from mofapy2.run.entry_point import entry_point

            ent = entry_point()
            ent.set_data_options(scale_views=params.scale_views, use_float32=float32)
            ent.set_data_matrix(
                views,
                likelihoods=likelihoods,
                views_names=names,
                groups_names=["cells"],
                samples_names=[[str(s) for s in data.obs_names]],
                features_names=features,
            )
            ent.set_model_options(factors=params.n_factors)
            # mofapy2 runs iterations 1 .. iter-1; ask for one more to do max_iter of them.
            ent.set_train_options(
                iter=params.max_iter + 1,
                convergence_mode=params.convergence_mode,
                startELBO=1,
                freqELBO=FREQ_ELBO,
                dropR2=None,  # keep n_factors factors: a fixed embedding dimension
                seed=params.seed,
                gpu_mode=False,
                verbose=False,
                quiet=False,
                outfile=None,
                save_interrupted=False,
            )
            ent.build()
            # entry_point.run() turns a TypeError raised in training into sys.exit() with
            # status 0 (its interrupt handler): train the BayesNet directly instead.
            ent.model.setTrainOptions(ent.train_opts)
            ent.model.iterate()
        except SystemExit as exc:  # mofapy2 reports bad input by print() + sys.exit()
            raise RuntimeError(f"mofapy2 stopped (sys.exit({exc.code})); see its messages above") from None
        finally:
            stream.flush()

    model = ent.model
    if not model.trained:
        raise RuntimeError("mofapy2's training was interrupted")
    z = np.asarray(model.nodes["Z"].getExpectation(), dtype=np.float64)
    elbo = np.asarray(model.train_stats["elbo"], dtype=np.float64)
    # On convergence at iteration i mofapy2 cuts its statistics to i rows; otherwise they
    # keep all max_iter + 2 rows (index 0 is the ELBO before training).
    converged = len(elbo) <= params.max_iter
    n_iter = len(elbo) if converged else params.max_iter
    trace = _elbo_trace(elbo)
    final_elbo = trace[-1][1] if trace else math.nan
    log.info(
        "MOFA+: %s after %d iterations, ELBO %.2f; Z is %d x %d",
        "converged" if converged else "stopped at max_iter", n_iter, final_elbo, *z.shape,
    )

    r2 = {}
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            per_group = model.calculate_variance_explained()  # list (groups) of views x factors
        r2 = {
            name: [round(float(v), 5) for v in np.asarray(per_group[0])[m]]
            for m, name in enumerate(names)
        }
    except Exception as exc:  # noqa: BLE001 - a diagnostic only
        log.warning("could not compute the variance explained per factor: %s", exc)

    return MethodResult(
        embedding=z,
        extra_metrics={
            "n_iterations": int(n_iter),
            "converged": bool(converged),
            "cpu_seconds": round(time.process_time() - cpu_start, 2),
            "threads": "1",  # whatever OMP_NUM_THREADS says: see the module's docstring
            "float32": bool(float32),
            "final_elbo": final_elbo,
            "elbo_trace": trace,
            "likelihoods": dict(zip(names, likelihoods)),
            "n_features_used": {name: len(f) for name, f in zip(names, features)},
            "variance_explained_per_factor": r2,
        },
    )
