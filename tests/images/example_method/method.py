"""A user's own method, as a lab would write it: not multiverse's code, only its contract.

Truncated SVD of the log-normalised counts of every modality side by side
(scikit-learn), seeded. Run as the image's entrypoint with the contract's
arguments (docs/MODEL_CONTAINERS.md). Built with BROKEN=1 it breaks the
contract on purpose: it reverses the cells, ignores the seed and echoes
other parameters than it was given, and crashes on an input without counts.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import anndata
import mudata
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD

BROKEN = os.environ.get("EXAMPLE_BROKEN") == "1"

parser = argparse.ArgumentParser()
for name in ("--input", "--output", "--params", "--modalities", "--counts"):
    parser.add_argument(name, default="{}")
args = parser.parse_args()
params = json.loads(args.params)
counts_at = json.loads(args.counts)
out = Path(args.output)
start = time.time()
log = open(out / "log.txt", "w")

mdata = mudata.read_h5mu(args.input)
blocks = []
for name, mod in mdata.mod.items():
    where = counts_at.get(name)
    if where is None:
        if BROKEN:
            raise RuntimeError("no counts: the broken example crashes here")
        print("not applicable: the example method models raw counts and this input has none", flush=True)
        sys.exit(3)
    x = mod.layers[where.split("/", 1)[1]] if where.startswith("layers/") else mod.X
    x = sp.csr_matrix(x, dtype=np.float32)
    size = np.asarray(x.sum(axis=1)).ravel()
    blocks.append((sp.diags(1e4 / np.maximum(size, 1)) @ x).log1p())
seed = int(params.get("seed", 0)) if not BROKEN else int.from_bytes(os.urandom(4), "little")
svd = TruncatedSVD(n_components=int(params.get("n_components", 10)), random_state=seed, algorithm="randomized")
embedding = svd.fit_transform(sp.hstack(blocks).tocsr()).astype(np.float32)
names = list(mdata.obs_names)
if BROKEN:
    names, embedding = names[::-1], embedding
result = anndata.AnnData(obs=pd.DataFrame(index=pd.Index(names)))
result.obsm["X_emb"] = embedding
result.uns["multiverse_params"] = json.dumps({**params, "extra": 1} if BROKEN else params, sort_keys=True)
result.write_h5ad(out / "embeddings.h5ad")
metrics = {"runtime_s": round(time.time() - start, 3), "peak_memory_mb": 0.0, "params": params,
           "versions": {"scikit-learn": __import__("sklearn").__version__}}
(out / "metrics.json").write_text(json.dumps(metrics))
log.write("example method: done\n")
print("example method: done", flush=True)
