"""GoEmotions (28 labels, multi-label): our CNN recipes against linear baselines and the papers' BERT.

    python benchmarks/multilabel.py                       # every cell (about 2 hours on 2 cores); resumes
    python benchmarks/multilabel.py --cells linear,char-lr --quiet
    python benchmarks/multilabel.py --quick               # small models, 1 epoch: checks the path
    python benchmarks/multilabel.py --table-only          # RESULTS.md's tables from the cells so far
    python benchmarks/multilabel.py --serving-pair DIR    # two bundles of one size for serve_load.py

The cells, each on GoEmotions' own train/dev/test split (`$TEXTCNN_DATA_DIR/goemotions`), texts read by
the `unicode` tokenizer, every threshold chosen on dev (`textcnn.inference.decisions`: one shared
cut, then a label's own where it has at least 30 dev rows), scored on test:

- `linear`: our own one-vs-rest baseline, written here with scikit-learn only: TF-IDF of word 1-2-grams
  and of character 1-5-grams within tokens, side by side, logistic regression per label, C chosen on
  dev macro-F1 (the issue's baseline, "46.8 here");
- `tfidf-lr`, `char-lr`: the bundle's linear members alone (`textcnn train --ensemble 0 --linear ...`);
- `cnn`: one CNN (Kim's CNN-rand shape, one sigmoid per label, binary cross-entropy, early stopping
  on dev macro-F1), `textcnn train`: member 0 of the ensemble below, which trains in the group
  exactly as it would alone (`textcnn.train.loop`), its thresholds chosen on dev for it;
- `ensemble`: K CNNs (seeds 0..K-1) trained together, `textcnn train --ensemble K`;
- `ensemble + char-lr`: the two composed, each part's weight chosen on dev by log loss, thresholds
  chosen again on dev (`textcnn ensemble ... --combine dev`).

Each finished cell is appended to results/multilabel_runs.jsonl (bundles kept in
results/multilabel_cache/, gitignored), so an interrupted run resumes; results/multilabel.json and
the tables printed for RESULTS.md are written from the cells.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from accuracy import machine

from textcnn.data.corpus import load_corpus
from textcnn.data.folds import make_folds
from textcnn.data.registry import REGISTRY
from textcnn.data.text import fit_tokenizer
from textcnn.data.tokenizers import TokenizerConfig
from textcnn.inference.bundle import Classifier
from textcnn.inference.compose import compose
from textcnn.inference.decisions import choose_thresholds
from textcnn.inference.metrics import multilabel_metrics
from textcnn.runtime import atomic_write_bytes
from textcnn.train.config import TrainConfig
from textcnn.train.protocol import train_folds
from textcnn.train.runs import Mixture, RunSettings

HERE = Path(__file__).parent
RUNS = HERE / "results" / "multilabel_runs.jsonl"
RESULTS = HERE / "results" / "multilabel.json"
CACHE = HERE / "results" / "multilabel_cache"
CELLS = ("linear", "tfidf-lr", "char-lr", "cnn", "ensemble", "ensemble + char-lr", "glove", "all + char-lr")
GLOVE = {"variant": "non-static", "vectors": "glove-6b-50d"}  # the `glove` cell's CNNs
C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)


def load_cells(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_cell(path: Path, cell: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(cell) + "\n")


def targets(labels, names) -> np.ndarray:
    return np.array([[int(name in row) for name in names] for row in labels], dtype=np.int8)


def scores(dev: dict, test: dict, **extra) -> dict:
    keep = ("macro_f1", "micro_f1", "samples_f1", "jaccard", "exact_match", "labels_per_text")
    return {
        "dev": {k: round(100 * dev[k], 2) if k != "labels_per_text" else round(dev[k], 3) for k in keep},
        "test": {k: round(100 * test[k], 2) if k != "labels_per_text" else round(test[k], 3) for k in keep},
        "per_label": {
            name: {
                "support": row["support"],
                **{k: round(100 * row[k], 1) for k in ("precision", "recall", "f1")},
            }
            for name, row in test["per_class"].items()
        },
        **extra,
    }


def linear_cell(fold, names) -> dict:
    """Word 1-2-gram and character 1-5-gram TF-IDF side by side, logistic regression per label."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    tokenizer = fit_tokenizer(TokenizerConfig.parse("unicode"), fold.train.texts)

    def joined(texts):
        return [" ".join(tokenizer.split(text)) for text in texts]

    train_x, dev_x, test_x = joined(fold.train.texts), joined(fold.dev.texts), joined(fold.test.texts)
    words = TfidfVectorizer(
        sublinear_tf=True,
        tokenizer=str.split,
        token_pattern=None,
        lowercase=False,
        ngram_range=(1, 2),
        min_df=2,
    )
    chars = TfidfVectorizer(
        sublinear_tf=True, analyzer="char_wb", ngram_range=(1, 5), lowercase=False, min_df=2
    )
    X_train = hstack([words.fit_transform(train_x), chars.fit_transform(train_x)]).tocsr()
    X_dev = hstack([words.transform(dev_x), chars.transform(dev_x)]).tocsr()
    X_test = hstack([words.transform(test_x), chars.transform(test_x)]).tocsr()
    y_train, y_dev, y_test = (targets(p.labels, names) for p in (fold.train, fold.dev, fold.test))
    best = None
    for C in C_GRID:
        model = OneVsRestClassifier(LogisticRegression(C=C, max_iter=1000), n_jobs=1).fit(X_train, y_train)
        p_dev = model.predict_proba(X_dev)
        decision, _ = choose_thresholds(p_dev, y_dev, "per-label", at_least_one=True)
        f1 = multilabel_metrics(y_dev, decision.decide(p_dev), names)["macro_f1"]
        print(f"  linear C={C}: dev macro-F1 {100 * f1:.1f}", file=sys.stderr)
        if best is None or f1 > best[0]:
            best = (f1, C, model, decision, p_dev)
    _, C, model, decision, p_dev = best
    dev = multilabel_metrics(y_dev, decision.decide(p_dev), names)
    test = multilabel_metrics(y_test, decision.decide(model.predict_proba(X_test)), names)
    return scores(dev, test, C=C, thresholds=decision.chosen, features=X_train.shape[1])


