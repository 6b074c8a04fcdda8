"""Which annotation values mean "this cell has no label".

Real annotations leave cells unlabelled in several ways: a missing value (NaN,
None, pandas' NA), an empty or blank string, or a placeholder word. One rule for
the evaluation (``multiverse_methods.labels``) and the label control
(``control_labels``), so that both leave out the same cells. numpy and pandas
only: it runs in every image.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Placeholders that count as "no label", compared after stripping blanks and case-insensitively.
#: Missing values (NaN, None, pd.NA) and blank strings count as well.
UNLABELLED_VALUES = (
    "nan", "na", "n/a", "none", "null", "unassigned", "unknown", "unlabeled", "unlabelled",
)
_PLACEHOLDERS = frozenset(UNLABELLED_VALUES) | {""}


def unlabelled_mask(values) -> np.ndarray:
    """Boolean array: True where a value is missing, blank or one of ``UNLABELLED_VALUES``."""
    series = pd.Series(np.asarray(values, dtype=object)) if not isinstance(values, pd.Series) else values
    missing = series.isna().to_numpy()
    text = series.astype(str).str.strip().str.casefold()
    return missing | text.isin(_PLACEHOLDERS).to_numpy()


def describe_unlabelled(values, mask: np.ndarray) -> list[str]:
    """The distinct raw values counted as unlabelled, as text (NaN shown as 'NaN'), most frequent first."""
    series = pd.Series(np.asarray(values, dtype=object))[mask]
    shown = series.map(lambda v: "NaN" if pd.isna(v) else repr(str(v)))
    return [str(v) for v in shown.value_counts().index]
