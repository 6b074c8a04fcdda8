"""The same sandboxed jobs through a real (one-node) Slurm cluster: scripts/ensure-slurm.sh sets it up.

Each model is one Slurm job whose node-side process runs the container on the
node's Docker engine. What a biologist relies on: the results are the ones a
local run gives, a scancel / Ctrl-C / Slurm time limit stops the container and
is reported like its local counterpart, a resumed campaign keeps what Slurm
finished (whichever backend made it), and a CLI killed mid-run and started
again follows the running jobs instead of submitting them twice.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import yaml

from multiverse import api
from multiverse.backends.base import LABEL_JOB, LABEL_RUN
from multiverse.runner.results import Status
from tests.conftest import REPO, records, result_dir, run_cli
from tests.docker.test_cancel import CLI_WITH_FAULTY, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.docker]


@pytest.fixture(scope="session")
def slurm():
    try:
        proc = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        proc = None
    if proc is None or proc.returncode != 0 or not proc.stdout.strip():
        pytest.fail("these tests need a Slurm cluster: run scripts/ensure-slurm.sh as root")
    return True


def write_config(tmp_path, data, models: dict, **slurm) -> "Path":
    config = tmp_path / "runner_config.yaml"
    config.write_text(yaml.safe_dump({
        "input": str(data), "output": str(tmp_path / "out"), "backend": "slurm",
        "slurm": {"poll": 0.5, **slurm}, "models": models,
    }))
    return config


def backend_of(plan):
    from multiverse.cli import _connect_backend

    return _connect_backend(plan.backend, plan)


def jobs_under(folder) -> dict[str, str]:
    """Slurm job id -> state of every job whose files live under ``folder`` (its working directory)."""
    out = subprocess.run(["squeue", "--noheader", "--states=all", "--format=%i|%T|%Z"],
                         capture_output=True, text=True, check=True).stdout
    return {job: state for job, state, workdir in (line.split("|", 2) for line in out.splitlines())
            if workdir.startswith(str(folder))}


def said(proc, model: str, status: str) -> bool:
    """The run's progress lines say ``model | status`` (names are padded to the longest)."""
    return re.search(rf"^\S+/{re.escape(model)}/seed-\d+ +\| {status}\b", proc.stdout, re.MULTILINE) is not None


def containers_of(engine, run_id: str) -> list:
    return engine.client.containers.list(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})


def running(engine, job: str) -> list:
    return [c for c in engine.client.containers.list(filters={"status": "running"})
            if c.labels.get(LABEL_JOB, "").split("/")[1:2] == [job]]


