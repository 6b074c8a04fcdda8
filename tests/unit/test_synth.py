"""The fitted generator (``multiverse synth --cells/--preset``): statistics like the real files, valid
streamed files, memory that does not grow with the number of cells, and the command line.

Statistics are compared with the real BMMC files (skipped when absent); the file format, memory and
command-line tests fit the small toy dataset instead, so they run everywhere.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.sparse as sp

from multiverse.synth import generate as generate_module
from multiverse.synth.generate import generate
from multiverse.synthetic import make_synthetic, write_synthetic
from tests.conftest import CITE, MULTIOME, REPO, real_data, run_cli


def read(path):
    import mudata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mudata.read_h5mu(str(path))


# ---------------------------------------------------------------- summary statistics and their tolerances


def _counts(mdata, name) -> sp.csr_matrix:
    return sp.csr_matrix(mdata[name].layers["counts"], dtype=np.float64)


def _labels(mdata, key) -> np.ndarray:
    return mdata.obs[key].astype(str).to_numpy()


def _normalised(counts):
    depth = np.asarray(counts.sum(axis=1)).ravel()
    return sp.diags(1 / np.maximum(depth, 1)) @ counts, depth


def _type_deviations(mdata, name, types):
    """log mean profile of each type minus the mean over types (what makes a type a type)."""
    norm, _ = _normalised(_counts(mdata, name))
    labels = _labels(mdata, "cell_type")
    profiles = np.array([np.log1p(1e4 * np.asarray(norm[labels == t].mean(axis=0)).ravel()) for t in types])
    return profiles - profiles.mean(axis=0)


def _batch_fold_changes(mdata, name):
    """Per feature: log2 fold change between the two batches within each type, averaged over the types
    with 10+ cells in both batches (so composition differences between donors do not count)."""
    norm, _ = _normalised(_counts(mdata, name))
    types, batches = _labels(mdata, "cell_type"), _labels(mdata, "batch")
    first, second = np.unique(batches)[:2]
    total, weight = 0.0, 0
    for t in np.unique(types):
        a, b = (types == t) & (batches == first), (types == t) & (batches == second)
        if a.sum() >= 10 and b.sum() >= 10:
            ma, mb = (np.asarray(norm[s].mean(axis=0)).ravel() for s in (a, b))
            k = min(a.sum(), b.sum())
            total, weight = total + k * np.log2((mb + 1e-4) / (ma + 1e-4)), weight + k
    return total / weight


def _zero_excess(counts):
    """Zeros beyond a Poisson with each cell's expected count: what overdispersion adds."""
    depth = np.asarray(counts.sum(axis=1)).ravel()
    share = np.asarray(counts.sum(axis=0)).ravel() / depth.sum()
    return (1 - counts.nnz / np.prod(counts.shape)) - np.exp(-np.outer(depth, share)).mean()


def _fano(counts):
    """Median variance / mean of the features with mean > 0.05."""
    mean = np.asarray(counts.mean(axis=0)).ravel()
    var = np.asarray(counts.multiply(counts).mean(axis=0)).ravel() - mean**2
    keep = mean > 0.05
    return float(np.median(var[keep] / mean[keep]))


def _ratio_ok(name, real, synthetic, low, high, problems):
    ratio = synthetic / real
    if not low <= ratio <= high:
        problems.append(f"{name}: {synthetic:.4g} vs real {real:.4g} (ratio {ratio:.2f}, allowed {low}-{high})")


