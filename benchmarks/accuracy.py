"""Accuracy of Kim's configurations on the five benchmarks, next to Kim (2014)'s Table 2.

    python benchmarks/accuracy.py --data-dir ../shared/data            # the full benchmark
    python benchmarks/accuracy.py --data-dir ../shared/data --quick    # 1 fold, 2 epochs: a smoke run
    python benchmarks/accuracy.py --data-dir ../shared/data --variants non-static:ens5 \
        --vector-datasets mr,subj,sst1,sst2,trec --baselines "" \
        --out benchmarks/results/ensembles.json                      # 5-model ensembles (--ensemble 5)

A variant `VARIANT:ensK` trains K members per fold (seeds SEED .. SEED + K - 1) as one ensemble; its
row also has the members' own test accuracies (K single models on the same folds), and the table
sets the ensemble beside them and the linear baselines.

Writes benchmarks/results/accuracy.json after every finished configuration, and skips those already
there, so an interrupted run continues where it stopped (--fresh starts over). Cross-validated
datasets (MR, Subj) run all folds; the others their fixed test split.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from textcnn.data.corpus import load_registered
from textcnn.data.folds import make_folds
from textcnn.model.linear import BASELINES, fit_baseline
from textcnn.train.config import TrainConfig
from textcnn.train.protocol import train_folds
from textcnn.train.runs import RunSettings

RESULTS = Path(__file__).parent / "results" / "accuracy.json"
BASELINE_RESULTS = RESULTS.parent / "baselines.json"  # the linear rows the ensembles' table is set beside


def machine() -> dict:
    return {
        "cpu": _cpu_name(),
        "cores": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def benchmark_folds(dataset: str, args: argparse.Namespace):
    """The dataset and the folds every row of it is measured on, CNNs and baselines alike."""
    corpus = load_registered(dataset, args.data_dir)
    cross_validated = "all" in corpus.splits
    folds = make_folds(corpus, folds=args.folds if cross_validated else None, seed=args.seed)
    if args.max_folds:
        folds = folds[: args.max_folds]
    return corpus, folds, f"{len(folds)}-fold CV" if cross_validated else "test split"


def run_baseline(dataset: str, name: str, args: argparse.Namespace) -> dict:
    """A linear baseline (textcnn.model.linear) on the same folds as the CNN rows."""
    corpus, folds, protocol = benchmark_folds(dataset, args)
    started = time.perf_counter()
    results = [fit_baseline(name, fold, corpus.label_names, corpus.tokenizer) for fold in folds]
    accuracies = [r.test_accuracy for r in results]
    return {
        "dataset": dataset,
        "variant": name,
        "embedding_dim": None,
        "protocol": protocol,
        "folds": len(folds),
        "test_accuracy": statistics.fmean(accuracies),
        "test_accuracy_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
        "per_fold_accuracy": accuracies,
        "chosen_C": [r.C for r in results],
        "kim2014": None,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def run_configuration(dataset: str, variant: str, args: argparse.Namespace) -> dict:
    corpus, folds, protocol = benchmark_folds(dataset, args)
    train_config = TrainConfig(epochs=args.epochs, patience=args.patience or None, seed=args.seed)
    options, members = model_options(variant)
    vectors = None if options["variant"] == "rand" else args.vectors
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        settings = RunSettings(options, train_config, vectors=vectors)
        run = train_folds(
            corpus, folds, Path(scratch) / "model", settings, progress=not args.quiet, ensemble=members
        )
    seconds = time.perf_counter() - started
    accuracies = [o.test_metrics["accuracy"] for o in run.outcomes]
    train_speeds = [h["sentences_per_second"] for o in run.outcomes for h in o.fit.history]
    ensemble = {}
    if members > 1:  # the members are K single models on the same folds: the single-model figure
        per_member = [
            [m["test_accuracy"] for m in o.classifier.info["ensemble"]["members"]] for o in run.outcomes
        ]
        ensemble = {
            "ensemble": members,
            "member_test_accuracy": statistics.fmean(a for fold in per_member for a in fold),
            "member_test_accuracy_per_fold": per_member,
            "member_best_epochs": [
                [m["best_epoch"] for m in o.classifier.info["ensemble"]["members"]] for o in run.outcomes
            ],
        }
    return {
        "dataset": dataset,
        "variant": variant,
        "embedding_dim": run.outcomes[0].classifier.model.config.embedding_dim,
        "vectors": vectors,
        "vector_coverage": run.outcomes[0].vectors["summary"] if run.outcomes[0].vectors else None,
        "protocol": protocol,
        "folds": len(folds),
        "test_accuracy": statistics.fmean(accuracies),
        "test_accuracy_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
        "test_macro_f1": statistics.fmean(o.test_metrics["macro_f1"] for o in run.outcomes),
        "per_fold_accuracy": accuracies,
        "best_epochs": [o.fit.best_epoch for o in run.outcomes],
        "epochs_run": [o.fit.epochs_run for o in run.outcomes],
        "kim2014": load_kim(dataset, variant),
        "wall_seconds": round(seconds, 1),
        "epoch_sentences_per_second": round(statistics.median(train_speeds), 1),
        **ensemble,
    }


def model_options(variant: str) -> tuple[dict, int]:
    """(model options, ensemble members) of a variant name. `rand-50d` is CNN-rand at the width of
    the 50-d vectors: the fair baseline for them, since Kim's CNN-rand has 300-d embeddings and so
    six times the capacity per word. `VARIANT:ensK`: an ensemble of K of them."""
    variant, _, ensemble = variant.partition(":ens")
    members = int(ensemble) if ensemble else 1
    if variant.startswith("rand-") and variant.endswith("d"):
        return {"variant": "rand", "embedding_dim": int(variant[len("rand-") : -1])}, members
    return {"variant": variant}, members


def load_kim(dataset: str, variant: str) -> float | None:
    from textcnn.data.registry import REGISTRY

    return REGISTRY[dataset].kim2014.get(variant.partition(":ens")[0])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", help="benchmark data folder (default: $TEXTCNN_DATA_DIR)")
    parser.add_argument("--datasets", default="mr,subj,sst1,sst2,trec")
    parser.add_argument(
        "--variants",
        default="rand,static,non-static,rand-50d",
        help="rand-<N>d: CNN-rand with N-d embeddings (only on --vector-datasets, to compare with them)",
    )
    parser.add_argument(
        "--vector-datasets", default="mr,sst2,trec", help="datasets to run non-rand variants on"
    )
    parser.add_argument("--vectors", default="glove-6b-50d", help="pretrained vectors for static/non-static")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--max-folds", type=int, help="run only the first N folds of a CV dataset")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--patience", type=int, default=5, help="0: train all epochs, as Kim did")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="one fold, 2 epochs: checks the script runs")
    parser.add_argument("--fresh", action="store_true", help="ignore results already in --out")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument(
        "--baselines",
        default=",".join(BASELINES),
        help="linear baselines run on every dataset's folds (textcnn.model.linear); empty: none",
    )
    parser.add_argument("--only-baselines", action="store_true", help="the baselines rows alone (seconds)")
    args = parser.parse_args()
    if args.quick:
        args.max_folds, args.epochs = 1, 2

    previous = {} if args.fresh or not args.out.exists() else json.loads(args.out.read_text())
    done = {(r["dataset"], r["variant"]): r for r in previous.get("runs", []) if not previous.get("quick")}
    plan = [
        (d, v)
        for v in args.variants.split(",")
        for d in args.datasets.split(",")
        if v.partition(":ens")[0] == "rand" or d in args.vector_datasets.split(",")
    ]
    if args.only_baselines:
        plan = []
    baselines = [b for b in args.baselines.split(",") if b]
    plan += [(d, b) for b in baselines for d in args.datasets.split(",")]
    results = {
        "machine": machine(),
        "quick": args.quick,
        "settings": {k: str(v) for k, v in vars(args).items()},
        "runs": [],
    }
    for dataset, variant in plan:
        measure = run_baseline if variant in BASELINES else run_configuration
        row = done.get((dataset, variant)) or measure(dataset, variant, args)
        results["runs"].append(row)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
        print(
            f"{dataset:<5} {variant:<11} {_accuracy(row):>10}"
            f"  (Kim {row['kim2014'] or '—'})  {row['protocol']}, {row['wall_seconds']:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    print(table(results["runs"]))
    if any(r.get("ensemble") for r in results["runs"]):
        linear = BASELINE_RESULTS if BASELINE_RESULTS.exists() else args.out
        print(side_by_side(results["runs"] + json.loads(linear.read_text()).get("runs", [])))
    return 0


def side_by_side(runs: list[dict]) -> str:
    """Per dataset and ensemble: its members alone (mean), the ensemble, the linear baselines."""
    by_key = {(r["dataset"], r["variant"]): r for r in reversed(runs)}  # the first listed wins
    lines = [
        "| dataset | ensemble | members alone (mean) | ensemble | tfidf-lr | nbsvm | − members | − best linear |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for (dataset, variant), row in by_key.items():
        if not row.get("ensemble"):
            continue
        linear = [by_key.get((dataset, b)) for b in BASELINES]
        best = max((r["test_accuracy"] for r in linear if r), default=None)
        cells = [f"{100 * r['test_accuracy']:.1f}" if r else "—" for r in linear]
        versus = f"{100 * (row['test_accuracy'] - best):+.1f}" if best is not None else "—"
        lines.append(
            f"| {dataset} | {variant} | {100 * row['member_test_accuracy']:.1f} | {_accuracy(row)} | "
            f"{' | '.join(cells)} | {100 * (row['test_accuracy'] - row['member_test_accuracy']):+.1f} | {versus} |"
        )
    return "\n".join(lines)


def table(runs: list[dict]) -> str:
    lines = [
        "| dataset | variant | dim | protocol | test accuracy | Kim (2014) | wall time |",
        "|---|---|--:|---|--:|--:|--:|",
    ]
    for r in runs:
        lines.append(
            f"| {r['dataset']} | {r['variant']} | {r['embedding_dim'] or '—'} | {r['protocol']} | "
            f"{_accuracy(r)} | {r['kim2014'] or '—'} | "
            f"{r['wall_seconds']:.0f} s |"
        )
    return "\n".join(lines)


def _accuracy(row: dict) -> str:
    """Mean ± standard deviation over folds; a single split has no spread to show."""
    mean = f"{100 * row['test_accuracy']:.1f}"
    return f"{mean} ± {100 * row['test_accuracy_std']:.1f}" if row["folds"] > 1 else mean


if __name__ == "__main__":
    sys.exit(main())
