"""Gather every model's embedding into one AnnData (or the input's MuData) for scanpy.

    multiverse collect results/                   -> results/embeddings.h5ad
    multiverse collect results/ --format h5mu     -> results/embeddings.h5mu (the input + every embedding)

Embeddings go to ``obsm["X_<model>"]``, cells in the input's order, with the
input's cell annotations in ``obs``; ``uns["multiverse"]`` says where each
came from.
"""

from __future__ import annotations

import json
import os
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


def result_folders(root: Path, manifest: dict) -> dict[str, Path]:
    """The successful models of the manifest made from its input, whose result folder exists, in order.

    A result whose provenance names another input or other cells is stale: it is never
    counted as this input's (the manifest lists it under "stale").
    """
    source = manifest["input"]
    folders = {}
    for name, record in manifest["models"].items():
        if record.get("status") not in ("ok", "cached"):
            continue
        provenance = read_provenance(root / name)
        if not provenance or not (root / name / protocol.EMBEDDINGS_FILE).is_file():
            continue
        if provenance.get("input_sha256") != source.get("sha256") or provenance.get("cells_sha256") != source.get("cells_sha256"):
            continue
        folders[name] = root / name
    return folders


def collect(root: Path, output: Path | None = None, fmt: str = "h5ad") -> Path:
    import anndata
    import mudata

    root = Path(root)
    manifest = read_manifest(root)
    source = Path(manifest["input"]["path"])
    if not source.is_file():
        raise InputError(f"the run's input {source} is gone; the embeddings cannot be matched to its cells")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        data = mudata.read_h5mu(source) if source.suffix == ".h5mu" else anndata.read_h5ad(source)
    obs_names = tuple(str(n) for n in data.obs_names)
    target = data if fmt == "h5mu" else anndata.AnnData(obs=data.obs.copy())
    origins = {}
    for name, folder in result_folders(root, manifest).items():
        record = read_provenance(folder) or {}
        try:
            validate_output(folder, obs_names, record.get("params", {}))
        except InvalidOutput as exc:
            raise InputError(f"{folder} is not a valid result any more: {exc}") from None
        embedding = anndata.read_h5ad(folder / protocol.EMBEDDINGS_FILE).obsm[protocol.EMBEDDING_KEY]
        target.obsm[f"X_{name}"] = embedding
        origins[name] = {"method": record.get("method", name), "image_id": record.get("image_id", ""),
                         "params": json.dumps(record.get("params", {}), sort_keys=True)}
    if not origins:
        raise InputError(f"{root} holds no valid result to collect")
    target.uns["multiverse"] = {"run_id": manifest.get("run_id", ""), "input_sha256": manifest["input"]["sha256"], "models": origins}
    output = Path(output) if output else root / f"embeddings.{fmt}"
    if os.path.lexists(output) and not _ours(output):
        raise InputError(f"{output} exists and was not written by 'multiverse collect'; move it away or give --output")
    tmp = output.with_name(output.name + ".partial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        target.write(str(tmp)) if fmt == "h5mu" else target.write_h5ad(tmp)
    tmp.replace(output)
    return output
