"""Real annotations leave cells unlabelled: a run with a fifth of the cells unlabelled still ranks by bio conservation."""

from __future__ import annotations

import json

import mudata
import pytest

from tests.conftest import CITE, real_data, records, result_dir, run_cli
from tests.docker.test_evaluate import with_a_fifth_unlabelled

pytestmark = pytest.mark.docker


def test_a_run_on_real_data_with_a_fifth_unlabelled_keeps_the_bio_metrics_and_the_label_control(built, tmp_path):
    mdata = mudata.read_h5mu(real_data(CITE))
    path, idx = with_a_fifth_unlabelled(mdata, tmp_path)
    out = tmp_path / "out"

    proc = run_cli("run", "--models", "pca", "control_random", "control_labels", "--input", path,
                   "--output", out, "--report")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert records(out)["control_labels"]["status"] == "ok"
    control_metrics = json.loads((result_dir(out, "control_labels", path) / "metrics.json").read_text())
    assert control_metrics["n_unlabelled"] == len(idx)
    dataset = path.stem
    scores = json.loads((out / "report" / dataset / "scores.json").read_text())
    assert scores["labels"]["cell_type"]["n_unlabelled"] == len(idx)
    for name in ("pca", "control_random", "control_labels"):
        aggregates = scores["models"][f"{name}/seed-0"]["aggregates"]
        assert aggregates["bio_conservation"] is not None and aggregates["total"] is not None, name
    bio = {name.split("/")[0]: e["aggregates"]["bio_conservation"] for name, e in scores["models"].items()}
    assert bio["control_labels"] > bio["pca"] > bio["control_random"]
    rows = {r["model"].split("/")[0]: r for r in json.loads((out / "report" / dataset / "metrics.json").read_text())}
    assert rows["pca"]["rank"] == 1
    page = (out / "report" / "report.html").read_text()
    assert f"{len(idx)} of {mdata.n_obs} cells have no cell type" in page
    assert "Ranked by <b>total</b>" in page
