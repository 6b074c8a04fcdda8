"""Nothing a container leaves behind is trusted, and nothing but a result is ever replaced.

A hostile method image plants links to a canary file outside the output root
for every file the host touches; the canary must stay untouched.
"""

from __future__ import annotations

import base64
import json
import os

import pytest
import yaml

from multiverse import api
from multiverse.catalog import image_of
from multiverse.runner.results import Status
from tests.conftest import FAULTY, result_dir, run_cli

pytestmark = pytest.mark.docker

SECRET = "the user's own notes: do not overwrite\n"


@pytest.fixture
def canary(tmp_path):
    path = tmp_path / "home" / "notes.txt"
    path.parent.mkdir()
    path.write_text(SECRET)
    os.utime(path, (1_000_000_000, 1_000_000_000))
    return path


def untouched(path) -> bool:
    return path.read_text() == SECRET and path.stat().st_mtime == 1_000_000_000


def plan_for(tmp_path, data, models, catalog, **config):
    path = tmp_path / "runner_config.yaml"
    path.write_text(yaml.safe_dump({"input": str(data), "output": str(tmp_path / "out"), "models": models, **config},
                                   sort_keys=False))
    return api.prepare(path, catalog=catalog)


def test_links_a_container_plants_for_every_file_the_host_touches_are_refused(faulty_catalog, tiny_h5mu, tmp_path, canary,
                                                                             no_leftover_containers):
    p = plan_for(tmp_path, tiny_h5mu, {
        "evil": {"method": "faulty", "params": {"behaviour": "hostile", "target": str(canary)}},
        "pca": {},
    }, faulty_catalog)

    results = {r.name.split("/")[1]: r for r in api.execute(p)}

    assert results["evil"].status is Status.INVALID_OUTPUT
    assert "output is unsafe" in results["evil"].reason
    assert any(name in results["evil"].reason for name in ("embeddings.h5ad", "metrics.json", "log.txt", "provenance.json"))
    assert results["pca"].status is Status.OK
    assert untouched(canary)
    out = tmp_path / "out"
    assert not result_dir(out, "evil", tiny_h5mu).exists()
    failed = out / ".multiverse" / "failed" / "tiny" / "evil" / "seed-0"
    assert (failed / "container.log").is_file() and not (failed / "container.log").is_symlink()
    assert (failed / "output" / "provenance.json").is_symlink()  # kept as the container left it, never followed


@pytest.mark.parametrize("behaviour, words", [
    ("hardlink", "is a hard link"), ("fifo", "not a regular file or folder"), ("bad_echo", "is not JSON"),
])
def test_odd_files_in_a_result_make_it_invalid_with_the_path_named(behaviour, words, faulty_catalog, tiny_h5mu, tmp_path,
                                                                   no_leftover_containers):
    p = plan_for(tmp_path, tiny_h5mu, {"odd": {"method": "faulty", "params": {"behaviour": behaviour}}, "pca": {}},
                 faulty_catalog)
    results = {r.name.split("/")[1]: r for r in api.execute(p)}
    assert results["odd"].status is Status.INVALID_OUTPUT and words in results["odd"].reason
    assert results["pca"].status is Status.OK
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["finished_at"]


def test_the_report_embeds_only_figures_it_may_and_never_follows_the_evaluations_links(
    faulty_catalog, built, tiny_h5mu, tmp_path, canary, monkeypatch, engine
):
    import multiverse.report.evaluate as evaluation
    from multiverse.report import make_report

    assert api.execute(plan_for(tmp_path, tiny_h5mu, {"pca": {}}, faulty_catalog))[0].status is Status.OK
    monkeypatch.setattr(evaluation, "METRICS_IMAGE", image_of(FAULTY))  # a hostile evaluation image

    try:
        make_report(tmp_path / "out", engine, labels={"hostile": str(canary)})
    except Exception:  # noqa: BLE001 - refusing the evaluation is as good as rendering it without the figures
        pass

    assert untouched(canary)
    page = tmp_path / "out" / "report" / "report.html"
    if page.exists():
        text = page.read_text()
        assert base64.b64encode(SECRET.encode()).decode()[:20] not in text and SECRET not in text


