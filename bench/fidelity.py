#!/usr/bin/env python3
"""Benchmark: each wrapper beside its authors' tutorial recipe, on the same data, in the same image.

For MultiVI, MOFA+ and Mowgli, on each dataset:

- recipe: the authors' tutorial recipe, written plainly below (``recipe_*``), run
  with ``docker run`` inside the method's own image with this script mounted; it
  uses the method's package directly and none of multiverse's code;
- wrapper: multiverse's wrapper (``python -m multiverse_methods METHOD``, the
  command the runner starts in the same image) with its default parameters, as
  ``configs/real_data.yaml`` runs it, or with ``--wrapper-params`` (a variant,
  named by ``--tag``);
- both embeddings scored alike in the metrics image (``score``): a scanpy
  15-nearest-neighbour graph of the embedding, Leiden clusterings at
  resolutions 0.1, 0.2, ..., 2.0, the best ARI against ``cell_type`` and the NMI
  of that clustering; and the leave-one-out 15-nearest-neighbour accuracy of
  ``cell_type``.

Prints one Markdown table (recipe, wrapper, wrapper minus recipe) and writes
``scores.json`` into --out. Runs one container at a time, each with all the
host's CPUs. ``--reuse`` keeps embeddings already in --out, so the slow Mowgli
runs can be done once and the table assembled later.

    python bench/fidelity.py [--methods mofa multivi mowgli] [--out bench-results/fidelity]
                             [--reuse] [--seed 0] [--wrapper-params JSON --tag NAME] [DATA ...]

Default data: the two real BMMC files in ../shared/data (or $MULTIVERSE_REAL_DATA).
Recipes (sources named in each function; docs/METHODS.md quotes the table):
MultiVI as scvi-tools 1.4.2's MultiVI tutorial, MOFA+ as muon's RNA+ATAC (and,
for proteins, CITE-seq) tutorials, Mowgli as its README, PBMC vignette and its
authors' preprocessing scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("MULTIVERSE_REAL_DATA", REPO.parent / "shared" / "data"))
DEFAULT_DATA = [REAL / "bmmc_multiome_starter_500.h5mu", REAL / "bmmc_cite_starter_600.h5mu"]
METHODS = ("mofa", "multivi", "mowgli")
RESOLUTIONS = [round(0.1 * i, 1) for i in range(1, 21)]
K = 15


# --------------------------------------------------------------------------------------
# The authors' recipes. Each runs inside the method's image and returns the embedding
# (cells in the input's order) and a few facts about the run.
# --------------------------------------------------------------------------------------

def _counts_copy(adata):
    """The modality with its raw counts in .X (the BMMC files keep them in layers['counts'])."""
    out = adata.copy()
    out.X = out.layers["counts"].copy()
    return out


def recipe_multivi(path: str, seed: int) -> tuple:
    """scvi-tools 1.4.2, "Joint analysis of paired and unpaired multiomic data with MultiVI".

    Features seen in fewer than 1 % of the cells removed (the tutorial's filter),
    ``setup_mudata`` with the modalities (proteins as ``protein_layer``) and the donor
    as batch, ``MULTIVI(mdata, n_genes=..., n_regions=...)``, ``train()`` with all its
    defaults, ``get_latent_representation()``.
    """
    import mudata as md
    import scanpy as sc
    import scvi

    scvi.settings.seed = seed
    scvi.settings.dl_num_workers = 0
    mdata = md.read_h5mu(path)
    layer_of = {"rna": "rna_layer", "atac": "atac_layer", "adt": "protein_layer"}
    mods = {}
    for name in ("rna", "atac", "adt"):  # genes before regions, as MultiVI requires
        if name in mdata.mod:
            mod = _counts_copy(mdata.mod[name])
            sc.pp.filter_genes(mod, min_cells=int(mod.n_obs * 0.01))
            mods[name] = mod
    data = md.MuData(mods)
    data.obs["batch"] = mdata.obs["batch"].astype(str).astype("category").to_numpy()
    scvi.model.MULTIVI.setup_mudata(
        data, batch_key="batch", modalities={layer_of[n]: n for n in mods}
    )
    kwargs = {"n_genes": mods["rna"].n_vars}
    if "atac" in mods:
        kwargs["n_regions"] = mods["atac"].n_vars
    model = scvi.model.MULTIVI(data, **kwargs)
    model.train()
    epochs = len(model.history["elbo_train"])
    return model.get_latent_representation(), {"epochs": epochs, "n_latent": int(model.module.n_latent)}


def recipe_mofa(path: str, seed: int) -> tuple:
    """muon's MOFA+ tutorials, with mofapy2 called as ``muon.tl.mofa`` calls it (muon is not in the image).

    RNA (pbmc10k "Gene expression processing"): normalize_total(1e4), log1p,
    highly_variable_genes(min_mean=0.02, max_mean=4, min_disp=0.5), scale(max_value=10).
    ATAC ("Chromatin accessibility processing"): normalised to 1e4 per cell, log1p,
    highly_variable_genes(min_mean=0.05, max_mean=1.5, min_disp=0.5), scale().
    Proteins (CITE-seq tutorial): every protein; that tutorial normalises with DSB,
    which needs the empty droplets these files lack, so muon's other protein
    normalisation, ``prot.pp.clr`` (Seurat flavour, each protein across cells), is used.
    Then ``mu.tl.mofa``'s defaults: 10 factors, gaussian likelihoods, no view scaling,
    ARD on weights and factors, spike-and-slab weights, at most 1000 iterations,
    "fast" convergence.
    """
    import mudata as md
    import numpy as np
    import scanpy as sc
    import scipy.sparse as sp
    from mofapy2.run.entry_point import entry_point

    mdata = md.read_h5mu(path)
    views, names, features = [], [], []
    for name, mod in mdata.mod.items():
        mod = _counts_copy(mod)
        if name == "adt":
            x = np.asarray(mod.X.toarray() if sp.issparse(mod.X) else mod.X, dtype=np.float64)
            # muon prot.pp.clr defaults: log1p(x / exp(mean over cells of log1p(x))).
            mod.X = np.log1p(x / np.exp(np.log1p(x).mean(axis=0, keepdims=True)))
        else:
            sc.pp.normalize_total(mod, target_sum=1e4)
            sc.pp.log1p(mod)
            if name == "rna":
                sc.pp.highly_variable_genes(mod, min_mean=0.02, max_mean=4, min_disp=0.5)
                sc.pp.scale(mod, max_value=10)
            else:
                sc.pp.highly_variable_genes(mod, min_mean=0.05, max_mean=1.5, min_disp=0.5)
                sc.pp.scale(mod)
            mod = mod[:, mod.var["highly_variable"].to_numpy()]
        x = mod.X.toarray() if sp.issparse(mod.X) else np.asarray(mod.X)
        views.append([np.asarray(x, dtype=np.float64)])
        names.append(name)
        features.append([f"{name}:{v}" for v in mod.var_names])

    ent = entry_point()
    ent.set_data_options(scale_views=False, scale_groups=False, center_groups=True, use_float32=False)
    ent.set_data_matrix(
        views, likelihoods=["gaussian"] * len(views), views_names=names, groups_names=["group1"],
        samples_names=[list(mdata.obs_names.astype(str))], features_names=features,
    )
    ent.set_model_options(
        factors=10, spikeslab_weights=True, spikeslab_factors=False, ard_weights=True, ard_factors=True
    )
    ent.set_train_options(
        iter=1000, convergence_mode="fast", gpu_mode=False, seed=seed, verbose=False, quiet=True
    )
    ent.build()
    ent.run()
    z = ent.model.nodes["Z"].getExpectation()
    elbo = np.asarray(ent.model.train_stats["elbo"], dtype=float)
    return z, {"features": {n: len(f) for n, f in zip(names, features)}, "elbo_evaluations": int(np.isfinite(elbo).sum())}


def recipe_mowgli(path: str, seed: int) -> tuple:
    """Mowgli 0.4.0 as its README, PBMC vignette and authors' preprocessing scripts run it.

    Preprocessing (cantinilab/mowgli_reproducibility, preprocess_op*.py, for these
    NeurIPS 2021 BMMC data): RNA normalize_total(1e4) and log1p; ATAC muon's
    ``atac.pp.tfidf`` defaults; proteins muon's ``prot.pp.clr`` defaults; dense.
    Features: ``highly_variable_genes(n_top_genes=800)`` on RNA and ATAC (the PBMC
    vignette), every protein. Model: ``MowgliModel(latent_dim=15)`` (README) with
    its other defaults; ``train(mdata)`` with its defaults (1000 inner LBFGS steps,
    at most 100 outer iterations, CPU, float64). Embedding: ``obsm["W_OT"]``.
    """
    import mudata as md
    import numpy as np
    import scanpy as sc
    import scipy.sparse as sp
    import torch
    from mowgli import models

    mdata = md.read_h5mu(path)
    mods = {}
    for name, mod in mdata.mod.items():
        mod = _counts_copy(mod)
        x = np.asarray(mod.X.toarray() if sp.issparse(mod.X) else mod.X, dtype=np.float64)
        if name == "rna":
            sc.pp.normalize_total(mod, target_sum=1e4)
            sc.pp.log1p(mod)
        elif name == "atac":
            # muon atac.pp.tfidf defaults: log1p(1e4 * tf) * log1p(n_cells / counts of the peak).
            cell = x.sum(axis=1, keepdims=True)
            peak = x.sum(axis=0, keepdims=True)
            with np.errstate(divide="ignore", invalid="ignore"):
                tfidf = np.log1p(1e4 * x / cell) * np.log1p(x.shape[0] / peak)
            mod.X = np.nan_to_num(tfidf, nan=0.0)
        else:
            mod.X = np.log1p(x / np.exp(np.log1p(x).mean(axis=0, keepdims=True)))
        if name in ("rna", "atac"):
            sc.pp.highly_variable_genes(mod, n_top_genes=800)
        else:
            mod.var["highly_variable"] = True
        mod.X = np.asarray(mod.X.toarray() if sp.issparse(mod.X) else mod.X, dtype=np.float32)
        mods[name] = mod
    data = md.MuData(mods)

    torch.manual_seed(seed)
    model = models.MowgliModel(latent_dim=15)
    model.train(data)
    losses = [float(v) for v in model.losses]
    return np.asarray(data.obsm["W_OT"]), {
        "outer_iterations": len(losses) // 2,
        "loss_history": losses,
        "features": {n: int(m.var["highly_variable"].sum()) for n, m in mods.items()},
    }


def run_recipe(method: str, data: str, out: str, seed: int) -> None:
    """Inside the image: run one recipe and save its embedding and facts."""
    import numpy as np

    start = time.perf_counter()
    embedding, facts = {"multivi": recipe_multivi, "mofa": recipe_mofa, "mowgli": recipe_mowgli}[method](data, seed)
    facts["seconds"] = round(time.perf_counter() - start, 1)
    np.save(out + ".npy", np.asarray(embedding, dtype=np.float32))
    Path(out + ".json").write_text(json.dumps(facts))


# --------------------------------------------------------------------------------------
# Scoring, inside the metrics image (scanpy, leidenalg, scikit-learn).
# --------------------------------------------------------------------------------------

def knn_accuracy(embedding, labels, k: int = K) -> float:
    """Leave-one-out accuracy of a k-nearest-neighbour majority vote (Euclidean)."""
    import numpy as np
    from sklearn.neighbors import NearestNeighbors

    codes = np.unique(labels, return_inverse=True)[1]
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(embedding).kneighbors(embedding)
    hits = 0
    for i, row in enumerate(idx):
        neighbours = [j for j in row if j != i][:k]
        hits += int(np.bincount(codes[neighbours]).argmax() == codes[i])
    return hits / len(codes)


def score_one(embedding, labels, seed: int = 0) -> dict:
    import anndata
    import numpy as np
    import scanpy as sc
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    adata = anndata.AnnData(np.asarray(embedding, dtype=np.float32))
    sc.pp.neighbors(adata, n_neighbors=K, use_rep="X", random_state=seed)
    best = None
    for resolution in RESOLUTIONS:
        sc.tl.leiden(adata, resolution=resolution, random_state=seed, key_added="leiden",
                     flavor="igraph", n_iterations=2, directed=False)
        clusters = adata.obs["leiden"].to_numpy()
        ari = adjusted_rand_score(labels, clusters)
        if best is None or ari > best["ari"]:
            best = {"ari": ari, "nmi": normalized_mutual_info_score(labels, clusters), "resolution": resolution}
    best["knn_accuracy"] = knn_accuracy(np.asarray(embedding, dtype=np.float64), labels)
    return {key: round(float(value), 4) for key, value in best.items()}


def run_scoring(index_path: str, out_path: str) -> None:
    """Inside the metrics image: score every embedding listed in the index."""
    import anndata
    import mudata as md
    import numpy as np

    index = json.loads(Path(index_path).read_text())
    labels_of = {}
    scores = {}
    for key, item in index.items():
        if item["data"] not in labels_of:
            labels_of[item["data"]] = md.read_h5mu(item["data"]).obs["cell_type"].astype(str).to_numpy()
        path = item["embedding"]
        embedding = np.load(path) if path.endswith(".npy") else anndata.read_h5ad(path).obsm["X_emb"]
        scores[key] = score_one(embedding, labels_of[item["data"]])
        print(key, scores[key], flush=True)
    Path(out_path).write_text(json.dumps(scores, indent=1))


# --------------------------------------------------------------------------------------
# The host side.
# --------------------------------------------------------------------------------------

def _image(name: str) -> str:
    """The tag of a method's image, or of the metrics image (MULTIVERSE_IMAGE_TAG respected)."""
    sys.path.insert(0, str(REPO))
    from multiverse.catalog import IMAGES, METHODS as CATALOG, image_of

    return IMAGES[name].tag if name in IMAGES else image_of(CATALOG[name]).tag


def _docker_run(image: str, args: list[str], mounts: dict[Path, str], cpus: int) -> subprocess.CompletedProcess:
    cmd = ["docker", "run", "--rm", "--network", "none", "--user", f"{os.getuid()}:{os.getgid()}",
           "--cpus", str(cpus), "--tmpfs", "/tmp", "--entrypoint", "python"]
    for var, value in {"HOME": "/tmp", "NUMBA_CACHE_DIR": "/tmp", "MPLCONFIGDIR": "/tmp",
                       "OMP_NUM_THREADS": str(cpus), "MKL_NUM_THREADS": str(cpus),
                       "OPENBLAS_NUM_THREADS": str(cpus), "MULTIVERSE_THREADS": str(cpus),
                       "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}.items():
        cmd += ["-e", f"{var}={value}"]
    for host, inside in mounts.items():
        cmd += ["-v", f"{host}:{inside}"]
    return subprocess.run(cmd + [image, *args], capture_output=True, text=True)


def recipe_on_host(method: str, data: Path, out: Path, seed: int, cpus: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    proc = _docker_run(
        _image(method),
        ["/bench/fidelity.py", "recipe", method, f"/data/{data.name}", f"/out/{method}", "--seed", str(seed)],
        {REPO / "bench": "/bench:ro", data.parent.resolve(): "/data:ro", out.resolve(): "/out"},
        cpus,
    )
    if proc.returncode != 0:
        sys.exit(f"recipe {method} on {data.name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return json.loads((out / f"{method}.json").read_text())


def wrapper_params(method: str, seed: int, overrides: dict) -> dict:
    """The wrapper's effective parameters, resolved as the host does for configs/real_data.yaml."""
    sys.path.insert(0, str(REPO))
    from multiverse_methods.registry import METHODS as REGISTRY

    cls = REGISTRY[method].params
    return cls(**cls.resolve({"seed": seed, **overrides})).to_dict()


def wrapper_on_host(method: str, data: Path, out: Path, params: dict, cpus: int) -> dict:
    """The wrapper, exactly as the runner starts it: the image's entry point with the parameters as JSON.

    (Not through ``multiverse run``: the same container settings as the recipe's,
    and nothing of a long run depends on the orchestrator.)
    """
    import h5py

    out.mkdir(parents=True, exist_ok=True)
    with h5py.File(data, "r") as handle:
        names = list(handle["mod"])  # the modality names; the BMMC files name them by kind
    proc = _docker_run(
        _image(method),
        ["-m", "multiverse_methods", method, "--input", f"/data/{data.name}", "--output", f"/out/{method}",
         "--params", json.dumps(params), "--modalities", json.dumps({n: n for n in names}),
         # The BMMC files keep raw counts in layers["counts"] (the runner finds and passes this).
         "--counts", json.dumps({n: "layers/counts" for n in names})],
        {data.parent.resolve(): "/data:ro", out.resolve(): "/out"},
        cpus,
    )
    metrics = out / method / "metrics.json"
    if proc.returncode != 0 or not metrics.is_file():
        sys.exit(f"wrapper {method} on {data.name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return json.loads(metrics.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="*", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "fidelity")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="keep embeddings already in --out")
    parser.add_argument("--wrapper-params", type=json.loads, default={},
                        help='JSON {"method": {"param": value}} for the wrapper (default: its defaults)')
    parser.add_argument("--tag", default="", help="name of this wrapper variant (its own folder in --out)")
    args = parser.parse_args()
    missing = [str(p) for p in args.data if not p.is_file()]
    if missing:
        sys.exit(f"data not found: {', '.join(missing)} (set MULTIVERSE_REAL_DATA or name the files)")
    cpus = os.cpu_count() or 1

    index, seconds = {}, {}
    for data in args.data:
        for method in args.methods:
            base = args.out / data.stem
            recipe_npy = base / "recipe" / f"{method}.npy"
            if not (args.reuse and recipe_npy.is_file()):
                print(f"{data.stem} / {method}: recipe ...", flush=True)
                recipe_on_host(method, data, base / "recipe", args.seed, cpus)
            folder = "wrapper" + (f"-{args.tag}" if args.tag else "")
            wrapper_h5ad = base / folder / method / "embeddings.h5ad"
            params = wrapper_params(method, args.seed, args.wrapper_params.get(method, {}))
            if not (args.reuse and wrapper_h5ad.is_file()):
                print(f"{data.stem} / {method}: wrapper {json.dumps(params)} ...", flush=True)
                wrapper_on_host(method, data, base / folder, params, cpus)
            recipe_facts = json.loads((base / "recipe" / f"{method}.json").read_text())
            wrapper_metrics = json.loads((base / folder / method / "metrics.json").read_text())
            if wrapper_metrics["params"] != params:
                sys.exit(f"{wrapper_h5ad} was made with other parameters: {wrapper_metrics['params']}; drop --reuse or use --tag")
            seconds[(data.stem, method)] = (recipe_facts["seconds"], wrapper_metrics.get("runtime_s"))
            index[f"{data.stem}|{method}|recipe"] = {"data": f"/data/{data.name}", "embedding": f"/out/{data.stem}/recipe/{method}.npy"}
            index[f"{data.stem}|{method}|wrapper"] = {"data": f"/data/{data.name}", "embedding": f"/out/{data.stem}/{folder}/{method}/embeddings.h5ad"}

    # One data folder is mounted for scoring: every file must share it.
    folders = {p.parent.resolve() for p in args.data}
    if len(folders) != 1:
        sys.exit("all data files must be in one folder")
    name = "scores" + (f"-{args.tag}" if args.tag else "")
    (args.out / f"{name}-index.json").write_text(json.dumps(index, indent=1))
    print("scoring every embedding (metrics image) ...", flush=True)
    proc = _docker_run(
        _image("metrics"),
        ["/bench/fidelity.py", "score", f"/out/{name}-index.json", f"/out/{name}.json"],
        {REPO / "bench": "/bench:ro", folders.pop(): "/data:ro", args.out.resolve(): "/out"},
        cpus,
    )
    if proc.returncode != 0:
        sys.exit(f"scoring failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    scores = json.loads((args.out / f"{name}.json").read_text())

    print()
    if args.tag or args.wrapper_params:
        print(f"wrapper variant {args.tag!r}: {json.dumps(args.wrapper_params)}")
    print("| data | method | recipe ARI / NMI / kNN | wrapper ARI / NMI / kNN | wrapper - recipe (ARI / NMI / kNN) | minutes (recipe / wrapper) |")
    print("|---|---|---|---|---|---|")
    for data in args.data:
        for method in args.methods:
            r = scores[f"{data.stem}|{method}|recipe"]
            w = scores[f"{data.stem}|{method}|wrapper"]
            diff = " / ".join(f"{w[k] - r[k]:+.2f}" for k in ("ari", "nmi", "knn_accuracy"))
            rs, ws = seconds[(data.stem, method)]
            print(f"| {data.stem} | {method} | {r['ari']:.2f} / {r['nmi']:.2f} / {r['knn_accuracy']:.2f} "
                  f"| {w['ari']:.2f} / {w['nmi']:.2f} / {w['knn_accuracy']:.2f} | {diff} "
                  f"| {rs / 60:.1f} / {(ws or float('nan')) / 60:.1f} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "recipe":
        p = argparse.ArgumentParser()
        p.add_argument("cmd"), p.add_argument("method"), p.add_argument("data"), p.add_argument("out")
        p.add_argument("--seed", type=int, default=0)
        a = p.parse_args()
        run_recipe(a.method, a.data, a.out, a.seed)
    elif len(sys.argv) > 1 and sys.argv[1] == "score":
        run_scoring(sys.argv[2], sys.argv[3])
    else:
        main()
