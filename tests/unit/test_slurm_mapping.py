"""From a model's limits to sbatch options, and from Slurm's end states to the runner's statuses (no cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest

from multiverse.backends.base import ContainerSpec, Resources
from multiverse.backends.slurm import SlurmOptions, outcome_from, sbatch_directives, spec_digest, spec_from_json, spec_to_json
from multiverse.config import Limits
from multiverse.errors import InfrastructureError
from multiverse.runner.classify import classify
from multiverse.runner.results import Status


def spec(**resources) -> ContainerSpec:
    return ContainerSpec(name="mofa", image="sha256:" + "a" * 64, command=("--input", "/in/x.h5mu"), mounts=(),
                         resources=Resources(**resources), run_id="run-1")


def test_limits_become_cpus_memory_time_and_gpus_and_the_config_adds_partition_and_account():
    lines = sbatch_directives(spec(timeout_s=3600, memory_bytes=8 * 2**30, cpus=2.5, gpus=1),
                              SlurmOptions(partition="cpu", account="lab42"), Path("/shared/job"))
    assert "--cpus-per-task=3" in lines
    assert "--mem=8448M" in lines  # 8 GiB for the container + 256 MiB for the node-side process
    assert "--time=63" in lines  # minutes: the timeout + 3 min to load the image and start
    assert "--gres=gpu:1" in lines
    assert "--partition=cpu" in lines and "--account=lab42" in lines
    assert "--output=/shared/job/job.log" in lines and "--no-requeue" in lines


def test_no_limit_means_no_option_so_the_cluster_defaults_apply():
    lines = sbatch_directives(spec(), SlurmOptions(), Path("/j"))
    assert not [line for line in lines if line.startswith(("--mem", "--time", "--gres", "--partition", "--account"))]


def test_a_spec_survives_its_json_and_its_digest_ignores_the_run():
    original = spec(timeout_s=60, memory_bytes=2**30)
    assert spec_from_json(spec_to_json(original)) == original
    again = ContainerSpec(**{**original.__dict__, "run_id": "run-2"})
    assert spec_digest(again) == spec_digest(original)
    assert spec_digest(spec(timeout_s=61, memory_bytes=2**30)) != spec_digest(original)


JOB_LIMITS = Limits(timeout=60, memory=2**30, cpus=1, pids=64, gpus=0)


class _Job:
    name = "mofa"
    base = "mofa"
    method = "mofa"
    limits = JOB_LIMITS


@pytest.mark.parametrize(
    "state, node, cancelled_here, expected",
    [
        # The node stopped the container on SIGTERM; only Slurm knows it was the time limit.
        ("TIMEOUT", {"exit_code": 137, "cancelled": True}, False, Status.TIMEOUT),
        ("OUT_OF_MEMORY", None, False, Status.OUT_OF_MEMORY),
        ("CANCELLED", {"exit_code": 137, "cancelled": True}, False, Status.INTERRUPTED),
        ("CANCELLED", None, True, Status.INTERRUPTED),  # cancelled while pending
        ("COMPLETED", {"exit_code": 137, "oom_killed": True}, False, Status.OUT_OF_MEMORY),
        ("COMPLETED", {"exit_code": 137, "timed_out": True}, False, Status.TIMEOUT),
        ("COMPLETED", {"exit_code": 1}, False, Status.METHOD_ERROR),
        ("COMPLETED", {"exit_code": 0}, False, Status.OK),
    ],
)
def test_slurm_end_states_are_classified_like_their_local_counterparts(state, node, cancelled_here, expected):
    status, _ = classify(_Job(), outcome_from(state, node, cancelled_here))
    assert status is expected


@pytest.mark.parametrize("state, node", [
    ("NODE_FAIL", None),
    ("FAILED", None),  # the job died before its container ended
    ("COMPLETED", None),
    ("COMPLETED", {"error": "on node n1: image sha256:aaaa is not on node n1's docker engine"}),
])
def test_a_job_lost_to_the_cluster_is_an_infrastructure_error(state, node):
    with pytest.raises(InfrastructureError):
        outcome_from(state, node, cancelled_here=False)
