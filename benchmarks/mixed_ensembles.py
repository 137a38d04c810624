"""Mixed ensembles against single-pooling ensembles and the linear baselines, on all five datasets.

    python benchmarks/mixed_ensembles.py --data-dir ../shared/data            # train, then the table
    python benchmarks/mixed_ensembles.py --data-dir ../shared/data --quick    # 1 fold, 2 epochs
    python benchmarks/mixed_ensembles.py --table-only                         # the table from the cache

Per fold (MR and Subj: 10-fold CV; SST-1, SST-2, TREC: their test split), the same folds, dev and
test sets as `benchmarks/accuracy.py`: ten CNN-non-static models (GloVe 6B 50-d, Kim's settings),
five with max pooling and five with average pooling, seeds 0-4, trained with the library's
`train_together`, and the two linear baselines. Every row below is then a bundle made of some of
them, combined by the library's own code (`textcnn.model.mixed`), so no row trains anything twice:

- `max x5`, `avg x5`: today's recipe (`textcnn train --ensemble 5`), with either pooling;
- `max+avg x5`: what `textcnn train --ensemble 5 --pooling max,avg` trains: member k pools with
  max for even k, avg for odd k, seed 0 + k (max seeds 0, 2, 4; avg seeds 1, 3);
- `max x5 + nbsvm`, `max+avg x5 + nbsvm`: those with the linear member (`--linear nbsvm`), combined by
  the mean of probabilities (`mean`) or by weights chosen on dev (`dev`);
- `tfidf-lr`, `nbsvm`: the linear models alone, as the bundle's linear member predicts them.

The trained members' dev and test probabilities are cached per fold (`--cache`), so an interrupted
run resumes at the next fold, and the table can be redone without training.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from accuracy import benchmark_folds, machine

from textcnn.data.text import TextEncoder, Vocabulary
from textcnn.model.linear_member import LinearMember
from textcnn.model.mixed import dev_weights, normalized_weights
from textcnn.train.config import TrainConfig
from textcnn.train.runs import RunSettings, member_settings, prepare_run, train_together

RESULTS = Path(__file__).parent / "results" / "mixed_ensembles.json"
CACHE = Path(__file__).parent / "results" / "mixed_cache"  # gitignored: probabilities per fold
POOLINGS = ("max", "avg")
MEMBERS = 5


def train_fold(corpus, fold, args) -> dict:
    """The fold's ten CNN members (MEMBERS per pooling), trained as one call; their probabilities."""
    train_config = TrainConfig(epochs=args.epochs, patience=args.patience or None, seed=args.seed)
    runs, names = [], []
    for pooling in POOLINGS:
        settings = RunSettings(
            {"variant": "non-static", "pooling": pooling}, train_config, vectors=args.vectors
        )
        for k in range(MEMBERS):
            runs.append(
                prepare_run(fold, corpus.label_names, member_settings(settings.for_corpus(corpus), k))
            )
            names.append(f"{pooling}:{args.seed + k}")
    started = time.perf_counter()
    outcomes = train_together(runs, progress=not args.quiet)
    if len(outcomes) != len(runs) or any(o.fit.interrupted for o in outcomes):
        raise KeyboardInterrupt
    index = {name: i for i, name in enumerate(corpus.label_names)}
    return {
        "fold": fold.name,
        "labels": corpus.label_names,
        "seconds": round(time.perf_counter() - started, 1),
        "dev_labels": [index[y] for y in fold.dev.labels],
        "test_labels": [index[y] for y in fold.test.labels],
        "members": {
            name: {
                "best_epoch": o.fit.best_epoch,
                "dev": o.classifier.predict_proba(fold.dev.texts).round(6).tolist(),
                "test": o.classifier.predict_proba(fold.test.texts).round(6).tolist(),
            }
            for name, o in zip(names, outcomes, strict=True)
        },
    }


def cached_folds(dataset: str, args) -> list[dict]:
    """Every fold's members, trained now or read from the cache (--table-only: the cached folds)."""
    corpus, folds, protocol = benchmark_folds(dataset, args)
    out = []
    for fold in folds:
        path = args.cache / f"{dataset}-{fold.name}{'-quick' if args.quick else ''}.json"
        if not path.exists():
            if args.table_only:
                break
            record = train_fold(corpus, fold, args)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record))
            print(f"{dataset} {fold.name}: trained in {record['seconds']:.0f} s", file=sys.stderr, flush=True)
        out.append(json.loads(path.read_text()) | {"protocol": protocol, "of": len(folds)})
    return out


