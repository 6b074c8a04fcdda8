"""A lab checks its own method image against the contract before running it beside ours."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.docker


def test_a_conforming_image_passes_every_check(example_images):
    good, _ = example_images
    proc = run_cli("check-image", good, "--params", '{"n_components": 8}')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout and "follows the contract" in proc.stdout
    for check in ("exits 0 on the fixture", "keeps the input's cells in order", "the same seed gives the same",
                  "says 'not applicable' correctly"):
        assert check in proc.stdout


def test_a_broken_image_is_told_what_it_breaks(example_images):
    _, broken = example_images
    proc = run_cli("check-image", broken)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    text = " ".join(proc.stdout.split())
    assert "does not follow the contract" in proc.stderr
    assert "out of order" in text  # the cells reversed
    assert "exited 1 on an input without counts" in text  # a crash where 'not applicable' was due


def test_an_image_that_is_not_there_is_an_infrastructure_error(engine):
    proc = run_cli("check-image", "lab/no-such-method:0")
    assert proc.returncode == 3
    assert "never pulls" in proc.stderr
