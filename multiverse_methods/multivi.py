"""MultiVI (scvi-tools 1.4) on raw counts: RNA, ATAC and/or ADT (protein).

The raw counts of every modality (``layers["counts"]``, or ``.X`` when it holds
counts) are reduced to the features detected in at least
``min_cells_fraction`` of the cells, read block by block and held as compact
integers (RNA, ATAC), and put into a fresh MuData, which
``MULTIVI.setup_mudata`` registers (RNA as ``rna_layer``, ATAC as
``atac_layer``, ADT as ``protein_layer``; scvi-tools 1.4 has no
``setup_anndata`` for MultiVI any more). The batch column, when the input has
it, becomes MultiVI's batch covariate. Training is ``MULTIVI.train`` with its
defaults (AdamW at lr 1e-4, at most 500 epochs, KL warm-up over 50 epochs,
adversarial mixing, early stopping on the validation reconstruction loss with a
patience of 50 epochs), on the CPU: the image holds the CPU build of torch.
The embedding is the mean of the joint latent posterior
(``get_latent_representation()``).

Nothing is written outside a temporary folder under /tmp: lightning's
checkpointing is off and scvi-tools' logger keeps the history in memory.
"""

from __future__ import annotations

import logging
import math
import os
import re
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from multiverse_methods import preprocess
from multiverse_methods.contract import Dataset, MethodResult, NotApplicable
from multiverse_methods.params import MultiviParams

PACKAGES = ("scvi-tools", "torch", "lightning", "numpy", "anndata", "mudata")
log = logging.getLogger("multiverse_methods.multivi")

#: Modality kind -> the argument of MULTIVI.setup_mudata's ``modalities`` naming it.
LAYER_ARG = {"rna": "rna_layer", "atac": "atac_layer", "adt": "protein_layer"}
#: Per-epoch series of the training history copied into metrics.json.
HISTORY_KEYS = (
    "train_loss_epoch",
    "elbo_train",
    "elbo_validation",
    "reconstruction_loss_train",
    "reconstruction_loss_validation",
    "validation_loss",
)


def _threads() -> int:
    try:
        return max(1, int(os.environ.get("MULTIVERSE_THREADS", "1")))
    except ValueError:
        return 1


def count_modality(matrix, var_names, name: str, min_cells: int, compact: bool = True):
    """An AnnData of the raw counts of one modality (``Dataset.matrix``), reduced to the features
    seen in min_cells cells; read block by block, so only those features are ever held whole.
    ``compact``: held in the narrowest integer type that fits them (``preprocess.counts_dtype``)."""
    import anndata

    preprocess.require_counts(matrix, name)
    stats = preprocess.scan(matrix, "", name, lognorm=False)  # also refuses negative counts
    keep = np.flatnonzero(stats.nonzero >= min_cells)
    if keep.size == 0:
        raise NotApplicable(f"modality '{name}': no feature is detected in {min_cells} or more cells")
    # Held compact; scvi-tools' loader makes each mini-batch float32 (AnnTorchDataset).
    dtype = preprocess.counts_dtype(stats.max_value) if compact else np.float32
    out = anndata.AnnData(X=preprocess.selected_raw(matrix, keep, dtype, name, stats))
    out.var_names = [f"{name}:{v}" for v in np.asarray(var_names.astype(str))[keep]]
    log.info("%s: %d of %d features detected in >= %d cells (%s counts, %.2f GB)", name, keep.size,
             matrix.shape[1], min_cells, np.dtype(dtype).name, _nbytes(out.X) / 1e9)
    return out


def _nbytes(x) -> int:
    return x.data.nbytes + x.indices.nbytes + x.indptr.nbytes


def build_mudata(data: Dataset, params: MultiviParams):
    """The MuData MultiVI trains on, and the ``modalities`` mapping for setup_mudata."""
    import mudata
    import pandas as pd

    by_kind: dict[str, str] = {}
    for name, kind in data.kinds.items():
        if kind in by_kind:
            raise NotApplicable(
                f"MultiVI models one modality of each kind; '{by_kind[kind]}' and '{name}' are both {kind}"
            )
        by_kind[kind] = name
    if not {"rna", "atac"} & set(by_kind):
        raise NotApplicable("MultiVI needs an RNA or an ATAC modality (protein alone is not supported)")

    min_cells = max(1, math.ceil(params.min_cells_fraction * data.n_obs))
    obs_names = pd.Index(data.obs_names.astype(str))
    mods = {}
    for kind in ("rna", "atac", "adt"):  # MultiVI's own order: rna, atac, protein
        if kind in by_kind:
            name = by_kind[kind]
            # Proteins stay float32: scvi-tools fits their background prior on the whole matrix
            # (numpy would take log1p of uint8 in float16); they are few anyway.
            ad = count_modality(data.matrix(name), data.modalities[name].var_names, name, min_cells,
                                compact=kind != "adt")
            data.release(name)  # its detected features are all MultiVI needs
            ad.obs_names = obs_names
            mods[by_kind[kind]] = ad
    mdata = mudata.MuData(mods)

    batch_key = None
    if params.batch_key:
        if params.batch_key in data.obs.columns:
            batch = np.asarray(data.obs[params.batch_key].astype(str))
            mdata.obs["multiverse_batch"] = pd.Categorical(batch)
            batch_key = "multiverse_batch"
            log.info("batch covariate: obs['%s'] (%d batches)", params.batch_key, len(set(batch)))
        else:
            log.info("batch_key '%s' is not a column of the input's obs: training without batches", params.batch_key)
    modalities = {LAYER_ARG[kind]: name for kind, name in by_kind.items()}
    return mdata, modalities, batch_key