# Rows: (name, CNN members, linear member, combination). `max+avg` is what `--ensemble 5 --pooling
# max,avg` trains: member k pools with max for even k, avg for odd k, seed 0 + k.
MIXED = ("max:0", "avg:1", "max:2", "avg:3", "max:4")
ROWS = [
    ("max x5", [f"max:{k}" for k in range(MEMBERS)], None, "mean"),
    ("avg x5", [f"avg:{k}" for k in range(MEMBERS)], None, "mean"),
    ("max+avg x5", list(MIXED), None, "mean"),
    ("max+avg x5, dev", list(MIXED), None, "dev"),
    ("max x5 + nbsvm", [f"max:{k}" for k in range(MEMBERS)], "nbsvm", "mean"),
    ("max x5 + nbsvm, dev", [f"max:{k}" for k in range(MEMBERS)], "nbsvm", "dev"),
    ("max+avg x5 + nbsvm", list(MIXED), "nbsvm", "mean"),
    ("max+avg x5 + nbsvm, dev", list(MIXED), "nbsvm", "dev"),
    ("nbsvm", [], "nbsvm", "mean"),
    ("tfidf-lr", [], "tfidf-lr", "mean"),
]


def linear_members(corpus, fold, record: dict) -> dict[str, dict]:
    """Each linear member's dev and test probabilities, fitted on the fold as `textcnn train --linear`
    fits it: the ids of the bundle's vocabulary (the training texts', min count 1), C and scale on dev."""
    probe = TextEncoder(Vocabulary(["<pad>", "<unk>"]), corpus.tokenizer)
    vocab = Vocabulary.build((probe.tokenize(t) for t in fold.train.texts), 1, None)
    encoder = TextEncoder(vocab, corpus.tokenizer)
    index = {name: i for i, name in enumerate(record["labels"])}

    def part(split):
        batch = encoder.pad(encoder.encode_many(split.texts), 1)
        return batch.ids, batch.lengths, [index[y] for y in split.labels]

    out = {}
    for kind in ("nbsvm", "tfidf-lr"):
        member = LinearMember.fit(kind, part(fold.train), part(fold.dev), len(vocab), len(index))
        with torch.no_grad():
            out[kind] = {
                split: torch.softmax(member(*part(getattr(fold, split))[:2]), dim=1).tolist()
                for split in ("dev", "test")
            }
    return out


def bundle_accuracy(record: dict, linear: dict, members: list[str], kind: str | None, combine: str) -> dict:
    """A row's bundle on one fold: the weighted mean of its members' probabilities, as
    `MixedEnsemble.forward` combines them; weights by `textcnn.model.mixed.dev_weights` for "dev"."""
    sources = [record["members"][name] for name in members] + ([linear[kind]] if kind else [])
    dev = torch.tensor([m["dev"] for m in sources], dtype=torch.float64)
    test = torch.tensor([m["test"] for m in sources], dtype=torch.float64)
    dev_labels, test_labels = torch.tensor(record["dev_labels"]), torch.tensor(record["test_labels"])
    shares = None
    if combine == "dev":
        by_pooling: dict[str, list[int]] = {}
        for i, name in enumerate(members):
            by_pooling.setdefault(name.split(":")[0], []).append(i)
        parts = list(by_pooling.values()) + ([[len(members)]] if kind else [])
        weights, chosen = dev_weights(dev, dev_labels, parts)
        weights, shares = torch.tensor(weights, dtype=torch.float64), chosen["shares"]
    else:
        weights = normalized_weights(None, len(sources)).double()

    def accuracy(probabilities, labels) -> float:
        mixed = torch.einsum("m,mnc->nc", weights, probabilities)
        return float((mixed.argmax(dim=1) == labels).double().mean())

    return {"dev": accuracy(dev, dev_labels), "test": accuracy(test, test_labels), "shares": shares}


