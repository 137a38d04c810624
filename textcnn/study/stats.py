"""Statistics for comparing two configurations run on the same seeds and folds.

A pooling study pairs its runs: max and avg pooling share a seed, a fold and an initialisation,
so the question is whether the *differences* within pairs are centred away from zero, not whether
two clouds of accuracies overlap. Paired tests see far smaller effects than unpaired ones when
seed-to-seed variation is large, as it is for small text datasets.

For single-split datasets the test-set predictions of two models can be compared sentence by
sentence as well: McNemar's test asks whether the sentences one model gets right and the other
wrong are split evenly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as scipy_stats


@dataclass(frozen=True)
class PairedComparison:
    """`a` minus `b`, pair by pair."""

    n: int
    mean_a: float
    mean_b: float
    mean_difference: float
    ci_low: float  # t-interval of the mean difference
    ci_high: float
    confidence: float
    t_statistic: float
    t_p_value: float  # paired t-test, two-sided
    wilcoxon_p_value: float  # Wilcoxon signed-rank, two-sided (zero differences dropped)
    wins: int  # pairs where a > b
    losses: int
    ties: int

    def to_json(self) -> dict:
        return asdict(self)


def paired_comparison(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> PairedComparison:
    """Mean difference with its confidence interval, the paired t-test and Wilcoxon's signed-rank test.

    With fewer than two pairs there is no spread, so the interval and the tests are NaN. When
    every difference is zero, both tests give p = 1: there is nothing to tell the two apart.
    """
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_arr.shape != b_arr.shape or a_arr.ndim != 1:
        raise ValueError(f"paired samples need the same length, got {a_arr.shape} and {b_arr.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    differences = a_arr - b_arr
    n = len(differences)
    mean = float(differences.mean()) if n else math.nan
    nan = math.nan
    ci_low = ci_high = t_statistic = t_p = w_p = nan
    if n >= 2:
        # No spread (up to rounding: accuracies are ratios, 0.8 - 0.7 != 0.7 - 0.6 in floats): the
        # t statistic is undefined.
        if np.allclose(differences, differences[0], rtol=0.0, atol=1e-12):
            ci_low = ci_high = mean
            t_statistic = 0.0 if mean == 0 else math.copysign(math.inf, mean)
            t_p = 1.0 if mean == 0 else 0.0
        else:
            sem = float(differences.std(ddof=1)) / math.sqrt(n)
            half_width = float(scipy_stats.t.ppf(0.5 + confidence / 2, df=n - 1)) * sem
            ci_low, ci_high = mean - half_width, mean + half_width
            result = scipy_stats.ttest_rel(a_arr, b_arr)
            t_statistic, t_p = float(result.statistic), float(result.pvalue)
        no_difference = np.allclose(differences, 0.0, rtol=0.0, atol=1e-12)
        w_p = 1.0 if no_difference else float(scipy_stats.wilcoxon(a_arr, b_arr).pvalue)
    return PairedComparison(
        n=n,
        mean_a=float(a_arr.mean()) if n else nan,
        mean_b=float(b_arr.mean()) if n else nan,
        mean_difference=mean,
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=confidence,
        t_statistic=t_statistic,
        t_p_value=t_p,
        wilcoxon_p_value=w_p,
        wins=int((differences > 0).sum()),
        losses=int((differences < 0).sum()),
        ties=int((differences == 0).sum()),
    )


@dataclass(frozen=True)
class McNemarResult:
    only_a_correct: int  # sentences a gets right and b wrong
    only_b_correct: int
    both_correct: int
    both_wrong: int
    p_value: float  # exact (binomial) two-sided

    def to_json(self) -> dict:
        return asdict(self)


def mcnemar(
    labels: Sequence[int], predictions_a: Sequence[int], predictions_b: Sequence[int]
) -> McNemarResult:
    """McNemar's exact test on two models' predictions for the same sentences.

    Only the discordant sentences count; under the null hypothesis each is equally likely to favour
    either model, so the count favouring `a` is Binomial(discordant, 1/2). The exact test is used at
    every size: it is valid where the chi-squared approximation is not (few discordant pairs).
    """
    labels_arr, a_arr, b_arr = np.asarray(labels), np.asarray(predictions_a), np.asarray(predictions_b)
    if not (labels_arr.shape == a_arr.shape == b_arr.shape) or labels_arr.ndim != 1:
        raise ValueError("labels and both predictions need the same length")
    right_a, right_b = a_arr == labels_arr, b_arr == labels_arr
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    discordant = only_a + only_b
    p_value = 1.0 if discordant == 0 else float(scipy_stats.binomtest(only_a, discordant, 0.5).pvalue)
    return McNemarResult(
        only_a_correct=only_a,
        only_b_correct=only_b,
        both_correct=int((right_a & right_b).sum()),
        both_wrong=int((~right_a & ~right_b).sum()),
        p_value=p_value,
    )


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value, NaN for none)."""
    arr = np.asarray(values, dtype=float)
    if len(arr) == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
