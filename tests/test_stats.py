"""The study's statistics on made-up numbers: Welch's t-test against scipy's own arithmetic,
the verdict rule, and failed runs counted but kept out of every mean."""

from __future__ import annotations

import math
import statistics

import pytest

from mnist_lib import stats


def test_welch_difference_interval_and_p_match_the_textbook_formula():
    a = [99.1, 99.3, 99.2, 99.4, 99.25]
    b = [98.9, 99.0, 98.8, 99.05, 98.95]
    got = stats.welch(a, b)
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))  # Welch–Satterthwaite
    from scipy.stats import t

    diff = statistics.fmean(a) - statistics.fmean(b)
    assert got["diff"] == pytest.approx(diff)
    half = t.ppf(0.975, df) * se
    assert got["ci95"] == pytest.approx([diff - half, diff + half])
    assert got["p"] == pytest.approx(2 * t.sf(abs(diff) / se, df))


@pytest.mark.parametrize("a, b, verdict", [
    ([99.5, 99.6, 99.55, 99.58, 99.52], [99.0, 99.1, 99.05, 99.02, 99.08], "helps"),
    ([99.0, 99.1, 99.05, 99.02, 99.08], [99.5, 99.6, 99.55, 99.58, 99.52], "hurts"),
    ([99.0, 99.4, 99.1, 99.3, 99.2], [99.1, 99.3, 99.0, 99.4, 99.25], "no evidence either way"),
])
def test_verdict_follows_the_sign_and_the_5_percent_level(a, b, verdict):
    assert stats.verdict(stats.welch(a, b)) == verdict


def test_a_large_difference_with_large_spread_is_not_called_a_difference():
    # the first version called +29.7 points a "tie"; with one seed at chance Welch says: no evidence
    a = [97.9, 97.8, 97.9]
    b = [11.35, 96.5, 96.6]
    assert stats.verdict(stats.welch(a, b)) == "no evidence either way"
    # ... and once the failed run is counted and left out, the real difference shows
    row = {"test_acc": a}
    base = {"test_acc": b}
    c = stats.compare_rows(row, base)
    assert c["n"] == [3, 2] and c["verdict"] == "helps"


def test_too_few_runs_give_no_test():
    got = stats.welch([99.0], [98.0, 98.1])
    assert got["p"] is None and got["ci95"] is None and stats.verdict(got) == "no evidence either way"


def test_failed_runs_are_the_ones_near_chance():
    assert stats.failed([11.35, 49.05, 50.0, 99.2]) == [True, True, False, False]
    assert stats.learned([1, 2, 3], [11.35, 98.0, 97.0]) == [2, 3]


def _row(epochs: int, mean: float, std: float | None, values: list[float]) -> dict:
    """A summary row as stats.converged reads it: the same numbers on validation and test, so the
    check reads the same whichever of the two it is made on."""
    return {"epochs": epochs, "mean": mean, "std": std, "val_mean": mean, "val_std": std, "learned_acc": values}


def test_converged_compares_the_gain_with_the_seed_spread():
    short = _row(10, 99.40, 0.05, [99.35, 99.40, 99.45])
    small = _row(20, 99.43, 0.05, [99.40, 99.43, 99.46])
    large = _row(20, 99.55, 0.05, [99.50, 99.55, 99.60])
    assert stats.converged(short, small)["converged"] is True
    assert stats.converged(short, large)["converged"] is False
    assert stats.converged(short, large)["gain"] == pytest.approx(0.15)


def test_converged_uses_the_shorter_runs_seed_std():
    """A gain of 0.10 points: converged when the shorter run's seeds spread more than that,
    not converged when only the longer run's do. Swapping the two stds swaps the verdict."""
    wide_short, narrow_long = _row(10, 99.40, 0.20, [99.2, 99.4, 99.6]), _row(20, 99.50, 0.01, [99.49, 99.50, 99.51])
    narrow_short, wide_long = _row(10, 99.40, 0.01, [99.39, 99.40, 99.41]), _row(20, 99.50, 0.20, [99.3, 99.5, 99.7])
    assert stats.converged(wide_short, narrow_long)["converged"] is True
    assert stats.converged(narrow_short, wide_long)["converged"] is False
    assert stats.converged(_row(10, 99.40, None, [99.40]), narrow_long)["converged"] is False  # one seed: no spread


@pytest.mark.parametrize("p, diff, expected", [
    (0.049, +0.2, "helps"),
    (0.049, -0.2, "hurts"),
    (0.05, +0.2, "no evidence either way"),  # the 5% level itself is not significant
    (0.05, -0.2, "no evidence either way"),
    (0.07, +0.2, "no evidence either way"),
    (0.07, -0.2, "no evidence either way"),
])
def test_verdict_at_exactly_the_5_percent_level(p, diff, expected):
    assert stats.ALPHA == 0.05
    assert stats.verdict({"p": p, "diff": diff, "ci95": None, "n": [5, 5]}) == expected


def test_verdict_of_no_test_or_a_nan_p_is_no_evidence():
    assert stats.verdict({"p": None, "diff": 1.0}) == "no evidence either way"
    assert stats.verdict({"p": float("nan"), "diff": 1.0}) == "no evidence either way"


def test_a_diverged_run_counts_as_failed_and_stays_out_of_the_means():
    assert stats.failed([None, 99.2, 11.35]) == [True, False, True]
    assert stats.learned([1, 2, 3], [None, 99.2, 98.0]) == [2, 3]
