"""The report says where each method falls between the random and the label control, and why."""

from multiverse.report.html import placement


def row(model, total, bio=None, control=False, status="ok", reason=""):
    return {"model": model, "total": total, "bio_conservation": bio, "control": control, "status": status, "reason": reason}


FLOOR = row("control_random", 0.49, bio=0.27, control=True)
CEILING = row("control_labels", 0.96, bio=0.95, control=True)


def test_a_method_between_the_controls():
    assert placement(row("pca", 0.73, bio=0.85), FLOOR, CEILING) == "between the controls"


def test_below_random_on_total_but_not_on_bio_is_explained_by_batch_mixing():
    text = placement(row("mofa", 0.45, bio=0.60), FLOOR, CEILING)
    assert text.startswith("below the random control on total") and "mixes batches" in text


def test_below_random_on_everything_says_no_better_than_chance():
    assert "no better than chance" in placement(row("mowgli", 0.30, bio=0.20), FLOOR, CEILING)


def test_a_failed_method_is_not_scored_and_says_why():
    text = placement(row("multivi", None, status="out of memory", reason="limit 4g"), FLOOR, CEILING)
    assert text == "not scored: out of memory (limit 4g)"


def test_without_controls_the_report_asks_for_them():
    assert "add control_random" in placement(row("pca", 0.7, bio=0.8), None, None)
