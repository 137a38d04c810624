"""Training and inference throughput of Kim's CNN-rand (300-d, widths 3/4/5 x 100) on MR.

    python benchmarks/throughput.py --data-dir ../shared/data

Training: sentences per second over whole epochs of MR's fold-0 training part (batches of 50 by
similar length, LazyAdadelta, max-norm, dropout), through `textcnn.train.loop.fit`, dev evaluation
excluded. Inference: texts per second through `Classifier` from raw text (tokenizing included),
one text per call and 256 per call.
Writes benchmarks/results/throughput.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from textcnn.data.corpus import load_registered
from textcnn.data.folds import make_folds
from textcnn.data.text import TextEncoder, Vocabulary
from textcnn.inference.bundle import Classifier
from textcnn.model.cnn import ModelConfig, TextCNN
from textcnn.train.batches import EncodedSplit
from textcnn.train.config import TrainConfig
from textcnn.train.loop import fit

sys.path.insert(0, str(Path(__file__).parent))
from accuracy import machine

RESULTS = Path(__file__).parent / "results" / "throughput.json"


def training_throughput(split: EncodedSplit, model: TextCNN, epochs: int, bf16: bool) -> dict:
    """Whole epochs through `fit`, the loop every training uses; epoch 1 warms up and is not counted.

    The rate is `fit`'s own per-epoch figure: training steps only, the dev evaluation excluded (a
    small dev set, so the run stays short).
    """
    dev = EncodedSplit(split.ids[:200], split.lengths[:200], split.labels[:200])
    config = TrainConfig(epochs=epochs + 1, patience=None, amp="bf16" if bf16 else "off", device="cpu")
    result = fit(model, split, dev, config, progress=False)
    rates = [record["sentences_per_second"] for record in result.history[1:]]
    return {
        "sentences_per_second": round(statistics.median(rates), 1),
        "epochs": epochs,
        "per_epoch": [round(r, 1) for r in rates],
    }


def matmul_gflops(size: int = 4096, repeats: int = 10) -> float:
    """The machine's fp32 matrix-multiply rate: the ceiling the training rate is compared with."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(2):
        a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def training_flops_per_sentence(config: ModelConfig, mean_tokens: float) -> float:
    """Forward FLOPs of the convolutions for a sentence of `mean_tokens`, times 3 for the backward pass.

    Wide convolution: L + w - 1 windows of width w, each D x w x F multiply-adds.
    """
    windows = [
        (mean_tokens + w - 1) if config.wide else max(mean_tokens - w + 1, 1) for w in config.filter_widths
    ]
    forward = sum(
        2 * config.embedding_dim * w * config.num_filters * n
        for w, n in zip(config.filter_widths, windows, strict=True)
    )
    return 3 * forward


def inference_throughput(classifier: Classifier, texts: list[str], batch_size: int, seconds: float) -> dict:
    classifier.model.eval()
    done, started = 0, time.perf_counter()
    latencies = []
    while time.perf_counter() - started < seconds:
        chunk = [texts[(done + i) % len(texts)] for i in range(batch_size)]
        t0 = time.perf_counter()
        classifier.predict(chunk, batch_size=batch_size)
        latencies.append(time.perf_counter() - t0)
        done += batch_size
    elapsed = time.perf_counter() - started
    return {
        "batch_size": batch_size,
        "texts_per_second": round(done / elapsed, 1),
        "median_call_ms": round(1000 * statistics.median(latencies), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", help="benchmark data folder (default: $TEXTCNN_DATA_DIR)")
    parser.add_argument("--epochs", type=int, default=2, help="timed training epochs (after one warm-up)")
    parser.add_argument("--seconds", type=float, default=10.0, help="time per inference measurement")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    torch.manual_seed(0)
    corpus = load_registered("mr", args.data_dir)
    (fold,) = make_folds(corpus, seed=0)
    probe = TextEncoder(Vocabulary(["<pad>", "<unk>"]), "kim")
    vocab = Vocabulary.build(probe.tokenize(t) for t in fold.train.texts)
    encoder = TextEncoder(vocab, "kim")
    index = {name: i for i, name in enumerate(corpus.label_names)}
    split = EncodedSplit.encode(encoder, fold.train.texts, [index[y] for y in fold.train.labels], 5)
    config = ModelConfig(vocab_size=len(vocab), num_classes=len(corpus.label_names))

    results = {
        "machine": machine(),
        "dataset": "mr (fold 0 train part)",
        "sentences": len(split),
        "mean_tokens": round(float(split.lengths.float().mean()), 1),
        "vocab_size": len(vocab),
        "config": "CNN-rand 300-d, widths 3/4/5 x 100, batch 50, Adadelta, max-norm 3, fp32",
    }
    results["train_fp32"] = training_throughput(split, TextCNN(config), args.epochs, bf16=False)
    print(f"training fp32: {results['train_fp32']['sentences_per_second']:,.0f} sentences/s", file=sys.stderr)
    results["train_bf16_autocast"] = training_throughput(split, TextCNN(config), args.epochs, bf16=True)
    print(
        f"training bf16 autocast: {results['train_bf16_autocast']['sentences_per_second']:,.0f} sentences/s",
        file=sys.stderr,
    )

    results["matmul_gflops"] = round(matmul_gflops(), 1)
    flops = training_flops_per_sentence(config, results["mean_tokens"])
    results["train_mflop_per_sentence"] = round(flops / 1e6, 1)
    results["train_fp32_gflops"] = round(flops * results["train_fp32"]["sentences_per_second"] / 1e9, 1)
    print(
        f"fp32 matmul: {results['matmul_gflops']} GFLOP/s; training reaches {results['train_fp32_gflops']} GFLOP/s",
        file=sys.stderr,
    )

    classifier = Classifier(TextCNN(config), encoder, corpus.label_names)
    texts = list(fold.test.texts)
    results["inference"] = [inference_throughput(classifier, texts, b, args.seconds) for b in (1, 256)]
    for row in results["inference"]:
        print(
            f"inference batch {row['batch_size']}: {row['texts_per_second']:,.0f} texts/s "
            f"({row['median_call_ms']} ms a call)",
            file=sys.stderr,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
