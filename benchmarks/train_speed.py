"""Training throughput of K models trained together (`fit_group`), and the floor it is held to.

    python benchmarks/train_speed.py --data-dir ../shared/data [--models 1,10,100] [--device auto]

K models of Kim's CNN-rand (300-d, widths 3/4/5 x 100, batches of 50, Adadelta, max-norm) train
on MR's fold-0 training part, each with its own seed (its own initialisation, data order and
dropout), through the same loop `textcnn train` and `textcnn compare` use. A model sees
`--sentences` sentences per epoch (a fixed random subset, so K = 100 stays affordable on a CPU);
the vocabulary is the whole fold's, so the embedding tables have their real size. The first
epoch warms up and is not counted; the rate is sentences per second summed over the K models,
training steps only (the per-epoch dev evaluation excluded).

The floor: the FLOPs of a training step (the convolutions, forward and backward, at the batches'
real padded widths) against the machine's measured fp32 matrix-multiply rate. The wall time of
the full pooling study (5 datasets x 4 poolings x 10 seeds, 10 folds for MR and Subj) is
*estimated* from the measured rate and the epochs the committed study's runs took; it is not run.

Writes benchmarks/results/train_speed.json (or --out) and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

import torch

from textcnn.data.corpus import load_registered
from textcnn.data.folds import make_folds
from textcnn.data.text import TextEncoder, Vocabulary
from textcnn.model.cnn import ModelConfig, TextCNN
from textcnn.runtime import resolve_device
from textcnn.train.batches import EncodedSplit, length_bucketed_batches
from textcnn.train.config import TrainConfig
from textcnn.train.loop import fit_group

sys.path.insert(0, str(Path(__file__).parent))
from accuracy import machine
from throughput import matmul_gflops, training_flops_per_sentence

RESULTS = Path(__file__).parent / "results" / "train_speed.json"
STUDY = Path(__file__).parent.parent / "reports" / "pooling" / "results.jsonl"
# The full study of the evaluation issue: runs per dataset (4 poolings x 10 seeds x folds).
FULL_STUDY_RUNS = {"mr": 4 * 10 * 10, "subj": 4 * 10 * 10, "sst1": 4 * 10, "sst2": 4 * 10, "trec": 4 * 10}


def padded_tokens_per_sentence(split: EncodedSplit, config: TrainConfig, widest: int) -> float:
    """Mean padded length a sentence is computed at: its batch's longest sentence."""
    batches = length_bucketed_batches(
        split.lengths, config.batch_size, config.bucket_batches, torch.Generator().manual_seed(0)
    )
    total = sum(len(b) * max(int(split.lengths[b].max()), widest) for b in batches)
    return total / len(split)


def measure(
    models: int, train: EncodedSplit, dev: EncodedSplit, config: ModelConfig, train_config: TrainConfig
):
    """Train `models` models together for train_config.epochs; the rate of the epochs after the first."""
    torch.manual_seed(0)
    group = [TextCNN(config) for _ in range(models)]
    configs = [TrainConfig(**{**train_config.to_json(), "seed": seed}) for seed in range(models)]
    started = time.perf_counter()
    results = fit_group(group, [train] * models, [dev] * models, configs, progress=False)
    wall = time.perf_counter() - started
    history = results[0].history
    rates = [models * record["sentences_per_second"] for record in history[1:]]
    return {
        "models": models,
        "sentences_per_second": round(sum(rates) / len(rates), 1),
        "per_epoch": [round(r, 1) for r in rates],
        "wall_seconds": round(wall, 1),
    }


