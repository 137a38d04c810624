"""Training a study's runs: one at a time, in batched groups, or sent out to a `GroupRunner`.

`run_study` trains every planned run that `results.jsonl` does not hold yet and appends each one
as it finishes, so an interrupted study continues where it stopped; a run stopped by Ctrl-C is
not a result and trains again on resume. Torch is imported only when a run trains.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from textcnn.data.splits import Fold
from textcnn.errors import ConfigError
from textcnn.study.arms import arm_options
from textcnn.study.plan import (
    Run,
    StudyConfig,
    group_runs,
    plan_runs,
    study_folds,
    study_tokenizer,
    training_fold,
)
from textcnn.study.results import PLAN_FILE, RESULTS_FILE, append_row, load_results


def _settings(run: Run, config: StudyConfig):
    from textcnn.train.config import TrainConfig
    from textcnn.train.runs import RunSettings

    return RunSettings(
        model_options={**config.model_options, "variant": config.variant, **arm_options(run.pooling)},
        train=TrainConfig(seed=run.seed, epochs=config.epochs, patience=config.patience),
        vectors=config.vectors,
        tokenizer=study_tokenizer(config, run.dataset),
    )


def train_model(run: Run, fold: Fold, label_names: Sequence[str], config: StudyConfig):
    """One run's training with the study's settings; returns the `TrainOutcome`."""
    from textcnn.train.runs import train_classifier

    return train_classifier(training_fold(fold, config), label_names, _settings(run, config), progress=False)


def _learned(outcome, fold: Fold) -> dict:
    """A learned pooling's record: where its maps sit between average and max on the test
    sentences (`textcnn.study.learned`); nothing for any other pooling."""
    from textcnn.model.pooling import get_pooling

    if not get_pooling(outcome.classifier.model.config.pooling).learned or fold.test is None:
        return {}
    from textcnn.study.learned import learned_record

    return {"learned_maps": learned_record(outcome.classifier, fold.test.texts)}


def _row(run: Run, fold: Fold, label_names: Sequence[str], outcome, seconds: float, **extra) -> dict:
    label_index = {name: i for i, name in enumerate(label_names)}
    return {
        "dataset": run.dataset,
        "fold": run.fold,
        "seed": run.seed,
        "pooling": run.pooling,
        "test_accuracy": outcome.test_metrics["accuracy"],
        "test_macro_f1": outcome.test_metrics["macro_f1"],
        "dev_accuracy": outcome.fit.best_dev_accuracy,
        "best_epoch": outcome.fit.best_epoch,
        "epochs_run": outcome.fit.epochs_run,
        "seconds": round(seconds, 2),
        # A single split's predictions and labels, for McNemar's test between poolings.
        "test_predictions": outcome.test_predictions if run.fold is None else None,
        "test_labels": [label_index[y] for y in fold.test.labels] if run.fold is None else None,
        **_learned(outcome, fold),
        **extra,
    }


def train_run(run: Run, fold: Fold, label_names: Sequence[str], config: StudyConfig) -> dict:
    """One training and its test-set record (predictions kept for McNemar's test)."""
    started = time.perf_counter()
    outcome = train_model(run, fold, label_names, config)
    if outcome.fit.interrupted:  # Ctrl-C: the trainer kept the best so far, which is not a finished run
        raise KeyboardInterrupt
    return _row(run, fold, label_names, outcome, time.perf_counter() - started)


def train_runs_together(
    runs: Sequence[Run],
    folds: Sequence[Fold],
    label_names: Sequence[str],
    config: StudyConfig,
    on_row: Callable[[dict], None],
) -> None:
    """Runs of one (dataset, pooling) as one batched training (`textcnn.train.runs.train_together`);
    `on_row(row)` as each run stops. A row's `seconds` is the group's wall time until that run
    stopped; rows of one group share its `group` name and `group_size`."""
    from textcnn.train.runs import prepare_run, train_together

    prepared = [
        prepare_run(training_fold(fold, config), label_names, _settings(run, config))
        for run, fold in zip(runs, folds, strict=True)
    ]
    started = time.perf_counter()
    # Unique within a study (training_seconds counts a group once by its name): two chunks of one
    # shape can start in the same second, on a cluster or after a quick group.
    first = runs[0]
    name = f"{first.dataset}/{first.pooling}/fold {first.fold}/seed {first.seed}/{time.time():.0f}"

    interrupted = []

    def finished(k: int, outcome) -> None:
        if outcome.fit.interrupted:  # stopped by Ctrl-C mid-training: not a result, trained again on resume
            interrupted.append(k)
            return
        seconds = time.perf_counter() - started
        on_row(_row(runs[k], folds[k], label_names, outcome, seconds, group=name, group_size=len(runs)))

    train_together(prepared, progress=False, on_outcome=finished)
    if interrupted:  # the trainer swallows Ctrl-C to keep its best models; a study stops there
        raise KeyboardInterrupt


# Trains the groups somewhere else than in this process (`textcnn.study.ray_executor`: on a Ray cluster):
# runner(groups, folds by dataset, label names by dataset, config, together, record), calling
# record(row) here, in the study's process, for each run as it comes back; so this process stays
# the only writer of results.jsonl, and resuming and growing work as for runs trained here.
# `together`: train each group with `train_runs_together` (group_size > 1), else each run with `train_run`.
GroupRunner = Callable[
    [list[list[Run]], dict[str, list[Fold]], dict[str, list[str]], StudyConfig, bool, Callable[[dict], None]],
    None,
]


def run_study(
    config: StudyConfig,
    out_dir: str | Path,
    data_dir: str | None = None,
    progress: bool = True,
    train: Callable[[Run, Fold, Sequence[str], StudyConfig], dict] = train_run,
    group_size: int = 1,
    train_together: Callable[..., None] = train_runs_together,
    runner: GroupRunner | None = None,
    report_only: bool = False,
) -> list[dict]:
    """Run every run not yet in `out_dir/results.jsonl`; return all finished rows.
    With `report_only`, train nothing: the finished rows of a study trained with these settings.

    With `group_size` > 1, runs of one dataset and pooling (its seeds and folds) train together,
    up to `group_size` at a time, as one batched computation; each run is still recorded as it ends.
    With a `runner`, the same groups (runs alone when `group_size` is 1) train where it sends them.
    """
    out = Path(out_dir)
    plan_path = out / PLAN_FILE
    if report_only and not plan_path.exists():
        raise ConfigError(f"{out} holds no study ({PLAN_FILE} is missing) to report on")
    out.mkdir(parents=True, exist_ok=True)
    if plan_path.exists():
        before = StudyConfig(**json.loads(plan_path.read_text(encoding="utf-8"))).run_settings()
        changed = sorted(k for k, v in config.run_settings().items() if before.get(k) != v)
        if changed:
            raise ConfigError(
                f"{out} holds a study trained with other settings ({', '.join(changed)}); use another --out"
            )
    if report_only:
        return load_results(out / RESULTS_FILE)
    plan_path.write_text(json.dumps(config.to_json(), indent=2), encoding="utf-8")

    corpora, folds = study_folds(config, data_dir)
    results_path = out / RESULTS_FILE
    rows = load_results(results_path)
    done = {(r["dataset"], r["fold"], r["seed"], r["pooling"]) for r in rows}
    pending = [run for run in plan_runs(config, folds) if run.key not in done]
    fold_of = {(name, f.index): f for name, fs in folds.items() for f in fs}
    bar = tqdm(total=len(done) + len(pending), initial=len(done), unit="run", disable=not progress)

    def record(row: dict) -> None:
        append_row(results_path, row)
        rows.append(row)
        bar.update()

    try:
        if runner is not None:
            groups = group_runs(pending, group_size)
            bar.set_description(f"{len(pending)} runs in {len(groups)} groups, sent out")
            labels = {name: list(corpus.label_names) for name, corpus in corpora.items()}
            runner(groups, folds, labels, config, group_size > 1, record)
        elif group_size > 1:
            for group in group_runs(pending, group_size):
                first = group[0]
                bar.set_description(f"{first.dataset} {first.pooling}: {len(group)} runs together")
                group_folds = [fold_of[(run.dataset, run.fold)] for run in group]
                train_together(group, group_folds, corpora[first.dataset].label_names, config, record)
        else:
            for run in pending:
                fold_name = f" fold {run.fold}" if run.fold is not None else ""
                bar.set_description(f"{run.dataset} {run.pooling} seed {run.seed}{fold_name}")
                record(train(run, fold_of[(run.dataset, run.fold)], corpora[run.dataset].label_names, config))
    finally:
        bar.close()
    return rows
