"""The runner's own logic on the in-memory fake backend: no engine, seconds in all.

Classification, staging and promotion, resume, cancellation, and one job's
failure staying that job's. The same stories run against the real engine in
tests/docker/; these pin the runner's decisions down fast.
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
import yaml

from multiverse import api
from multiverse.backends.fake import FakeBackend, FakeRun, write_valid_result
from multiverse.catalog import image_of
from multiverse.runner.results import Status
from tests.conftest import FAULTY, result_dir


@pytest.fixture
def catalog():
    from multiverse.catalog import METHODS

    return {**METHODS, "faulty": FAULTY}


@pytest.fixture
def backend(catalog):
    fake = FakeBackend()
    for method in catalog.values():
        fake.add_image(image_of(method).tag)
    return fake


def plan(tmp_path, data, models, catalog, **config):
    path = tmp_path / "runner_config.yaml"
    path.write_text(yaml.safe_dump({"input": str(data), "output": str(tmp_path / "out"), "models": models, **config}, sort_keys=False))
    return api.prepare(path, catalog=catalog)


def faulty(**params):
    return {"method": "faulty", "params": params}


def test_every_outcome_is_classified_and_one_failure_never_stops_the_others(tmp_path, tiny_h5mu, catalog, backend):
    backend._runs = {
        "crash": FakeRun(exit_code=1, log="Traceback ...\nRuntimeError: boom"),
        "hog": FakeRun(oom=True),
        "hang": FakeRun(hang=True),
        "na": FakeRun(exit_code=3, log="not applicable: no counts"),
        "silent": FakeRun(exit_code=0),
        "refused": FakeRun(refused="the engine said no"),
        "vanished": FakeRun(vanishes=True),
    }
    models = {name: faulty() for name in backend._runs} | {"good": faulty()}
    models["hang"]["timeout"] = 0.2
    p = plan(tmp_path, tiny_h5mu, models, catalog, jobs=3)

    results = {r.name.split('/')[1]: r for r in api.execute(p, backend)}

    assert {n: r.status for n, r in results.items()} == {
        "crash": Status.METHOD_ERROR, "hog": Status.OUT_OF_MEMORY, "hang": Status.TIMEOUT,
        "na": Status.NOT_APPLICABLE, "silent": Status.INVALID_OUTPUT, "refused": Status.INFRASTRUCTURE_ERROR,
        "vanished": Status.INFRASTRUCTURE_ERROR, "good": Status.OK,
    }
    assert "RuntimeError: boom" in results["crash"].reason
    assert results["na"].reason == "no counts"
    assert "raise models.hang.timeout" in results["hang"].reason  # the config key, not the job's path
    assert "raise models.hog.memory" in results["hog"].reason
    assert "removed from outside" in results["vanished"].reason
    out = tmp_path / "out"
    assert (result_dir(out, "good", tiny_h5mu) / "embeddings.h5ad").is_file()
    for name in set(results) - {"good"}:
        assert not result_dir(out, name, tiny_h5mu).exists(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["finished_at"] and set(manifest["jobs"]) == {f"tiny/{n}/seed-0" for n in results}


def test_an_unexpected_exception_in_the_runner_is_that_jobs_result_and_the_run_finishes(tmp_path, tiny_h5mu, catalog, backend):
    def explode(folder, spec):
        raise TypeError("something nobody expected")

    backend._runs = {"odd": FakeRun(writes=explode)}
    p = plan(tmp_path, tiny_h5mu, {"odd": faulty(), "good": faulty()}, catalog)

    results = {r.name.split('/')[1]: r for r in api.execute(p, backend)}

    assert results["odd"].status is Status.INFRASTRUCTURE_ERROR
    assert "TypeError: something nobody expected" in results["odd"].reason
    assert results["good"].status is Status.OK
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["finished_at"]


def test_a_validated_result_is_promoted_with_provenance_and_a_rerun_keeps_it(tmp_path, tiny_h5mu, catalog, backend):
    models = {"a": faulty(seconds=1.0), "b": faulty(seconds=2.0)}
    first = {r.name.split('/')[1]: r.status for r in api.execute(plan(tmp_path, tiny_h5mu, models, catalog), backend)}
    assert first == {"a": Status.OK, "b": Status.OK}
    provenance = json.loads((result_dir(tmp_path / "out", "a", tiny_h5mu) / "provenance.json").read_text())
    assert provenance["key"]["params"]["seconds"] == 1.0 and provenance["multiverse_version"]

    again = {r.name.split('/')[1]: r.status for r in api.execute(plan(tmp_path, tiny_h5mu, models, catalog), backend)}
    assert again == {"a": Status.CACHED, "b": Status.CACHED}
    assert len(backend.started) == 2  # nothing ran the second time

    models["a"]["params"]["seconds"] = 3.0
    third = {r.name.split('/')[1]: r.status for r in api.execute(plan(tmp_path, tiny_h5mu, models, catalog), backend)}
    assert third == {"a": Status.OK, "b": Status.CACHED}


def test_a_failed_rerun_keeps_the_earlier_result_and_keeps_its_attempt_apart(tmp_path, tiny_h5mu, catalog, backend):
    api.execute(plan(tmp_path, tiny_h5mu, {"m": faulty(seconds=1.0)}, catalog), backend)
    before = (result_dir(tmp_path / "out", "m", tiny_h5mu) / "embeddings.h5ad").read_bytes()
    backend._runs = {"m": FakeRun(exit_code=1, log="crash", writes=lambda folder, spec: (folder / "half.txt").write_text("x"))}

    [result] = api.execute(plan(tmp_path, tiny_h5mu, {"m": faulty(seconds=2.0)}, catalog), backend)

    assert result.status is Status.METHOD_ERROR
    assert (result_dir(tmp_path / "out", "m", tiny_h5mu) / "embeddings.h5ad").read_bytes() == before
    failed = tmp_path / "out" / ".multiverse" / "failed" / "tiny" / "m" / "seed-0"
    assert (failed / "container.log").read_text() == "crash"
    assert (failed / "output" / "half.txt").is_file()


def test_cancelling_stops_running_jobs_and_never_starts_the_rest(tmp_path, tiny_h5mu, catalog, backend):
    backend._runs = {"slow": FakeRun(hang=True)}
    cancel = threading.Event()
    p = plan(tmp_path, tiny_h5mu, {"slow": faulty(), "later": faulty()}, catalog)
    threading.Timer(0.3, cancel.set).start()

    results = {r.name.split('/')[1]: r for r in api.execute(p, backend, cancel=cancel)}

    assert results["slow"].status is Status.INTERRUPTED and "stopped by the user" in results["slow"].reason
    assert results["later"].status is Status.INTERRUPTED and "not started" in results["later"].reason
    assert [spec.name for spec in backend.started] == ["tiny/slow/seed-0"]


def test_a_run_is_guarded_by_the_backends_watchdog(tmp_path, tiny_h5mu, catalog, backend):
    p = plan(tmp_path, tiny_h5mu, {"m": faulty()}, catalog)
    api.execute(p, backend)
    assert backend.guarded == [p.run_id]


def test_the_container_sees_the_input_read_only_and_only_its_own_output_folder(tmp_path, tiny_h5mu, catalog, backend):
    p = plan(tmp_path, tiny_h5mu, {"m": faulty()}, catalog)
    api.execute(p, backend)
    [spec] = backend.started
    mounts = {m.target: m for m in spec.mounts}
    assert mounts["/data/input/tiny.h5mu"].read_only and mounts["/data/input/tiny.h5mu"].source == tiny_h5mu.resolve()
    output = mounts["/data/output"]
    assert not output.read_only and output.source.name == "output"
    assert "staging" in output.source.parts  # the host's files go beside output/, never in it
    assert spec.environment["MULTIVERSE_DEADLINE_S"] and spec.environment["MULTIVERSE_THREADS"]


def test_the_fake_backend_suite_runs_in_seconds(tmp_path, tiny_h5mu, catalog, backend):
    start = time.monotonic()
    api.execute(plan(tmp_path, tiny_h5mu, {f"m{i}": faulty() for i in range(5)}, catalog, jobs=2), backend)
    assert time.monotonic() - start < 10


def test_results_of_another_input_are_stale_not_this_inputs(tmp_path, tiny_h5mu, tiny_adt_h5mu, catalog, backend):
    """The same dataset name, another file (here: the other fixture under the same name)."""
    import shutil

    api.execute(plan(tmp_path, tiny_h5mu, {"old": faulty()}, catalog), backend)
    (tmp_path / "elsewhere").mkdir()
    other = shutil.copy(tiny_adt_h5mu, tmp_path / "elsewhere" / "tiny.h5mu")

    api.execute(plan(tmp_path, other, {"new": faulty()}, catalog), backend)

    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert set(manifest["jobs"]) == {"tiny/new/seed-0"}
    assert "made from another input" in manifest["stale"]["tiny/old/seed-0"]["stale"]
    from multiverse.collect import result_folders

    assert set(result_folders(tmp_path / "out", manifest, "tiny")) == {"new/seed-0"}


def test_results_of_this_input_stay_in_the_manifest_when_not_rerun(tmp_path, tiny_h5mu, catalog, backend):
    api.execute(plan(tmp_path, tiny_h5mu, {"a": faulty()}, catalog), backend)
    api.execute(plan(tmp_path, tiny_h5mu, {"b": faulty()}, catalog), backend)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert set(manifest["jobs"]) == {"tiny/a/seed-0", "tiny/b/seed-0"} and not manifest["stale"]


def test_a_result_folder_the_container_filled_with_links_is_refused_and_the_canary_untouched(tmp_path, tiny_h5mu, catalog, backend):
    canary = tmp_path / "canary.txt"
    canary.write_text("the user's file")

    def plant(folder, spec):
        write_valid_result(folder, spec)
        (folder / "metrics.json").unlink()
        os.symlink(canary, folder / "metrics.json")

    backend._runs = {"evil": FakeRun(writes=plant)}
    [result] = api.execute(plan(tmp_path, tiny_h5mu, {"evil": faulty()}, catalog), backend)

    assert result.status is Status.INVALID_OUTPUT
    assert "metrics.json is a symbolic link" in result.reason
    assert canary.read_text() == "the user's file"
    assert not result_dir(tmp_path / "out", "evil", tiny_h5mu).exists()


def test_stale_results_stay_stale_when_a_later_run_reads_another_dataset(tmp_path, tiny_h5mu, tiny_adt_h5mu, catalog, backend):
    import shutil

    api.execute(plan(tmp_path, tiny_h5mu, {"old": faulty()}, catalog), backend)
    (tmp_path / "elsewhere").mkdir()
    other = shutil.copy(tiny_adt_h5mu, tmp_path / "elsewhere" / "tiny.h5mu")
    api.execute(plan(tmp_path, other, {"new": faulty()}, catalog), backend)  # tiny/old is now stale
    third = shutil.copy(tiny_h5mu, tmp_path / "elsewhere" / "third.h5mu")

    api.execute(plan(tmp_path, third, {"new": faulty()}, catalog), backend)  # a run that does not read "tiny"

    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert "tiny/old/seed-0" not in manifest["jobs"]
    assert "made from another input" in manifest["stale"]["tiny/old/seed-0"]["stale"]
    assert {"tiny/new/seed-0", "third/new/seed-0"} <= set(manifest["jobs"])


def statuses(results):
    return {r.name.split("/")[1]: r.status for r in results}


def test_a_new_image_of_a_method_reruns_that_method_alone(tmp_path, tiny_h5mu, catalog, backend):
    models = {"m": faulty(), "r": {"method": "control_random"}}
    api.execute(plan(tmp_path, tiny_h5mu, models, catalog), backend)
    backend.add_image(image_of(catalog["faulty"]).tag, image_id="sha256:" + "1" * 64)  # rebuilt: another id

    again = statuses(api.execute(plan(tmp_path, tiny_h5mu, models, catalog), backend))

    assert again == {"m": Status.OK, "r": Status.CACHED}


def test_another_method_under_the_same_name_reruns(tmp_path, tiny_h5mu, catalog, backend):
    import dataclasses

    twin = dataclasses.replace(catalog["faulty"], name="faulty_twin")  # same image, same parameters
    catalog = {**catalog, "faulty_twin": twin}
    api.execute(plan(tmp_path, tiny_h5mu, {"m": faulty()}, catalog), backend)
    again = statuses(api.execute(plan(tmp_path, tiny_h5mu, {"m": {"method": "faulty_twin"}}, catalog), backend))
    assert again == {"m": Status.OK}


def test_new_content_under_the_same_input_path_reruns_everything(tmp_path, tiny_h5mu, catalog, backend):
    import mudata as md

    data = tmp_path / "data" / "tiny.h5mu"
    data.parent.mkdir()
    mdata = md.read_h5mu(tiny_h5mu)
    mdata.write(data)
    models = {"m": faulty(), "r": {"method": "control_random"}}
    assert set(statuses(api.execute(plan(tmp_path, data, models, catalog), backend)).values()) == {Status.OK}
    mdata.obs["note"] = "edited"  # the same cells, another file
    mdata.write(data)

    again = statuses(api.execute(plan(tmp_path, data, models, catalog), backend))

    assert again == {"m": Status.OK, "r": Status.OK}


def test_converting_an_input_runs_under_the_watchdog_and_ctrl_c_there_is_an_interruption(tmp_path, tiny_h5mu, catalog, backend):
    from multiverse.errors import Interrupted
    from tests import forms

    mixed = forms.mixed_h5ad(tiny_h5mu, tmp_path / "mixed.h5ad")
    guarded_at_start = []

    class Watched(FakeBackend):
        def run(self, spec, cancel, on_line):
            guarded_at_start.append((spec.name, bool(self.guarded)))
            cancel.set()  # the user presses Ctrl-C while the input is converted
            return super().run(spec, cancel, on_line)

    watched = Watched(runs={"convert-input": FakeRun(hang=True)}, images=backend.images)
    with pytest.raises(Interrupted) as stopped:
        api.execute(plan(tmp_path, mixed, {"m": faulty()}, catalog), watched)

    assert guarded_at_start == [("convert-input", True)]
    assert stopped.value.exit_code == 130 and "no model was started" in stopped.value.message


def test_what_validation_needs_is_read_while_a_container_runs_and_nothing_is_left_waiting(tmp_path, tiny_h5mu, catalog, backend):
    """The input's cell names are read once the first container writes its log (a rerun does not
    open the input before that); a run in which no container starts leaves no thread behind."""
    models = {"a": faulty()}
    first_plan = plan(tmp_path, tiny_h5mu, models, catalog)
    assert [r.status for r in api.execute(first_plan, backend)] == [Status.OK]

    again = plan(tmp_path, tiny_h5mu, models, catalog)
    cached = next(iter(again.datasets.values())).input
    assert cached._names == [], "the rerun's plan took the input's summary from the cache"
    assert [r.status for r in api.execute(again, backend)] == [Status.CACHED]
    time.sleep(0.2)
    assert not [t for t in threading.enumerate() if t.name == "prepare-validation"]
