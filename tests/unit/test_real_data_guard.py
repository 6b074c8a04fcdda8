"""The real BMMC files: a missing one skips a test locally, and fails it in CI."""

from __future__ import annotations

import pytest

from tests.conftest import real_data


def test_a_missing_real_dataset_fails_in_ci(monkeypatch, tmp_path):
    monkeypatch.setenv("CI", "true")
    # BaseException: a skip (pytest's Skipped) must be caught here and fail the test.
    with pytest.raises(BaseException) as outcome:
        real_data(tmp_path / "bmmc_cite_starter_600.h5mu")
    assert outcome.type is pytest.fail.Exception, f"{outcome.typename}: {outcome.value}"
    assert "CI=true requires it" in str(outcome.value)


def test_a_missing_real_dataset_skips_outside_ci(monkeypatch, tmp_path):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(BaseException) as outcome:
        real_data(tmp_path / "bmmc_cite_starter_600.h5mu")
    assert outcome.type is pytest.skip.Exception


def test_a_present_real_dataset_is_returned(monkeypatch, tmp_path):
    monkeypatch.setenv("CI", "true")
    path = tmp_path / "data.h5mu"
    path.write_bytes(b"")
    assert real_data(path) == path
