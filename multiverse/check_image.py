"""``multiverse check-image IMAGE``: does a method image follow docs/MODEL_CONTAINERS.md?

Runs the image in the same sandbox as every method, on a small bundled
fixture (synthetic RNA + ATAC, 200 cells, written to a temporary folder), and
checks what the contract asks:

- it runs with only the input, read-only, at /data/input, no network, a
  read-only root, and leaves the input unchanged;
- it writes embeddings.h5ad, metrics.json and log.txt, and nothing that is not
  a plain file;
- the embedding has the input's cells in the input's order, finite values;
- it echoes exactly the parameters it was given;
- the same seed gives the same embedding;
- on an input without raw counts it either works or exits 3 with a
  ``not applicable: ...`` line; it does not crash.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from multiverse.backends.base import Backend, ContainerSpec, Mount, Resources
from multiverse.runner.container import container_environment
from multiverse.runner.untrusted import UnsafeTree, check_tree
from multiverse.runner.validate import InvalidOutput, validate_output
from multiverse_methods import protocol

RESOURCES = Resources(timeout_s=600, memory_bytes=4 * 2**30, cpus=2.0, pids=4096)


@dataclass
class Check:
    name: str
    passed: bool
    detail: str = ""


@dataclass
class Conformance:
    image: str
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def add(self, name: str, passed: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, passed, detail))
        return passed


def _fixtures(folder: Path) -> tuple[Path, Path]:
    """The bundled fixture with counts, and the same cells with log-normalised X and no counts."""
    import numpy as np
    import scipy.sparse as sp

    from multiverse.synthetic import make_synthetic, write_synthetic

    with_counts = write_synthetic(folder / "fixture.h5mu", n_cells=200, n_genes=400, n_peaks=600, seed=0)
    mdata = make_synthetic(n_cells=200, n_genes=400, n_peaks=600, seed=0)
    for mod in mdata.mod.values():
        counts = sp.csr_matrix(mod.layers.pop("counts"), dtype=np.float32)
        size = np.asarray(counts.sum(axis=1)).ravel()
        mod.X = (sp.diags(1e4 / np.maximum(size, 1)) @ counts).log1p().astype(np.float32).tocsr()
    import warnings

    without = folder / "no_counts.h5mu"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        mdata.write(str(without))
    return with_counts, without


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(backend: Backend, image_id: str, data: Path, output: Path, params: dict, counts: dict, name: str,
         resources: Resources, run_id: str):
    target = f"{protocol.INPUT_DIR}/{data.name}"
    spec = ContainerSpec(
        name=f"check-{name}",
        image=image_id,
        command=("--input", target, "--output", protocol.OUTPUT_DIR, "--params", json.dumps(params, sort_keys=True),
                 "--modalities", json.dumps({"rna": "rna", "atac": "atac"}), "--counts", json.dumps(counts)),
        mounts=(Mount(data, target, True), Mount(output, protocol.OUTPUT_DIR, False)),
        resources=resources,
        environment=container_environment(resources),
        run_id=run_id,
    )
    return backend.run(spec, threading.Event(), lambda line: None)


def check_image(
    backend: Backend,
    image: str,
    params: Optional[dict] = None,
    resources: Resources = RESOURCES,
    progress: Callable[[str], None] = lambda text: None,
) -> Conformance:
    from multiverse.inputs import read_obs_names

    from multiverse.plan import new_run_id

    report = Conformance(image)
    image_id = backend.resolve_image(image, build_hint="build or load it first (multiverse never pulls)")
    given = {"seed": 0, **(params or {})}
    run_id = f"check-{new_run_id()}"
    with backend.guard(run_id), tempfile.TemporaryDirectory(prefix="multiverse-check-") as tmp:
        tmp = Path(tmp)
        data, no_counts = _fixtures(tmp)
        before = _digest(data)
        cells = tuple(read_obs_names(data))
        counts = {"rna": "layers/counts", "atac": "layers/counts"}
        outputs = []
        for attempt in ("first", "again"):
            progress(f"running {image} on the fixture ({attempt})")
            out = tmp / attempt
            out.mkdir()
            outcome = _run(backend, image_id, data, out, given, counts, attempt, resources, run_id)
            outputs.append((out, outcome))
        out, outcome = outputs[0]
        tail = "; ".join(outcome.log_tail[-3:])
        if not report.add("exits 0 on the fixture (RNA + ATAC counts, 200 cells)", outcome.exit_code == 0,
                          f"exit code {outcome.exit_code}" + ("" if outcome.exit_code == 0 else f": {tail}")
                          + (" (ran past its timeout)" if outcome.timed_out else "")):
            return report
        report.add("leaves the read-only input unchanged", _digest(data) == before)
        try:
            check_tree(out)
            tree_ok, why = True, ""
        except UnsafeTree as exc:
            tree_ok, why = False, str(exc)
        report.add("writes only plain files and folders", tree_ok, why)
        missing = [n for n in protocol.REQUIRED_OUTPUTS if not (out / n).is_file()]
        report.add("writes embeddings.h5ad, metrics.json and log.txt", not missing,
                   f"missing {', '.join(missing)}" if missing else "")
        valid = False
        if tree_ok and not missing:
            try:
                validate_output(out, cells, given)
                valid = True
                detail = ""
            except InvalidOutput as exc:
                detail = str(exc)
            report.add("keeps the input's cells in order, finite values, echoes its parameters", valid, detail)
        again_out, again = outputs[1]
        if valid and again.exit_code == 0:
            import numpy as np

            from multiverse.runner.validate import _read_embeddings

            first, second = _read_embeddings(out / protocol.EMBEDDINGS_FILE)[1], None
            try:
                second = _read_embeddings(again_out / protocol.EMBEDDINGS_FILE)[1]
            except Exception:  # noqa: BLE001 - reported below
                pass
            same = second is not None and np.array_equal(np.asarray(first), np.asarray(second))
            report.add("the same seed gives the same embedding", same,
                       "" if same else "two runs with seed 0 gave different embeddings")
        progress(f"running {image} on the fixture without raw counts")
        out = tmp / "no_counts"
        out.mkdir()
        outcome = _run(backend, image_id, no_counts, out, given, {"rna": None, "atac": None}, "no-counts", resources, run_id)
        said = any("not applicable:" in line for line in outcome.log_tail)
        if outcome.exit_code == protocol.EXIT_NOT_APPLICABLE:
            report.add("says 'not applicable' correctly without raw counts", said,
                       "" if said else "exited 3 without a 'not applicable: <reason>' line in its log")
        elif outcome.exit_code == 0:
            try:
                check_tree(out)
                validate_output(out, cells, given)
                report.add("says 'not applicable' correctly without raw counts", True, "it works without counts")
            except (InvalidOutput, UnsafeTree) as exc:
                report.add("says 'not applicable' correctly without raw counts", False,
                           f"exited 0 without counts but its output is invalid: {exc}")
        else:
            report.add("says 'not applicable' correctly without raw counts", False,
                       f"exited {outcome.exit_code} on an input without counts: exit 3 with 'not applicable: ...' "
                       f"when it cannot use it ({'; '.join(outcome.log_tail[-2:])})")
    return report
