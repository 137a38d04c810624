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
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(label_names)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),  # rows: true
        "labels": list(label_names),
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
    return f"accuracy {100 * metrics['accuracy']:.1f}%  macro-F1 {100 * metrics['macro_f1']:.1f}%  (n={metrics['n']:,})"


def format_summary(summary: dict) -> str:
    acc, f1 = summary["accuracy"], summary["macro_f1"]
    return (
        f"accuracy {100 * acc['mean']:.1f} ± {100 * acc['std']:.1f}%  "
        f"macro-F1 {100 * f1['mean']:.1f} ± {100 * f1['std']:.1f}%  over {summary['folds']} folds"
    )
