"""Metrics through scikit-learn, in one JSON-ready shape for the CLI, bundles and reports."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], label_names: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    Every class is reported, including those absent from this split (`zero_division=0`), so two
    reports on the same label set always line up.
    """
    labels = list(range(len(label_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": _per_class(precision, recall, f1, support, label_names),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),  # rows: true
        "labels": list(label_names),
    }


def headline(metrics: dict) -> dict:
    """The bundle's and cv.json's few numbers of a split's metrics."""
    keys = ("n", "accuracy", "macro_f1")
    if metrics.get("multi_label"):
        keys += ("micro_f1", "samples_f1", "jaccard", "exact_match")
    return {k: metrics[k] for k in keys}


def _per_class(precision, recall, f1, support, label_names: Sequence[str]) -> dict:
    return {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(label_names)
    }


def summarize_folds(fold_metrics: Sequence[dict], keys: Sequence[str] = ("accuracy", "macro_f1")) -> dict:
    """Mean and sample standard deviation over cross-validation folds (ddof = 1, 0 for one fold)."""
    summary: dict = {"folds": len(fold_metrics)}
    for key in keys:
        values = np.array([m[key] for m in fold_metrics], dtype=float)
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        summary[key] = {"mean": float(values.mean()), "std": std, "values": values.tolist()}
    return summary


def format_metrics(metrics: dict) -> str:
    """A short human line: 'accuracy 81.2%  macro-F1 80.9%  (n=1,821)'."""
    if metrics.get("multi_label"):
        return format_multilabel(metrics)
    return f"accuracy {100 * metrics['accuracy']:.1f}%  macro-F1 {100 * metrics['macro_f1']:.1f}%  (n={metrics['n']:,})"


def format_summary(summary: dict) -> str:
    acc, f1 = summary["accuracy"], summary["macro_f1"]
    return (
        f"accuracy {100 * acc['mean']:.1f} ± {100 * acc['std']:.1f}%  "
        f"macro-F1 {100 * f1['mean']:.1f} ± {100 * f1['std']:.1f}%  over {summary['folds']} folds"
    )


def multilabel_metrics(y_true, y_pred, label_names: Sequence[str]) -> dict:
    """Multi-label scores of 0/1 matrices (N, C): macro-, micro- and samples-F1, Jaccard (per text,
    averaged), exact match (every label right; scikit-learn's accuracy on such data, so `accuracy`
    holds it too) and each label's support, precision, recall and F1."""
    from sklearn.metrics import jaccard_score

    y_true = np.asarray(y_true, dtype=np.int8).reshape(-1, len(label_names))
    y_pred = np.asarray(y_pred, dtype=np.int8).reshape(-1, len(label_names))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, zero_division=0)
    exact = float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0

    def averaged(function, average: str) -> float:
        return float(function(y_true, y_pred, average=average, zero_division=0)) if len(y_true) else 0.0

    return {
        "n": len(y_true),
        "multi_label": True,
        "accuracy": exact,
        "exact_match": exact,
        "macro_f1": averaged(f1_score, "macro"),
        "micro_f1": averaged(f1_score, "micro"),
        "samples_f1": averaged(f1_score, "samples"),
        "jaccard": averaged(jaccard_score, "samples"),
        "labels_per_text": float(y_pred.sum(axis=1).mean()) if len(y_pred) else 0.0,
        "per_class": _per_class(precision, recall, f1, support, label_names),
        "labels": list(label_names),
    }


def format_multilabel(metrics: dict) -> str:
    """'macro-F1 48.1%  micro-F1 55.0%  samples-F1 ...  (n=5,427)'."""
    return (
        f"macro-F1 {100 * metrics['macro_f1']:.1f}%  micro-F1 {100 * metrics['micro_f1']:.1f}%  "
        f"samples-F1 {100 * metrics['samples_f1']:.1f}%  Jaccard {100 * metrics['jaccard']:.1f}%  "
        f"exact match {100 * metrics['exact_match']:.1f}%  (n={metrics['n']:,})"
    )


def per_label_table(metrics: dict, thresholds: Sequence[float] | None = None) -> str:
    """The per-label table (support, precision, recall, F1 in %, and each label's threshold when
    given), one label a line, as text."""
    width = max(len("label"), *(len(name) for name in metrics["per_class"]))
    cut = f" {'threshold':>9}" if thresholds is not None else ""
    rows = [f"{'label':<{width}} {'support':>7} {'P':>6} {'R':>6} {'F1':>6}{cut}"]
    for k, (name, m) in enumerate(metrics["per_class"].items()):
        cut = f" {thresholds[k]:>9.2f}" if thresholds is not None else ""
        rows.append(
            f"{name:<{width}} {m['support']:>7} {100 * m['precision']:>6.1f} {100 * m['recall']:>6.1f} "
            f"{100 * m['f1']:>6.1f}{cut}"
        )
    return "\n".join(rows)
