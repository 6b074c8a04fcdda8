"""Gather every model's embedding into one AnnData (or the input's MuData) for scanpy.

    multiverse collect results/                   -> results/embeddings.h5ad
    multiverse collect results/ --format h5mu     -> results/embeddings.h5mu (the input + every embedding)

The input's matrices are never loaded: its cell annotations are read alone,
and ``--format h5mu`` copies the file and writes the embeddings into it.

Embeddings go to ``obsm["X_<model>"]``, cells in the input's order, with the
input's cell annotations in ``obs``; ``uns["multiverse"]`` says where each
came from.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

from multiverse.errors import InputError
from multiverse.runner.provenance import MANIFEST_FILE, read_provenance
from multiverse.runner.validate import InvalidOutput, validate_output
from multiverse_methods import protocol


def _ours(path: Path) -> bool:
    """A file that ``collect`` wrote: a plain HDF5 file with uns/multiverse."""
    import h5py

    try:
        if os.path.islink(path) or not os.path.isfile(path):
            return False
        with h5py.File(path, "r") as handle:
            return "uns" in handle and "multiverse" in handle["uns"]
    except OSError:
        return False


def read_manifest(root: Path) -> dict:
    path = root / MANIFEST_FILE
    if not path.is_file():
        raise InputError(f"{root} has no {MANIFEST_FILE}: is it the output folder of 'multiverse run'?")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise InputError(f"{path} is damaged: {exc}") from None


def result_folders(root: Path, manifest: dict, dataset: str) -> dict[str, Path]:
    """One dataset's successful jobs made from its input, whose result folder exists, in order,
    keyed by ``<entry>/seed-<s>``.

    A result whose provenance names another input or other cells is stale: it is never
    counted as this input's (the manifest lists it under "stale").
    """
    source = manifest["datasets"][dataset]["input"]
    folders = {}
    for name, record in manifest["jobs"].items():
        if record.get("dataset") != dataset or record.get("status") not in ("ok", "cached"):
            continue
        provenance = read_provenance(root / name)
        if not provenance or not (root / name / protocol.EMBEDDINGS_FILE).is_file():
            continue
        if provenance.get("input_sha256") != source.get("sha256") or provenance.get("cells_sha256") != source.get("cells_sha256"):
            continue
        folders[name.split("/", 1)[1]] = root / name
    return folders


def only_dataset(manifest: dict, dataset: str | None) -> str:
    """The dataset a command works on: the one named, or the run's only one."""
    names = list(manifest.get("datasets", {}))
    if dataset is None:
        if len(names) != 1:
            raise InputError(f"this output folder holds several datasets ({', '.join(names)}); name one with --dataset")
        return names[0]
    if dataset not in names:
        raise InputError(f"no dataset {dataset!r} in this output folder (it has: {', '.join(names)})")
    return dataset


def _obs(path: Path):
    """The global cell annotations of an .h5mu/.h5ad, read alone (no matrix)."""
    import h5py

    from multiverse.inputs.h5 import read_elem

    with h5py.File(path, "r") as handle:
        obs = read_elem(handle["obs"])
    obs.index = obs.index.astype(str)
    return obs


def _add_to_copy(source: Path, tmp: Path, embeddings: dict, uns: dict) -> None:
    """The whole input MuData plus every embedding, without loading it: a byte copy of the
    file, then the embeddings written into its global ``obsm`` (and ``uns/multiverse``)."""
    import h5py

    try:
        from anndata.io import write_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import write_elem

    shutil.copyfile(source, tmp)
    with h5py.File(tmp, "r+") as handle:
        obsm = handle.require_group("obsm")
        for key, value in embeddings.items():
            if key in obsm:
                del obsm[key]
            write_elem(obsm, key, value)
        uns_group = handle.require_group("uns")
        if "multiverse" in uns_group:
            del uns_group["multiverse"]
        write_elem(uns_group, "multiverse", uns)


def collect(root: Path, output: Path | None = None, fmt: str = "h5ad", dataset: str | None = None) -> Path:
    """Every valid embedding of one dataset of ``root`` in one file; the input's matrices are never loaded.

    Embeddings go to ``obsm["X_<entry>"]``, or ``obsm["X_<entry>_seed<s>"]`` for entries run with several seeds.
    """
    import anndata

    root = Path(root)
    manifest = read_manifest(root)
    dataset = only_dataset(manifest, dataset)
    info = manifest["datasets"][dataset]["input"]
    source = Path(info.get("model_path") or info["path"])
    if not source.is_file():
        raise InputError(f"the run's input {source} is gone; the embeddings cannot be matched to its cells")
    if fmt == "h5mu" and source.suffix != ".h5mu":
        raise InputError(f"--format h5mu needs a .h5mu input; {source.name} is not one (use --format h5ad)")
    obs = _obs(source)
    obs_names = tuple(obs.index)
    embeddings, origins = {}, {}
    folders = result_folders(root, manifest, dataset)
    seeds_per_entry = {}
    for name in folders:
        entry = name.rsplit("/seed-", 1)[0]
        seeds_per_entry[entry] = seeds_per_entry.get(entry, 0) + 1
    for name, folder in folders.items():
        record = read_provenance(folder) or {}
        try:
            validate_output(folder, obs_names, record.get("params", {}))
        except InvalidOutput as exc:
            raise InputError(f"{folder} is not a valid result any more: {exc}") from None
        entry, seed = name.rsplit("/seed-", 1)
        key = entry if seeds_per_entry[entry] == 1 else f"{entry}_seed{seed}"
        embeddings[f"X_{key}"] = anndata.read_h5ad(folder / protocol.EMBEDDINGS_FILE).obsm[protocol.EMBEDDING_KEY]
        origins[key] = {"method": record.get("method", entry), "image_id": record.get("image_id", ""), "seed": int(seed),
                        "params": json.dumps(record.get("params", {}), sort_keys=True)}
    if not origins:
        raise InputError(f"{root} holds no valid result to collect")
    uns = {"run_id": manifest.get("run_id", ""), "dataset": dataset, "input_sha256": info["sha256"], "models": origins}
    output = Path(output) if output else root / dataset / f"embeddings.{fmt}"
    if os.path.lexists(output) and not _ours(output):
        raise InputError(f"{output} exists and was not written by 'multiverse collect'; move it away or give --output")
    tmp = output.with_name(output.name + ".partial")
    if fmt == "h5mu":
        _add_to_copy(source, tmp, embeddings, uns)
    else:
        target = anndata.AnnData(obs=obs)
        for key, value in embeddings.items():
            target.obsm[key] = value
        target.uns["multiverse"] = uns
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            target.write_h5ad(tmp)
    tmp.replace(output)
    return output
