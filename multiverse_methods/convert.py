"""Inside the PCA image: turn a Cell Ranger (ARC) .h5 or a mixed-feature .h5ad into a paired .h5mu.

    python -m multiverse_methods.convert --input /data/input/<file> --output /data/output \
        --split '{"rna": {"feature_type": "Gene Expression", "counts": "X"}, "atac": {...}}'

The host decided the split and where each modality's counts are (``--split``);
this reads the file with scanpy's 10x reader (``read_10x_h5(gex_only=False)``,
all feature types) or anndata's, cuts it by ``var["feature_types"]`` into one
AnnData per modality (its counts as ``X`` when it has counts, else its ``X``),
keeps the cell annotations, and writes ``converted.h5mu`` (MuData). Methods
then read it like any other paired input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

OUTPUT_FILE = "converted.h5mu"
log = logging.getLogger("multiverse_methods.convert")


def _matrix(adata, location):
    if location in (None, "X"):
        return adata.X
    if location == "raw/X":
        return adata.raw.X
    return adata.layers[location.removeprefix("layers/")]


def convert(source: Path, split: dict, target: Path) -> None:
    import anndata
    import mudata
    import numpy as np
    import scipy.sparse as sp

    if source.suffix == ".h5":
        import scanpy as sc

        adata = sc.read_10x_h5(str(source), gex_only=False)
    else:
        adata = anndata.read_h5ad(str(source))
    adata.obs_names = adata.obs_names.astype(str)
    types = np.asarray(adata.var["feature_types"]).astype(str)
    mods = {}
    for name, how in split.items():
        columns = types == how["feature_type"]
        x = sp.csr_matrix(_matrix(adata, how.get("counts"))[:, columns], dtype=np.float32)
        mods[name] = anndata.AnnData(X=x, obs=adata.obs[[]].copy(), var=adata.var.loc[columns].copy())
        log.info("%s: %d features of type %r%s", name, x.shape[1], how["feature_type"],
                 f", counts from {how['counts']}" if how.get("counts") else ", no counts")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        mdata = mudata.MuData(mods)
        mdata.obs = adata.obs.copy()
        mdata.write(str(target))


def main(argv=None) -> int:
    from multiverse_methods import deadline

    deadline.start()
    parser = argparse.ArgumentParser(prog="python -m multiverse_methods.convert")
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--split", required=True, help="JSON: modality -> {feature_type, counts}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        convert(args.input, json.loads(args.split), args.output / OUTPUT_FILE)
    except Exception:  # noqa: BLE001 - the host shows the log
        log.exception("converting %s failed", args.input.name)
        return 1
    log.info("wrote %s", OUTPUT_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
