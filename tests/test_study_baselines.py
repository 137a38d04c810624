"""The study's linear baselines: the study's own folds, fitted once, compared pair by pair."""

import pytest

from textcnn.model.linear import fit_baseline
from textcnn.study import baselines as study_baselines
from textcnn.study.baselines import (
    BASELINES_FILE,
    baseline_section,
    baselines_summary,
    load_baselines,
    run_baselines,
    versus_baseline,
)
from textcnn.study.plan import StudyConfig, study_folds, training_fold

QUICK = {"max_train": 300, "epochs": 1, "model_options": {"embedding_dim": 16, "num_filters": 8}}


def test_baselines_fit_the_study_folds_once_and_a_grown_study_only_its_new_folds(
    data_dir, tmp_path, monkeypatch
):
    seen = []

    def recording(name, fold, label_names, tokenizer):
        seen.append((name, fold, tokenizer))
        return fit_baseline(name, fold, label_names, tokenizer)

    monkeypatch.setattr(study_baselines, "fit_baseline", recording)
    config = StudyConfig(datasets=("trec", "mr"), poolings=("max",), max_folds=2, **QUICK)
    rows = run_baselines(config, tmp_path, str(data_dir))
    assert [(r["dataset"], r["fold"], r["baseline"]) for r in rows] == [
        ("trec", None, "tfidf-lr"),
        ("trec", None, "nbsvm"),
        ("mr", 0, "tfidf-lr"),
        ("mr", 0, "nbsvm"),
        ("mr", 1, "tfidf-lr"),
        ("mr", 1, "nbsvm"),
    ]
    _, folds = study_folds(config, str(data_dir))
    expected = training_fold(folds["mr"][1], config)  # the CNN's training texts: subsampled alike
    name, fold, tokenizer = seen[4]
    assert name == "tfidf-lr" and str(tokenizer) == "kim"  # the study lowercases every dataset, TREC too
    assert fold.train.texts == expected.train.texts and len(fold.train.texts) == 300
    assert fold.dev.texts == expected.dev.texts and fold.test.texts == expected.test.texts
    assert len(rows[0]["test_predictions"]) == 500 and rows[2]["test_predictions"] is None
    assert all(0.2 < r["test_accuracy"] <= 1 for r in rows)

    seen.clear()
    assert run_baselines(config, tmp_path, str(data_dir)) == rows and seen == []  # nothing to refit
    # ... nor any corpus to load: a finished study's report reads baselines.jsonl alone
    monkeypatch.setattr(study_baselines, "study_folds", lambda *a: pytest.fail("loaded the corpora"))
    assert run_baselines(config, tmp_path, str(data_dir)) == rows
    monkeypatch.undo()
    monkeypatch.setattr(study_baselines, "fit_baseline", recording)
    grown = StudyConfig(datasets=("trec", "mr"), poolings=("max",), max_folds=3, **QUICK)
    assert len(run_baselines(grown, tmp_path, str(data_dir))) == 8
    assert [(n, f.index) for n, f, _ in seen] == [("tfidf-lr", 2), ("nbsvm", 2)]
    assert len(load_baselines(tmp_path)) == 8 and (tmp_path / BASELINES_FILE).exists()


def cnn(dataset, pooling, fold, seed, accuracy, predictions=None, labels=None):
    return {
        "dataset": dataset,
        "fold": fold,
        "seed": seed,
        "pooling": pooling,
        "test_accuracy": accuracy,
        "seconds": 60.0,
        "test_predictions": predictions,
        "test_labels": labels,
    }


def linear(dataset, fold, name, accuracy, predictions=None):
    return {
        "dataset": dataset,
        "fold": fold,
        "baseline": name,
        "test_accuracy": accuracy,
        "seconds": 2.0,
        "test_predictions": predictions,
    }


def test_cross_validated_pairs_are_folds_with_the_cnn_averaged_over_each_folds_seeds():
    rows = [
        cnn("mr", "max", 0, 0, 0.80),
        cnn("mr", "max", 0, 1, 0.82),  # fold 0: 0.81
        cnn("mr", "max", 1, 0, 0.75),  # fold 1: 0.75
        cnn("mr", "max", 2, 0, 0.90),  # no baseline on fold 2: not paired
    ]
    baselines = [linear("mr", 0, "nbsvm", 0.78), linear("mr", 1, "nbsvm", 0.76)]
    paired, tests = versus_baseline(rows, baselines, "mr", "max", "nbsvm")
    assert paired.n == 2 and tests == []
    assert paired.mean_difference == pytest.approx(((0.81 - 0.78) + (0.75 - 0.76)) / 2)
    assert versus_baseline(rows, baselines, "mr", "avg", "nbsvm") is None
    assert versus_baseline(rows, baselines, "subj", "max", "nbsvm") is None


def test_a_single_split_compares_each_seed_with_the_one_baseline_and_runs_mcnemar():
    labels = [0, 1, 0, 1, 0, 1]
    baseline = linear("trec", None, "tfidf-lr", 3 / 6, predictions=[0, 0, 0, 0, 1, 1])  # right: 0, 2, 5
    rows = [
        cnn("trec", "max", None, 0, 6 / 6, predictions=labels, labels=labels),
        cnn("trec", "max", None, 1, 4 / 6, predictions=[0, 1, 0, 1, 1, 0], labels=labels),
    ]
    paired, tests = versus_baseline(rows, [baseline], "trec", "max", "tfidf-lr")
    assert paired.n == 2 and paired.mean_difference == pytest.approx((3 / 6 + 1 / 6) / 2)
    assert [(t.only_a_correct, t.only_b_correct) for t in tests] == [(3, 0), (2, 1)]


def test_the_section_sets_both_baselines_beside_max_and_the_best_arm_and_says_who_wins():
    config = StudyConfig(datasets=("mr", "sst2"), poolings=("max", "avg"))
    rows = []
    for fold in range(3):
        rows += [cnn("mr", "max", fold, 0, 0.80 + 0.01 * fold), cnn("mr", "avg", fold, 0, 0.70 + 0.01 * fold)]
    rows += [cnn("sst2", "max", None, seed, 0.80 + 0.001 * seed) for seed in range(3)]
    baselines = [
        linear("mr", f, n, 0.75 + 0.01 * f + (0.001 * f if n == "nbsvm" else 0))
        for f in range(3)
        for n in ("tfidf-lr", "nbsvm")
    ]
    baselines += [linear("mr", 3, n, 0.99) for n in ("tfidf-lr", "nbsvm")]  # a fold the CNN has not run yet
    baselines += [linear("sst2", None, "tfidf-lr", 0.85), linear("sst2", None, "nbsvm", 0.86)]
    lines = baseline_section(rows, baselines, config)
    text = "\n".join(lines)
    assert "## Linear baselines on the same folds" in text
    mr = next(line for line in lines if line.startswith("| mr |"))
    assert mr.startswith("| mr | 3 of 4 | 76.0 ± 1.0 |") and "81.0 (max)" in mr  # the CNN's folds only
    assert "+5.00 (+5.0 to +5.0)" in mr  # max − TF-IDF + LR, the same gap on every fold
    assert "- mr: the best CNN arm (max) beats NBSVM, and the interval excludes 0" in text
    assert "- sst2: NBSVM beats the study's best CNN arm (max), and the interval excludes 0" in text
    assert baseline_section(rows, [], config) == []
    summary = baselines_summary(baselines)
    assert summary["mr"]["nbsvm"]["folds"] == 4
    assert summary["sst2"]["tfidf-lr"]["accuracy_mean"] == pytest.approx(0.85)
