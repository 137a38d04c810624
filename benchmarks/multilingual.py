"""Every language: the tweets of UMSAB in six languages and Chinese hotel reviews, per tokenizer.

    python benchmarks/multilingual.py                      # everything (hours on 2 cores); resumes
    python benchmarks/multilingual.py --datasets umsab-fr --tokenizers unicode --quick
    python benchmarks/multilingual.py --table-only         # RESULTS.md's table from the runs so far

For each dataset (umsab-en, -fr, -de, -it, -pt, -es: their train/dev/test split; chnsenticorp:
folds 0-2 of its 10-fold cross-validation) and each tokenizer (`unicode`, `subword`), with the
library's own training (`textcnn.train.protocol.train_folds`, CNN-rand with Kim's settings, early
stopping on dev):

- `single`: one CNN (seed 0: member 0 of the ensemble below, which trains exactly as it would alone);
- `ensemble`: five CNNs, seeds 0-4 (`textcnn train --ensemble 5`);
- `char-lr`: the bundle's character n-gram member alone (`--ensemble 0 --linear char-lr`);
- `ensemble + char-lr`: the two composed, each part's weight chosen on dev by log loss
  (`textcnn ensemble ... --combine dev`, what `--ensemble 5 --linear char-lr --combine dev` trains).

and, for UMSAB, the same recipes trained once on the six languages together (`multi`: the recipe of
`models/tweets`) and scored on each language's test split. Beside them: our own linear baselines
on the same splits (word 1-2-grams TF-IDF + LR, character 1-5-grams TF-IDF + LR, both over the
`unicode` tokenizer's tokens, C chosen on dev: `textcnn.model.linear.fit_baseline`) and the UMSAB
paper's FastText-mono and XLM-R-mono figures (the cards'). The metric is the one the papers report:
macro-F1 on UMSAB, accuracy on chnsenticorp (macro-F1 beside it).

Each finished cell is appended to results/multilingual_runs.jsonl at once, and its bundles are kept in
results/multilingual_cache/ (gitignored), so an interrupted run resumes; results/multilingual.json
and the RESULTS.md table are written from the cells at the end (or with --table-only).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from accuracy import machine

from textcnn.data.corpus import load_corpus
from textcnn.data.folds import make_folds
from textcnn.data.registry import REGISTRY
from textcnn.inference.bundle import Classifier
from textcnn.inference.compose import compose
from textcnn.model.linear import fit_baseline
from textcnn.runtime import atomic_write_bytes
from textcnn.train.config import TrainConfig
from textcnn.train.protocol import train_folds
from textcnn.train.runs import Mixture, RunSettings

HERE = Path(__file__).parent
RUNS = HERE / "results" / "multilingual_runs.jsonl"
RESULTS = HERE / "results" / "multilingual.json"
CACHE = HERE / "results" / "multilingual_cache"
UMSAB = tuple(f"umsab-{code}" for code in ("en", "fr", "de", "it", "pt", "es"))
DATASETS = (*UMSAB, "chnsenticorp")
MULTI = ",".join(UMSAB)  # the six languages trained together
RECIPES = ("single", "ensemble", "char-lr", "ensemble + char-lr")
BASELINES = {"tfidf-lr": "word TF-IDF + LR", "char-lr": "char TF-IDF + LR"}
CV_FOLDS = (0, 1, 2)


def load_cells(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def append(path: Path, cell: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(cell) + "\n")


def folds_of(name: str, data_dir: str | None):
    corpus = load_corpus(name, data_dir=data_dir)
    if "all" in corpus.splits:
        return corpus, [(f, i) for i, f in enumerate(make_folds(corpus, 10, seed=0)) if i in CV_FOLDS]
    return corpus, [(f, None) for f in make_folds(corpus, seed=0)]


def scores(classifier: Classifier, part) -> dict:
    metrics = classifier.score(part.texts, part.labels)
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "coverage": metrics["coverage"]}


def recipes(training: str, tokenizer: str, fold, corpus, args) -> dict[str, Classifier]:
    """The four recipes' classifiers for one training set, tokenizer and fold (trained, or from the cache)."""
    where = CACHE / f"{training}--{tokenizer.replace(':', '_')}--{fold.name}"
    settings = RunSettings(
        args.model_options,
        TrainConfig(seed=0, epochs=args.epochs, patience=args.patience),
        tokenizer=tokenizer,
    )
    one = [fold]
    if not (where / "ensemble" / "config.json").exists():
        train_folds(corpus, one, where / "ensemble", settings, progress=not args.quiet, ensemble=args.members)
    if not (where / "char-lr" / "config.json").exists():
        train_folds(
            corpus,
            one,
            where / "char-lr",
            settings,
            progress=False,
            ensemble=0,
            mixture=Mixture(linear="char-lr"),
        )
    ensemble = Classifier.load(where / "ensemble", device="cpu")
    linear = Classifier.load(where / "char-lr", device="cpu")
    single = Classifier(ensemble.members[0], ensemble.encoder, ensemble.label_names)
    mixed = compose([ensemble, linear], ["ensemble", "char-lr"], "dev", (fold.dev.texts, fold.dev.labels))
    return {"single": single, "ensemble": ensemble, "char-lr": linear, "ensemble + char-lr": mixed}


