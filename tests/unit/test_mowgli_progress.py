"""Mowgli's embedding is kept only when its optimisation made real progress.

Loss histories (two values per outer iteration, after the W then the H update)
from the wrapper on the 200-cell synthetic fixture: with 20 inner LBFGS steps the
loss zig-zags and Mowgli's early stopping ends training after 3 outer iterations,
yet the last value is far below the first; with 50 steps it falls and converges.
"""

from __future__ import annotations

import pytest

from multiverse_methods.mowgli import check_progress, stop_reason
from multiverse_methods.params import MowgliParams

ZIG_ZAG = [0.340389964, 0.24047191, 0.311993198, 0.203064231, 0.289539358, 0.218103106]
CONVERGED = [
    0.342304935, 0.268245404, 0.252413821, 0.230590187, 0.235441033, 0.220949613, 0.217110325,
    0.212993821, 0.21184185, 0.210994741, 0.210656233, 0.210444573, 0.210321794, 0.210221437,
    0.21015439, 0.210101007,
]
PARAMS = MowgliParams(max_iter_outer=10, tol_outer=1e-4)


def test_a_zig_zag_stop_is_an_error_although_the_last_loss_is_below_the_first():
    assert ZIG_ZAG[-1] < ZIG_ZAG[0]
    reason = stop_reason(ZIG_ZAG, PARAMS.max_iter_outer, PARAMS.tol_outer)
    assert reason == "loss rose"
    with pytest.raises(RuntimeError, match="loss rose .* Raise max_iter_inner"):
        check_progress(ZIG_ZAG, reason, PARAMS)


def test_a_converged_run_is_kept():
    reason = stop_reason(CONVERGED, PARAMS.max_iter_outer, PARAMS.tol_outer)
    assert reason == "converged"
    check_progress(CONVERGED, reason, PARAMS)


def test_a_run_cut_at_max_iter_outer_while_falling_is_kept_and_says_so():
    falling = CONVERGED[:8]
    reason = stop_reason(falling, 4, PARAMS.tol_outer)
    assert reason == "max_iter_outer"
    check_progress(falling, reason, PARAMS)


def test_a_loss_that_never_fell_is_an_error():
    flat = [0.3, 0.3, 0.3, 0.3]
    with pytest.raises(RuntimeError):
        check_progress(flat, stop_reason(flat, 2, 1e-4), PARAMS)
