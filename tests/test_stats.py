"""textcnn.study.stats against values worked out by hand and against scipy on fixed arrays."""

import math

import pytest
from scipy import stats as scipy_stats

from textcnn.study.stats import mcnemar, mean_and_std, paired_comparison

A = [0.81, 0.79, 0.83, 0.80, 0.82]
B = [0.78, 0.78, 0.80, 0.79, 0.77]  # differences 0.03, 0.01, 0.03, 0.01, 0.05


def test_paired_comparison_by_hand():
    result = paired_comparison(A, B)
    differences = [0.03, 0.01, 0.03, 0.01, 0.05]
    mean = sum(differences) / 5  # 0.026
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / 4)
    t_quantile = 2.7764451051977987  # Student's t, 4 degrees of freedom, 97.5%
    assert result.n == 5
    assert result.mean_difference == pytest.approx(mean)
    assert result.ci_low == pytest.approx(mean - t_quantile * sd / math.sqrt(5))
    assert result.ci_high == pytest.approx(mean + t_quantile * sd / math.sqrt(5))
    assert result.t_statistic == pytest.approx(mean / (sd / math.sqrt(5)))
    # Wilcoxon, exact: all five differences positive, so only the all-positive sign pattern (of 32)
    # is as extreme on this side; two-sided p = 2/32.
    assert result.wilcoxon_p_value == pytest.approx(2 / 32)
    assert (result.wins, result.losses, result.ties) == (5, 0, 0)


def test_paired_comparison_matches_scipy():
    a = [0.751, 0.762, 0.748, 0.770, 0.741, 0.766, 0.758, 0.749, 0.772, 0.760]
    b = [0.744, 0.765, 0.739, 0.771, 0.735, 0.752, 0.760, 0.741, 0.763, 0.751]
    result = paired_comparison(a, b, confidence=0.9)
    assert result.t_p_value == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue)
    assert result.wilcoxon_p_value == pytest.approx(scipy_stats.wilcoxon(a, b).pvalue)
    low, high = scipy_stats.t.interval(
        0.9,
        df=9,
        loc=sum(x - y for x, y in zip(a, b, strict=True)) / 10,
        scale=scipy_stats.sem([x - y for x, y in zip(a, b, strict=True)]),
    )
    assert (result.ci_low, result.ci_high) == (pytest.approx(low), pytest.approx(high))


def test_identical_results_cannot_be_told_apart():
    result = paired_comparison(A, A)
    assert result.mean_difference == 0
    assert result.t_p_value == 1.0 and result.wilcoxon_p_value == 1.0
    assert result.ties == 5


def test_a_constant_difference_has_no_spread():
    result = paired_comparison([0.8, 0.7, 0.9], [0.7, 0.6, 0.8])
    assert result.ci_low == pytest.approx(0.1) and result.ci_high == pytest.approx(0.1)
    assert result.t_p_value == 0.0


def test_one_pair_gives_no_interval_and_bad_input_is_refused():
    result = paired_comparison([0.8], [0.7])
    assert result.mean_difference == pytest.approx(0.1)
    assert math.isnan(result.ci_low) and math.isnan(result.t_p_value)
    with pytest.raises(ValueError, match="same length"):
        paired_comparison([0.8, 0.7], [0.7])
    with pytest.raises(ValueError, match="confidence"):
        paired_comparison(A, B, confidence=1.5)


def test_mcnemar_exact_by_hand():
    # 10 discordant sentences: a right on 1, b right on 9. Exact two-sided p = 2 * P(X <= 1),
    # X ~ Binomial(10, 1/2) = 2 * (1 + 10) / 1024.
    labels = [1] * 14
    a = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0]
    b = [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]
    result = mcnemar(labels, a, b)
    assert (result.only_a_correct, result.only_b_correct) == (1, 9)
    assert (result.both_correct, result.both_wrong) == (2, 2)
    assert result.p_value == pytest.approx(2 * 11 / 1024)


def test_mcnemar_without_discordant_sentences_is_p_one():
    assert mcnemar([0, 1, 1], [0, 1, 0], [0, 1, 0]).p_value == 1.0
    with pytest.raises(ValueError, match="same length"):
        mcnemar([0, 1], [0, 1, 1], [0, 1])


def test_mean_and_std():
    assert mean_and_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_and_std([0.5]) == (0.5, 0.0)
    assert all(math.isnan(x) for x in mean_and_std([]))
