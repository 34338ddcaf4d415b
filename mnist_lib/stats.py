"""The study's statistics: failed runs, mean ± std over the runs that learned, and Welch's t-test
with a 95% confidence interval for the difference between two rows (scipy.stats)."""

from __future__ import annotations

import math
import statistics
from typing import Any, Sequence

FAILED_BELOW = 50.0  # test accuracy (%) under which a run did not learn (chance is 10%)
ALPHA = 0.05


def failed(test_acc: Sequence[float | None]) -> list[bool]:
    """Which runs stayed near chance or diverged (None): counted and reported, never averaged in."""
    return [a is None or a < FAILED_BELOW for a in test_acc]


def learned(values: Sequence[float | None], test_acc: Sequence[float | None]) -> list[float]:
    """``values`` of the runs that learned (same order as ``test_acc``), a missing value (None) left out."""
    return [v for v, bad in zip(values, failed(test_acc)) if not bad and v is not None]


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def welch(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """mean(a) - mean(b) with its 95% confidence interval and two-sided p-value, by Welch's t-test
    (unequal variances). Needs two values on each side; identical constant samples give p = 1."""
    from scipy import stats

    a, b = list(a), list(b)
    out = {"diff": statistics.fmean(a) - statistics.fmean(b) if a and b else None, "ci95": None, "p": None,
           "n": [len(a), len(b)]}
    if len(a) < 2 or len(b) < 2:
        return out
    if statistics.pvariance(a) == 0 and statistics.pvariance(b) == 0:  # scipy's t would be 0/0
        return {**out, "ci95": [out["diff"], out["diff"]], "p": 1.0 if out["diff"] == 0 else 0.0}
    result = stats.ttest_ind(a, b, equal_var=False)
    low, high = result.confidence_interval(0.95)
    return {**out, "ci95": [float(low), float(high)], "p": float(result.pvalue)}


def verdict(test: dict[str, Any]) -> str:
    """helps / hurts when the difference is significant at ALPHA; otherwise no evidence."""
    if test["p"] is None or math.isnan(test["p"]) or test["p"] >= ALPHA:
        return "no evidence either way"
    return "helps" if test["diff"] > 0 else "hurts"


def compare_rows(row: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """A summary row against its baseline: Welch on the test accuracies of the runs that learned."""
    test = welch(learned(row["test_acc"], row["test_acc"]), learned(baseline["test_acc"], baseline["test_acc"]))
    return {**test, "verdict": verdict(test), "alpha": ALPHA}


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values of one family of tests (None stays None). scipy has no Holm (its
    false_discovery_control is Benjamini-Hochberg, a weaker guarantee)."""
    present = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for k, (p, i) in enumerate(present):
        running = max(running, min(1.0, (len(present) - k) * p))
        adjusted[i] = running
    return adjusted


def converged(short: dict[str, Any], long: dict[str, Any]) -> dict[str, Any]:
    """Does training twice as long raise the mean validation accuracy (the test set chooses nothing)
    by more than the shorter run's seed std? The test accuracies are reported beside it, not used."""
    gain = long["val_mean"] - short["val_mean"]
    return {"epochs": short["epochs"], "epochs_2x": long["epochs"], "val_mean": short["val_mean"],
            "val_mean_2x": long["val_mean"], "val_std": short["val_std"], "gain": gain,
            "converged": short["val_std"] is not None and gain <= short["val_std"],
            "mean": short["mean"], "mean_2x": long["mean"], "test_gain": long["mean"] - short["mean"],
            "welch": welch(long["learned_acc"], short["learned_acc"])}
