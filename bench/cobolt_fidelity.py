#!/usr/bin/env python3
"""Benchmark: our Cobolt against the authors' figures on the two real BMMC files.

Trains multiverse's Cobolt natively (``multiverse_methods.cobolt.fit`` with
``CoboltParams`` defaults, the authors' tutorial settings) on each file and seed,
and prints, per file and seed:

- ARI: the best adjusted Rand index against ``obs["cell_type"]`` over Leiden
  clusterings (scanpy, ``flavor="leidenalg"``, random_state 0) at resolutions
  0.1, 0.2, ..., 2.0 of scanpy's 15-nearest-neighbour graph of the embedding;
- kNN: leave-one-out accuracy of a 15-nearest-neighbour majority vote
  (Euclidean) for ``cell_type``;
- the training time.

Then the median over seeds, next to the figures of the authors' package
(epurdom/cobolt at its last commit, tutorial settings, seed 0; measured by the
project lead, ../shared/FACTS.md) and the tolerance of issue 12 (0.05).

With ``--original DIR`` it also runs the authors' package from a checkout at
DIR (the directory holding its ``cobolt/`` package; it is GPL-3.0 and is never
part of this repository) with the same settings: one Cobolt dataset per value
of ``obs["batch"]``, every feature of ``layers["counts"]``, 10 latent
dimensions, lr 0.005, 100 epochs, its corrected latent
(``get_all_latent(correction=True)``).

Needs a Python with torch, scanpy and leidenalg besides multiverse's own
modules (found from this file's location). For example, outside the checkout:

    python3 -m venv /tmp/cobolt-bench
    /tmp/cobolt-bench/bin/pip install torch==2.13.0 numpy==2.4.6 scipy==1.17.1 \\
        pandas==2.3.3 scikit-learn==1.9.1 anndata==0.12.19 mudata==0.3.10 \\
        scanpy==1.11.5 numba==0.68.1 leidenalg==0.12.0 igraph==1.0.0
    /tmp/cobolt-bench/bin/python bench/cobolt_fidelity.py [--seeds 0 1 2] \\
        [--data-dir ../shared/data] [--original /path/to/cobolt-checkout]

(pin torch: an unpinned one may resolve to a CUDA build of several GB). The
threads follow MULTIVERSE_THREADS when set (as in the container), else torch's
default.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as in the image (multiverse_methods.cobolt)

FILES = {
    "bmmc_multiome_starter_500": {"rna": "rna", "atac": "atac"},
    "bmmc_cite_starter_600": {"rna": "rna", "adt": "adt"},
}
#: The authors' package with its tutorial settings, seed 0 (ARI, kNN), from ../shared/FACTS.md.
AUTHORS = {"bmmc_multiome_starter_500": (0.44, 0.60), "bmmc_cite_starter_600": (0.60, 0.69)}
TOLERANCE = 0.05
RESOLUTIONS = [round(0.1 * i, 1) for i in range(1, 21)]


def best_leiden_ari(embedding, labels) -> tuple[float, float]:
    """(best ARI, its resolution) over Leiden clusterings of scanpy's 15-NN graph of ``embedding``."""
    import anndata
    import numpy as np
    import scanpy as sc
    from sklearn.metrics import adjusted_rand_score

    adata = anndata.AnnData(obs={"cell_type": np.asarray(labels).astype(str)})
    adata.obsm["X_emb"] = np.asarray(embedding, dtype=np.float32)
    sc.pp.neighbors(adata, n_neighbors=15, use_rep="X_emb", random_state=0)
    best = (-1.0, 0.0)
    for resolution in RESOLUTIONS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # scanpy's notice about the default flavour
            sc.tl.leiden(adata, resolution=resolution, key_added="leiden", random_state=0, flavor="leidenalg")
        ari = adjusted_rand_score(adata.obs["cell_type"], adata.obs["leiden"])
        best = max(best, (ari, resolution))
    return best


def knn_accuracy(embedding, labels, k: int = 15) -> float:
    """Leave-one-out accuracy of a k-nearest-neighbour majority vote (Euclidean); ties go to the first label."""
    import numpy as np
    from sklearn.neighbors import NearestNeighbors

    _, codes = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    index = NearestNeighbors(n_neighbors=k + 1).fit(embedding).kneighbors(return_distance=False)
    neighbours = index[:, :k]  # kneighbors() without X leaves each cell out of its own list
    votes = np.zeros((len(codes), codes.max() + 1))
    np.add.at(votes, (np.repeat(np.arange(len(codes)), k), codes[neighbours].ravel()), 1)
    return float((votes.argmax(1) == codes).mean())