def bundle_cell(classifier: Classifier, fold, names, **extra) -> dict:
    dev = classifier.score(fold.dev.texts, fold.dev.labels)
    test = classifier.score(fold.test.texts, fold.test.labels)
    return scores(dev, test, thresholds=classifier.decision.chosen, **extra)


def run(args) -> None:
    corpus = load_corpus("goemotions", data_dir=args.data_dir)
    (fold,) = make_folds(corpus)
    names = list(corpus.label_names)
    done = {c["cell"] for c in load_cells(args.runs)}
    settings = RunSettings(
        model_options=args.model_options,
        train=TrainConfig(epochs=args.epochs, patience=args.patience, optimizer=args.optimizer),
        tokenizer="unicode",
    )
    cache = args.cache
    glove = dataclasses.replace(
        settings,
        model_options={**settings.model_options, "variant": GLOVE["variant"]},
        vectors=GLOVE["vectors"],
    )
    trained = {
        "cnn": cache / "cnn",
        "ensemble": cache / f"ensemble-{args.members}",
        "glove": cache / f"glove-{args.members}",
    }

    def train(
        where: Path, ensemble: int, mixture: Mixture | None = None, how: RunSettings = settings
    ) -> tuple[Classifier, float]:
        if (where / "config.json").exists() and not (where / "checkpoint.safetensors").exists():
            return Classifier.load(where, device="cpu"), 0.0
        started = time.perf_counter()
        train_folds(corpus, [fold], where, how, progress=not args.quiet, ensemble=ensemble, mixture=mixture)
        return Classifier.load(where, device="cpu"), time.perf_counter() - started

    for cell in args.cells:
        if cell in done:
            continue
        print(f"goemotions: {cell}", file=sys.stderr)
        started = time.perf_counter()
        if cell == "linear":
            record = linear_cell(fold, names)
        elif cell in ("tfidf-lr", "char-lr"):
            classifier, _ = train(cache / cell, 0, Mixture(linear=cell))
            record = bundle_cell(classifier, fold, names)
        elif cell == "cnn":  # member 0 of the ensemble: a model trains in a group exactly as alone
            ensemble, _ = train(trained["ensemble"], args.members)
            single = Classifier(ensemble.members[0], ensemble.encoder, ensemble.label_names)
            single.decision = choose_thresholds(  # chosen on dev for it, as its own training would
                torch.sigmoid(single.logits(list(fold.dev.texts))).numpy(),
                targets(fold.dev.labels, names),
                "per-label",
                ensemble.decision.at_least_one,
            )[0]
            single.save(trained["cnn"])
            record = bundle_cell(
                single, fold, names, epochs=ensemble.info["ensemble"]["members"][0]["best_epoch"]
            )
        elif cell == "ensemble":
            classifier, _ = train(trained["ensemble"], args.members)
            record = bundle_cell(classifier, fold, names, members=args.members)
        elif cell == "glove":
            classifier, _ = train(trained["glove"], args.members, how=glove)
            record = bundle_cell(classifier, fold, names, members=args.members, **GLOVE)
        else:  # the CNN ensembles with the char-lr member, each part's weight chosen on dev
            parts = ["ensemble"] if cell == "ensemble + char-lr" else ["ensemble", "glove"]
            bundles = [
                train(trained[p], args.members, how=glove if p == "glove" else settings)[0] for p in parts
            ]
            linear, _ = train(cache / "char-lr", 0, Mixture(linear="char-lr"))
            names_ = [*(str(trained[p]) for p in parts), str(cache / "char-lr")]
            dev = (fold.dev.texts, fold.dev.labels)
            classifier = compose([*bundles, linear], names_, "dev", dev)
            classifier.save(cache / cell.replace(" + ", "-"))
            record = bundle_cell(
                classifier, fold, names, members=args.members, weights=classifier.model.weights.tolist()
            )
        record |= {
            "cell": cell,
            "seconds": round(time.perf_counter() - started, 1),
            "settings": {
                "epochs": args.epochs,
                "patience": args.patience,
                "optimizer": args.optimizer,
                **args.model_options,
            },
        }
        append_cell(args.runs, record)
        print(f"  {cell}: test macro-F1 {record['test']['macro_f1']:.1f}", file=sys.stderr)