#: Warnings of the libraries that say nothing about this run (message prefixes).
QUIET_WARNINGS = (
    "From 0.4 .update() will not pull",  # mudata's notice, raised by setup_mudata's update()
    "Initializing zero-element tensors",  # the encoder of an absent modality (e.g. no ATAC)
    "`isinstance(treespec, LeafSpec)` is deprecated",  # lightning vs torch 2.13
    "The number of training batches",  # lightning's logging interval on small data
)


class _DropTip(logging.Filter):
    """Drops lightning's advertisement for a cloud logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def _route_library_logs() -> None:
    """One copy of every lightning and scvi-tools message, in log.txt as well as on stderr.

    lightning adds a stderr handler of its own and still propagates (each line twice);
    scvi-tools logs through a rich handler that does not propagate (not in log.txt).
    """
    for name in ("lightning", "scvi"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for handler in logging.getLogger().handlers:
        handler.addFilter(_DropTip())


def _history(model) -> dict:
    """Per-epoch losses from scvi-tools' in-memory training history."""
    history = getattr(model, "history", None) or {}
    out = {}
    for key in HISTORY_KEYS:
        frame = history.get(key)
        if frame is None or len(frame) == 0:
            continue
        values = frame.iloc[:, 0].astype(float).to_numpy()
        out[key] = [round(float(v), 4) if np.isfinite(v) else None for v in values]
    return out


def _epoch_logger(every: int):
    from lightning.pytorch.callbacks import Callback

    class EpochLog(Callback):
        """Logs the losses every few epochs (the progress bar is off)."""

        def on_train_epoch_end(self, trainer, pl_module):
            epoch = trainer.current_epoch + 1
            if epoch == 1 or epoch % every == 0 or epoch == trainer.max_epochs:
                metrics = trainer.callback_metrics
                shown = ", ".join(
                    f"{k}={float(metrics[k]):.2f}"
                    for k in ("elbo_train", "elbo_validation", "reconstruction_loss_validation")
                    if k in metrics
                )
                log.info("epoch %d/%d: %s", epoch, trainer.max_epochs, shown)

    return EpochLog()


def fit(data: Dataset, params: MultiviParams) -> MethodResult:
    # Idle OpenMP threads of torch sleep instead of spinning: with 2 threads on a busy host,
    # spinning took 4x the CPU time and 2.5x the wall time of one thread; passive, the same.
    # The runner sets it in every container; this covers runs outside it. Read when torch
    # loads its OpenMP runtime, so set before the import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    threads = _threads()
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process
        pass

    cpu_start = time.process_time()
    with warnings.catch_warnings():
        for message in QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=re.escape(message))
        return _fit(data, params, threads, cpu_start)


def _fit(data: Dataset, params: MultiviParams, threads: int, cpu_start: float) -> MethodResult:
    mdata, modalities, batch_key = build_mudata(data, params)  # NotApplicable before the slow imports

    import scvi

    _route_library_logs()

    workdir = Path(tempfile.mkdtemp(prefix="multivi-", dir=tempfile.gettempdir()))
    scvi.settings.logging_dir = workdir
    scvi.settings.dl_num_workers = 0
    scvi.settings.num_threads = threads
    scvi.settings.seed = params.seed  # seeds python, numpy and torch (lightning's seed_everything)

    log.info("setup_mudata(modalities=%s, batch_key=%s)", modalities, batch_key)
    scvi.model.MULTIVI.setup_mudata(mdata, batch_key=batch_key, modalities=modalities)
    model = scvi.model.MULTIVI(mdata, n_latent=params.n_latent)
    log.info("%s", model._model_summary_string.replace("\n", " "))

    model.train(
        max_epochs=params.max_epochs,
        lr=params.lr,
        accelerator="cpu",  # the image's torch is a CPU build
        devices=1,
        early_stopping=params.early_stopping,
        check_val_every_n_epoch=1,  # the validation loss in the history even without early stopping
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=str(workdir),
        callbacks=[_epoch_logger(max(1, params.max_epochs // 10))],
    )

    embedding = model.get_latent_representation()
    history = _history(model)
    epochs = len(history.get("elbo_train") or history.get("train_loss_epoch") or [])
    final = {f"final_{k}": v[-1] for k, v in history.items() if v}
    written = sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*"))
    if written:
        log.warning("training left files in its temporary folder: %s", ", ".join(written[:10]))
    log.info(
        "MultiVI: %d of at most %d epochs%s; embedding %d x %d",
        epochs, params.max_epochs,
        " (stopped early)" if epochs < params.max_epochs else "",
        *embedding.shape,
    )
    return MethodResult(
        embedding=embedding,
        extra_metrics={
            "epochs": epochs,
            "stopped_early": bool(epochs < params.max_epochs),
            "n_latent": int(model.module.n_latent),
            "modalities_used": modalities,
            "batch_covariate": params.batch_key if batch_key else None,
            "cpu_seconds": round(time.process_time() - cpu_start, 2),
            "n_features_used": {name: int(mdata.mod[name].n_vars) for name in mdata.mod},
            **final,
            "history": history,
        },
    )
