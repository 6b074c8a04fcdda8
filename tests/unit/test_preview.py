"""`multiverse plan` shows the job grid: what a run would keep, what it would run, and how long that took before."""

from __future__ import annotations

import yaml

from multiverse import api
from multiverse.backends.fake import FakeBackend
from multiverse.catalog import METHODS, image_of
from multiverse.preview import preview


def config(tmp_path, data, **models):
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump({"datasets": {"one": str(data)}, "output": str(tmp_path / "out"), "seeds": [0, 1],
                                    "models": models or {"pca": {"params": {"n_components": [5, 8]}}, "control_random": {}}},
                                   sort_keys=False))
    return path


def fake() -> FakeBackend:
    backend = FakeBackend()
    for method in METHODS.values():
        backend.add_image(image_of(method).tag)
    return backend


def test_a_fresh_campaign_would_run_every_job_and_a_finished_one_none(tmp_path, tiny_h5mu):
    backend = fake()
    plan = api.prepare(config(tmp_path, tiny_h5mu))
    before = preview(plan, backend)
    assert [r.job.name for r in before] == [
        "one/pca[n_components=5]/seed-0", "one/pca[n_components=5]/seed-1",
        "one/pca[n_components=8]/seed-0", "one/pca[n_components=8]/seed-1",
        "one/control_random/seed-0", "one/control_random/seed-1"]
    assert {r.status for r in before} == {"run"} and all(r.expected_s is None for r in before)

    api.execute(plan, backend)
    after = preview(api.prepare(config(tmp_path, tiny_h5mu)), backend)
    assert {r.status for r in after} == {"cached"}

    changed = preview(api.prepare(config(tmp_path, tiny_h5mu, pca={"params": {"n_components": [5, 9]}},
                                         control_random={})), backend)
    status = {r.job.name: r.status for r in changed}
    assert status["one/pca[n_components=9]/seed-0"] == "run" and status["one/pca[n_components=5]/seed-0"] == "cached"
    expected = {r.job.name: r.expected_s for r in changed}
    assert expected["one/pca[n_components=9]/seed-0"] is not None  # the time pca took on this dataset before


def test_without_an_engine_the_plan_still_prints_and_says_what_it_cannot_tell(tmp_path, tiny_h5mu):
    import os
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "multiverse", "plan", "--config", str(config(tmp_path, tiny_h5mu))],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock", "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 job(s) on 1 dataset(s)" in proc.stdout and "unknown" in proc.stdout
    assert not (tmp_path / "out").exists()  # nothing was started or written