def load(path: Path, kinds: dict):
    from multiverse_methods.contract import load_input

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_input(path, kinds)


def ours(data, seed: int):
    """multiverse's Cobolt with its defaults: (embedding, seconds)."""
    from multiverse_methods import cobolt
    from multiverse_methods.params import CoboltParams

    start = time.perf_counter()
    result = cobolt.fit(data, CoboltParams(seed=seed))
    return result.embedding, time.perf_counter() - start


def original(data, seed: int, checkout: Path):
    """The authors' package from ``checkout``, tutorial settings: (embedding in our cell order, seconds)."""
    import random
    import types

    import numpy as np
    import scipy.sparse as sp
    import torch

    sys.path.insert(0, str(checkout))
    try:
        import xgboost  # noqa: F401
    except ImportError:
        # The package imports xgboost at module level but uses it only to map
        # single-modality cells onto the joint latent; these files have none.
        sys.modules["xgboost"] = types.SimpleNamespace(XGBRegressor=None)
    import cobolt.model.cobolt as authors_training
    from cobolt.model import Cobolt
    from cobolt.utils import MultiomicDataset, SingleData

    authors_training.tqdm = lambda epochs: epochs  # no progress bar between the table's rows

    from multiverse_methods import preprocess

    batches = data.obs["batch"].astype(str).to_numpy()
    singles = []
    for batch in sorted(set(batches)):
        keep = batches == batch
        for name, adata in data.modalities.items():
            counts = sp.csr_matrix(preprocess.counts(adata, name)[keep], dtype=np.float64)
            barcodes = data.obs_names[keep].to_numpy().astype(str)
            singles.append(SingleData(name, batch, adata.var_names.to_numpy().astype(str), counts, barcodes))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    start = time.perf_counter()
    model = Cobolt(dataset=MultiomicDataset.from_singledata(*singles), n_latent=10, lr=0.005)
    model.train(num_epochs=100)
    latent, barcodes = model.get_all_latent(correction=True)
    seconds = time.perf_counter() - start
    order = {barcode: i for i, barcode in enumerate(barcodes)}
    # SingleData names each cell "<dataset>~<barcode>".
    rows = [order[f"{b}~{cell}"] for b, cell in zip(batches, data.obs_names.astype(str))]
    return latent[rows], seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--original", type=Path, help="checkout of the authors' package (epurdom/cobolt)")
    args = parser.parse_args(argv)

    import torch

    if os.environ.get("MULTIVERSE_THREADS"):
        torch.set_num_threads(int(os.environ["MULTIVERSE_THREADS"]))
    runners = {"ours": ours}
    if args.original:
        runners["original"] = lambda data, seed: original(data, seed, args.original)

    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; seeds {args.seeds}\n")
    print("| file | implementation | seed | ARI (resolution) | kNN | train s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for stem, kinds in FILES.items():
        path = args.data_dir / f"{stem}.h5mu"
        if not path.exists():
            print(f"| {stem} | missing: {path} | | | | |")
            continue
        data = load(path, kinds)
        labels = data.obs["cell_type"]
        for name, run in runners.items():
            for seed in args.seeds:
                embedding, seconds = run(data, seed)
                ari, resolution = best_leiden_ari(embedding, labels)
                knn = knn_accuracy(embedding, labels)
                rows.append((stem, name, seed, ari, knn))
                print(f"| {stem} | {name} | {seed} | {ari:.3f} ({resolution:.1f}) | {knn:.3f} | {seconds:.0f} |",
                      flush=True)

    print("\nMedian over seeds, against the authors' figures (tolerance ±0.05):\n")
    print("| file | implementation | ARI | kNN | authors' ARI / kNN | within 0.05 |")
    print("| --- | --- | --- | --- | --- | --- |")
    failed = False
    for stem in FILES:
        for name in runners:
            mine = [(a, k) for s, n, _, a, k in rows if s == stem and n == name]
            if not mine:
                continue
            ari = statistics.median(a for a, _ in mine)
            knn = statistics.median(k for _, k in mine)
            target_ari, target_knn = AUTHORS[stem]
            ok = abs(ari - target_ari) <= TOLERANCE and abs(knn - target_knn) <= TOLERANCE
            failed |= name == "ours" and not ok
            print(f"| {stem} | {name} | {ari:.3f} | {knn:.3f} | {target_ari:.2f} / {target_knn:.2f} | "
                  f"{'yes' if ok else 'NO'} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
