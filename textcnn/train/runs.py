"""From texts to trained classifiers: one run (`train_classifier`), and a protocol's folds (`train_folds`).

An ensemble of K (`train_folds(..., ensemble=K)`) is K runs of one fold that differ only in their
seed (seed, seed + 1, ...), trained together by `fit_group` and joined by `finish_ensemble`.

A run is a `data.Fold` (train, dev, and maybe test texts) plus `RunSettings`: the vocabulary comes
from the training texts only, pretrained vectors are read for that vocabulary, the model is drawn
from the run's seed, `textcnn.train.loop.fit` trains it, and the outcome carries the `Classifier` with
its dev and test metrics. `train_folds` runs every fold of a protocol, one at a time (with
checkpoints) or together as one batched computation, and writes each fold's bundle.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from textcnn.data.corpus import Corpus, Fold, LabeledTexts
from textcnn.data.text import TextEncoder, Vocabulary
from textcnn.errors import ConfigError
from textcnn.inference.bundle import Classifier
from textcnn.inference.metrics import classification_metrics
from textcnn.model.cnn import ModelConfig, TextCNN
from textcnn.model.ensemble import Ensemble
from textcnn.model.pooling import SLOT_POOLINGS
from textcnn.runtime import atomic_write_bytes, package_versions
from textcnn.train.checkpoint import CHECKPOINT_FILE
from textcnn.train.loop import LOG_FILE, EncodedSplit, FitResult, TrainConfig, evaluate_split, fit, fit_group


@dataclass(frozen=True)
class VocabConfig:
    min_count: int = 1  # Kim keeps every training word
    max_size: int | None = None
    max_length: int | None = None  # truncate longer texts (tokens); None: keep everything


@dataclass(frozen=True)
class RunSettings:
    """Everything a run takes besides its data: the same for every fold of a protocol.

    `model_options` are ModelConfig fields other than vocab_size and num_classes (which follow
    from the data); with `vectors`, embedding_dim follows from the vectors.
    """

    model_options: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)
    vectors: str | None = None  # a vectors file or a named source (textcnn.data.vectors)


def texts_fold(
    train: tuple[Sequence[str], Sequence[str]],
    dev: tuple[Sequence[str], Sequence[str]],
    test: tuple[Sequence[str], Sequence[str]] | None = None,
) -> Fold:
    """A fold of (texts, labels) held in memory, for callers that have no corpus behind them."""

    def part(name: str, pair: tuple[Sequence[str], Sequence[str]]) -> LabeledTexts:
        return LabeledTexts(tuple(pair[0]), tuple(pair[1]), f"<{name} texts>")

    return Fold(
        "split", None, part("train", train), part("dev", dev), part("test", test) if test else None, "given"
    )


@dataclass
class TrainOutcome:
    classifier: Classifier
    fit: FitResult
    dev_metrics: dict
    test_metrics: dict | None
    vectors: dict | None  # coverage report of the pretrained vectors, if any
    test_predictions: list[int] | None = None  # class ids, in the order of the test texts


@dataclass
class PreparedRun:
    """Everything one training needs before `fit`: vocabulary, model, encoded splits."""

    model: TextCNN
    encoder: TextEncoder
    label_names: list[str]
    train: EncodedSplit
    dev: EncodedSplit
    test: EncodedSplit | None
    settings: RunSettings
    coverage: dict | None
    fingerprint: dict
    info: dict | None


def prepare_run(
    fold: Fold,
    label_names: Sequence[str],
    settings: RunSettings | None = None,
    lowercase: bool = True,
    info: dict | None = None,
) -> PreparedRun:
    """Vocabulary from the fold's training texts only, optional pretrained vectors, the initial
    model (drawn right after seeding with the run's seed, so it is the same wherever it will train).
    `lowercase` is the corpus's tokenizer setting; `info` goes into the bundle's config."""
    settings = settings or RunSettings()
    options, vectors = dict(settings.model_options), settings.vectors
    variant = options.get("variant", "rand")
    if variant != "rand" and vectors is None:
        raise ConfigError(f"variant {variant!r} needs pretrained vectors (--vectors)")
    parts = [fold.train, fold.dev, *([fold.test] if fold.test is not None and len(fold.test) else [])]
    label_index = {name: i for i, name in enumerate(label_names)}
    unknown = sorted({label for part in parts for label in part.labels} - set(label_index))
    if unknown:
        raise ConfigError(f"labels not among the label names: {', '.join(map(repr, unknown[:5]))}")

    torch.manual_seed(settings.train.seed)
    max_length = settings.vocab.max_length
    probe = TextEncoder(Vocabulary(["<pad>", "<unk>"]), lowercase, max_length)
    vocab = Vocabulary.build(
        (probe.tokenize(t) for t in fold.train.texts), settings.vocab.min_count, settings.vocab.max_size
    )
    encoder = TextEncoder(vocab, lowercase, max_length)

    coverage = table = None
    if vectors is not None:
        from textcnn.data.vectors import load_pretrained

        pretrained = load_pretrained(vocab, vectors, seed=settings.train.seed)
        options["embedding_dim"] = pretrained.dim
        table = torch.from_numpy(pretrained.matrix)
        coverage = {
            "source": str(vectors),
            **pretrained.coverage.to_json(),
            "summary": str(pretrained.coverage),
        }
    # A local pooling's slots (padded-avg's padded length) follow from the longest training sentence,
    # known once it is encoded: until then the config holds a placeholder (slots given are kept).
    set_slots = options.get("pooling") in SLOT_POOLINGS and not options.get("region_slots")
    config = ModelConfig(
        vocab_size=len(vocab),
        num_classes=len(label_names),
        **(options | ({"region_slots": 1} if set_slots else {})),
    )
    widest = max(config.filter_widths)
    train, dev, *test = (
        EncodedSplit.encode(encoder, part.texts, [label_index[y] for y in part.labels], widest)
        for part in parts
    )
    if set_slots:
        config = dataclasses.replace(config, region_slots=config.region_slots_for(int(train.lengths.max())))
    model = TextCNN(config)  # nothing since the seeding drew random numbers: the same initial model
    if table is not None:
        model.load_pretrained(table)
    fingerprint = {
        "vocab_size": len(vocab),
        "train_rows": len(train),
        "dev_rows": len(dev),
        "vectors": str(vectors) if vectors else None,
    }
    return PreparedRun(
        model,
        encoder,
        list(label_names),
        train,
        dev,
        test[0] if test else None,
        settings,
        coverage,
        fingerprint,
        info,
    )


def finish_run(run: PreparedRun, result: FitResult) -> TrainOutcome:
    """Metrics of the trained model on dev (and test), and the classifier with its summary."""
    model, label_names = run.model, run.label_names
    dev_predictions, _ = evaluate_split(model, run.dev)
    dev_metrics = classification_metrics(run.dev.labels.tolist(), dev_predictions.tolist(), label_names)
    test_metrics = test_predictions = None
    if run.test is not None:
        predicted, _ = evaluate_split(model, run.test)
        test_predictions = predicted.tolist()
        test_metrics = classification_metrics(run.test.labels.tolist(), test_predictions, label_names)

    model.to("cpu")
    summary = {
        "training": {
            "config": run.settings.train.to_json(),
            "vocab": dataclasses.asdict(run.settings.vocab),
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "stopped_early": result.stopped_early,
            "interrupted": result.interrupted,
            "seconds": round(result.seconds, 2),
            "versions": package_versions(),
        },
        "vectors": run.coverage,
        "metrics": {"dev": _headline(dev_metrics), "test": _headline(test_metrics) if test_metrics else None},
        **(run.info or {}),
    }
    classifier = Classifier(model, run.encoder, label_names, summary)
    return TrainOutcome(classifier, result, dev_metrics, test_metrics, run.coverage, test_predictions)


def train_classifier(
    fold: Fold,
    label_names: Sequence[str],
    settings: RunSettings | None = None,
    lowercase: bool = True,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    info: dict | None = None,
) -> TrainOutcome:
    """`prepare_run`, `fit`, `finish_run`: from a fold's texts to a trained classifier with its
    metrics. With `run_dir`, per-epoch checkpoints and `resume` as `fit` has them."""
    run = prepare_run(fold, label_names, settings, lowercase, info)
    result = fit(
        run.model, run.train, run.dev, run.settings.train, run_dir, resume, progress, run.fingerprint
    )
    return finish_run(run, result)


def train_together(
    runs: Sequence[PreparedRun],
    progress: bool = True,
    on_outcome: Callable[[int, TrainOutcome], None] | None = None,
) -> list[TrainOutcome]:
    """Train prepared runs as one group (`fit_group`) per model shape; `on_outcome(k, outcome)`
    as each run finishes, so its result can be kept before the others are done.

    Runs of one protocol mostly share their shape; a local pooling's region slots follow each
    fold's longest training sentence, so its folds may differ: each shape trains as its own group,
    one after another (after a Ctrl-C the shapes not yet started are not trained, nor returned)."""
    outcomes: dict[int, TrainOutcome] = {}
    shapes: dict[ModelConfig, list[int]] = {}
    for k, run in enumerate(runs):
        shapes.setdefault(dataclasses.replace(run.model.config, vocab_size=2), []).append(k)

    for members in shapes.values():

        def finished(position: int, result: FitResult, members: list[int] = members) -> None:
            k = members[position]
            outcomes[k] = finish_run(runs[k], result)
            if on_outcome is not None:
                on_outcome(k, outcomes[k])

        fit_group(
            [runs[k].model for k in members],
            [runs[k].train for k in members],
            [runs[k].dev for k in members],
            [runs[k].settings.train for k in members],
            progress=progress,
            on_finished=finished,
        )
        if any(outcomes[k].fit.interrupted for k in members):
            break  # Ctrl-C: the shapes not yet started are left out
    return [outcomes[k] for k in sorted(outcomes)]


def member_settings(settings: RunSettings, member: int) -> RunSettings:
    """Member k of an ensemble: the run's settings with seed + k (initial weights, data order,
    dropout masks, random vectors for words the pretrained table lacks)."""
    return dataclasses.replace(
        settings, train=dataclasses.replace(settings.train, seed=settings.train.seed + member)
    )


def finish_ensemble(runs: Sequence[PreparedRun], members: Sequence[TrainOutcome]) -> TrainOutcome:
    """One classifier from the trained members of one fold (`member_settings`): their weights
    stacked as an `Ensemble`, its own dev and test metrics, and what each member did, in the
    bundle's `ensemble` section. Its `fit`: the latest best epoch of any member, the ensemble's
    dev accuracy, interrupted if any member was."""
    first = runs[0]
    ensemble = Ensemble.of([m.classifier.model for m in members]).eval()
    dev_predictions, _ = evaluate_split(ensemble, first.dev)
    dev_metrics = classification_metrics(
        first.dev.labels.tolist(), dev_predictions.tolist(), first.label_names
    )
    test_metrics = test_predictions = None
    if first.test is not None:
        predicted, _ = evaluate_split(ensemble, first.test)
        test_predictions = predicted.tolist()
        test_metrics = classification_metrics(first.test.labels.tolist(), test_predictions, first.label_names)
    fits = [m.fit for m in members]
    fit = FitResult(
        best_epoch=max(f.best_epoch for f in fits),
        best_dev_accuracy=dev_metrics["accuracy"],
        epochs_run=max(f.epochs_run for f in fits),
        history=[{"member": k, **epoch} for k, f in enumerate(fits) for epoch in f.history],
        interrupted=any(f.interrupted for f in fits),
        stopped_early=all(f.stopped_early for f in fits),
        seconds=max(f.seconds for f in fits),
    )
    records = [
        {
            "seed": run.settings.train.seed,
            "best_epoch": m.fit.best_epoch,
            "epochs_run": m.fit.epochs_run,
            "stopped_early": m.fit.stopped_early,
            "dev_accuracy": m.dev_metrics["accuracy"],
            "test_accuracy": m.test_metrics["accuracy"] if m.test_metrics else None,
        }
        for run, m in zip(runs, members, strict=True)
    ]
    info = dict(members[0].classifier.info)
    info["training"] = info["training"] | {
        "best_epoch": fit.best_epoch,
        "epochs_run": fit.epochs_run,
        "stopped_early": fit.stopped_early,
        "interrupted": fit.interrupted,
        "seconds": round(fit.seconds, 2),
    }
    info["metrics"] = {
        "dev": _headline(dev_metrics),
        "test": _headline(test_metrics) if test_metrics else None,
    }
    info["ensemble"] = {"combine": "mean of the members' probabilities", "members": records}
    classifier = Classifier(ensemble, first.encoder, first.label_names, info)
    return TrainOutcome(classifier, fit, dev_metrics, test_metrics, first.coverage, test_predictions)


def _headline(metrics: dict) -> dict:
    return {k: metrics[k] for k in ("n", "accuracy", "macro_f1")}


# -- a data protocol: one fixed split, or the folds of a cross-validation ----------------------


@dataclass
class ProtocolRun:
    outcomes: list[TrainOutcome]  # one per fold, in order
    bundles: list[Path]
    summary: dict  # JSON-ready: per-fold metrics, and mean ± std when there are several folds


def train_folds(
    corpus: Corpus,
    folds: Sequence[Fold],
    out: str | Path,
    settings: RunSettings | None = None,
    resume: bool = False,
    progress: bool = True,
    half: bool = False,
    on_fold: Callable[[Fold, TrainOutcome], None] | None = None,
    together: bool = False,
    ensemble: int = 1,
) -> ProtocolRun:
    """Train one bundle per fold and summarise; a single fold writes its bundle straight to `out`.

    Several folds write `out/fold-K/` each, plus `out/cv.json` with every fold's metrics and their
    mean and standard deviation. `on_fold(fold, outcome)` is called as each fold ends.
    `together=True` trains the folds as one group (`fit_group`): faster, but without per-epoch
    checkpoints; after an interruption, `resume` keeps the folds that finished and trains the
    others again, one at a time.

    `ensemble=K` (> 1) writes one ensemble bundle per fold: K members (seeds seed .. seed + K - 1)
    trained as one group, all folds' members in one group with `together`. Ensembles keep no
    per-epoch checkpoints: Ctrl-C writes each fold's members at their best epoch so far (marked
    interrupted), and `resume` keeps the folds whose ensembles finished and trains the others again
    from the start.
    """
    from textcnn.inference.metrics import summarize_folds

    out, settings = Path(out), settings or RunSettings()
    run_dirs = [out if len(folds) == 1 else out / fold.name for fold in folds]
    done: dict[int, tuple[TrainOutcome, Path | None]] = {}  # position in `folds` -> outcome, bundle

    def keep(position: int, outcome: TrainOutcome) -> None:
        run_dir = run_dirs[position]
        bundle = _write_bundle(outcome, run_dir, half)
        if not outcome.fit.interrupted:  # finished: nothing left to resume
            (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
        done[position] = (outcome, bundle)
        if on_fold is not None:
            on_fold(folds[position], outcome)

    pending = []
    for position, fold in enumerate(folds):
        if resume and _finished_bundle(run_dirs[position]):  # completed before the interruption
            done[position] = (_finished_outcome(run_dirs[position]), run_dirs[position])
            if on_fold is not None:
                on_fold(fold, done[position][0])
        else:
            pending.append(position)

    def info(position: int) -> dict:
        return _data_info(corpus, folds[position], settings.train.seed)

    if ensemble != 1:
        _train_ensembles(corpus, folds, settings, pending, ensemble, together, progress, info, keep)
    elif together and len(pending) > 1:
        prepared = [
            prepare_run(folds[p], corpus.label_names, settings, corpus.lowercase, info(p)) for p in pending
        ]
        train_together(prepared, progress, on_outcome=lambda k, outcome: keep(pending[k], outcome))
    else:
        for position in pending:
            run_dir = run_dirs[position]
            outcome = train_classifier(
                folds[position],
                corpus.label_names,
                settings,
                corpus.lowercase,
                run_dir,
                resume and (run_dir / CHECKPOINT_FILE).exists(),  # a fold never started starts afresh
                progress,
                info(position),
            )
            keep(position, outcome)
            if outcome.fit.interrupted:
                break
    ordered = sorted(done)
    outcomes = [done[position][0] for position in ordered]
    bundles = [done[position][1] for position in ordered if done[position][1] is not None]
    rows = [_fold_row(folds[position], run_dirs[position], done[position][0]) for position in ordered]
    summary: dict = {"dataset": corpus.name, "folds": rows}
    tested = [o.test_metrics for o in outcomes if o.test_metrics]
    if len(tested) > 1:
        summary["test"] = summarize_folds(tested)
    if len(folds) > 1:
        atomic_write_bytes(out / "cv.json", json.dumps(summary, indent=2).encode())
    return ProtocolRun(outcomes, bundles, summary)


def _train_ensembles(
    corpus: Corpus,
    folds: Sequence[Fold],
    settings: RunSettings,
    pending: Sequence[int],
    size: int,
    together: bool,
    progress: bool,
    info: Callable[[int], dict],
    keep: Callable[[int, TrainOutcome], None],
) -> None:
    """`train_folds`' ensembles: the pending folds' members, as one group (`together`) or fold by
    fold; `keep(position, outcome)` as soon as a fold's last member has stopped."""
    if size < 1:
        raise ConfigError(f"an ensemble needs at least one member, got {size}")
    for positions in [list(pending)] if together else [[p] for p in pending]:
        keys = [(p, k) for p in positions for k in range(size)]
        prepared = [
            prepare_run(folds[p], corpus.label_names, member_settings(settings, k), corpus.lowercase, info(p))
            for p, k in keys
        ]
        if not _train_members(keys, prepared, size, progress, keep):
            return  # Ctrl-C: the folds not yet trained stay untrained


