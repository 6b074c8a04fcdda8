"""Provenance: what exactly produced each result, and the run manifest.

Every result folder holds ``provenance.json``: the result key and how the run
went. The key holds everything that reaches the container and can change its
result (method, image id, input checksum, effective parameters with the seed
and the label/batch columns given, modality kinds, where the counts are read,
thread count, entrypoint, contract version); a rerun keeps a result whose key
is unchanged and whose files still validate. ``<output>/manifest.json``
gathers every result of this input with the host, backend and multiverse
versions; results made from another input are listed as stale, never as this
input's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import socket
from pathlib import Path
from typing import Optional

from multiverse import __version__
from multiverse.inputs import InputData
from multiverse.plan import MANIFEST_FILE, Job, Plan
from multiverse.runner.results import JobResult
from multiverse.runner.store import PROVENANCE_FILE, has_marker
from multiverse.runner.untrusted import replace_file
from multiverse_methods import protocol

def result_key(job: Job, image_id: str) -> dict:
    """Everything that decides a job's result; equal keys mean a rerun would redo the same work."""
    return {
        "method": job.method,
        "image_id": image_id,
        "input_sha256": job.input.sha256,
        "params": job.params,
        "seed": job.seed,
        "modalities": job.input.kinds,
        "counts": job.input.counts,
        "threads": job.threads,
        "entrypoint": list(job.entrypoint) if job.entrypoint else None,
        "contract_version": protocol.CONTRACT_VERSION,
    }


def normalised(key: dict) -> dict:
    """The key as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(key, default=str))


def read_provenance(folder: Path) -> Optional[dict]:
    if not has_marker(folder):
        return None
    try:
        return json.loads((folder / PROVENANCE_FILE).read_text())
    except (OSError, ValueError):
        return None


def job_record(job: Job, result: JobResult, key: dict) -> dict:
    metrics = result.metrics or {}
    return {
        "multiverse_version": __version__,
        "name": job.name,
        "dataset": job.dataset,
        "entry": job.entry,
        "model": job.base or job.entry,
        "grid": job.grid,
        "method": job.method,
        "external": job.external,
        "status": result.status.value,
        "reason": result.reason,
        "image": job.image,
        "image_id": key.get("image_id", result.image_id),
        "versions": metrics.get("versions", {}),
        "params": job.params,
        "seed": job.seed,
        "input": str(job.input.path),
        "input_sha256": job.input.sha256,
        "cells_sha256": job.input.cells_sha256,
        "contract_version": protocol.CONTRACT_VERSION,
        "limits": job.limits.model_dump(),
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "duration_s": result.duration_s,
        "runtime_s": metrics.get("runtime_s"),
        "peak_memory_mb": result.peak_memory_mb,
        "exit_code": result.exit_code,
        "backend": result.backend,
        "key": key,
    }


def stale_reason(record: dict, data: InputData) -> Optional[str]:
    """Why an earlier result does not belong to this input, or None if it does."""
    if record.get("input_sha256") != data.sha256:
        return f"made from another input ({record.get('input', '?')}, checksum {str(record.get('input_sha256'))[:12]}...)"
    if record.get("cells_sha256") != data.cells_sha256:
        return "made for other cells than this input's"
    return None


def input_record(data: InputData) -> dict:
    return {
        "path": str(data.path),
        "format": data.format,
        "model_path": str(data.model_path),
        "sha256": data.sha256,
        "cells_sha256": data.cells_sha256,
        "n_cells": data.n_obs,
        "modalities": {
            m.name: {"kind": m.kind, "n_features": m.n_vars, "counts": data.counts.get(m.name)}
            for m in data.modalities.values()
        },
    }


class Manifest:
    """``<output>/manifest.json``, rewritten atomically as jobs finish.

    ``datasets`` describes each input; ``jobs`` holds every result bound to its dataset's
    current input (this run's and earlier ones'); ``stale`` the results of an earlier input.
    """

    def __init__(self, plan: Plan, backend_info: dict):
        self.path = plan.output_root / MANIFEST_FILE
        earlier = self._read()
        datasets = {
            name: {"input": input_record(dp.input), "labels": dp.labels} for name, dp in plan.datasets.items()
        }
        for name, info in earlier.get("datasets", {}).items():
            datasets.setdefault(name, info)
        jobs, stale = self._earlier_results(plan, earlier)
        self.data = {
            "multiverse_version": __version__,
            "run_id": plan.run_id,
            "created_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "finished_at": None,
            "host": {
                "hostname": socket.gethostname(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "user": f"{os.getuid()}:{os.getgid()}",
            },
            "backend": backend_info,
            "parallel_jobs": plan.parallel,
            "datasets": datasets,
            "jobs": jobs,
            "stale": stale,
        }

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) and "jobs" in data else {}
        except (OSError, ValueError):
            return {}

    @staticmethod
    def _earlier_results(plan: Plan, earlier: dict) -> tuple[dict, dict]:
        """Results this run does not touch: kept when made from their dataset's current input, else stale."""
        running = {job.name for job in plan.jobs}
        jobs, stale = {}, {}
        for name, record in {**earlier.get("stale", {}), **earlier.get("jobs", {})}.items():
            if name in running or not isinstance(record, dict):
                continue
            provenance = read_provenance(plan.output_root / name)
            if provenance is None:
                if record.get("status") not in ("ok", "cached"):
                    jobs[name] = record  # a failure stays on record until rerun
                continue  # the result is gone
            dataset = plan.datasets.get(provenance.get("dataset", ""))
            reason = stale_reason(provenance, dataset.input) if dataset else None
            if reason:
                stale[name] = {**provenance, "stale": reason}
            else:
                jobs[name] = provenance
        return jobs, stale

    def record(self, name: str, record: dict) -> None:
        self.data["jobs"][name] = record
        self.data["stale"].pop(name, None)
        self._write()

    def finish(self) -> None:
        self.data["finished_at"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(self.path, json.dumps(self.data, indent=2, default=str) + "\n")


def manifest_view(manifest: dict, dataset: str) -> dict:
    """One dataset's part of a manifest: its input, labels and results, keyed by ``<entry>/seed-<s>``."""
    info = manifest["datasets"][dataset]
    prefix = f"{dataset}/"
    return {
        "run_id": manifest.get("run_id"),
        "dataset": dataset,
        "input": info["input"],
        "labels": info.get("labels", {}),
        "models": {name[len(prefix):]: record for name, record in manifest["jobs"].items() if name.startswith(prefix)},
        "stale": {name[len(prefix):]: record for name, record in manifest.get("stale", {}).items() if name.startswith(prefix)},
    }