def run(args) -> None:
    cells = load_cells(args.runs)
    done = {
        (c["kind"], c["dataset"], c.get("training"), c.get("tokenizer"), c["fold"], c["recipe"])
        for c in cells
    }
    corpora = {name: folds_of(name, args.data_dir) for name in args.datasets}
    for name, (corpus, folds) in corpora.items():  # the linear baselines, over the unicode tokenizer
        for fold, index in folds:
            for baseline in BASELINES:
                if ("baseline", name, None, "unicode", index, baseline) in done:
                    continue
                result = fit_baseline(baseline, fold, corpus.label_names, "unicode")
                truth = [corpus.label_names.index(y) for y in fold.test.labels]
                from sklearn.metrics import f1_score

                cell = {
                    "kind": "baseline",
                    "dataset": name,
                    "training": None,
                    "tokenizer": "unicode",
                    "fold": index,
                    "recipe": baseline,
                    "C": result.C,
                    "accuracy": result.test_accuracy,
                    "macro_f1": f1_score(truth, result.test_predictions, average="macro"),
                    "seconds": round(result.seconds, 1),
                }
                append(args.runs, cell)
                print(json.dumps(cell), flush=True)
    umsab = [name for name in args.datasets if name in UMSAB]
    trainings = [(name, [name]) for name in umsab]
    if args.multi and umsab:
        trainings.append((MULTI, umsab))
    trainings += [(name, [name]) for name in args.datasets if name not in UMSAB]
    for training, tested in trainings:
        corpus, folds = folds_of(training, args.data_dir) if training == MULTI else corpora[training]
        for tokenizer in args.tokenizers:
            for fold, index in folds:
                wanted = [
                    (t, r)
                    for t in tested
                    for r in RECIPES
                    if ("cnn", t, training, tokenizer, index, r) not in done
                ]
                if not wanted:
                    continue
                started = time.perf_counter()
                made = recipes(training, tokenizer, fold, corpus, args)
                seconds = round(time.perf_counter() - started, 1)
                for name, recipe in wanted:
                    test = fold.test if training != MULTI else make_folds(corpora[name][0], seed=0)[0].test
                    cell = {
                        "kind": "cnn",
                        "dataset": name,
                        "training": training,
                        "tokenizer": tokenizer,
                        "fold": index,
                        "recipe": recipe,
                        **scores(made[recipe], test),
                        "members": args.members,
                        "embedding_dim": args.embedding_dim or 300,
                        "epochs": args.epochs,
                        "seconds": seconds,
                    }
                    if recipe == "ensemble + char-lr":
                        cell["shares"] = made[recipe].info["ensemble"].get("shares")
                    append(args.runs, cell)
                    print(json.dumps(cell), flush=True)


def summarize(cells: list[dict]) -> dict:
    """Per dataset: each (training, tokenizer, recipe)'s mean over its folds, and the baselines'."""
    table: dict = {}
    for cell in cells:
        who = (
            ("baseline", cell["recipe"])
            if cell["kind"] == "baseline"
            else (
                "mono" if cell["training"] == cell["dataset"] else "multi",
                cell["tokenizer"],
                cell["recipe"].replace("ensemble", f"ensemble of {cell.get('members', 5)}")
                + (
                    ""  # the char-lr member has no embeddings
                    if cell.get("embedding_dim", 300) == 300 or cell["recipe"] == "char-lr"
                    else f" ({cell['embedding_dim']}-d)"
                ),
            )
        )
        row = table.setdefault(cell["dataset"], {}).setdefault(
            " / ".join(who), {"accuracy": [], "macro_f1": []}
        )
        row["accuracy"].append(cell["accuracy"])
        row["macro_f1"].append(cell["macro_f1"])
    return {
        dataset: {
            who: {k: round(100 * float(np.mean(v)), 2) for k, v in row.items()}
            | {"folds": len(row["accuracy"])}
            for who, row in rows.items()
        }
        for dataset, rows in table.items()
    }