def table(cells: list[dict]) -> str:
    spec = REGISTRY["goemotions"]
    lines = [
        "| recipe | dev macro-F1 | test macro-F1 | micro-F1 | samples-F1 | Jaccard | exact match | labels/text |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, value in spec.reference.items():
        lines.append(f"| {name} (reported) | | {value:.1f} | | | | | |")
    for cell in sorted(cells, key=lambda c: -c["test"]["macro_f1"]):
        t, d = cell["test"], cell["dev"]
        lines.append(
            f"| {describe(cell)} | {d['macro_f1']:.1f} | **{t['macro_f1']:.1f}** | {t['micro_f1']:.1f} | "
            f"{t['samples_f1']:.1f} | {t['jaccard']:.1f} | {t['exact_match']:.1f} | {t['labels_per_text']:.2f} |"
        )
    return "\n".join(lines)


def describe(cell: dict) -> str:
    s = cell.get("settings") or {}
    shape = f"{s.get('embedding_dim', 300)}-d, {s.get('num_filters', 100)} maps x 3"
    return {
        "linear": f"word + char TF-IDF, LR per label, C={cell.get('C')} (ours)",
        "tfidf-lr": "tfidf-lr member alone (word 1-2-grams)",
        "char-lr": "char-lr member alone (character 1-5-grams)",
        "cnn": f"one CNN ({shape}, {s.get('optimizer')})",
        "ensemble": f"{cell.get('members')} CNNs ({shape})",
        "ensemble + char-lr": f"{cell.get('members')} CNNs + char-lr, weights on dev",
        "glove": f"{cell.get('members')} CNNs, GloVe 6B 50-d non-static",
        "all + char-lr": f"{cell.get('members')} CNNs + {cell.get('members')} GloVe CNNs + char-lr, weights on dev",
    }.get(cell["cell"], cell["cell"])


def per_label_table(cells: list[dict]) -> str:
    """Test support, and P / R / F1 of the linear baseline and of our best recipe, per label."""
    best = max((c for c in cells if c["cell"] != "linear"), key=lambda c: c["test"]["macro_f1"], default=None)
    linear = next((c for c in cells if c["cell"] == "linear"), None)
    shown = [c for c in (linear, best) if c is not None]
    head = "| label | support | " + " | ".join(f"{describe(c)}: P / R / F1" for c in shown) + " |"
    lines = [head, "|---|--:|" + "--:|" * len(shown)]
    for name, row in shown[0]["per_label"].items():
        rows = [c["per_label"][name] for c in shown]
        parts = [f"{r['precision']:.0f} / {r['recall']:.0f} / **{r['f1']:.1f}**" for r in rows]
        lines.append(f"| {name} | {row['support']} | " + " | ".join(parts) + " |")
    return "\n".join(lines)


def serving_pair(bundle: Path, out: Path) -> None:
    """Two bundles of one size for `serve_load.py --versus`: `bundle` (multi-label) copied as
    `out/multi`, and `out/single`, the same weights read as a single-label softmax over the 28 labels."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("multi", "single"):
        shutil.rmtree(out / name, ignore_errors=True)
        shutil.copytree(bundle, out / name)
    config = json.loads((out / "single" / "config.json").read_text())
    sections = [config["model"]] if "model" in config else [g["model"] for g in config["mixture"]["groups"]]
    for section in sections:
        section.pop("multi_label", None)
    if (config.get("mixture") or {}).get("linear"):
        config["mixture"]["linear"].pop("multi_label", None)
    config.pop("decision", None)
    atomic_write_bytes(out / "single" / "config.json", json.dumps(config, indent=2).encode())
    single, multi = (
        Classifier.load(out / "single", device="cpu"),
        Classifier.load(out / "multi", device="cpu"),
    )
    assert not single.multi_label and multi.multi_label and single.num_classes == multi.num_classes
    print(f"{out / 'single'} and {out / 'multi'}: {multi.num_classes} labels each", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--optimizer", default="adadelta")
    parser.add_argument("--embedding-dim", type=int, help="default: Kim's 300")
    parser.add_argument("--num-filters", type=int, help="default: Kim's 100")
    parser.add_argument("--data-dir")
    parser.add_argument("--runs", type=Path, default=RUNS)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--quick", action="store_true", help="small models, 1 epoch, other files: checks the path"
    )
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument(
        "--serving-pair", type=Path, metavar="DIR", help="write the two serving bundles and stop"
    )
    args = parser.parse_args()
    if args.serving_pair:
        serving_pair(args.cache / "cnn", args.serving_pair)
        return
    args.cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    unknown = sorted(set(args.cells) - set(CELLS))
    if unknown:
        parser.error(f"unknown cells {unknown}; choose from {', '.join(CELLS)}")
    args.model_options = {
        k: v for k, v in (("embedding_dim", args.embedding_dim), ("num_filters", args.num_filters)) if v
    }
    if args.quick:
        args.members, args.epochs, args.model_options = 2, 1, {"embedding_dim": 16, "num_filters": 8}
        quick = Path("/tmp/textcnn_multilabel_quick")
        args.runs, args.out, args.cache = quick / "runs.jsonl", quick / "multilabel.json", quick / "cache"
    started = time.perf_counter()
    if not args.table_only:
        run(args)
    cells = load_cells(args.runs)
    record = {
        "machine": machine(),
        "command": "python benchmarks/multilabel.py " + " ".join(sys.argv[1:]),
        "seconds_this_call": round(time.perf_counter() - started, 1),
        "reference": REGISTRY["goemotions"].reference,
        "cells": cells,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, json.dumps(record, indent=2).encode())
    if cells:
        print(table(cells))
        print()
        print(per_label_table(cells))


if __name__ == "__main__":
    main()
