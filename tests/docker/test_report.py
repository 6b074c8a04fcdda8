"""A biologist compares the methods: one HTML report with the metrics and UMAPs, checked in a real browser."""

from __future__ import annotations

import csv
import html
import json
import shutil

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def metrics_image(engine):
    from multiverse.catalog import METRICS_IMAGE

    if not engine.has_image(METRICS_IMAGE.tag):
        pytest.fail(f"image {METRICS_IMAGE.tag} not built; run 'make build-all' first")


@pytest.fixture(scope="module")
def reported(built, metrics_image, tmp_path_factory):
    """PCA and both controls on the synthetic data (600 cells), with --report."""
    from multiverse.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("report")
    data = write_synthetic(root / "synthetic.h5mu")
    out = root / "out"
    proc = run_cli("run", "--models", "pca", "control_random", "control_labels",
                   "--input", data, "--output", out, "--report")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("the browser test needs chromium and chromedriver: run 'make browser'")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def test_the_report_renders_in_a_browser_with_the_table_and_every_image(reported):
    from selenium.webdriver.common.by import By

    page = reported / "report" / "report.html"
    driver = browser()
    try:
        driver.get(page.as_uri())
        assert "multiverse report" in driver.title
        rows = driver.find_elements(By.CSS_SELECTOR, "#metrics-synthetic tbody tr:not(.sep)")
        names = [row.find_element(By.CSS_SELECTOR, "td.name").text for row in rows]
        assert names and {n.split(" ")[0] for n in names} == {"pca/seed-0", "control_random/seed-0", "control_labels/seed-0"}
        images = driver.find_elements(By.TAG_NAME, "img")
        assert len(images) == 3  # the summary across datasets, UMAPs coloured by cell type and by batch
        for image in images:
            assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 100", image)
        statuses = [row.find_elements(By.TAG_NAME, "td")[1].text
                    for row in driver.find_elements(By.CSS_SELECTOR, "#runs-synthetic tbody tr")]
        assert statuses == ["ok", "ok", "ok"]
        overall = [row.find_element(By.CSS_SELECTOR, "td.name").text for row in driver.find_elements(By.CSS_SELECTOR, "#overall tbody tr")]
        assert overall[0] == "pca" and set(overall) == {"pca", "control_random", "control_labels"}
    finally:
        driver.quit()


def test_the_label_control_scores_highest_and_the_random_control_lowest(reported):
    rows = json.loads((reported / "report" / "synthetic" / "metrics.json").read_text())
    rows = [{**row, "model": row["model"].split("/")[0]} for row in rows]
    total = {row["model"]: row["total"] for row in rows}
    assert total["control_labels"] > total["pca"] > total["control_random"]
    bio = {row["model"]: row["bio_conservation"] for row in rows}
    assert bio["control_labels"] > 0.8 and bio["control_random"] < 0.3
    with (reported / "report" / "synthetic" / "metrics.csv").open() as handle:
        assert {row["model"].split("/")[0] for row in csv.DictReader(handle)} == set(total)
    by_model = {row["model"]: row for row in rows}
    assert by_model["pca"]["rank"] == 1 and by_model["pca"]["comparable"]
    # the placement text is made of the scores themselves
    pca, floor, ceiling = by_model["pca"], by_model["control_random"], by_model["control_labels"]
    assert pca["placement"].startswith(
        f"total {pca['total']:.3f}: between the controls (random {floor['total']:.3f}, labels {ceiling['total']:.3f})")
    assert f"bio conservation {pca['bio_conservation']:.3f}" in pca["placement"]
    page = (reported / "report" / "report.html").read_text()
    assert html.escape(pca["placement"]) in page
    assert "Ranked by <b>total</b>" in page


def test_metrics_whose_labels_are_missing_are_skipped_and_the_report_says_why(reported, tmp_path):
    proc = run_cli("report", reported, "--batch-key", "no_such_column")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    scores = json.loads((reported / "report" / "synthetic" / "scores.json").read_text())
    pca = scores["models"]["pca/seed-0"]
    assert pca["metrics"]["ilisi"] is None and pca["metrics"]["kbet"] is None
    assert pca["metrics"]["ari_leiden"] is not None
    assert "no_such_column" in pca["skipped"]["ilisi"]
    page = (reported / "report" / "report.html").read_text()
    assert "Skipped:" in page
    # no batch metric, so no total: ranked by bio conservation, and the page says so
    assert pca["aggregates"]["total"] is None
    assert "Ranked by <b>bio conservation</b>" in page


def test_the_benchmarker_metric_set_is_an_option_of_the_report_command(reported):
    proc = run_cli("report", reported, "--metric-set", "benchmarker")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    scores = json.loads((reported / "report" / "synthetic" / "scores.json").read_text())
    assert scores["metric_set"]["name"] == "benchmarker"
    pca = scores["models"]["pca/seed-0"]
    assert set(pca["metrics"]) == {"isolated_labels", "nmi_kmeans", "ari_kmeans", "silhouette_label", "clisi",
                                   "bras", "ilisi", "kbet", "graph_connectivity", "pcr_comparison"}
    assert all(v is not None for v in pca["metrics"].values()), pca["skipped"]
    page = (reported / "report" / "report.html").read_text()
    assert "<code>benchmarker</code>" in page and "PCR comp." in page


def test_every_embedding_can_be_collected_for_scanpy(reported):
    import anndata

    proc = run_cli("collect", reported)
    assert proc.returncode == 0, proc.stderr
    adata = anndata.read_h5ad(reported / "synthetic" / "embeddings.h5ad")
    assert set(adata.obsm) == {"X_pca", "X_control_random", "X_control_labels"}
    assert "cell_type" in adata.obs
