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
from accuracy import benchmark_folds, machine  # noqa: E402

from textcnn.train.config import TrainConfig  # noqa: E402
from textcnn.train.runs import RunSettings, member_settings, prepare_run, train_together  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "mixed_ensembles.json"
CACHE = Path(__file__).parent / "results" / "mixed_cache"  # gitignored: probabilities per fold
POOLINGS = ("max", "avg")
MEMBERS = 5


def train_fold(corpus, fold, args) -> dict:
    """The fold's ten CNN members (MEMBERS per pooling), trained as one call; their probabilities."""
    train_config = TrainConfig(epochs=args.epochs, patience=args.patience or None, seed=args.seed)
    runs, names = [], []
    for pooling in POOLINGS:
        settings = RunSettings({"variant": "non-static", "pooling": pooling}, train_config, vectors=args.vectors)
        for k in range(MEMBERS):
            runs.append(prepare_run(fold, corpus.label_names, member_settings(settings, k), corpus.lowercase))
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
    """Every fold's members, trained now or read from the cache."""
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    for dataset in args.datasets.split(","):
        cached_folds(dataset, args)
    return 0


if __name__ == "__main__":
    torch.set_num_threads(torch.get_num_threads())
    np.set_printoptions(precision=4)
    sys.exit(main())
