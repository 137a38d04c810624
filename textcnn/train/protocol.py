"""A data protocol: one fixed split, or the folds of a cross-validation, one bundle per fold.

`train_folds` runs every fold of a protocol, one at a time (with checkpoints) or together as one
batched computation, and writes each fold's bundle: a single fold's straight to `out`, several
folds' to `out/fold-K/` with `out/cv.json` beside them. `ensemble=K` makes each fold's bundle an
ensemble of K runs (`textcnn.train.runs.member_settings`, `finish_ensemble`), and a `Mixture` a mixed
one (`finish_mixed`: members that pool differently, a linear member). What this adds to
a single run (`textcnn.train.runs`) is the folders: where each fold's bundle goes, which folds a
`--resume` keeps (a bundle that finished) and which it trains again, and the summary over folds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from textcnn.data.splits import Corpus, Fold
from textcnn.errors import ConfigError
from textcnn.inference.classifier import Classifier
from textcnn.runtime import atomic_write_bytes
from textcnn.train.checkpoint import CHECKPOINT_FILE
from textcnn.train.loop import LOG_FILE, FitResult, fit
from textcnn.train.runs import (
    Mixture,
    PreparedRun,
    RunSettings,
    TrainOutcome,
    finish_ensemble,
    finish_mixed,
    finish_run,
    headline,
    member_settings,
    prepare_run,
    train_together,
)


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
    mixture: Mixture | None = None,
    on_prepared: Callable[[Fold, PreparedRun], None] | None = None,
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
    from the start. A `mixture` that asks for more than K seeds of one shape (several poolings, a
    linear member, dev weights) makes each fold's ensemble a mixed one; `ensemble=0` with a linear
    member: the linear member alone, as a bundle.

    The settings' tokenizer, if none was chosen, is the one the corpus suggests. `on_prepared(fold,
    run)` is called once per fold, when its first run is prepared (its tokenizer report is known),
    before any training.
    """
    from textcnn.inference.metrics import summarize_folds

    out, settings = Path(out), (settings or RunSettings()).for_corpus(corpus)
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

    announced: set[int] = set()

    def prepare(position: int, run_settings: RunSettings) -> PreparedRun:
        fold = folds[position]
        run = prepare_run(
            fold, corpus.label_names, run_settings, _data_info(corpus, fold, settings.train.seed)
        )
        if on_prepared is not None and position not in announced:
            announced.add(position)
            on_prepared(fold, run)
        return run

    mixture = mixture or Mixture()
    mixture.check(ensemble)
    if ensemble != 1 or mixture.mixed:
        _train_ensembles(prepare, settings, pending, ensemble, together, progress, keep, mixture)
    elif together and len(pending) > 1:
        prepared = [prepare(p, settings) for p in pending]
        train_together(prepared, progress, on_outcome=lambda k, outcome: keep(pending[k], outcome))
    else:
        for position in pending:
            run_dir = run_dirs[position]
            run = prepare(position, settings)
            resumed = resume and (run_dir / CHECKPOINT_FILE).exists()  # a fold never started starts afresh
            result = fit(
                run.model, run.train, run.dev, settings.train, run_dir, resumed, progress, run.fingerprint
            )
            outcome = finish_run(run, result)
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
    prepare: Callable[[int, RunSettings], PreparedRun],
    settings: RunSettings,
    pending: Sequence[int],
    size: int,
    together: bool,
    progress: bool,
    keep: Callable[[int, TrainOutcome], None],
    mixture: Mixture,
) -> None:
    """`train_folds`' ensembles: the pending folds' members, as one group (`together`) or fold by
    fold; `keep(position, outcome)` as soon as a fold's last member has stopped."""
    if size < 0 or (size == 0 and mixture.linear is None):
        raise ConfigError(f"an ensemble needs at least one member, got {size}")
    for positions in [list(pending)] if together else [[p] for p in pending]:
        keys = [(p, k) for p in positions for k in range(size)]
        prepared = [prepare(p, member_settings(settings, k, mixture.poolings)) for p, k in keys]
        if size == 0:  # the linear member alone: a run prepared for its vocabulary and encoded splits
            for p in positions:
                keep(p, finish_mixed([], [], mixture, prepare(p, settings)))
            continue
        if not _train_members(keys, prepared, size, progress, keep, mixture):
            return  # Ctrl-C: the folds not yet trained stay untrained


def _train_members(
    keys: list[tuple[int, int]],
    prepared: list[PreparedRun],
    size: int,
    progress: bool,
    keep: Callable[[int, TrainOutcome], None],
    mixture: Mixture,
) -> bool:
    """Members `keys` ((fold position, member) pairs) as one group; False if interrupted."""
    members: dict[int, dict[int, TrainOutcome]] = {p: {} for p, _ in keys}

    def finished(i: int, outcome: TrainOutcome) -> None:
        p, k = keys[i]
        members[p][k] = outcome
        if len(members[p]) == size:
            runs = [prepared[keys.index((p, j))] for j in range(size)]
            outcomes = [members[p][j] for j in range(size)]
            if mixture.mixed:
                keep(p, finish_mixed(runs, outcomes, mixture, runs[0]))
            else:
                keep(p, finish_ensemble(runs, outcomes))

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
            **({"reading": corpus.reading} if corpus.reading else {}),
            **({"multi_label": True} if corpus.multi_label else {}),
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
        "dev": headline(outcome.dev_metrics),
        "test": headline(outcome.test_metrics) if outcome.test_metrics else None,
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
