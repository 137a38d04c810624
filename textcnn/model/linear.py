"""Linear baselines on the CNN's own folds: TF-IDF + logistic regression, NBSVM, character n-grams.

A text CNN is worth its cost only where it beats what a practitioner would try first, a linear
model over n-grams that trains in seconds. The baselines see exactly what the CNN sees: the fold's
training texts to fit, its dev texts to choose their one setting, its test texts to report, read by
the run's tokenizer (`textcnn.data.tokenizers`; a learned one fitted on the fold's training texts).

- `tfidf-lr`: TF-IDF of word 1- and 2-grams (sublinear tf), L2 logistic regression; C chosen on dev.
- `char-lr`: TF-IDF of character 1- to 5-grams within tokens (scikit-learn's `char_wb` over the
  tokens, each padded with a space), L2 logistic regression; C chosen on dev. On tweets it beats
  word n-grams in four languages of six, by up to 5.5 points of macro-F1 (Spanish), and loses
  Italian (benchmarks/RESULTS.md).
- `nbsvm`: NBSVM-bi of Wang & Manning (2012), "Baselines and Bigrams": binarized 1-2-gram counts
  scaled by the log-count ratio r = log((α + p) / |α + p|₁) − log((α + q) / |α + q|₁), a linear SVM
  (L2-regularized, squared hinge, as liblinear's default) on the scaled features, and the paper's
  interpolation w' = (1 − β) w̄ + β w (w̄ the mean |w|), with their α = 1, β = 0.25; C chosen on dev.
  Multi-class sets (SST-1, TREC) get one such classifier per class against the rest.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from textcnn.data.splits import Fold
from textcnn.data.text import fit_tokenizer
from textcnn.data.tokenizers import DEFAULT_TOKENIZER, TokenizerConfig
from textcnn.errors import ConfigError

BASELINES = ("tfidf-lr", "nbsvm", "char-lr")
WORD_BASELINES = ("tfidf-lr", "nbsvm")  # the pooling study's default pair (its English report's)
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)  # chosen on dev, as the CNN its epoch


class NBSVM(ClassifierMixin, BaseEstimator):
    """Wang & Manning (2012)'s NBSVM on binarized features, as a scikit-learn classifier."""

    def __init__(self, C: float = 1.0, alpha: float = 1.0, beta: float = 0.25):
        self.C, self.alpha, self.beta = C, alpha, beta

    def fit(self, X, y: Sequence[int]) -> NBSVM:
        from sklearn.svm import LinearSVC

        X, y = (X > 0).astype(np.float64), np.asarray(y)  # binarized counts (the paper's x̂)
        self.classes_ = np.unique(y)
        # Binary: one classifier for the second class; multi-class: one per class against the rest.
        targets = self.classes_[1:] if len(self.classes_) == 2 else self.classes_
        self.ratios_, self.weights_, self.biases_ = [], [], []
        for target in targets:
            positive = y == target
            ratio = self.log_count_ratio(X, positive, self.alpha)
            svm = LinearSVC(C=self.C, max_iter=10_000).fit(X.multiply(ratio).tocsr(), positive)
            weight = svm.coef_.ravel()
            mean_magnitude = np.abs(weight).mean()
            self.ratios_.append(ratio)
            self.weights_.append((1 - self.beta) * mean_magnitude + self.beta * weight)
            self.biases_.append(float(svm.intercept_[0]))
        return self

    @staticmethod
    def log_count_ratio(X, positive: np.ndarray, alpha: float) -> np.ndarray:
        """r = log((α + p) / |α + p|₁) − log((α + q) / |α + q|₁), p and q the feature counts of the
        positive and the other rows."""
        p = alpha + np.asarray(X[positive].sum(axis=0)).ravel()
        q = alpha + np.asarray(X[~positive].sum(axis=0)).ravel()
        return np.log(p / p.sum()) - np.log(q / q.sum())

    def decision_function(self, X) -> np.ndarray:
        X = (X > 0).astype(np.float64)
        scores = np.column_stack(
            [
                X.multiply(r).tocsr() @ w + b
                for r, w, b in zip(self.ratios_, self.weights_, self.biases_, strict=True)
            ]
        )
        return scores[:, 0] if len(self.classes_) == 2 else scores

    def predict(self, X) -> np.ndarray:
        scores = self.decision_function(X)
        if len(self.classes_) == 2:
            return self.classes_[(scores > 0).astype(int)]
        return self.classes_[scores.argmax(axis=1)]


def make_baseline(name: str, C: float):
    """An unfitted scikit-learn pipeline over texts already tokenized and joined by spaces."""
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    words = {"tokenizer": str.split, "token_pattern": None, "lowercase": False, "ngram_range": (1, 2)}
    if name == "tfidf-lr":
        return make_pipeline(
            TfidfVectorizer(sublinear_tf=True, **words), LogisticRegression(C=C, max_iter=2000)
        )
    if name == "nbsvm":
        return make_pipeline(CountVectorizer(binary=True, **words), NBSVM(C=C))
    if name == "char-lr":
        chars = {"analyzer": "char_wb", "ngram_range": (1, 5), "lowercase": False}
        return make_pipeline(
            TfidfVectorizer(sublinear_tf=True, **chars), LogisticRegression(C=C, max_iter=2000)
        )
    raise ConfigError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")


@dataclass(frozen=True)
class BaselineResult:
    name: str
    C: float  # the setting dev chose
    dev_accuracy: float
    test_accuracy: float | None
    test_predictions: list[int] | None  # class ids, in the order of the test texts
    seconds: float  # the whole search: every C fitted on train and scored on dev, then the test


def fit_baseline(
    name: str,
    fold: Fold,
    label_names: Sequence[str],
    tokenizer: TokenizerConfig | str = DEFAULT_TOKENIZER,
    grid: Sequence[float] = C_GRID,
) -> BaselineResult:
    """Fit on the fold's train texts for each C of `grid`, keep the best on dev, score the test;
    the texts read by `tokenizer` (fitted on the fold's training texts if it learns)."""
    started = time.perf_counter()
    config = TokenizerConfig.parse(tokenizer) if isinstance(tokenizer, str) else tokenizer
    fitted = fit_tokenizer(config, fold.train.texts)
    index = {label: i for i, label in enumerate(label_names)}

    def prepared(texts: Sequence[str]) -> list[str]:
        return [" ".join(fitted.split(text)) for text in texts]

    train_x, dev_x = prepared(fold.train.texts), prepared(fold.dev.texts)
    train_y = [index[label] for label in fold.train.labels]
    dev_y = np.asarray([index[label] for label in fold.dev.labels])
    best = None
    for C in grid:
        model = make_baseline(name, C).fit(train_x, train_y)
        accuracy = float((model.predict(dev_x) == dev_y).mean())
        if best is None or accuracy > best[1]:  # ties keep the smaller C: the stronger regularization
            best = (C, accuracy, model)
    C, dev_accuracy, model = best
    test_accuracy = test_predictions = None
    if fold.test is not None and len(fold.test):
        test_predictions = [int(p) for p in model.predict(prepared(fold.test.texts))]
        test_y = [index[label] for label in fold.test.labels]
        test_accuracy = float(np.mean(np.asarray(test_predictions) == np.asarray(test_y)))
    return BaselineResult(
        name, C, dev_accuracy, test_accuracy, test_predictions, time.perf_counter() - started
    )
