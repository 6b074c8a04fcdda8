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
- hostile:      write a valid result, then replace every file the host reads or writes
                (embeddings.h5ad, metrics.json, log.txt, provenance.json) by a symbolic link
                to ``target`` (a host path outside the output root)
- hardlink:     a valid result whose metrics.json has a second name (a hard link)
- fifo:         a valid result plus a FIFO (which would block a reader)
- bad_echo:     a valid result whose echoed parameters are not JSON
- self_deadline: ignore everything and sleep; only the container's own deadline ends it
- print_env:    print the environment, then write a valid result

Called with ``--results`` it plays the evaluation container instead and, when the
labels say ``{"hostile": target}``, writes a scores.json whose figure names and
figure files point at ``target``.
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
parser.add_argument("--counts", default="{}")
parser.add_argument("--results", type=Path)
parser.add_argument("--models", default="[]")
parser.add_argument("--labels", default="{}")
parser.add_argument("--seed", default="0")
args = parser.parse_args()
if args.results is not None:  # the evaluation's role
    target = json.loads(args.labels).get("hostile", "/nonexistent")
    for name in ("umap_cell_type.png", "umap_batch.png"):
        os.symlink(target, args.output / name)
    scores = {"schema_version": 1, "models": {}, "figures": {"cell_type": "umap_cell_type.png", "batch": target,
              "plain": "../../../../" + target.lstrip("/")}}
    (args.output / "scores.json").write_text(json.dumps(scores))
    sys.exit(0)
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
if behaviour == "self_deadline":
    sys.path.insert(0, "/opt/multiverse")
    from multiverse_methods import deadline

    print(f"faulty: own deadline in {deadline.start()} s", flush=True)
    time.sleep(600)
if behaviour == "print_env":
    for key in sorted(os.environ):
        print(f"env {key}={os.environ[key]}", flush=True)

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
if behaviour == "hostile":
    target = params["target"]
    for name in ("embeddings.h5ad", "metrics.json", "log.txt", "provenance.json"):
        path = args.output / name
        if path.exists():
            path.unlink()
        os.symlink(target, path)
if behaviour == "hardlink":
    os.link(args.output / "metrics.json", args.output / "metrics-copy.json")
if behaviour == "fifo":
    os.mkfifo(args.output / "pipe")
if behaviour == "bad_echo":
    import anndata

    adata = anndata.read_h5ad(args.output / "embeddings.h5ad")
    adata.uns["multiverse_params"] = "{not json"
    adata.write_h5ad(args.output / "embeddings.h5ad")
print("faulty: done", flush=True)
