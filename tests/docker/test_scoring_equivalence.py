"""In the built metrics image, every metric value with the fast kernels equals scib-metrics' own, on real data."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from multiverse.catalog import IMAGES
from multiverse_methods.scoring.metric_sets import METRIC_SETS
from tests.conftest import MULTIOME, real_data

pytestmark = pytest.mark.docker


def test_every_metric_value_of_both_sets_matches_scib_metrics_unpatched_functions_on_real_data(engine, tmp_path):
    tag = IMAGES["metrics"].tag
    if not engine.has_image(tag):
        pytest.fail(f"image not built: {tag}; run 'multiverse build metrics' first")
    data = real_data(MULTIOME)
    cmd = [
        "docker", "run", "--rm", "--user", f"{os.getuid()}:{os.getgid()}", "--network", "none", "--read-only",
        "--tmpfs", "/tmp:rw,exec,nosuid,nodev,mode=1777", "--cap-drop", "ALL", "--cpus", "2",
        "-e", "MULTIVERSE_THREADS=2", "-v", f"{data}:/data/input/{data.name}:ro", "-v", f"{tmp_path}:/data/output",
        "--entrypoint", "python", tag, "-m", "multiverse_methods.scoring.equivalence",
        "--input", f"/data/input/{data.name}", "--json", "/data/output/equivalence.json", "--no-stock",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    report = json.loads((tmp_path / "equivalence.json").read_text())

    every_metric = {key for metric_set in METRIC_SETS.values() for key in metric_set.keys}
    assert set(report["metrics"]) == every_metric
    assert set(report["benchmarker_aggregates"]) == {"bio_conservation", "batch_correction", "total"}
    assert report["n_cell_types"] > 10 and report["n_batches"] == 2
    too_far = {key: e for key, e in {**report["metrics"], **report["benchmarker_aggregates"]}.items() if not e["ok"]}
    assert not too_far, too_far
    assert all(e["difference"] <= 1e-5 for e in report["metrics"].values())
    # our exact graph holds pynndescent's neighbours and gives the same connectivities (Leiden, kBET)
    for k in ("15_neighbours", "50_neighbours"):
        assert report["knn"][k]["identical_neighbour_sets"] == 1.0
        assert report["knn"][k]["ok"], report["knn"][k]
    assert proc.returncode == 0, proc.stderr[-3000:]
