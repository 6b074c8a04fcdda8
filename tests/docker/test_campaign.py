"""A biologist runs a campaign: two datasets x two methods x two seeds, a grid, the controls.

It is stopped midway (SIGKILL: the worst case), started again, and only the
unfinished jobs run; the report then holds every cell, shows the failed one,
and ranks the methods as docs/CAMPAIGNS.md says.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import REPO, require_images, run_cli

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def campaign(engine, tiny_h5mu, tiny_adt_h5mu, tmp_path_factory):
    require_images(engine, "pca", "mofa")
    root = tmp_path_factory.mktemp("campaign")
    config = root / "campaign.yaml"
    config.write_text(yaml.safe_dump({
        "datasets": {
            "multiome": str(tiny_h5mu),
            # this dataset's cell types are withheld: the label control cannot run on it
            "cite": {"path": str(tiny_adt_h5mu), "labels": {"cell_type": None}},
        },
        "output": str(root / "out"),
        "seeds": [0, 1],
        "jobs": 2,
        "report": True,
        "models": {
            "pca": {"params": {"n_components": [5, 8]}},
            "mofa": {"params": {"n_factors": 5, "max_iter": 10, "n_top_genes": 300, "n_top_peaks": 300}},
            "control_random": {},
            "control_labels": {},
        },
    }, sort_keys=False))
    return config, root / "out"


def finished(out) -> set[str]:
    return {p.parent.relative_to(out).as_posix() for p in out.glob("*/*/seed-*/provenance.json")}


def test_a_stopped_campaign_resumes_with_only_its_unfinished_jobs(campaign):
    config, out = campaign
    proc = subprocess.Popen([sys.executable, "-m", "multiverse", "run", "--config", str(config), "--no-report"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 600
        while len(finished(out)) < 6 and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
    done_before = finished(out)
    assert 6 <= len(done_before) < 19, done_before  # 20 cells, the label control cannot run on cite

    resumed = run_cli("run", "--config", config, timeout=1800)

    manifest = json.loads((out / "manifest.json").read_text())
    statuses = {name: record["status"] for name, record in manifest["jobs"].items()}
    assert len(statuses) == 20, statuses
    assert {n for n, s in statuses.items() if s == "cached"} == done_before
    assert statuses["cite/control_labels/seed-0"] == "not applicable"
    assert all(s in ("ok", "cached") for n, s in statuses.items() if not n.startswith("cite/control_labels")), statuses
    assert resumed.returncode == 1, resumed.stdout[-3000:] + resumed.stderr[-3000:]  # one cell did not succeed
    assert (out / "report" / "report.html").is_file()