def test_pca_through_slurm_and_results_are_kept_across_backends(slurm, engine, built, tiny_h5mu, tmp_path):
    out = tmp_path / "out"
    config = write_config(tmp_path, tiny_h5mu, {"pca": {}, "control_random": {}})

    proc = run_cli("run", "--config", config, "--models", "pca", "--no-report")  # backend: slurm from the config

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "slurm: job" in proc.stdout and "COMPLETED" in proc.stdout
    assert list(jobs_under(out).values()) == ["COMPLETED"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["backend"]["kind"] == "slurm" and records(out)["pca"]["backend"] == "slurm"
    assert not list((out / ".multiverse" / "staging").rglob("*.h5ad"))

    local = run_cli("run", "--config", config, "--backend", "docker", "--no-report")
    assert local.returncode == 0, local.stdout + local.stderr
    assert said(local, "pca", "cached")  # made by Slurm, kept by the local run
    assert said(local, "control_random", "ok")

    again = run_cli("run", "--config", config, "--no-report")
    assert again.returncode == 0, again.stdout + again.stderr
    assert said(again, "pca", "cached") and said(again, "control_random", "cached")  # made locally, kept by Slurm
    assert len(jobs_under(out)) == 1, "nothing was submitted for results that were kept"


def test_failures_through_slurm_are_classified_like_local_ones(slurm, engine, faulty_catalog, tiny_h5mu, tmp_path):
    plan = api.prepare(write_config(tmp_path, tiny_h5mu, {
        "crash": {"method": "faulty", "params": {"behaviour": "crash"}},
        "hang": {"method": "faulty", "timeout": 3, "params": {"behaviour": "sleep", "seconds": 600}},
        "hog": {"method": "faulty", "memory": "200m", "params": {"behaviour": "oom"}},
        "garbage": {"method": "faulty", "params": {"behaviour": "invalid"}},
    }), catalog=faulty_catalog, jobs=4)

    results = {r.name.split("/")[1]: r for r in api.execute(plan, backend_of(plan))}

    assert results["crash"].status is Status.METHOD_ERROR and "blew up on purpose" in results["crash"].reason
    assert results["hang"].status is Status.TIMEOUT and "timeout of 3 s" in results["hang"].reason
    assert results["hog"].status is Status.OUT_OF_MEMORY, results["hog"].reason
    assert results["garbage"].status is Status.INVALID_OUTPUT and "out of order" in results["garbage"].reason
    for name in results:
        assert (tmp_path / "out" / ".multiverse" / "failed" / "tiny" / name / "seed-0" / "container.log").is_file()
    assert not containers_of(engine, plan.run_id)


def sleeper_plan(tmp_path, data, catalog, seconds=600, **slurm):
    config = write_config(tmp_path, data, {"sleeper": {"method": "faulty", "params": {"behaviour": "sleep", "seconds": seconds}}},
                          **slurm)
    return api.prepare(config, catalog=catalog)


def run_in_thread(plan):
    results = []
    thread = threading.Thread(target=lambda: results.extend(api.execute(plan, backend_of(plan))), daemon=True)
    thread.start()
    return thread, results


def test_scancel_stops_the_container_and_is_reported_as_interrupted(slurm, engine, faulty_catalog, tiny_h5mu, tmp_path):
    plan = sleeper_plan(tmp_path, tiny_h5mu, faulty_catalog)
    thread, results = run_in_thread(plan)
    wait_for(lambda: containers_of(engine, plan.run_id) and jobs_under(tmp_path), what="the sleeper's container")
    [job_id] = jobs_under(tmp_path)

    subprocess.run(["scancel", job_id], check=True)
    thread.join(timeout=60)

    assert not thread.is_alive()
    [result] = results
    assert result.status is Status.INTERRUPTED, result.reason
    assert not containers_of(engine, plan.run_id), "scancel left the container running on the node"
    assert jobs_under(tmp_path)[job_id] == "CANCELLED"


def test_slurm_time_limit_stops_the_container_and_is_reported_as_a_timeout(slurm, engine, faulty_catalog, tiny_h5mu, tmp_path):
    # --time=1 (a minute) overrides the model's own limit, so that Slurm's limit is the one that acts.
    plan = sleeper_plan(tmp_path, tiny_h5mu, faulty_catalog, options=["--time=1"])

    [result] = api.execute(plan, backend_of(plan))

    assert result.status is Status.TIMEOUT, result.reason
    assert list(jobs_under(tmp_path).values()) == ["TIMEOUT"]
    assert not containers_of(engine, plan.run_id)


def cli(config, *args, **popen):
    return subprocess.Popen([sys.executable, "-c", CLI_WITH_FAULTY, "run", "--config", str(config), "--no-report", *args],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def test_ctrl_c_of_the_cli_cancels_its_slurm_jobs(slurm, engine, faulty_catalog, tiny_h5mu, tmp_path):
    config = write_config(tmp_path, tiny_h5mu, {"sleeper": {"method": "faulty", "params": {"behaviour": "sleep"}}})
    proc = cli(config)
    try:
        wait_for(lambda: running(engine, "sleeper") and jobs_under(tmp_path), what="the sleeper's container")
        [job_id] = jobs_under(tmp_path)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()

    assert proc.returncode == 130, stdout + stderr
    assert jobs_under(tmp_path)[job_id] == "CANCELLED"
    assert not containers_of(engine, re.search(r"run (\S+):", stdout).group(1))
    assert records(tmp_path / "out")["sleeper"]["status"] == "interrupted"


def test_a_killed_cli_started_again_picks_up_its_running_job_instead_of_submitting_it_twice(
    slurm, engine, faulty_catalog, tiny_h5mu, tmp_path
):
    config = write_config(tmp_path, tiny_h5mu, {"sleeper": {"method": "faulty", "params": {"behaviour": "sleep", "seconds": 20}}})
    first = cli(config)
    wait_for(lambda: running(engine, "sleeper") and jobs_under(tmp_path), what="the sleeper's container")
    [job_id] = jobs_under(tmp_path)
    first.kill()  # SIGKILL: no chance to cancel anything
    first.communicate()
    assert jobs_under(tmp_path)[job_id] == "RUNNING", "the Slurm job outlives the CLI"

    second = cli(config)
    stdout, stderr = second.communicate(timeout=300)

    assert second.returncode == 0, stdout + stderr
    assert f"picked up job {job_id}" in stdout
    assert list(jobs_under(tmp_path)) == [job_id], "the job was submitted twice"
    assert (result_dir(tmp_path / "out", "sleeper", tiny_h5mu) / "embeddings.h5ad").is_file()


METHODS = ("pca", "mofa", "multivi", "mowgli", "cobolt", "control_random", "control_labels")


@pytest.mark.slow
def test_every_method_and_control_through_slurm_gives_the_embedding_of_a_local_run(slurm, engine, tiny_h5mu, tmp_path):
    import anndata as ad

    from tests.conftest import require_images
    from tests.docker.test_methods import SMOKE

    require_images(engine, *METHODS)
    runs = {}
    for backend in ("slurm", "docker"):
        out = tmp_path / backend
        proc = run_cli("run", "--config", SMOKE, "--models", *METHODS, "--input", tiny_h5mu, "--output", out,
                       "--jobs", "2", "--no-report", "--backend", backend, timeout=1800)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        runs[backend] = out
    assert len(jobs_under(runs["slurm"])) == len(METHODS)
    for model in METHODS:
        through_slurm = ad.read_h5ad(result_dir(runs["slurm"], model, tiny_h5mu) / "embeddings.h5ad").obsm["X_emb"]
        local = ad.read_h5ad(result_dir(runs["docker"], model, tiny_h5mu) / "embeddings.h5ad").obsm["X_emb"]
        np.testing.assert_array_equal(through_slurm, local, err_msg=f"{model}: Slurm and local runs differ")


@pytest.mark.podman
def test_a_node_without_the_image_loads_it_from_the_archive_and_runs_it_on_podman(
    slurm, podman, image_archive, tiny_h5mu, tmp_path
):
    from multiverse.catalog import METHODS, image_of

    image_id = podman.resolve_image(image_of(METHODS["pca"]).tag)
    podman.client.images.remove(image_id, force=True)  # this "node" lacks the image
    assert not podman.has_image(image_id)
    plan = api.prepare(write_config(tmp_path, tiny_h5mu, {"pca": {}}, engine="podman", images=str(image_archive)))

    [result] = api.execute(plan, backend_of(plan))

    assert result.status is Status.OK, result.reason
    assert podman.has_image(image_id), "the node should have loaded the archived image"
    assert result.image_id == image_id