def dataset_rows(dataset: str, args) -> list[dict]:
    corpus, folds, protocol = benchmark_folds(dataset, args)
    records = cached_folds(dataset, args)
    linear = [linear_members(corpus, fold, record) for fold, record in zip(folds, records, strict=False)]
    rows = []
    for name, members, kind, combine in ROWS:
        per_fold = [
            bundle_accuracy(r, lin, members, kind, combine) for r, lin in zip(records, linear, strict=True)
        ]
        accuracies = [f["test"] for f in per_fold]
        rows.append(
            {
                "dataset": dataset,
                "bundle": name,
                "protocol": protocol,
                "folds": len(per_fold),
                "of_folds": len(folds),
                "test_accuracy": float(np.mean(accuracies)),
                "test_accuracy_std": float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else 0.0,
                "per_fold_test_accuracy": accuracies,
                "dev_accuracy": float(np.mean([f["dev"] for f in per_fold])),
                "shares": [f["shares"] for f in per_fold] if combine == "dev" else None,
            }
        )
    singles = {
        pooling: float(
            np.mean(
                [
                    np.mean(
                        np.argmax(r["members"][f"{pooling}:{k}"]["test"], axis=1)
                        == np.array(r["test_labels"])
                    )
                    for r in records
                    for k in range(MEMBERS)
                ]
            )
        )
        for pooling in POOLINGS
    }
    for row in rows:
        row["single_model_mean"] = singles
    return rows


def table(rows: list[dict]) -> str:
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    names = list(dict.fromkeys(r["bundle"] for r in rows))
    by = {(r["dataset"], r["bundle"]): r for r in rows}
    lines = [
        "| bundle | " + " | ".join(datasets) + " |",
        "|---|" + "--:|" * len(datasets),
    ]
    for name in names:
        cells = []
        for d in datasets:
            r = by[(d, name)]
            cell = f"{100 * r['test_accuracy']:.1f}"
            if r["folds"] > 1:
                cell += f" ± {100 * r['test_accuracy_std']:.1f}"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    folds = [f"{d} {by[(d, names[0])]['folds']}/{by[(d, names[0])]['of_folds']}" for d in datasets]
    return "\n".join(lines) + "\n\nfolds measured: " + ", ".join(folds)


def targets(rows: list[dict]) -> list[str]:
    """The issue's targets, each with its margin per dataset."""
    by = {(r["dataset"], r["bundle"]): r["test_accuracy"] for r in rows}
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    out = []
    for bundle, cnn in (
        ("max x5 + nbsvm, dev", "max x5"),
        ("max x5 + nbsvm", "max x5"),
        ("max+avg x5 + nbsvm, dev", "max+avg x5, dev"),
        ("max+avg x5 + nbsvm", "max+avg x5"),
    ):
        over_parts = [d for d in datasets if by[(d, bundle)] > max(by[(d, cnn)], by[(d, "nbsvm")])]
        over_linear = {
            d: 100 * (by[(d, bundle)] - max(by[(d, "nbsvm")], by[(d, "tfidf-lr")])) for d in datasets
        }
        out.append(
            f"{bundle}: beats both its parts ({cnn}, nbsvm) on {len(over_parts)}/{len(datasets)} "
            f"({', '.join(over_parts) or 'none'}); minus the best linear baseline: "
            + ", ".join(f"{d} {v:+.1f}" for d, v in over_linear.items())
            + f" (>= +1 on {sum(v >= 1 for v in over_linear.values())})"
        )
    for mixed in ("max+avg x5", "max+avg x5, dev"):
        margins = {d: 100 * (by[(d, mixed)] - max(by[(d, "max x5")], by[(d, "avg x5")])) for d in datasets}
        out.append(
            f"{mixed} minus the best single-pooling ensemble: "
            + ", ".join(f"{d} {v:+.1f}" for d, v in margins.items())
            + f" (at or above on {sum(v >= 0 for v in margins.values())})"
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", help="benchmark data folder (default: $TEXTCNN_DATA_DIR)")
    parser.add_argument("--datasets", default="trec,sst2,sst1,mr,subj")
    parser.add_argument("--vectors", default="glove-6b-50d")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--max-folds", type=int, help="only the first N folds of a CV dataset")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="one fold, 2 epochs")
    parser.add_argument("--table-only", action="store_true", help="train nothing: the table from the cache")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.max_folds, args.epochs = 1, 2
    if not args.table_only:
        for dataset in args.datasets.split(","):
            cached_folds(dataset, args)
    rows = [row for dataset in args.datasets.split(",") for row in dataset_rows(dataset, args)]
    results = {
        "machine": machine(),
        "quick": args.quick,
        "settings": {k: str(v) for k, v in vars(args).items()},
        "rows": rows,
        "targets": targets(rows),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(table(rows))
    print("\n".join(results["targets"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
