"""Convert a split input (Cell Ranger .h5, mixed-feature .h5ad) into an .h5mu once, in a sandboxed container.

The reading libraries (scanpy's 10x reader) live in the images, not on the
host, so the conversion runs in the PCA image under the same sandbox as a
method (``multiverse_methods/convert.py``). Its output is checked like any
container's (no links, the same cells and features as the host saw), then
kept under ``<output>/.multiverse/inputs/<checksum>.h5mu`` beside a small
marker naming its source; later runs on the same file reuse it.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from multiverse.backends.base import Backend, ContainerSpec, Mount, Resources
from multiverse.catalog import IMAGES
from multiverse.errors import InputError
from multiverse.inputs.inspect import InputData, inspect_input
from multiverse.runner.container import container_environment
from multiverse.runner.store import OUTPUT, ResultStore
from multiverse.runner.untrusted import UnsafeTree, check_tree, replace_file
from multiverse_methods import protocol

CONVERTER_IMAGE = IMAGES["pca"]
OUTPUT_FILE = "converted.h5mu"
RESOURCES = Resources(timeout_s=3600, memory_bytes=16 * 2**30, cpus=float(os.cpu_count() or 1), pids=4096)


def _marker(path: Path) -> Path:
    return path.with_suffix(".json")


def _matches(data: InputData, converted: Path) -> str | None:
    """Why the converted file is not the input the host inspected, or None."""
    seen = inspect_input(converted, data.kinds)
    if seen.obs_names != data.obs_names:
        return "its cells differ from the input's"
    for name, modality in data.modalities.items():
        got = seen.modalities.get(name)
        if got is None or got.n_vars != modality.n_vars:
            return f"modality {name} has {got.n_vars if got else 'no'} features, the input {modality.n_vars}"
    return None


def ensure_converted(data: InputData, backend: Backend, store: ResultStore, cancel: threading.Event, on_line=lambda s: None) -> None:
    """Make ``data.converted_path`` hold the conversion of ``data.path``; raises InputError if it fails."""
    if not data.needs_conversion:
        return
    target = data.model_path
    marker = _marker(target)
    try:
        if json.loads(marker.read_text()).get("source_sha256") == data.sha256 and target.is_file():
            return
    except (OSError, ValueError):
        pass
    image = backend.resolve_image(CONVERTER_IMAGE.tag, build_hint="multiverse build pca")
    staging = store.staging("convert-input")
    source = f"{protocol.INPUT_DIR}/{data.path.name}"
    spec = ContainerSpec(
        name="convert-input",
        image=image,
        entrypoint=("python", "-m", "multiverse_methods.convert"),
        command=("--input", source, "--output", protocol.OUTPUT_DIR, "--split", json.dumps(data.split, sort_keys=True)),
        mounts=(Mount(data.path, source, True), Mount(staging / OUTPUT, protocol.OUTPUT_DIR, False)),
        resources=RESOURCES,
        environment=container_environment(RESOURCES),
        run_id=store.run_id,
    )
    outcome = backend.run(spec, cancel, on_line)
    produced = staging / OUTPUT / OUTPUT_FILE
    try:
        check_tree(staging / OUTPUT)
    except UnsafeTree as exc:
        raise InputError(f"converting {data.path.name} left an unsafe output ({exc})") from None
    if outcome.exit_code != 0 or not produced.is_file():
        tail = "\n".join(outcome.log_tail[-15:])
        why = "timed out" if outcome.timed_out else "was interrupted" if outcome.cancelled else f"exited with code {outcome.exit_code}"
        raise InputError(f"converting {data.path.name} to .h5mu {why}:\n{tail}")
    mismatch = _matches(data, produced)
    if mismatch:
        raise InputError(f"the conversion of {data.path.name} does not match the input: {mismatch}")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(produced, target)
    store.discard(staging)
    replace_file(marker, json.dumps({"source": str(data.path), "source_sha256": data.sha256, "split": data.split}) + "\n")
