"""The linear baselines: NBSVM's arithmetic by hand, both baselines on a toy task and on real data."""

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from textcnn.errors import ConfigError
from textcnn.model.linear import BASELINES, NBSVM, fit_baseline, make_baseline
from textcnn.train.runs import texts_fold


def test_log_count_ratio_by_hand():
    # 3 rows, 2 features; rows 0 and 1 positive. p = 1 + (1, 1) = (2, 2); q = 1 + (0, 1) = (1, 2).
    X = csr_matrix(np.array([[1, 0], [0, 1], [0, 1]], dtype=float))
    ratio = NBSVM.log_count_ratio(X, np.array([True, True, False]), alpha=1.0)
    expected = np.log(np.array([2, 2]) / 4) - np.log(np.array([1, 2]) / 3)
    np.testing.assert_allclose(ratio, expected)


def test_nbsvm_interpolates_towards_the_mean_magnitude():
    X = csr_matrix(np.array([[1, 0, 1], [0, 1, 1], [1, 0, 0], [0, 1, 0]], dtype=float))
    y = [1, 0, 1, 0]
    plain = NBSVM(beta=1.0).fit(X, y)  # beta 1: the SVM's own weights
    mixed = NBSVM(beta=0.25).fit(X, y)
    w = plain.weights_[0]
    np.testing.assert_allclose(mixed.weights_[0], 0.75 * np.abs(w).mean() + 0.25 * w)
    assert list(mixed.predict(X)) == y


def toy(n: int = 90):
    """Three classes, each marked by its own words among shared filler."""
    marks = {
        "pos": ["great", "lovely", "fine"],
        "neg": ["awful", "dull", "poor"],
        "mid": ["so-so", "okay", "average"],
    }
    filler = ["the", "film", "a", "plot"]
    rng = np.random.default_rng(0)
    texts, labels = [], []
    for i in range(n):
        label = ["neg", "pos", "mid"][i % 3]
        words = list(rng.choice(filler, size=int(rng.integers(1, 6))))
        words.insert(int(rng.integers(0, len(words) + 1)), marks[label][(i // 3) % 3])
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


@pytest.mark.parametrize("name", BASELINES)
def test_baselines_learn_a_toy_task_with_three_classes(name):
    texts, labels = toy()
    fold = texts_fold((texts[30:], labels[30:]), (texts[:15], labels[:15]), (texts[15:30], labels[15:30]))
    result = fit_baseline(name, fold, ["neg", "pos", "mid"])
    assert result.test_accuracy == 1.0 and result.dev_accuracy == 1.0
    assert len(result.test_predictions) == 15 and result.name == name


def test_an_unknown_baseline_is_refused():
    with pytest.raises(ConfigError, match="unknown baseline"):
        make_baseline("svm-rbf", 1.0)


@pytest.mark.slow
def test_baselines_on_sst2_are_the_usual_strength(data_dir):
    from textcnn.data.corpus import load_registered
    from textcnn.data.folds import make_folds

    corpus = load_registered("sst2", data_dir)
    (fold,) = make_folds(corpus)
    for name in BASELINES:
        result = fit_baseline(name, fold, corpus.label_names, corpus.tokenizer, grid=(0.1, 10.0))
        assert 0.77 < result.test_accuracy < 0.86, (name, result.test_accuracy)  # the full grid: 81.8, 82.8
