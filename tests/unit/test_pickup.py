"""Picking up a job that outlived its run (a Slurm job after the CLI was killed), on the fake backend.

The runner names each job's staging folder by its result key, the same in
every run; ``recover()`` keeps the folders a backend says are in use, and a
job the backend adopts finds its folder as the earlier run's job left it.
"""

from __future__ import annotations

import pytest
import yaml

from multiverse import api
from multiverse.backends.fake import FakeBackend, FakeRun, output_dir, write_valid_result
from multiverse.catalog import METHODS, image_of
from multiverse.runner.results import Status
from tests.conftest import result_dir


def plan_for(tmp_path, data, models):
    config = tmp_path / "runner_config.yaml"
    config.write_text(yaml.safe_dump({"input": str(data), "output": str(tmp_path / "out"), "models": models}))
    return api.prepare(config)


def fake_backend(**kwargs) -> FakeBackend:
    fake = FakeBackend(**kwargs)
    fake.add_image(image_of(METHODS["pca"]).tag)
    return fake


def first_spec(tmp_path, data, models):
    """The container spec a run gives the pca job (learnt from a run whose container fails)."""
    fake = fake_backend(runs={"pca": FakeRun(exit_code=1)})
    api.execute(plan_for(tmp_path, data, models), fake)
    [spec] = fake.started
    return spec


def test_the_staging_folder_is_the_same_in_every_run_and_changes_with_the_key(tiny_h5mu, tmp_path):
    first = output_dir(first_spec(tmp_path, tiny_h5mu, {"pca": {}}))
    again = output_dir(first_spec(tmp_path, tiny_h5mu, {"pca": {}}))
    other = output_dir(first_spec(tmp_path, tiny_h5mu, {"pca": {"params": {"n_components": 7}}}))
    assert first == again
    assert other != first and other.parent.name.startswith("seed-0-") and other.parent.parent.name == "pca"


def earlier_job_wrote(spec) -> None:
    """What the earlier run's job, still running when its CLI died, wrote into its output folder."""
    output_dir(spec).mkdir(parents=True, exist_ok=True)
    write_valid_result(output_dir(spec), spec)
    (output_dir(spec) / "log.txt").write_text("written by the earlier run's job\n")


def test_an_adopted_job_is_collected_from_the_folder_the_earlier_run_left(tiny_h5mu, tmp_path):
    spec = first_spec(tmp_path, tiny_h5mu, {"pca": {}})
    earlier_job_wrote(spec)
    plan = plan_for(tmp_path, tiny_h5mu, {"pca": {}})
    unused = plan.work_dir / "staging" / "mofa-0123456789abcdef"
    unused.mkdir(parents=True)
    # The adopted job writes nothing now: its result can only be the one found in the folder.
    fake = fake_backend(adopted={"pca": output_dir(spec).parent}, runs={"pca": FakeRun(writes=None)})

    [result] = api.execute(plan, fake)

    assert result.status is Status.OK, result.reason
    assert (result_dir(tmp_path / "out", "pca", tiny_h5mu) / "log.txt").read_text() == "written by the earlier run's job\n"
    assert not unused.exists(), "a staging folder that no backend uses must go"


class KeepsButDoesNotAdopt(FakeBackend):
    """Names the folder in use (so recover() keeps it) but starts a new container all the same."""

    def adopts(self, spec) -> bool:
        return False


@pytest.mark.parametrize("in_use", [False, True], ids=["not-in-use", "in-use-not-adopted"])
def test_a_job_not_adopted_never_sees_files_left_in_its_folder(in_use, tiny_h5mu, tmp_path):
    spec = first_spec(tmp_path, tiny_h5mu, {"pca": {}})
    earlier_job_wrote(spec)
    fake = KeepsButDoesNotAdopt(runs={"pca": FakeRun(writes=None)},
                                adopted={"pca": output_dir(spec).parent} if in_use else None)
    fake.add_image(image_of(METHODS["pca"]).tag)

    [result] = api.execute(plan_for(tmp_path, tiny_h5mu, {"pca": {}}), fake)

    assert result.status is Status.INVALID_OUTPUT
    assert "missing embeddings.h5ad" in result.reason
