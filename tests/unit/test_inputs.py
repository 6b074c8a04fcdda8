"""Inputs as the field writes them are read correctly on the host, before any container starts.

Every form is built from the real BMMC files in ../shared/data (tests/forms.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from multiverse.errors import InputError
from multiverse.inputs import inspect_input
from multiverse.inputs import counts as counts_module
from multiverse.inputs.cache import InputCache
from tests import forms
from tests.conftest import CITE, MULTIOME, real_data, run_cli


@pytest.fixture
def cache(tmp_path):
    return InputCache(tmp_path / "cache")


def test_counts_in_layers_counts_are_found_as_they_are(cache):
    data = inspect_input(real_data(MULTIOME), cache=cache)
    assert data.counts == {"rna": "layers/counts", "atac": "layers/counts"}
    assert not data.needs_conversion


def test_counts_in_raw_are_found(tmp_path, cache):
    path = forms.counts_in_raw(real_data(MULTIOME), tmp_path / "raw.h5mu")
    data = inspect_input(path, cache=cache)
    assert data.counts == {"rna": "raw/X", "atac": "raw/X"}


def test_counts_in_a_layer_with_another_name_are_found_when_the_config_names_it(tmp_path, cache):
    path = forms.counts_in_layer(real_data(MULTIOME), tmp_path / "layer.h5mu", layer="raw_counts")
    assert inspect_input(path, cache=cache).counts == {"rna": None, "atac": None}  # X is normalised
    named = inspect_input(path, counts_layer="raw_counts", cache=cache)
    assert named.counts == {"rna": "layers/raw_counts", "atac": "layers/raw_counts"}
    per_modality = inspect_input(path, counts_layer={"rna": "raw_counts"}, cache=cache)
    assert per_modality.counts == {"rna": "layers/raw_counts", "atac": None}


def test_a_counts_layer_the_config_names_must_exist(tmp_path, cache):
    with pytest.raises(InputError, match="counts_layer 'umis'.*does not exist"):
        inspect_input(real_data(MULTIOME), counts_layer="umis", cache=cache)


@pytest.mark.parametrize("value, words", [(-3.0, "negative values"), (np.nan, "NaN or infinite"), (2.5, "not whole numbers")])
def test_counts_that_are_not_counts_are_refused_naming_the_modality_and_layer(value, words, tmp_path, cache):
    path = forms.with_bad_counts(real_data(CITE), tmp_path / "bad.h5mu", "adt", value)
    with pytest.raises(InputError) as raised:
        inspect_input(path, cache=cache)
    assert "modality 'adt'" in raised.value.message and "layers['counts']" in raised.value.message
    assert words in raised.value.message


def test_bad_counts_exit_2_before_anything_starts(tmp_path):
    path = forms.with_bad_counts(real_data(CITE), tmp_path / "bad.h5mu", "rna", -1.0)
    proc = run_cli("run", "--models", "pca", "--input", path, "--output", tmp_path / "out")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "modality 'rna'" in proc.stderr and "negative" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("source, kinds", [(MULTIOME, {"rna": "rna", "atac": "atac"}), (CITE, {"rna": "rna", "adt": "adt"})])
def test_a_single_h5ad_with_mixed_feature_types_is_split_into_its_modalities(source, kinds, tmp_path, cache):
    path = forms.mixed_h5ad(real_data(source), tmp_path / "mixed.h5ad")
    data = inspect_input(path, cache=cache)
    assert data.kinds == kinds
    paired = inspect_input(real_data(source), cache=cache)
    assert {n: m.n_vars for n, m in data.modalities.items()} == {n: m.n_vars for n, m in paired.modalities.items()}
    assert data.needs_conversion and data.counts == {name: "X" for name in kinds}
    assert data.obs_names == paired.obs_names
    assert "cell_type" in data.obs_columns


def test_a_cell_ranger_arc_matrix_is_read_directly(tmp_path, cache):
    path = forms.cellranger_h5(real_data(MULTIOME), tmp_path / "filtered_feature_bc_matrix.h5")
    data = inspect_input(path, cache=cache)
    assert data.format == "10x-h5" and data.kinds == {"rna": "rna", "atac": "atac"}
    assert data.needs_conversion and data.n_obs == 500


def test_a_feature_type_multiverse_does_not_know_is_named_with_the_fix(tmp_path, cache):
    import h5py

    path = forms.cellranger_h5(real_data(CITE), tmp_path / "crispr.h5")
    with h5py.File(path, "r+") as f:
        types = f["matrix/features/feature_type"][:].astype("S32")
        types[types == b"Antibody Capture"] = b"CRISPR Guide Capture"
        del f["matrix/features/feature_type"]
        f["matrix/features/feature_type"] = types
    with pytest.raises(InputError, match="'CRISPR Guide Capture'.*modalities:"):
        inspect_input(path, cache=cache)
    assert inspect_input(path, {"CRISPR Guide Capture": "adt"}, cache=cache).kinds == {"rna": "rna", "adt": "adt"}


def test_the_scan_and_checksum_are_remembered_and_forgotten_when_the_file_changes(tmp_path, cache, monkeypatch):
    import shutil

    path = shutil.copy(real_data(MULTIOME), tmp_path / "copy.h5mu")
    calls = []
    real_scan = counts_module.scan
    monkeypatch.setattr(counts_module, "scan", lambda *a, **k: calls.append(1) or real_scan(*a, **k))
    first = inspect_input(path, cache=cache)
    scans = len(calls)
    assert scans >= 2

    again = inspect_input(path, cache=cache)
    assert len(calls) == scans and again.sha256 == first.sha256

    with open(path, "r+b") as handle:  # same size, new content: a new entry
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 1]))
    changed = inspect_input(path, cache=cache)
    assert len(calls) > scans and changed.sha256 != first.sha256


def test_a_file_inspected_before_is_not_read_again_until_it_or_the_question_changes(tmp_path, cache, monkeypatch):
    """A rerun on a multi-GB input starts without opening it: the summary, and the cells' checksum
    the resume key needs, come from the cache; the cell names are read only when validation needs them."""
    import os
    import shutil

    from multiverse.inputs import layout

    path = shutil.copy(real_data(MULTIOME), tmp_path / "copy.h5mu")
    first = inspect_input(path, cache=cache)
    reads = []
    real_read = layout.read
    monkeypatch.setattr(layout, "read", lambda *a, **k: reads.append(1) or real_read(*a, **k))

    again = inspect_input(path, cache=cache)
    assert reads == [] and again == first
    assert again.obs_names == first.obs_names and again.cells_sha256 == first.cells_sha256

    inspect_input(path, {"rna": "rna", "atac": "atac"}, cache=cache)  # another question: read again
    assert reads == [1]
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))  # the file changed
    inspect_input(path, cache=cache)
    assert reads == [1, 1]
