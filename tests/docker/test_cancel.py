"""Ctrl-C or SIGTERM stops every running container promptly and keeps finished results."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import yaml

from multiverse.engine import LABEL_MODEL
from tests.conftest import REPO

pytestmark = pytest.mark.docker

#: The real CLI, with the test-only "faulty" method added to its catalog.
CLI_WITH_FAULTY = (
    "import sys, multiverse.catalog as catalog; from tests.conftest import FAULTY; "
    "catalog.METHODS['faulty'] = FAULTY; from multiverse.cli import main; main()"
)


def wait_for(condition, timeout=120.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stopping_a_run_kills_its_containers_and_keeps_finished_results(signum, engine, faulty_catalog, tiny_h5mu, tmp_path):
    out = tmp_path / "out"
    config = tmp_path / "runner_config.yaml"
    config.write_text(yaml.safe_dump({
        "input": str(tiny_h5mu),
        "output": str(out),
        "models": {"pca": {}, "sleeper": {"method": "faulty", "params": {"behaviour": "sleep"}}},
    }))
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI_WITH_FAULTY, "run", "--config", str(config)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        def sleeper_running():
            return engine.client.containers.list(filters={"label": f"{LABEL_MODEL}=sleeper", "status": "running"})

        wait_for(lambda: (out / "pca" / "embeddings.h5ad").exists() and sleeper_running(), what="pca done, sleeper running")
        [container] = [c for c in sleeper_running() if str(proc.pid) == c.labels.get("io.multiverse.pid")]
        sent = time.monotonic()
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
        stopped_in = time.monotonic() - sent
    finally:
        proc.kill()

    assert proc.returncode == 130, stdout + stderr
    assert stopped_in < 15
    assert "stopping every running container" in stderr
    assert not engine.client.containers.list(all=True, filters={"id": container.id})
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["models"]["pca"]["status"] == "ok"
    assert manifest["models"]["sleeper"]["status"] == "interrupted"
    assert (out / "pca" / "embeddings.h5ad").is_file()
    assert not (out / "sleeper").exists()


def test_a_new_run_removes_the_containers_a_crashed_run_left_behind(engine, faulty_catalog, tiny_h5mu, tmp_path):
    config = tmp_path / "runner_config.yaml"
    config.write_text(yaml.safe_dump({
        "input": str(tiny_h5mu), "output": str(tmp_path / "out"),
        "models": {"orphan": {"method": "faulty", "params": {"behaviour": "sleep"}}},
    }))
    crashed = subprocess.Popen([sys.executable, "-c", CLI_WITH_FAULTY, "run", "--config", str(config)],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def orphans():
        return engine.client.containers.list(all=True, filters={"label": f"io.multiverse.pid={crashed.pid}"})

    wait_for(lambda: any(c.status == "running" for c in orphans()), what="the orphan to run")
    crashed.kill()  # SIGKILL: no chance to clean up
    crashed.wait()
    assert orphans(), "the crashed run should have left its container behind"

    again = subprocess.run([sys.executable, "-m", "multiverse", "run", "--models", "pca",
                            "--input", str(tiny_h5mu), "--output", str(tmp_path / "other")],
                           cwd=REPO, capture_output=True, text=True, timeout=300)

    assert again.returncode == 0, again.stdout + again.stderr
    assert "removed 1 container(s) left by an earlier, crashed run: orphan" in again.stdout
    assert not orphans()