def mismatches(real, synthetic, name: str) -> list[str]:
    """Each summary statistic of modality ``name`` that differs from the real file's beyond its tolerance.

    Tolerances were set from 2,000 generated cells against the 500-600 real ones (sampling noise of both)
    with a margin; the obviously wrong generators of the next test fall outside them.
    """
    problems: list[str] = []
    r, s = _counts(real, name), _counts(synthetic, name)
    kind = "adt" if name == "adt" else "atac" if name == "atac" else "rna"
    _ratio_ok("density", r.nnz / np.prod(r.shape), s.nnz / np.prod(s.shape), 0.92, 1.08, problems)
    r_depth, s_depth = np.asarray(r.sum(axis=1)).ravel(), np.asarray(s.sum(axis=1)).ravel()
    for q, (low, high) in {0.1: (0.85, 1.15), 0.5: (0.9, 1.1), 0.9: (0.85, 1.15)}.items():
        _ratio_ok(f"library size q{q}", np.quantile(r_depth, q), np.quantile(s_depth, q), low, high, problems)
    _ratio_ok("non-zeros per cell (median)", np.median(np.diff(r.indptr)), np.median(np.diff(s.indptr)),
              0.9, 1.1, problems)
    r_detect, s_detect = (np.asarray((m > 0).mean(axis=0)).ravel() for m in (r, s))
    if kind == "adt":  # nearly every protein is detected in every cell: compare mean levels instead
        r_mean, s_mean = (np.log1p(np.asarray(m.mean(axis=0)).ravel()) for m in (r, s))
        if np.corrcoef(r_mean, s_mean)[0, 1] < 0.98:
            problems.append(f"protein mean levels: correlation {np.corrcoef(r_mean, s_mean)[0, 1]:.3f} < 0.98")
        _ratio_ok("median variance/mean", _fano(r), _fano(s), 0.75, 1.33, problems)
    else:  # per-feature detection rate: for ATAC, each peak's accessibility
        corr, gap = np.corrcoef(r_detect, s_detect)[0, 1], np.abs(r_detect - s_detect).mean()
        if corr < 0.95 or gap > 0.03:
            problems.append(f"per-feature detection: correlation {corr:.3f} (>= 0.95), mean gap {gap:.3f} (<= 0.03)")
    if kind == "rna" and real.n_obs < 550:  # the multiome file's RNA carries the clearest overdispersion
        _ratio_ok("zeros beyond Poisson", _zero_excess(r), _zero_excess(s), 0.7, 1.43, problems)
    if kind == "atac":
        r_even, s_even = np.mean(r.data % 2 == 0), np.mean(s.data % 2 == 0)
        if abs(r_even - s_even) > 0.03:
            problems.append(f"share of even ATAC counts: {s_even:.3f} vs real {r_even:.3f} (within 0.03)")
    for key, tolerance in (("cell_type", 0.03), ("batch", 0.04)):
        r_labels, s_labels = _labels(real, key), _labels(synthetic, key)
        for label in np.unique(r_labels):
            gap = abs(np.mean(r_labels == label) - np.mean(s_labels == label))
            if gap > tolerance:
                problems.append(f"{key} {label}: share differs by {gap:.3f} (> {tolerance})")
    big = [t for t, n in zip(*np.unique(_labels(real, "cell_type"), return_counts=True)) if n >= 30]
    corr = np.corrcoef(_type_deviations(real, name, big).ravel(), _type_deviations(synthetic, name, big).ravel())[0, 1]
    if corr < 0.75:
        problems.append(f"cell-type profiles: correlation of type deviations {corr:.3f} < 0.75")
    corr = np.corrcoef(_batch_fold_changes(real, name), _batch_fold_changes(synthetic, name))[0, 1]
    if corr < 0.35:
        problems.append(f"batch effect: correlation of within-type fold changes {corr:.3f} < 0.35")
    return problems


# ---------------------------------------------------------------- statistics against the real files


@pytest.mark.parametrize("reference, second", [(MULTIOME, "atac"), (CITE, "adt")], ids=["multiome", "cite"])
def test_generated_data_has_the_real_files_statistics(reference, second, tmp_path):
    reference = real_data(reference)
    made = generate(tmp_path / "synth.h5mu", 2000, {}, reference, seed=0)
    real, synthetic = read(reference), read(made.path)
    for name in ("rna", second):
        assert mismatches(real, synthetic, name) == [], name


def _break(kind):
    """A fit_reference that fits, then throws one part of the model away."""
    fit = generate_module.fit_reference

    def broken(path, **kwargs):
        model = fit(path, **kwargs)
        mods = {}
        for name, m in model.modalities.items():
            if kind == "no batch effect":
                m = dataclasses.replace(m, batch_effect=np.ones_like(m.batch_effect))
            elif kind == "one profile for every type":
                m = dataclasses.replace(m, profile=np.repeat(m.profile.mean(0, keepdims=True), len(m.profile), 0))
            elif kind == "Poisson counts":
                m = dataclasses.replace(m, dispersion=np.zeros_like(m.dispersion))
            elif kind == "ATAC insertions read as fragments":
                m = dataclasses.replace(m, half_fragment=None)
            mods[name] = m
        depth = model.depth
        if kind == "the same depth for every cell":
            depth = {name: np.full_like(d, np.median(d)) for name, d in depth.items()}
        return dataclasses.replace(model, modalities=mods, depth=depth)

    return broken


WRONG = {
    "no batch effect": ("rna", "batch effect"),
    "one profile for every type": ("atac", "cell-type profiles"),
    "Poisson counts": ("rna", "zeros beyond Poisson"),
    "ATAC insertions read as fragments": ("atac", "even ATAC counts"),
    "the same depth for every cell": ("rna", "library size"),
}


@pytest.mark.parametrize("kind", WRONG, ids=list(WRONG))
def test_the_comparison_rejects_a_wrong_generator(kind, tmp_path, monkeypatch):
    """The statistics test above can fail: each broken part of the model is caught by its statistic."""
    reference = real_data(MULTIOME)
    monkeypatch.setattr(generate_module, "fit_reference", _break(kind))
    made = generate(tmp_path / "wrong.h5mu", 2000, {}, reference, seed=0)
    name, expected = WRONG[kind]
    problems = mismatches(read(reference), read(made.path), name)
    assert any(expected in p for p in problems), problems


