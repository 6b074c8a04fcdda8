"""Named sizes for ``multiverse synth --preset`` and the reference file each one fits."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from multiverse.errors import InputError

DEFAULT_CHUNK = 1000  # cells per chunk: about 0.5 GB of peak memory at 100,000 peaks

#: The real labelled files (NeurIPS 2021 BMMC starter sets) the generator fits by default, by second modality.
REFERENCE_FILES = {"atac": "bmmc_multiome_starter_500.h5mu", "adt": "bmmc_cite_starter_600.h5mu"}


@dataclass(frozen=True)
class Preset:
    cells: int
    genes: int
    second: str  # "atac" or "adt"
    second_features: int

    def describe(self) -> str:
        unit = "peaks" if self.second == "atac" else "proteins"
        return f"{self.cells:,} cells x {self.genes:,} genes x {self.second_features:,} {unit}"


PRESETS = {
    # A 10x Multiome experiment's size (the full BMMC multiome set: 69,249 cells, 13,431 genes, 116,490 peaks).
    "multiome-50k": Preset(50_000, 20_000, "atac", 100_000),
    # CITE-seq with the BMMC panel of 134 antibodies.
    "cite-50k": Preset(50_000, 15_000, "adt", 134),
    # The same features with a tenth of the cells: minutes instead of hours for most methods.
    "multiome-5k": Preset(5_000, 20_000, "atac", 100_000),
    "cite-5k": Preset(5_000, 15_000, "adt", 134),
}


def real_data_dir() -> Path:
    """$MULTIVERSE_REAL_DATA, else ``shared/data`` beside the checkout (where the tests look too)."""
    env = os.environ.get("MULTIVERSE_REAL_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def default_reference(second: str) -> Path:
    """The real file to fit for data whose second modality is ``second``; an error saying what to do if absent."""
    folder = real_data_dir()
    path = folder / REFERENCE_FILES[second]
    if not path.is_file():
        raise InputError(
            f"no reference data: {path} not found. The generator fits its model to a real paired dataset; "
            f"pass --reference FILE (a .h5mu with raw counts in layers['counts'] and obs['cell_type'], "
            f"obs['batch']) or set MULTIVERSE_REAL_DATA to the folder holding {REFERENCE_FILES[second]} "
            "(from the test resources of openproblems-bio/neurips2021_multimodal_viash)"
        )
    return path
