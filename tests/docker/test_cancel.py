"""Ctrl-C or SIGTERM stops every running container promptly and keeps finished results."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import yaml

from multiverse.backends.base import LABEL_JOB
from multiverse.catalog import image_of
from tests.conftest import FAULTY, REPO, records, result_dir

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


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["ctrl-c", "sigterm", "sighup"])
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
            return engine.client.containers.list(filters={"label": f"{LABEL_JOB}=tiny/sleeper/seed-0", "status": "running"})

        wait_for(lambda: (result_dir(out, "pca", tiny_h5mu) / "embeddings.h5ad").exists() and sleeper_running(), what="pca done, sleeper running")
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
    jobs = records(out)
    assert jobs["pca"]["status"] == "ok"
    assert jobs["sleeper"]["status"] == "interrupted"
    assert (result_dir(out, "pca", tiny_h5mu) / "embeddings.h5ad").is_file()
    assert not result_dir(out, "sleeper", tiny_h5mu).exists()


def cli_with_faulty(config, *args, **popen):
    return subprocess.Popen([sys.executable, "-c", CLI_WITH_FAULTY, "run", "--config", str(config), *args],
                            cwd=REPO, **popen)


def sleeper_config(tmp_path, tiny_h5mu, behaviour="sleep", **sleeper):
    config = tmp_path / "runner_config.yaml"
    config.write_text(yaml.safe_dump({
        "input": str(tiny_h5mu), "output": str(tmp_path / "out"),
        "models": {"orphan": {"method": "faulty", "params": {"behaviour": behaviour}, **sleeper}},
    }))
    return config


def test_a_killed_cli_leaves_no_container_behind(engine, faulty_catalog, tiny_h5mu, tmp_path):
    crashed = cli_with_faulty(sleeper_config(tmp_path, tiny_h5mu), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def of_that_run():
        import docker

        for _ in range(5):  # the watchdog may remove a container between docker-py's listing and its inspection
            try:
                return engine.client.containers.list(all=True, filters={"label": f"io.multiverse.pid={crashed.pid}"})
            except docker.errors.NotFound:
                time.sleep(0.2)
        return engine.client.containers.list(all=True, filters={"label": f"io.multiverse.pid={crashed.pid}"})

    wait_for(lambda: any(c.status == "running" for c in of_that_run()), what="the model to run")
    crashed.kill()  # SIGKILL: no chance to clean up
    crashed.wait()
    killed = time.monotonic()

    wait_for(lambda: not of_that_run(), timeout=30, what="the watchdog to remove the orphan")
    assert time.monotonic() - killed < 30


def test_a_container_stops_itself_at_its_deadline_when_nobody_is_left_to_kill_it(engine, faulty_catalog, tiny_h5mu, tmp_path):
    """The second line: runner and watchdog both gone (SIGKILL to both), the container still ends."""
    from multiverse.runner.container import DEADLINE_GRACE_S

    crashed = cli_with_faulty(sleeper_config(tmp_path, tiny_h5mu, "self_deadline", timeout=8), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def of_that_run():
        return engine.client.containers.list(all=True, filters={"label": f"io.multiverse.pid={crashed.pid}"})

    wait_for(lambda: any(c.status == "running" for c in of_that_run()), what="the model to run")
    [container] = of_that_run()
    run_id = container.labels["io.multiverse.run"]
    reapers = subprocess.run(["pgrep", "-f", f"multiverse.backends.reaper {run_id}"], capture_output=True, text=True).stdout.split()
    assert reapers, "a watchdog should watch the run"
    for pid in reapers:
        os.kill(int(pid), signal.SIGKILL)
    crashed.kill()
    crashed.wait()

    wait_for(lambda: (container.reload(), container.status)[1] == "exited", timeout=8 + DEADLINE_GRACE_S + 20,
             what="the container to stop itself")
    assert container.attrs["State"]["ExitCode"] == 124
    container.remove(force=True)


def test_a_new_run_removes_the_containers_a_dead_run_left_behind(engine, faulty_catalog, tiny_h5mu, tmp_path):
    """The third line: a container whose run and watchdog both died is removed by the next run on the host."""
    container = engine.client.containers.create(
        image_of(FAULTY).tag, command=["--behaviour-does-not-matter"], labels={
            "io.multiverse": "1", "io.multiverse.model": "orphan", "io.multiverse.run": "dead-run",
            "io.multiverse.host": socket.gethostname(), "io.multiverse.pid": str(dead_pid()),
        })

    again = subprocess.run([sys.executable, "-m", "multiverse", "run", "--models", "pca",
                            "--input", str(tiny_h5mu), "--output", str(tmp_path / "other")],
                           cwd=REPO, capture_output=True, text=True, timeout=300)

    assert again.returncode == 0, again.stdout + again.stderr
    assert "removed 1 container(s) left by an earlier, crashed run: orphan" in again.stdout
    assert not engine.client.containers.list(all=True, filters={"id": container.id})


def test_a_new_run_cleans_up_beside_the_watchdog_of_the_run_it_follows(engine, faulty_catalog):
    """A campaign killed and started again at once: the dead run's watchdog and the new run's clean-up
    remove the same containers at the same moment. The engine answers the slower of the two 409
    Conflict; that must not stop the new run, and every container must still go."""
    from multiverse.backends.reaper import sweep

    for _ in range(5):
        containers = [engine.client.containers.run(
            image_of(FAULTY).tag, entrypoint=["sleep", "300"], detach=True, labels={
                "io.multiverse": "1", "io.multiverse.model": f"orphan-{i}", "io.multiverse.run": "dead-run",
                "io.multiverse.host": socket.gethostname(), "io.multiverse.pid": str(dead_pid()),
            }) for i in range(3)]
        start = threading.Barrier(3)
        failures = []

        def remove(how):
            start.wait()
            try:
                how()
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                failures.append(exc)

        removers = [threading.Thread(target=remove, args=(lambda: sweep(engine.client, "dead-run"),)) for _ in range(2)]
        for thread in removers:
            thread.start()
        remove(engine.reap)
        for thread in removers:
            thread.join()

        assert not failures, failures
        assert not engine.client.containers.list(all=True, filters={"label": "io.multiverse.run=dead-run"})
        assert all(c.id not in {x.id for x in engine.client.containers.list(all=True)} for c in containers)


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_container_removed_from_outside_is_an_infrastructure_error_within_seconds(engine, faulty_catalog, tiny_h5mu, tmp_path):
    from multiverse import api

    plan = api.prepare(sleeper_config(tmp_path, tiny_h5mu), catalog=faulty_catalog)
    results = []
    runner = threading.Thread(target=lambda: results.extend(api.execute(plan)))
    runner.start()

    def running():
        return engine.client.containers.list(filters={"label": f"io.multiverse.run={plan.run_id}", "status": "running"})

    wait_for(lambda: running(), what="the model to run")
    running()[0].remove(force=True)  # as `docker rm -f` or a prune would
    removed = time.monotonic()
    runner.join(timeout=60)

    assert not runner.is_alive()
    assert time.monotonic() - removed < 15
    [result] = results
    assert result.status.value == "infrastructure error"
    assert "removed from outside" in result.reason
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["finished_at"] and records(tmp_path / "out")["orphan"]["status"] == "infrastructure error"