def table(summary: dict) -> str:
    metric = {name: REGISTRY[name].metric for name in summary}
    lines = []
    for dataset, rows in summary.items():
        key = metric[dataset]
        spec = REGISTRY[dataset]
        shown = "macro-F1" if key == "macro_f1" else "accuracy (macro-F1)"
        lines += [
            "",
            f"**{dataset}** ({spec.language}; {shown}, test"
            + (", folds 0-2" if "all" in spec.splits else "")
            + ")",
            "",
        ]
        lines += ["| recipe | tokenizer | trained on | " + shown + " |", "|---|---|---|--:|"]
        for reference, value in spec.reference.items():
            if reference.endswith("mono"):
                lines.append(f"| {reference} (paper) | | {dataset} | {value:.1f} |")
        for who, row in sorted(rows.items(), key=lambda kv: -kv[1][key]):
            parts = who.split(" / ")
            value = f"{row[key]:.1f}" + (f" ({row['macro_f1']:.1f})" if key == "accuracy" else "")
            if parts[0] == "baseline":
                lines.append(f"| {BASELINES[parts[1]]} (ours) | unicode | {dataset} | {value} |")
            else:
                trained = dataset if parts[0] == "mono" else "all six languages"
                lines.append(f"| {parts[2]} | {parts[1]} | {trained} | {value} |")
    return "\n".join(lines)


def overview(summary: dict) -> str:
    """UMSAB in one table: the references, our baselines, fixed recipes, and the best CNN recipe
    per language (the best of every CNN row: chosen on test, so an optimistic figure)."""
    fixed = {
        "mono, unicode": "mono / unicode / ensemble of 5 + char-lr",
        "mono, subword": None,  # ensemble + char-lr with whichever member count ran
        "six together, unicode": "multi / unicode / ensemble of 5 + char-lr",
    }
    head = (
        "| language | FastText-mono (paper) | XLM-R-mono (paper) | word TF-IDF + LR | char TF-IDF + LR | "
        + " | ".join(f"CNN ens. + char-lr, {k}" for k in fixed)
        + " | best of our recipes (chosen on test) | target: best ≥ max(FastText, char) |"
    )
    lines = [head, "|---|" + "--:|" * (5 + len(fixed)) + "---|"]
    columns: dict[str, list[float]] = {}
    for dataset in UMSAB:
        rows = summary.get(dataset, {})
        ref = REGISTRY[dataset].reference
        subword = next(
            (w for w in rows if w.startswith("mono / subword / ensemble") and "char-lr" in w), None
        )
        values = {
            "fasttext": ref.get("fasttext-mono"),
            "xlmr": ref.get("xlm-r-mono"),
            "word": rows.get("baseline / tfidf-lr", {}).get("macro_f1"),
            "char": rows.get("baseline / char-lr", {}).get("macro_f1"),
        }
        for name, who in fixed.items():
            who = subword if who is None else who
            values[name] = rows.get(who, {}).get("macro_f1") if who else None
        cnn = {w: r["macro_f1"] for w, r in rows.items() if not w.startswith("baseline")}
        best = max(cnn, key=cnn.get) if cnn else None
        values["best"] = cnn[best] if best else None
        for key, value in values.items():
            columns.setdefault(key, []).append(value)
        bar = max(v for v in (values["fasttext"], values["char"]) if v is not None)
        met = (
            "—"
            if best is None
            else ("met" if values["best"] >= bar else "missed") + f" ({values['best'] - bar:+.2f})"
        )
        shown = [f"{v:.1f}" if v is not None else "" for v in values.values()]
        shown[-1] = (
            f"{values['best']:.1f} ({best.replace('multi', 'six').replace(' / ', ', ')})" if best else ""
        )
        lines.append(f"| {dataset} | " + " | ".join(shown) + f" | {met} |")
    means = [f"{np.mean(v):.1f}" if v and all(x is not None for x in v) else "" for v in columns.values()]
    lines.append("| **average** | " + " | ".join(means) + " | ≥ 60 |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--tokenizers", default="unicode,subword")
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--embedding-dim", type=int, help="default: Kim's 300")
    parser.add_argument(
        "--no-multi", dest="multi", action="store_false", help="skip the six languages together"
    )
    parser.add_argument("--data-dir")
    parser.add_argument("--runs", type=Path, default=RUNS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--quick", action="store_true", help="2 members, 2 epochs, small models: checks the path"
    )
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    args.tokenizers = [t.strip() for t in args.tokenizers.split(",") if t.strip()]
    args.model_options = {"embedding_dim": args.embedding_dim} if args.embedding_dim else {}
    if args.quick:
        args.members, args.epochs, args.model_options = 2, 2, {"embedding_dim": 32, "num_filters": 16}
    started = time.perf_counter()
    if not args.table_only:
        run(args)
    cells = load_cells(args.runs)
    summary = summarize(cells)
    record = {
        "machine": machine(),
        "command": "python benchmarks/multilingual.py " + " ".join(sys.argv[1:]),
        "seconds_this_call": round(time.perf_counter() - started, 1),
        "training_seconds": round(
            sum(c["seconds"] for c in cells if c["kind"] == "cnn" and c["recipe"] == "single"), 1
        ),
        "summary": summary,
        "cells": cells,
    }
    atomic_write_bytes(args.out, json.dumps(record, indent=2).encode())
    print(overview(summary))
    print(table(summary))


if __name__ == "__main__":
    main()