def test_the_comparison_rejects_the_toy_dataset():
    reference = real_data(MULTIOME)
    toy = make_synthetic(n_cells=500, n_genes=600, n_peaks=600)
    real = read(reference)
    toy.obs = real.obs[["cell_type", "batch"]].set_axis(toy.obs.index)  # the same labels: only the counts differ
    for name in ("rna", "atac"):
        assert mismatches(real, toy, name) != []


def test_more_features_keep_each_features_statistics(tmp_path):
    """3x the reference's genes and peaks: the detection rates of features (peak accessibility) keep their
    distribution; each cell's total grows about 3x; copies are named after their source."""
    reference = real_data(MULTIOME)
    made = generate(tmp_path / "wide.h5mu", 1500, {"rna": 1800, "atac": 1800}, reference, seed=1)
    real, synthetic = read(reference), read(made.path)
    for name in ("rna", "atac"):
        r, s = _counts(real, name), _counts(synthetic, name)
        r_detect, s_detect = (np.asarray((m > 0).mean(axis=0)).ravel() for m in (r, s))
        quantiles = [0.25, 0.5, 0.75, 0.9]
        assert np.allclose(np.quantile(s_detect, quantiles), np.quantile(r_detect, quantiles), atol=0.03), name
        depth_ratio = np.median(np.asarray(s.sum(axis=1))) / np.median(np.asarray(r.sum(axis=1)))
        assert 2.5 < depth_ratio < 3.5, (name, depth_ratio)
        var = synthetic[name].var
        assert var.index.is_unique
        assert list(var.index[:600]) == list(real[name].var_names)
        copies = var.index[600:]
        assert all("_copy" in c for c in copies)
        assert all(c.startswith(str(src)) for c, src in zip(copies, var["reference_feature"].iloc[600:]))


def test_fewer_features_are_a_subset_of_the_references(tmp_path):
    reference = real_data(CITE)
    made = generate(tmp_path / "narrow.h5mu", 300, {"rna": 250, "adt": 40}, reference, seed=2)
    real, synthetic = read(reference), read(made.path)
    for name, n in (("rna", 250), ("adt", 40)):
        assert synthetic[name].n_vars == n
        assert set(synthetic[name].var_names) <= set(real[name].var_names)


# ---------------------------------------------------------------- the streamed file (toy reference)


@pytest.fixture(scope="module")
def toy_reference(tmp_path_factory) -> Path:
    """A reference with binary ATAC, fitted like a real file: these tests need no real data."""
    return write_synthetic(tmp_path_factory.mktemp("ref") / "toy.h5mu", n_cells=300, n_genes=500, n_peaks=800)


def test_the_streamed_file_is_valid_mudata(toy_reference, tmp_path):
    from multiverse.inputs import inspect_input

    made = generate(tmp_path / "out.h5mu", 1234, {"rna": 700, "atac": 900}, toy_reference, seed=5, chunk_size=500)
    mdata = read(made.path)
    assert mdata.shape == (1234, 1600) and list(mdata.mod) == ["rna", "atac"]
    assert mdata.obs_names.is_unique
    for name, n in (("rna", 700), ("atac", 900)):
        adata = mdata[name]
        assert adata.shape == (1234, n)
        assert isinstance(adata.X, sp.csr_matrix) and adata.X.dtype == np.float32
        counts = adata.layers["counts"]
        assert (counts != adata.X).nnz == 0
        assert counts.nnz == made.nnz[name] > 0
        assert np.array_equal(counts.data, np.round(counts.data)) and counts.data.min() >= 1
        assert list(adata.obs_names) == list(mdata.obs_names)
    assert mdata["atac"].layers["counts"].data.max() == 1  # the toy reference's ATAC is binary
    assert set(mdata.obs["cell_type"]) <= {f"type_{t}" for t in range(6)}
    assert set(mdata.obs["batch"]) == {"batch_0", "batch_1"}
    assert mdata.uns["multiverse_synth"]["reference"] == "toy.h5mu"
    with h5py.File(made.path, "r") as handle:
        for name in ("rna", "atac"):
            group = handle["mod"][name]
            assert group["X"] == group["layers"]["counts"]  # one object, stored once
            assert group["X"]["indptr"].dtype == np.int64
    checked = inspect_input(made.path)
    assert checked.n_obs == 1234 and checked.kinds == {"rna": "rna", "atac": "atac"}
    assert not (tmp_path / "out.h5mu.partial").exists()


