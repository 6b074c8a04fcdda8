"""The report embeds only the figures the evaluation may write, as plain files of its own folder."""

from __future__ import annotations

import os

from multiverse.report.evaluate import ALLOWED_FIGURES, _allowed_figures


def test_only_known_figure_names_that_are_plain_files_of_the_folder_are_embedded(tmp_path):
    folder = tmp_path / "report" / "tiny"
    folder.mkdir(parents=True)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"the user's file")
    role, name = next(iter(ALLOWED_FIGURES.items()))
    (folder / name).write_bytes(b"png")
    (folder / "other.png").write_bytes(b"png")
    os.symlink(secret, folder / "linked.png")

    assert _allowed_figures(folder, {"figures": {role: name}}) == {role: name}
    assert _allowed_figures(folder, {"figures": {role: "other.png"}}) == {}  # a name it may not write
    assert _allowed_figures(folder, {"figures": {role: str(secret)}}) == {}  # an absolute path
    assert _allowed_figures(folder, {"figures": {role: "../../secret.png"}}) == {}  # out of its folder
    assert _allowed_figures(folder, {"figures": {"umap_x": "linked.png"}}) == {}  # an unknown role, a link
    assert _allowed_figures(folder, {"figures": "not a mapping"}) == {}


def test_a_known_name_that_is_a_link_is_not_embedded(tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"the user's file")
    role, name = next(iter(ALLOWED_FIGURES.items()))
    os.symlink(secret, folder / name)

    assert _allowed_figures(folder, {"figures": {role: name}}) == {}