def _train_members(
    keys: list[tuple[int, int]],
    prepared: list[PreparedRun],
    size: int,
    progress: bool,
    keep: Callable[[int, TrainOutcome], None],
) -> bool:
    """Members `keys` ((fold position, member) pairs) as one group; False if interrupted."""
    members: dict[int, dict[int, TrainOutcome]] = {p: {} for p, _ in keys}

    def finished(i: int, outcome: TrainOutcome) -> None:
        p, k = keys[i]
        members[p][k] = outcome
        if len(members[p]) == size:
            runs = [prepared[keys.index((p, j))] for j in range(size)]
            keep(p, finish_ensemble(runs, [members[p][j] for j in range(size)]))

    outcomes = train_together(prepared, progress, on_outcome=finished)
    return len(outcomes) == len(prepared) and not any(o.fit.interrupted for o in outcomes)


def _write_bundle(outcome: TrainOutcome, run_dir: Path, half: bool) -> Path | None:
    """The outcome's bundle in `run_dir` (an ensemble's with every member's epochs in its log);
    None when it was interrupted before any epoch ended: nothing worth writing."""
    if outcome.fit.best_epoch == 0:
        return None
    bundle = outcome.classifier.save(run_dir, half=half)
    if outcome.classifier.is_ensemble:
        lines = "".join(json.dumps(epoch) + "\n" for epoch in outcome.fit.history)
        atomic_write_bytes(run_dir / LOG_FILE, lines.encode())
    return bundle


