"""The study's numbers: each arm's mean ± std, and max against every other arm, paired.

Arms are compared only over the (fold, seed) runs both ran, so a partial study (or a grown one)
still compares like with like; the comparisons land in summary.json, which the report renders.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from textcnn.study.arms import NO_CONV, PADDED, REFERENCE
from textcnn.study.stats import mcnemar, mean_and_std, paired_comparison


def summarize(rows: Sequence[dict], reference: str = REFERENCE) -> dict:
    """Per dataset: each pooling's mean ± std, and `reference` against each other pooling, paired."""
    by_dataset: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_dataset[row["dataset"]].append(row)
    summary: dict = {}
    for dataset, dataset_rows in by_dataset.items():
        by_pooling: dict[str, dict] = defaultdict(dict)
        for row in dataset_rows:
            by_pooling[row["pooling"]][(row["fold"], row["seed"])] = row
        arms = {}
        for pooling, runs in by_pooling.items():
            accuracy = mean_and_std([r["test_accuracy"] for r in runs.values()])
            macro_f1 = mean_and_std([r["test_macro_f1"] for r in runs.values()])
            arms[pooling] = {
                "runs": len(runs),
                "accuracy_mean": accuracy[0],
                "accuracy_std": accuracy[1],
                "macro_f1_mean": macro_f1[0],
                "macro_f1_std": macro_f1[1],
                "epochs_mean": mean_and_std([r["best_epoch"] for r in runs.values()])[0],
                "seconds_mean": mean_and_std([r["seconds"] for r in runs.values()])[0],
            }
        comparisons = []
        if reference in by_pooling:
            for other in sorted(p for p in by_pooling if p != reference and not p.endswith(NO_CONV)):
                shared = _shared_keys(by_pooling, reference, other)
                if not shared:
                    continue
                paired = _paired(by_pooling, reference, other, shared)
                entry = {"reference": reference, "other": other, **paired.to_json()}
                per_seed = []
                for key in shared:
                    a, b = by_pooling[reference][key], by_pooling[other][key]
                    if a.get("test_predictions") and b.get("test_predictions") and a.get("test_labels"):
                        test = mcnemar(a["test_labels"], a["test_predictions"], b["test_predictions"])
                        per_seed.append({"seed": key[1], **test.to_json()})
                if per_seed:
                    entry["mcnemar"] = per_seed
                comparisons.append(entry)
        # Probe 1: each pooling after the convolution against the same pooling of the word vectors.
        convolution = []
        for arm in sorted(p for p in by_pooling if p.endswith(NO_CONV)):
            pooling = arm[: -len(NO_CONV)]
            shared = _shared_keys(by_pooling, pooling, arm) if pooling in by_pooling else []
            if shared:
                paired = _paired(by_pooling, pooling, arm, shared)
                convolution.append({"pooling": pooling, "without": arm, **paired.to_json()})
        # The average masked against the average over the padded length (`padded-avg`): what padding costs.
        padding = []
        if {"avg", PADDED} <= set(by_pooling):
            shared = _shared_keys(by_pooling, "avg", PADDED)
            padding.append(
                {"masked": "avg", "padded": PADDED, **_paired(by_pooling, "avg", PADDED, shared).to_json()}
            )
        summary[dataset] = {
            "poolings": arms,
            "comparisons": comparisons,
            "convolution": convolution,
            "padding": padding,
        }
    return summary


def _shared_keys(by_pooling: dict[str, dict], a: str, b: str) -> list[tuple]:
    """The (fold, seed) pairs both arms ran: only those are compared."""
    return sorted(set(by_pooling[a]) & set(by_pooling[b]), key=str)


def _paired(by_pooling: dict[str, dict], a: str, b: str, keys: Sequence[tuple]):
    return paired_comparison(
        [by_pooling[a][k]["test_accuracy"] for k in keys], [by_pooling[b][k]["test_accuracy"] for k in keys]
    )


def replications(rows: Sequence[dict], dataset: str, arm: str) -> dict[int, float]:
    """Accuracy (percent) per seed, one replication each as in Zhang & Wallace (2015): the seed's mean
    over the folds it ran (cross-validated sets) or its test accuracy (single-split sets)."""
    by_seed: dict[int, list[float]] = defaultdict(list)
    for row in rows:
        if row["dataset"] == dataset and row["pooling"] == arm:
            by_seed[row["seed"]].append(100 * row["test_accuracy"])
    return {seed: sum(values) / len(values) for seed, values in sorted(by_seed.items())}


def versus_max(rows: Sequence[dict], dataset: str, arm: str):
    """`arm` minus max, paired over the (fold, seed) runs both ran (`paired_comparison`); None if none."""
    by_pooling: dict[str, dict] = defaultdict(dict)
    for row in rows:
        if row["dataset"] == dataset and row["pooling"] in (arm, REFERENCE):
            by_pooling[row["pooling"]][(row["fold"], row["seed"])] = row
    if arm == REFERENCE or REFERENCE not in by_pooling or arm not in by_pooling:
        return None
    shared = _shared_keys(by_pooling, arm, REFERENCE)
    return _paired(by_pooling, arm, REFERENCE, shared) if shared else None
