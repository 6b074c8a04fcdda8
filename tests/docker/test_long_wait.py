"""A container that runs longer than one wait slice of the engine's API is followed to its real end."""

from __future__ import annotations

import threading

import pytest

from multiverse.backends import docker as docker_backend
from multiverse.backends.base import ContainerSpec, Resources
from multiverse.catalog import METHODS, image_of

pytestmark = pytest.mark.docker


def test_a_container_outliving_several_wait_slices_ends_by_itself_with_its_exit_code(engine, built, monkeypatch):
    # Each wait slice ends in a read timeout (a ConnectionError over a unix socket); none may pass for an exit.
    monkeypatch.setattr(docker_backend, "_WAIT_SLICE_S", 1)
    monkeypatch.setattr(docker_backend, "_STOP_GRACE_S", 1.0)
    spec = ContainerSpec(
        name="long-wait", image=engine.resolve_image(image_of(METHODS["pca"]).tag),
        command=("-c", "import sys, time; time.sleep(5); print('slept'); sys.exit(7)"), entrypoint=("python",),
        mounts=(), resources=Resources(timeout_s=60), run_id="test-long-wait",
    )

    outcome = engine.run(spec, threading.Event(), lambda line: None)

    assert outcome.exit_code == 7 and outcome.log_tail[-1] == "slept"
    assert outcome.duration_s >= 5