def test_a_failed_render_keeps_the_previous_report(built, tiny_h5mu, tmp_path, monkeypatch, engine):
    import multiverse.report.html as html
    from multiverse.report import make_report

    proc = run_cli("run", "--models", "pca", "control_random", "--input", tiny_h5mu, "--output", tmp_path / "out", "--report")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    page = tmp_path / "out" / "report" / "report.html"
    before = page.read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("render failed")

    monkeypatch.setattr(html, "render", broken)
    with pytest.raises(RuntimeError):
        make_report(tmp_path / "out", engine)

    assert page.read_bytes() == before


def test_results_of_another_input_are_neither_reported_nor_collected(built, tiny_h5mu, tiny_adt_h5mu, tmp_path):
    """A second file under the same dataset name (a changed file looks the same) into the same output root."""
    import shutil

    out = tmp_path / "out"
    first = run_cli("run", "--models", "pca", "--input", tiny_h5mu, "--output", out, "--no-report")
    assert first.returncode == 0, first.stdout + first.stderr
    (tmp_path / "new").mkdir()
    changed = shutil.copy(tiny_adt_h5mu, tmp_path / "new" / "tiny.h5mu")

    second = run_cli("run", "--models", "control_random", "control_labels", "--input", changed, "--output", out, "--report")
    assert second.returncode == 0, second.stdout + second.stderr

    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["jobs"]) == {"tiny/control_random/seed-0", "tiny/control_labels/seed-0"}
    assert "made from another input" in manifest["stale"]["tiny/pca/seed-0"]["stale"]
    scores = json.loads((out / "report" / "scores.json").read_text())
    assert set(scores["datasets"]["tiny"]["models"]) == {"control_random/seed-0", "control_labels/seed-0"}
    collected = run_cli("collect", out)
    assert collected.returncode == 0, collected.stderr
    import anndata

    assert set(anndata.read_h5ad(out / "tiny" / "embeddings.h5ad").obsm) == {"X_control_random", "X_control_labels"}


@pytest.fixture
def with_more_columns(tiny_h5mu, tmp_path):
    """The fixture with a second batch column and a second cell-type column."""
    from tests.forms import read, write

    mdata = read(tiny_h5mu)
    mdata.obs["sample"] = mdata.obs["batch"].astype(str) + "-s"
    mdata.obs["coarse_type"] = mdata.obs["cell_type"].astype(str).str.replace(r"_[0-2]$", "_low", regex=True)
    return write(mdata, tmp_path / "columns.h5mu")


def test_everything_that_reaches_a_container_is_in_its_resume_key(faulty_catalog, with_more_columns, tmp_path, monkeypatch,
                                                                   no_leftover_containers):
    """Each change reruns exactly the models it reaches, and only them."""
    base = {
        "models": {"pca": {"cpus": 1}, "corrector": {"method": "faulty"}, "control_labels": {}},
        "labels": {"cell_type": "cell_type", "batch": "batch"},
    }

    def rerun(**changes) -> set[str]:
        config = json.loads(json.dumps(base))
        for key, value in changes.items():
            target, *path = key.split(".")
            node = config.setdefault(target, {})
            for part in path[:-1]:
                node = node.setdefault(part, {})
            if path:
                node[path[-1]] = value
            else:
                config[target] = value
        results = api.execute(plan_for(tmp_path, with_more_columns, catalog=faulty_catalog, **config))
        assert all(r.status.succeeded for r in results), [(r.name, r.reason) for r in results]
        return {r.name.split("/")[1] for r in results if r.status is Status.OK}

    assert rerun() == {"pca", "corrector", "control_labels"}
    assert rerun() == set()
    assert rerun(**{"labels.batch": "sample"}) == {"corrector"}  # the batch key a method corrects for
    assert rerun(**{"labels.cell_type": "coarse_type", "labels.batch": "sample"}) == {"control_labels"}
    assert rerun(**{"models.pca.cpus": 2, "labels.cell_type": "coarse_type", "labels.batch": "sample"}) == {"pca"}
    kept = {"models.pca.cpus": 2, "labels.cell_type": "coarse_type", "labels.batch": "sample"}
    assert rerun(**kept, counts_layer="X") == {"pca", "corrector", "control_labels"}  # where the counts are read
    assert rerun(**kept, counts_layer="X", modalities={"atac": "adt"}) == {"pca", "corrector", "control_labels"}
    monkeypatch.setattr("multiverse_methods.protocol.CONTRACT_VERSION", 99)
    assert rerun(**kept, counts_layer="X", modalities={"atac": "adt"}) == {"pca", "corrector", "control_labels"}
