"""Provenance: what exactly produced each result, and the run manifest.

Every result folder holds ``provenance.json``: the result key (image id, input
checksum, effective parameters with the seed, contract version) and how the
run went. A rerun keeps a result whose key is unchanged and whose files still
validate. ``<output>/manifest.json`` gathers every model of the latest run
with the host, engine and multiverse versions.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import socket
from pathlib import Path

from multiverse import __version__
from multiverse.plan import Job, Plan
from multiverse.runner.results import ModelResult
from multiverse_methods import protocol

PROVENANCE_FILE = "provenance.json"
MANIFEST_FILE = "manifest.json"


def result_key(job: Job, image_id: str) -> dict:
    """Everything that decides a model's result; equal keys mean a rerun would redo the same work."""
    return {
        "method": job.method,
        "image_id": image_id,
        "input_sha256": job.input.sha256,
        "params": job.params,
        "seed": job.seed,
        "contract_version": protocol.CONTRACT_VERSION,
    }


def read_provenance(folder: Path) -> dict | None:
    try:
        return json.loads((folder / PROVENANCE_FILE).read_text())
    except (OSError, ValueError):
        return None


def model_record(job: Job, result: ModelResult, key: dict) -> dict:
    metrics = result.metrics or {}
    return {
        "name": job.name,
        "method": job.method,
        "status": result.status.value,
        "reason": result.reason,
        "image": job.image,
        "image_id": key["image_id"],
        "versions": metrics.get("versions", {}),
        "params": job.params,
        "seed": job.seed,
        "input": str(job.input.path),
        "input_sha256": job.input.sha256,
        "contract_version": protocol.CONTRACT_VERSION,
        "limits": job.limits.model_dump(),
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "duration_s": result.duration_s,
        "runtime_s": metrics.get("runtime_s"),
        "peak_memory_mb": metrics.get("peak_memory_mb"),
        "exit_code": result.exit_code,
        "key": key,
    }


def write_provenance(folder: Path, record: dict) -> None:
    (folder / PROVENANCE_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n")


class Manifest:
    """``<output>/manifest.json``, rewritten atomically as models finish."""

    def __init__(self, plan: Plan, engine_info):
        self.path = plan.output_root / MANIFEST_FILE
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
            "engine": {
                "version": engine_info.server_version,
                "api_version": engine_info.api_version,
                "os": engine_info.os,
            },
            "input": {
                "path": str(plan.input.path),
                "sha256": plan.input.sha256,
                "n_cells": plan.input.n_obs,
                "modalities": {m.name: {"kind": m.kind, "n_features": m.n_vars} for m in plan.input.modalities.values()},
            },
            "labels": plan.labels,
            "parallel_jobs": plan.parallel,
            "models": self._earlier_results(plan),
        }

    def _earlier_results(self, plan: Plan) -> dict:
        """Results of models this run does not touch stay described (from their provenance)."""
        try:
            earlier = json.loads(self.path.read_text()).get("models", {})
        except (OSError, ValueError):
            return {}
        running = {job.name for job in plan.jobs}
        return {
            name: record
            for name, record in earlier.items()
            if name not in running and read_provenance(plan.output_root / name) is not None
        }

    def record(self, name: str, record: dict) -> None:
        self.data["models"][name] = record
        self._write()

    def finish(self) -> None:
        self.data["finished_at"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".partial")
        tmp.write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        tmp.replace(self.path)