def study_epochs(path: Path) -> dict[str, float]:
    """Mean epochs a run of each dataset took in the committed pooling study (convolutional arms:
    the full study has no `:no-conv` arms)."""
    if not path.exists():
        return {}
    epochs: dict[str, list[int]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["pooling"].endswith(":no-conv"):
            continue
        epochs.setdefault(row["dataset"], []).append(row["epochs_run"])
    return {name: sum(values) / len(values) for name, values in epochs.items()}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", help="benchmark data folder (default: $TEXTCNN_DATA_DIR)")
    parser.add_argument("--models", default="1,10,100", help="comma-separated group sizes K")
    parser.add_argument("--sentences", type=int, default=1000, help="training sentences per model")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per measurement (the first is warm-up)")
    parser.add_argument(
        "--min-sentences", type=int, default=30_000, help="at least this many timed sentences per measurement"
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--amp", default="auto", help="bf16 autocast: auto (CUDA only), bf16 or off")
    parser.add_argument(
        "--rounds", type=int, default=2, help="measure every K this often, in alternating order (median kept)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    device = resolve_device(args.device)

    corpus = load_registered("mr", args.data_dir)
    (fold,) = make_folds(corpus, seed=0)
    encoder = TextEncoder(
        Vocabulary.build(
            TextEncoder(Vocabulary(["<pad>", "<unk>"]), "kim").tokenize(t) for t in fold.train.texts
        ),
        "kim",
    )
    index = {name: i for i, name in enumerate(corpus.label_names)}
    chosen = sorted(random.Random(0).sample(range(len(fold.train)), min(args.sentences, len(fold.train))))
    texts, labels = [fold.train.texts[i] for i in chosen], [index[fold.train.labels[i]] for i in chosen]
    train = EncodedSplit.encode(encoder, texts, labels, 5)
    dev = EncodedSplit.encode(encoder, fold.dev.texts[:200], [index[y] for y in fold.dev.labels[:200]], 5)
    config = ModelConfig(vocab_size=len(encoder.vocab), num_classes=len(corpus.label_names))
    train_config = TrainConfig(epochs=args.epochs, patience=None, device=str(device), amp=args.amp)

    padded = padded_tokens_per_sentence(train, train_config, max(config.filter_widths))
    flops = training_flops_per_sentence(config, padded)
    results: dict = {
        "machine": machine(),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "dataset": f"mr fold 0: {len(train)} training sentences per model, vocabulary {len(encoder.vocab):,}",
        "config": "CNN-rand 300-d, widths 3/4/5 x 100, batch 50, Adadelta, max-norm 3, dropout 0.5",
        "amp": train_config.amp,
        "padded_tokens_per_sentence": round(padded, 1),
        "train_mflop_per_sentence": round(flops / 1e6, 1),
        "groups": [],
    }
    if device.type == "cpu":
        results["matmul_gflops"] = round(matmul_gflops(), 1)
    else:
        a = torch.randn(8192, 8192, device=device)
        for dtype in (torch.float32, torch.bfloat16):
            x = a.to(dtype)
            x @ x
            torch.cuda.synchronize()
            started = time.perf_counter()
            for _ in range(20):
                x @ x
            torch.cuda.synchronize()
            results[f"matmul_{str(dtype).split('.')[-1]}_gflops"] = round(
                2 * 8192**3 * 20 / (time.perf_counter() - started) / 1e9, 1
            )
    # This machine's speed drifts 10-30% from minute to minute: every K is measured in each round,
    # the order reversed every other round, and the median kept.
    sizes = [int(k) for k in args.models.split(",")]
    rounds: dict[int, list[dict]] = {k: [] for k in sizes}
    for round_number in range(args.rounds):
        for models in sizes if round_number % 2 == 0 else sizes[::-1]:
            # Every K trains at least --min-sentences sentences in its timed epochs, so that K = 1
            # is not timed over a second.
            epochs = max(args.epochs, 1 + math.ceil(args.min_sentences / (models * len(train))))
            entry = measure(models, train, dev, config, dataclasses.replace(train_config, epochs=epochs))
            rounds[models].append(entry)
            print(
                f"round {round_number + 1}, K={models}: {entry['sentences_per_second']:,.0f} sentences/s",
                file=sys.stderr,
            )
    for models in sizes:
        rates = [e["sentences_per_second"] for e in rounds[models]]
        median = statistics.median(rates)
        results["groups"].append(
            {
                "models": models,
                "sentences_per_second": round(median, 1),
                "rounds": rates,
                "wall_seconds": [e["wall_seconds"] for e in rounds[models]],
                "gflops": round(flops * median / 1e9, 1),
            }
        )

    epochs = study_epochs(STUDY)
    if epochs:
        sizes = {}
        for name in FULL_STUDY_RUNS:
            corpus_d = load_registered(name, args.data_dir)
            cross_validated = "all" in corpus_d.splits
            (first,) = make_folds(
                corpus_d, folds=10 if cross_validated else None, fold=0 if cross_validated else None, seed=0
            )
            sizes[name] = len(first.train)
        sentence_epochs = sum(FULL_STUDY_RUNS[d] * sizes[d] * epochs.get(d, 25) for d in FULL_STUDY_RUNS)
        best = max(results["groups"], key=lambda g: g["sentences_per_second"])
        results["full_study_estimate"] = {
            "runs": sum(FULL_STUDY_RUNS.values()),
            "training_sentence_epochs": sentence_epochs,
            "mean_epochs_per_run": {d: round(e, 1) for d, e in epochs.items()},
            "at_models": best["models"],
            "hours": round(sentence_epochs / best["sentences_per_second"] / 3600, 2),
            "note": "estimated from the MR rate and the committed study's epochs; dev evaluation excluded; not run",
        }

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    ceiling = results.get("matmul_gflops") or results.get("matmul_float32_gflops")
    print(f"\n{'K':>5} {'sentences/s':>12} {'GFLOP/s':>8} {'of matmul':>9}")
    for g in results["groups"]:
        print(
            f"{g['models']:>5} {g['sentences_per_second']:>12,.0f} {g['gflops']:>8} {g['gflops'] / ceiling:>9.0%}"
        )
    if "full_study_estimate" in results:
        e = results["full_study_estimate"]
        print(f"full study ({e['runs']} runs) at K={e['at_models']}: about {e['hours']} hours (estimate)")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
