"""A deliberately misbehaving "method" for the runner's tests (runs in a test image).

It speaks the container contract (same arguments as multiverse_methods) and
does what its ``behaviour`` parameter says:

- ok:           write a valid result
- probe:        try to write to the input, to the image and to the network; record
                what happened in probe.json; then write a valid result
- crash:        raise an exception (exit code 1)
- sleep:        sleep ``seconds`` (to run past a timeout)
- invalid:      write an embedding with NaN values and the cells out of order
- no_output:    exit 0 without writing anything
- oom:          allocate memory until the container's limit kills it
- not_applicable: exit with the contract's "not applicable" code
"""

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--input", type=Path)
parser.add_argument("--output", type=Path)
parser.add_argument("--params", default="{}")
parser.add_argument("--modalities", default="{}")
args = parser.parse_args()
params = json.loads(args.params)
behaviour = params.get("behaviour", "ok")
print(f"faulty: behaviour={behaviour} uid={os.getuid()} gid={os.getgid()}", flush=True)
(args.output / "log.txt").write_text(f"behaviour {behaviour}\n")


def obs_names():
    import anndata
    import mudata

    if args.input.suffix == ".h5mu":
        return list(mudata.read_h5mu(args.input).obs_names)
    return list(anndata.read_h5ad(args.input).obs_names)


def write_result(names, embedding):
    import anndata
    import pandas as pd

    adata = anndata.AnnData(obs=pd.DataFrame(index=pd.Index(names)))
    adata.obsm["X_emb"] = embedding
    adata.uns["multiverse_params"] = json.dumps(params, sort_keys=True)
    adata.write_h5ad(args.output / "embeddings.h5ad")
    metrics = {"runtime_s": 0.1, "peak_memory_mb": 1.0, "params": params, "versions": {}}
    (args.output / "metrics.json").write_text(json.dumps(metrics))


def attempt(action):
    try:
        action()
        return "succeeded"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"


if behaviour == "crash":
    raise RuntimeError("the method blew up on purpose")
if behaviour == "sleep":
    time.sleep(float(params.get("seconds", 600)))
if behaviour == "not_applicable":
    print("not applicable: this fake method does not model anything", flush=True)
    sys.exit(3)
if behaviour == "oom":
    hog = []
    while True:
        hog.append(np.ones(32 * 1024 * 1024 // 8))  # 32 MiB at a time, touched
if behaviour == "no_output":
    sys.exit(0)

names = obs_names()
rng = np.random.default_rng(0)
embedding = rng.normal(size=(len(names), 5)).astype(np.float32)
if behaviour == "invalid":
    embedding[:3] = np.nan
    names = names[::-1]
if behaviour == "probe":
    probe = {
        "write_input": attempt(lambda: open(args.input, "ab").write(b"x")),
        "write_root": attempt(lambda: open("/probe.txt", "w").write("x")),
        "write_tmp": attempt(lambda: open("/tmp/probe.txt", "w").write("x")),
        "network": attempt(lambda: socket.create_connection(("1.1.1.1", 53), timeout=3)),
        "uid": os.getuid(),
        "gid": os.getgid(),
    }
    (args.output / "probe.json").write_text(json.dumps(probe))
write_result(names, embedding)
print("faulty: done", flush=True)