def test_the_seed_decides_the_data(toy_reference, tmp_path):
    def counts(path, seed):
        generate(path, 400, {"rna": 300}, toy_reference, seed=seed, chunk_size=150)
        return read(path)["rna"].layers["counts"]

    a, b, c = counts(tmp_path / "a.h5mu", 7), counts(tmp_path / "b.h5mu", 7), counts(tmp_path / "c.h5mu", 8)
    assert (a != b).nnz == 0
    assert (a != c).nnz > 0


_PEAK_MEMORY = """
import json, resource, sys
from pathlib import Path
from multiverse.synth.generate import generate
made = generate(Path(sys.argv[1]), int(sys.argv[2]), {}, Path(sys.argv[3]), chunk_size=500)
print(json.dumps({"peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "matrix_bytes": 8 * sum(made.nnz.values())}))
"""


def _peak(path, cells, reference):
    proc = subprocess.run([sys.executable, "-c", _PEAK_MEMORY, str(path), str(cells), str(reference)],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_memory_does_not_grow_with_the_number_of_cells(tmp_path):
    """Peak memory of 20,000 cells is that of 2,000 plus little, although their counts alone take
    ~8x the allowed growth: the matrix is never held whole (chunks of 500 cells)."""
    reference = write_synthetic(tmp_path / "ref.h5mu", n_cells=300, n_genes=1000, n_peaks=2000, seed=1)
    small = _peak(tmp_path / "small.h5mu", 2_000, reference)
    large = _peak(tmp_path / "large.h5mu", 20_000, reference)
    allowed = 30 * 2**20  # obs, cell names and the skeleton's index arrays do grow with the cells (~0.6 kB each)
    assert large["matrix_bytes"] > 3 * allowed  # holding the matrix would break the bound below
    growth = (large["peak_kib"] - small["peak_kib"]) * 1024
    assert growth < allowed, f"peak memory grew by {growth / 2**20:.0f} MiB from 2,000 to 20,000 cells"


# ---------------------------------------------------------------- the command line


def test_synth_without_new_options_writes_the_toy_dataset_as_before(tmp_path):
    proc = run_cli("synth", tmp_path / "toy.h5mu", "--cells", 120, "--second", "adt", "--seed", 4)
    assert proc.returncode == 0, proc.stderr
    written, expected = read(tmp_path / "toy.h5mu"), make_synthetic(n_cells=120, second="adt", seed=4)
    for name in ("rna", "adt"):
        assert (sp.csr_matrix(written[name].X) != sp.csr_matrix(expected[name].X)).nnz == 0
    assert list(written.obs["cell_type"]) == list(expected.obs["cell_type"])


def test_synth_with_sizes_fits_the_reference(toy_reference, tmp_path):
    out = tmp_path / "big.h5mu"
    proc = run_cli("synth", out, "--cells", 2500, "--genes", 800, "--peaks", 1000, "--reference", toy_reference,
                   "--chunk-size", 1000, "--seed", 3)
    assert proc.returncode == 0, proc.stderr
    assert "2,500 cells" in proc.stdout and "fitted to toy.h5mu" in proc.stdout
    mdata = read(out)
    assert mdata["rna"].shape == (2500, 800) and mdata["atac"].shape == (2500, 1000)


def test_synth_preset_with_fewer_cells(tmp_path):
    reference = real_data(CITE)
    proc = run_cli("synth", tmp_path / "cite.h5mu", "--preset", "cite-5k", "--cells", 60,
                   "--reference", reference)
    assert proc.returncode == 0, proc.stderr
    mdata = read(tmp_path / "cite.h5mu")
    assert mdata["rna"].shape == (60, 15_000) and mdata["adt"].shape == (60, 134)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--peaks", "10", "--proteins", "5"], "not both"),
        (["--genes", "10", "--types", "5"], "belong to the toy dataset"),
        (["--preset", "cite-5k", "--peaks", "100"], "does not fit it"),
        (["--genes", "0"], "x>=1"),
    ],
    ids=["peaks and proteins", "toy option", "preset conflict", "zero genes"],
)
def test_synth_refuses_contradictory_options(args, expected, tmp_path):
    proc = run_cli("synth", tmp_path / "x.h5mu", *args)
    assert proc.returncode == 2 and expected in " ".join(proc.stderr.split()), proc.stderr
    assert not (tmp_path / "x.h5mu").exists()


def test_synth_says_what_to_do_without_reference_data(tmp_path, monkeypatch):
    monkeypatch.setenv("MULTIVERSE_REAL_DATA", str(tmp_path / "nowhere"))
    proc = run_cli("synth", tmp_path / "x.h5mu", "--genes", 100)
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 2, proc.stderr
    assert "bmmc_multiome_starter_500.h5mu not found" in message
    assert "--reference FILE" in message and "MULTIVERSE_REAL_DATA" in message
    assert not (tmp_path / "x.h5mu").exists()