def _data_info(corpus: Corpus, fold: Fold, split_seed: int) -> dict:
    """The bundle's `data` section: where its training data came from."""
    return {
        "data": {
            "dataset": corpus.name,
            "source": corpus.source,
            **({"files": corpus.files} if corpus.files else {}),
            "fold": fold.name,
            "fold_index": fold.index,
            "folds": fold.of,
            "split_seed": split_seed,
            "dev": fold.dev_source,
            "rows": {
                "train": len(fold.train),
                "dev": len(fold.dev),
                "test": len(fold.test) if fold.test else 0,
            },
        }
    }


def _finished_bundle(run_dir: Path) -> bool:
    """A bundle from a run that ended (not one kept at an interruption, and no checkpoint left)."""
    if (run_dir / CHECKPOINT_FILE).exists() or not (run_dir / "config.json").exists():
        return False
    try:
        training = json.loads((run_dir / "config.json").read_text(encoding="utf-8")).get("training", {})
    except (OSError, ValueError):
        return False
    return not training.get("interrupted", False)


def _fold_row(fold: Fold, run_dir: Path, outcome: TrainOutcome) -> dict:
    return {
        "fold": fold.name,
        "bundle": str(run_dir),
        "dev": _headline(outcome.dev_metrics),
        "test": _headline(outcome.test_metrics) if outcome.test_metrics else None,
        "best_epoch": outcome.fit.best_epoch,
        "seconds": round(outcome.fit.seconds, 2),
    }


def _finished_outcome(run_dir: Path) -> TrainOutcome:
    """What a completed fold's bundle and log say about its run (for --resume of a CV run)."""
    classifier = Classifier.load(run_dir)
    training, metrics = classifier.info.get("training", {}), classifier.info.get("metrics", {})
    log = run_dir / LOG_FILE
    history = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    fit_result = FitResult(
        best_epoch=training.get("best_epoch", 0),
        best_dev_accuracy=(metrics.get("dev") or {}).get("accuracy", float("nan")),
        epochs_run=training.get("epochs_run", len(history)),
        history=history,
        interrupted=False,
        stopped_early=training.get("stopped_early", False),
        seconds=training.get("seconds", 0.0),
    )
    return TrainOutcome(
        classifier, fit_result, metrics.get("dev") or {}, metrics.get("test"), classifier.info.get("vectors")
    )
