"""Generate a paired dataset of any size from a model fitted to a real file, streamed to disk."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from multiverse.errors import ConfigError, InputError
from multiverse.synth.model import ReferenceModel, fit_reference
from multiverse.synth.presets import DEFAULT_CHUNK
from multiverse.synth.sample import expand_features, sample_counts
from multiverse.synth.writer import fill_matrices, write_skeleton



@dataclass(frozen=True)
class Generated:
    path: Path
    n_cells: int
    features: dict[str, int]  # modality name -> features
    nnz: dict[str, int]  # modality name -> stored non-zeros
    reference: str
    seconds: float


def _feature_counts(model: ReferenceModel, asked: Mapping[str, int | None]) -> dict[str, int]:
    """Modality name -> number of features, for RNA and the asked (or the reference's) second modality."""
    rna = model.modality_of_kind("rna")
    seconds = [kind for kind in ("atac", "adt") if kind in asked]
    if len(seconds) > 1:
        raise ConfigError("ask for peaks (ATAC) or proteins (ADT), not both: the data pair RNA with one of them")
    if seconds:
        second = model.modality_of_kind(seconds[0])
        if second is None:
            have = ", ".join(m.kind for m in model.modalities.values())
            raise InputError(
                f"the reference {model.source} has no {seconds[0].upper()} modality (it has {have}); "
                f"pass a reference with {seconds[0].upper()} counts"
            )
    else:
        second = next((m for m in model.modalities.values() if m.kind in ("atac", "adt")), None)
        if second is None:
            raise InputError(f"the reference {model.source} has no ATAC or ADT modality to pair with RNA")
    counts = {}
    for modality in (rna, second):
        n = asked.get(modality.kind)
        n = modality.n_features if n is None else int(n)
        if n < 1:
            raise ConfigError(f"the number of {modality.kind.upper()} features must be at least 1, got {n}")
        counts[modality.name] = n
    return counts


def _obs(model: ReferenceModel, template: np.ndarray) -> pd.DataFrame:
    width = len(str(len(template)))
    return pd.DataFrame(
        {
            "cell_type": pd.Categorical.from_codes(model.cell_type[template], categories=model.cell_types),
            "batch": pd.Categorical.from_codes(model.batch[template], categories=model.batches),
        },
        index=pd.Index([f"synth{i:0{width}d}" for i in range(len(template))]),
    )


def generate(
    path: Path,
    n_cells: int | None,
    features: Mapping[str, int | None],
    reference: Path,
    seed: int = 0,
    chunk_size: int = DEFAULT_CHUNK,
    on_progress: Callable[[int, int], None] | None = None,
) -> Generated:
    """Fit ``reference``, then write ``n_cells`` cells to ``path`` (an .h5mu), ``chunk_size`` at a time.

    ``n_cells`` None: as many as the reference has. ``features`` maps a kind ("rna", "atac" or "adt") to its number of features
    (None or absent: as many as the reference has). The same seed and chunk
    size give the same file. The file appears only once complete.
    """
    if n_cells is not None and n_cells < 1:
        raise ConfigError(f"--cells must be at least 1, got {n_cells}")
    if chunk_size < 1:
        raise ConfigError(f"--chunk-size must be at least 1, got {chunk_size}")
    started = time.perf_counter()
    model = fit_reference(reference)
    n_cells = len(model.cell_type) if n_cells is None else int(n_cells)
    n_features = _feature_counts(model, features)
    n_chunks = -(-n_cells // chunk_size)
    setup_seed, *chunk_seeds = np.random.SeedSequence(seed).spawn(n_chunks + 1)
    rng = np.random.default_rng(setup_seed)
    template = rng.integers(0, len(model.cell_type), n_cells)
    group = model.cell_type[template] * len(model.batches) + model.batch[template]
    feature_sets = {name: expand_features(model.modalities[name], n, rng) for name, n in n_features.items()}
    obs = _obs(model, template)
    var = {
        name: pd.DataFrame(
            {
                "feature_types": pd.Categorical([fs.model.feature_type] * fs.n_features),
                "reference_feature": pd.Categorical(fs.model.feature_names[fs.source]),
            },
            index=pd.Index(fs.names),
        )
        for name, fs in feature_sets.items()
    }
    uns = {
        "multiverse_synth": {
            "reference": model.source,
            "seed": int(seed),
            "chunk_size": int(chunk_size),
            "model": "negative binomial per feature around per-type profiles with per-batch fold changes, "
            "fitted to the reference; cells copy a reference cell's type, batch and depths (multiverse.synth)",
        }
    }

    def blocks():
        done = 0
        for k, chunk_seed in enumerate(chunk_seeds):
            chunk_rng = np.random.default_rng(chunk_seed)
            cells = slice(k * chunk_size, min(n_cells, (k + 1) * chunk_size))
            for name, fs in feature_sets.items():  # one modality's block in memory at a time
                yield name, sample_counts(chunk_rng, fs, model.depth[name][template[cells]], group[cells])
            done = cells.stop
            if on_progress is not None:
                on_progress(done, n_cells)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        write_skeleton(partial, obs, var, uns)
        nnz = fill_matrices(partial, blocks())
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return Generated(
        path=path,
        n_cells=n_cells,
        features=n_features,
        nnz=nnz,
        reference=model.source,
        seconds=time.perf_counter() - started,
    )
