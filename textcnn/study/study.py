"""The pooling study: the same runs with only the pooling changed, then paired statistics and a report.

Every arm shares everything but the pooling: the folds (fixed by the split seed), the training
seed (so the same batches and dropout masks where shapes agree, and the same initial embeddings
and convolutions: the model is built right after seeding, and the pooling only changes the size
of the last layer), the epochs and the early stopping. A run is one (dataset, fold, seed,
pooling); each finished run is appended to `results.jsonl` at once, so an interrupted study
continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from textcnn.data.corpus import Fold, LabeledTexts, load_registered, make_folds
from textcnn.errors import ConfigError
from textcnn.study.arms import NO_CONV, PADDED, REFERENCE, arm_options
from textcnn.study.stats import mcnemar, mean_and_std, paired_comparison

RESULTS_FILE, SUMMARY_FILE, REPORT_FILE, PLAN_FILE, FINDINGS_FILE = (
    "results.jsonl",
    "summary.json",
    "REPORT.md",
    "study.json",
    "FINDINGS.md",
)


@dataclass(frozen=True)
class StudyConfig:
    datasets: tuple[str, ...]
    poolings: tuple[str, ...]
    seeds: int = 3
    # Seeds on a dataset with one fixed split (SST, TREC), where seeds are the only replications;
    # None: `seeds`. Zhang & Wallace-style studies want more there (10) than per fold (3).
    fixed_split_seeds: int | None = None
    folds: int = 10  # cross-validated datasets: stratified k-fold
    max_folds: int | None = None  # run only the first N folds of a cross-validated dataset
    variant: str = "rand"
    vectors: str | None = None
    epochs: int = 25
    patience: int | None = 5
    split_seed: int = 0  # fixes the folds and held-out dev parts for every run
    max_train: int | None = None  # keep at most this many training sentences (quick budgets)
    model_options: dict = field(default_factory=dict)  # other ModelConfig fields, e.g. embedding_dim

    def __post_init__(self) -> None:
        for name in ("datasets", "poolings"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
            if not getattr(self, name):
                raise ConfigError(f"a study needs at least one of {name}")
        at_least_one = (self.max_folds, self.fixed_split_seeds)
        if self.seeds < 1 or self.folds < 2 or any(n is not None and n < 1 for n in at_least_one):
            raise ConfigError("seeds, fixed_split_seeds and max_folds must be >= 1, folds >= 2")
        if len(set(self.poolings)) != len(self.poolings):
            raise ConfigError(f"a pooling is listed twice: {', '.join(self.poolings)}")
        for arm in self.poolings:
            arm_options(arm)  # a bad arm fails here, before any training

    def to_json(self) -> dict:
        return dataclasses.asdict(self) | {"datasets": list(self.datasets), "poolings": list(self.poolings)}

    def run_settings(self) -> dict:
        """What every run's training depends on. Datasets, poolings, seeds and the number of folds
        run only choose which runs exist, so a study can grow by them and keep its finished runs."""
        grows_by = {"datasets", "poolings", "seeds", "fixed_split_seeds", "max_folds"}
        return {k: v for k, v in self.to_json().items() if k not in grows_by}

    def seeds_for(self, fold: Fold) -> int:
        """Seeds per arm on this fold: `fixed_split_seeds` on a fixed split, else `seeds`."""
        if fold.index is None and self.fixed_split_seeds is not None:
            return self.fixed_split_seeds
        return self.seeds

    def seeds_text(self) -> str:
        if self.fixed_split_seeds is None or self.fixed_split_seeds == self.seeds:
            return f"{self.seeds} seed(s)"
        return f"{self.seeds} seed(s) per fold, {self.fixed_split_seeds} on fixed splits"


@dataclass(frozen=True)
class Run:
    dataset: str
    fold: int | None  # None: the dataset's fixed split
    seed: int
    pooling: str

    @property
    def key(self) -> tuple:
        return (self.dataset, self.fold, self.seed, self.pooling)


def plan_runs(config: StudyConfig, folds_by_dataset: dict[str, list[Fold]]) -> list[Run]:
    """Dataset by dataset, fold by fold, seed by seed, every pooling in turn: a study stopped
    early still holds complete pairs."""
    return [
        Run(dataset, fold.index, seed, pooling)
        for dataset in config.datasets
        for fold in folds_by_dataset[dataset]
        for seed in range(config.seeds_for(fold))
        for pooling in config.poolings
    ]


def load_results(path: Path) -> list[dict]:
    """Finished runs; a last line cut short by a kill is dropped (and the file mended)."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number != len(lines):
                raise ConfigError(f"{path}:{number}: not a JSON line; the results file is damaged") from None
            path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return rows


def append_row(path: Path, row: dict) -> None:
    """One JSON line, flushed and synced at once: a kill loses at most the line being written."""
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")
        out.flush()
        os.fsync(out.fileno())


def _subsample(texts: LabeledTexts, limit: int | None, seed: int) -> LabeledTexts:
    if limit is None or len(texts.texts) <= limit:
        return texts
    return texts.subset(sorted(random.Random(seed).sample(range(len(texts)), limit)))


def _settings(run: Run, config: StudyConfig):
    from textcnn.train.loop import TrainConfig
    from textcnn.train.runs import RunSettings

    return RunSettings(
        model_options={**config.model_options, "variant": config.variant, **arm_options(run.pooling)},
        train=TrainConfig(seed=run.seed, epochs=config.epochs, patience=config.patience),
        vectors=config.vectors,
    )


def training_fold(fold: Fold, config: StudyConfig) -> Fold:
    """The fold as every run of the study (and its baselines) trains on it: train cut to max_train."""
    return dataclasses.replace(fold, train=_subsample(fold.train, config.max_train, config.split_seed))


# The study has always tokenized with lowercase=True, TREC included (whose corpus keeps case);
# kept so that a study grows on the settings its committed runs were trained with.
STUDY_LOWERCASE = True


def train_model(run: Run, fold: Fold, label_names: Sequence[str], config: StudyConfig):
    """One run's training with the study's settings; returns the `TrainOutcome`."""
    from textcnn.train.runs import train_classifier

    return train_classifier(
        training_fold(fold, config), label_names, _settings(run, config), STUDY_LOWERCASE, progress=False
    )


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
        prepare_run(training_fold(fold, config), label_names, _settings(run, config), STUDY_LOWERCASE)
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


def group_runs(runs: Sequence[Run], size: int) -> list[list[Run]]:
    """Runs sharing a model shape (dataset and pooling), in chunks of at most `size`.

    Within a dataset the chunks take turns: the first chunk of every pooling, then the second of
    every pooling, and so on, so that a study stopped (or cut by its budget) in the middle of a
    cross-validated dataset holds every arm on the same first folds, which is what pairs them.
    Datasets, and poolings within a turn, keep the order their first run has in the plan.
    """
    by_shape: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        by_shape.setdefault((run.dataset, run.pooling), []).append(run)
    by_dataset: dict[str, list[list[list[Run]]]] = {}
    for (dataset, _), shape_runs in by_shape.items():
        chunks = [shape_runs[i : i + size] for i in range(0, len(shape_runs), size)]
        by_dataset.setdefault(dataset, []).append(chunks)
    groups = []
    for shapes in by_dataset.values():
        for turn in range(max(len(chunks) for chunks in shapes)):
            groups += [chunks[turn] for chunks in shapes if turn < len(chunks)]
    return groups


def study_folds(config: StudyConfig, data_dir: str | None = None) -> tuple[dict, dict[str, list[Fold]]]:
    """(corpora, folds) by dataset: fixed splits as one fold, cross-validated ones cut to max_folds."""
    corpora = {name: load_registered(name, data_dir) for name in config.datasets}
    folds = {}
    for name, corpus in corpora.items():
        cross_validated = "all" in corpus.splits
        folds[name] = make_folds(
            corpus, folds=config.folds if cross_validated else None, seed=config.split_seed
        )
        if cross_validated and config.max_folds:
            folds[name] = folds[name][: config.max_folds]
    return corpora, folds


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


def training_seconds(rows: Sequence[dict]) -> float:
    """Wall time of the training behind `rows`: a group's runs overlap, so a group counts once."""
    groups: dict[str, float] = {}
    alone = 0.0
    for row in rows:
        if row.get("group"):
            groups[row["group"]] = max(groups.get(row["group"], 0.0), row["seconds"])
        else:
            alone += row["seconds"]
    return alone + sum(groups.values())


def summarize(rows: Sequence[dict], reference: str = REFERENCE) -> dict:
    """Per dataset: each pooling's mean ± std, and `reference` against each other pooling, paired."""
    by_dataset: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_dataset[row["dataset"]].append(row)
    summary: dict = {}
    for dataset, dataset_rows in by_dataset.items():
        by_pooling: dict[str, dict] = defaultdict(dict)
        for row in dataset_rows:
            by_pooling[row["pooling"]][(row["fold"], row["seed"])] = row
        arms = {}
        for pooling, runs in by_pooling.items():
            accuracy = mean_and_std([r["test_accuracy"] for r in runs.values()])
            macro_f1 = mean_and_std([r["test_macro_f1"] for r in runs.values()])
            arms[pooling] = {
                "runs": len(runs),
                "accuracy_mean": accuracy[0],
                "accuracy_std": accuracy[1],
                "macro_f1_mean": macro_f1[0],
                "macro_f1_std": macro_f1[1],
                "epochs_mean": mean_and_std([r["best_epoch"] for r in runs.values()])[0],
                "seconds_mean": mean_and_std([r["seconds"] for r in runs.values()])[0],
            }
        comparisons = []
        if reference in by_pooling:
            for other in sorted(p for p in by_pooling if p != reference and not p.endswith(NO_CONV)):
                shared = _shared_keys(by_pooling, reference, other)
                if not shared:
                    continue
                paired = _paired(by_pooling, reference, other, shared)
                entry = {"reference": reference, "other": other, **paired.to_json()}
                per_seed = []
                for key in shared:
                    a, b = by_pooling[reference][key], by_pooling[other][key]
                    if a.get("test_predictions") and b.get("test_predictions") and a.get("test_labels"):
                        test = mcnemar(a["test_labels"], a["test_predictions"], b["test_predictions"])
                        per_seed.append({"seed": key[1], **test.to_json()})
                if per_seed:
                    entry["mcnemar"] = per_seed
                comparisons.append(entry)
        # Probe 1: each pooling after the convolution against the same pooling of the word vectors.
        convolution = []
        for arm in sorted(p for p in by_pooling if p.endswith(NO_CONV)):
            pooling = arm[: -len(NO_CONV)]
            shared = _shared_keys(by_pooling, pooling, arm) if pooling in by_pooling else []
            if shared:
                paired = _paired(by_pooling, pooling, arm, shared)
                convolution.append({"pooling": pooling, "without": arm, **paired.to_json()})
        # The average masked against the average over the padded length (`padded-avg`): what padding costs.
        padding = []
        if {"avg", PADDED} <= set(by_pooling):
            shared = _shared_keys(by_pooling, "avg", PADDED)
            padding.append(
                {"masked": "avg", "padded": PADDED, **_paired(by_pooling, "avg", PADDED, shared).to_json()}
            )
        summary[dataset] = {
            "poolings": arms,
            "comparisons": comparisons,
            "convolution": convolution,
            "padding": padding,
        }
    return summary


def _shared_keys(by_pooling: dict[str, dict], a: str, b: str) -> list[tuple]:
    """The (fold, seed) pairs both arms ran: only those are compared."""
    return sorted(set(by_pooling[a]) & set(by_pooling[b]), key=str)


def _paired(by_pooling: dict[str, dict], a: str, b: str, keys: Sequence[tuple]):
    return paired_comparison(
        [by_pooling[a][k]["test_accuracy"] for k in keys], [by_pooling[b][k]["test_accuracy"] for k in keys]
    )


def write_report(
    summary: dict,
    rows: Sequence[dict],
    config: StudyConfig,
    out_dir: str | Path,
    command: str = "",
    extra_sections: Sequence[str] = (),
) -> Path:
    """summary.json, REPORT.md and one strip plot per dataset (plots/<dataset>.png).

    A hand-written `FINDINGS.md` in the study folder (what the numbers mean, the comparison with
    the literature) goes near the top of the report; the tables under it are regenerated on every
    call, so a grown study updates its numbers and its author updates the findings.
    """
    out = Path(out_dir)
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    plots = _plot(rows, config, out / "plots")
    total_seconds = training_seconds(rows)
    folds = (
        f"cross-validated datasets: {config.max_folds or config.folds} fold(s) of {config.folds}"
        if any(r["fold"] is not None for r in rows)
        else "fixed splits only"
    )
    lines = [
        "# Pooling study",
        "",
        f"Variant `{config.variant}`, poolings {', '.join(config.poolings)}; {config.seeds_text()}; {folds}; "
        f"up to {config.epochs} epochs, patience {config.patience}. {len(rows)} runs, "
        f"{_duration(total_seconds)} of training.",
    ]
    if command:
        lines += ["", f"Command: `{command}`"]
    findings = out / FINDINGS_FILE
    if findings.exists():
        lines += ["", findings.read_text(encoding="utf-8").strip()]
    lines += coverage_section(rows, config)
    lines += ["", "## Test accuracy (mean ± std over seeds and folds)", ""]
    poolings = list(config.poolings)
    lines += ["| dataset | " + " | ".join(poolings) + " |", "|---|" + "--:|" * len(poolings)]
    for dataset, entry in summary.items():
        cells = []
        best = max(arm["accuracy_mean"] for arm in entry["poolings"].values())
        for pooling in poolings:
            arm = entry["poolings"].get(pooling)
            if arm is None:
                cells.append("—")
                continue
            cell = f"{100 * arm['accuracy_mean']:.1f} ± {100 * arm['accuracy_std']:.1f}"
            cells.append(f"**{cell}**" if arm["accuracy_mean"] == best else cell)
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"## {REFERENCE} against each other pooling, paired over the same seeds and folds",
        "",
        "Difference in accuracy points (max minus the other), its 95% t-interval, the paired t-test "
        "and Wilcoxon's signed-rank test; for single-split datasets also McNemar's exact test on the "
        "test predictions, per seed. A difference *holds* when the interval excludes 0.",
        "",
        "| dataset | other | pairs | difference | 95% interval | t-test p | Wilcoxon p | McNemar (p < 0.05) | holds |",
        "|---|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for dataset, entry in summary.items():
        for c in entry["comparisons"]:
            interval, verdict = _interval_and_verdict(c, "max better", "max worse", digits=1)
            mcnemar_cell = "—"
            if c.get("mcnemar"):
                tests = c["mcnemar"]
                better = sum(m["p_value"] < 0.05 and m["only_a_correct"] > m["only_b_correct"] for m in tests)
                worse = sum(m["p_value"] < 0.05 and m["only_a_correct"] < m["only_b_correct"] for m in tests)
                mcnemar_cell = f"max better in {better}, worse in {worse} of {len(tests)} seeds"
            lines.append(
                f"| {dataset} | {c['other']} | {c['n']} | {100 * c['mean_difference']:+.2f} | {interval} | "
                f"{_p(c['t_p_value'])} | {_p(c['wilcoxon_p_value'])} | {mcnemar_cell} | "
                f"{verdict} |"
            )
    if plots:
        lines += ["", "## Accuracy by pooling, one point per run", ""]
        lines += [f"![{path.stem}](plots/{path.name})" for path in plots]
    lines += _convolution_section(summary)
    lines += _padding_section(summary)
    lines += zhang_wallace_section(rows, config)
    for section in extra_sections:
        lines += ["", section.strip()]
    report = out / REPORT_FILE
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report


def planned_runs(config: StudyConfig, dataset: str) -> int | None:
    """Runs one arm of `dataset` has in the full plan; None for a dataset outside the registry."""
    from textcnn.data.corpus import REGISTRY

    spec = REGISTRY.get(dataset)
    if spec is None:
        return None
    if tuple(spec.splits) == ("all",):  # cross-validated
        return (config.max_folds or config.folds) * config.seeds
    return config.fixed_split_seeds or config.seeds


def coverage_section(rows: Sequence[dict], config: StudyConfig) -> list[str]:
    """How far each dataset has got: a study grows across sessions, and its tables are only as
    good as the runs behind them; a partial dataset's arms share the same first folds."""
    lines = [
        "",
        "## How far the study has got",
        "",
        "| dataset | runs per arm (done / planned) | folds run | seeds | training wall time |",
        "|---|--:|--:|--:|--:|",
    ]
    for dataset in config.datasets:
        dataset_rows = [r for r in rows if r["dataset"] == dataset]
        planned = planned_runs(config, dataset)
        per_arm = [sum(r["pooling"] == arm for r in dataset_rows) for arm in config.poolings]
        done = f"{min(per_arm)}" if min(per_arm) == max(per_arm) else f"{min(per_arm)}–{max(per_arm)}"
        folds = sorted({r["fold"] for r in dataset_rows if r["fold"] is not None})
        fold_cell = "test split" if not folds else f"{len(folds)} ({', '.join(map(str, folds))})"
        fold_cell = fold_cell if dataset_rows else "—"
        seeds = len({r["seed"] for r in dataset_rows})
        wall = _duration(training_seconds(dataset_rows)) if dataset_rows else "—"
        lines.append(
            f"| {dataset} | {done} / {planned if planned is not None else '?'} | {fold_cell} | {seeds} | {wall} |"
        )
    return lines


def _interval_and_verdict(c: dict, above: str, below: str, digits: int = 2) -> tuple[str, str]:
    """A paired comparison's 95% interval cell and whether it holds (the interval excludes 0)."""
    if c["n"] < 2:
        return "—", "no"
    interval = f"{100 * c['ci_low']:+.{digits}f} to {100 * c['ci_high']:+.{digits}f}"
    if c["ci_low"] > 0 or c["ci_high"] < 0:
        return interval, f"yes: {above if c['mean_difference'] > 0 else below}"
    return interval, "no"


def _convolution_section(summary: dict) -> list[str]:
    """Probe 1: does pooling need the convolution in front of it? (Only with `:no-conv` arms.)"""
    entries = [(dataset, c) for dataset, entry in summary.items() for c in entry.get("convolution", [])]
    if not entries:
        return []
    lines = [
        "",
        "## Is the convolution needed before pooling?",
        "",
        "The same pooling over the word vectors themselves (`POOLING:no-conv`: no convolution, no "
        "ReLU; the pooled vector is the embedding dimension wide) against pooling after the "
        "convolution, paired over the same seeds and folds. Difference = with minus without.",
        "",
        "| dataset | pooling | with convolution | without | pairs | difference | 95% interval | holds |",
        "|---|---|--:|--:|--:|--:|--:|---|",
    ]
    for dataset, c in entries:
        arms = summary[dataset]["poolings"]
        with_conv, without = arms[c["pooling"]]["accuracy_mean"], arms[c["without"]]["accuracy_mean"]
        interval, verdict = _interval_and_verdict(c, "convolution helps", "convolution hurts", digits=1)
        lines.append(
            f"| {dataset} | {c['pooling']} | {100 * with_conv:.1f} | {100 * without:.1f} | {c['n']} | "
            f"{100 * c['mean_difference']:+.2f} | {interval} | {verdict} |"
        )
    return lines


def _padding_section(summary: dict) -> list[str]:
    """avg against padded-avg (only when a study has both): is padding what sinks an average?"""
    entries = [(dataset, c) for dataset, entry in summary.items() for c in entry.get("padding", [])]
    if not entries:
        return []
    lines = [
        "",
        "## Does averaging over padding sink the average?",
        "",
        "Code that zero-pads every sentence to the longest one and averages over the padded length "
        "(`padded-avg`) shrinks a short sentence's features in proportion to its shortness; `avg` "
        "averages its real windows only. Masked minus padded, paired over the same seeds and folds; "
        "max minus each, from the table above.",
        "",
        "| dataset | avg | padded-avg | pairs | masked − padded | 95% interval | holds | max − avg "
        "| max − padded-avg |",
        "|---|--:|--:|--:|--:|--:|---|--:|--:|",
    ]
    for dataset, c in entries:
        arms = summary[dataset]["poolings"]
        masked, padded = arms[c["masked"]]["accuracy_mean"], arms[c["padded"]]["accuracy_mean"]
        interval, verdict = _interval_and_verdict(c, "padding costs", "padding helps")
        versus = {x["other"]: x for x in summary[dataset]["comparisons"]}
        gaps = [f"{100 * versus[a]['mean_difference']:+.2f}" if a in versus else "—" for a in ("avg", PADDED)]
        lines.append(
            f"| {dataset} | {100 * masked:.2f} | {100 * padded:.2f} | {c['n']} | {100 * c['mean_difference']:+.2f} | "
            f"{interval} | {verdict} | {gaps[0]} | {gaps[1]} |"
        )
    return lines


def replications(rows: Sequence[dict], dataset: str, arm: str) -> dict[int, float]:
    """Accuracy (percent) per seed, one replication each as in Zhang & Wallace (2015): the seed's mean
    over the folds it ran (cross-validated sets) or its test accuracy (single-split sets)."""
    by_seed: dict[int, list[float]] = defaultdict(list)
    for row in rows:
        if row["dataset"] == dataset and row["pooling"] == arm:
            by_seed[row["seed"]].append(100 * row["test_accuracy"])
    return {seed: sum(values) / len(values) for seed, values in sorted(by_seed.items())}


def versus_max(rows: Sequence[dict], dataset: str, arm: str):
    """`arm` minus max, paired over the (fold, seed) runs both ran (`paired_comparison`); None if none."""
    by_pooling: dict[str, dict] = defaultdict(dict)
    for row in rows:
        if row["dataset"] == dataset and row["pooling"] in (arm, REFERENCE):
            by_pooling[row["pooling"]][(row["fold"], row["seed"])] = row
    if arm == REFERENCE or REFERENCE not in by_pooling or arm not in by_pooling:
        return None
    shared = _shared_keys(by_pooling, arm, REFERENCE)
    return _paired(by_pooling, arm, REFERENCE, shared) if shared else None


def _their_cell(figures) -> str:
    def one(f) -> str:
        low, high = ("?" if v is None else f"{v:.2f}" for v in (f.low, f.high))
        return f"{f.mean:.2f} ({low}, {high}) [{f.label}{', misprint' if f.misprint else ''}]"

    return "; ".join(one(f) for f in figures)


def _their_difference(dataset: str, figure, noise: float) -> tuple[float | None, str]:
    """Their arm minus their 1-max (plain difference of means) and what it is worth."""
    from textcnn.study.reference import one_max

    base = one_max(dataset, figure.table)
    if base is None or (figure.setting in ("k=1", "all") and figure.table != 17):  # a 1-max itself
        return None, ""
    difference = figure.mean - base.mean
    notes = []
    if abs(difference) <= noise:
        notes.append(f"within their 1-max noise ({noise:.2f})")
    bounds = (figure.low, figure.high, base.low, base.high)
    if None not in bounds and figure.low <= base.high and base.low <= figure.high:
        notes.append(f"ranges overlap {base.label}")
    return difference, "; ".join(notes)


def _our_cells(rows: Sequence[dict], dataset: str, arm: str) -> tuple[str, object]:
    per_seed = list(replications(rows, dataset, arm).values())
    mean, std = mean_and_std(per_seed)
    ours = f"{mean:.2f} ± {std:.2f} ({min(per_seed):.2f}, {max(per_seed):.2f}), {len(per_seed)} seed(s)"
    return ours, versus_max(rows, dataset, arm)


def _zw_rows(rows: Sequence[dict], config: StudyConfig, dataset: str, noise: float) -> tuple[list, list]:
    """Table lines for one dataset, and (arm, ours minus max, theirs minus 1-max, theirs in noise)."""
    from textcnn.study.reference import published

    lines, directions = [], []
    arms = [a for a in config.poolings if any(r["dataset"] == dataset and r["pooling"] == a for r in rows)]
    for arm in arms:
        figures = published(arm, dataset)
        if not figures:
            continue
        ours, paired = _our_cells(rows, dataset, arm)
        theirs_diff, note = _their_difference(dataset, figures[0], noise)
        if arm == REFERENCE and len(figures) == 2:
            note = f"their two 1-max figures differ by {abs(figures[0].mean - figures[1].mean):.2f}"
        ours_diff, interval, p_values = "—", "—", "—"
        if paired is not None:
            ours_diff = f"{100 * paired.mean_difference:+.2f} ({paired.n} pairs)"
            if paired.n >= 2:
                interval = f"{100 * paired.ci_low:+.2f} to {100 * paired.ci_high:+.2f}"
            p_values = f"{_p(paired.t_p_value)} / {_p(paired.wilcoxon_p_value)}"
            if theirs_diff is not None:
                directions.append((arm, paired.mean_difference, theirs_diff, bool(note.startswith("within"))))
        their_diff_cell = "—" if theirs_diff is None else f"{theirs_diff:+.2f}"
        lines.append(
            f"| {dataset} | {arm} | {ours} | {_their_cell(figures)} | {ours_diff} | {interval} | {p_values} | "
            f"{their_diff_cell} | {note or '—'} |"
        )
    return lines, directions


def _zw_sentence(dataset: str, directions: list) -> str:
    agree = [a for a, ours, theirs, _ in directions if ours * theirs > 0]
    differ = [a for a, ours, theirs, _ in directions if ours * theirs < 0]
    level = [a for a, ours, theirs, _ in directions if ours * theirs == 0]  # a difference of exactly 0
    noisy = [a for a, *_, within in directions if within]
    parts = [
        f"the direction against max agrees for {', '.join(agree)}" if agree else "",
        f"differs for {', '.join(differ)}" if differ else "",
        f"no difference on one side for {', '.join(level)}" if level else "",
        f"theirs is within their own 1-max noise for {', '.join(noisy)}" if noisy else "",
    ]
    said = "; ".join(p for p in parts if p)
    return f"- {dataset}: {said}." if said else f"- {dataset}: no arm beside max to compare."


def zhang_wallace_section(rows: Sequence[dict], config: StudyConfig) -> list[str]:
    """Our arms beside the figures Zhang & Wallace (2015) published for the same pooling, in their
    format: a replication is one seed (its mean over folds, or its test accuracy)."""
    from textcnn.study.reference import PROTOCOL, SOURCE, one_max_noise

    noise = one_max_noise()
    datasets = [d for d in config.datasets if any(r["dataset"] == d for r in rows)]
    body, sentences = [], []
    for dataset in datasets:
        lines, directions = _zw_rows(rows, config, dataset, noise)
        body += lines
        if lines:
            sentences.append(_zw_sentence(dataset, directions))
    if not body:
        return []
    cv = any(r["fold"] is not None for r in rows)
    folds = (
        f"{config.max_folds or config.folds} fold(s) of {config.folds}-fold CV planned (the folds run so far: "
        "'How far the study has got')"
        if cv
        else "fixed splits"
    )
    vectors = config.vectors or "none (random init)"
    ours = f"variant `{config.variant}`, vectors {vectors}, {config.seeds_text()}, {folds}"
    warning = (
        ""
        if config.variant == "non-static" and config.vectors
        else " Ours is not their protocol: these rows are no reproduction of theirs."
    )
    return [
        "",
        "## Beside Zhang & Wallace (2015)",
        "",
        f"Ours: {ours}. Theirs ({SOURCE}): {PROTOCOL}.{warning}",
        "",
        "Accuracy in percent; a replication is one seed: its mean over the study's folds (cross-validated "
        "sets) or its test accuracy (single-split sets). Ours: mean ± std (min, max) over replications; "
        "ours − max: paired over the shared (fold, seed) runs, its 95% t-interval, t-test / Wilcoxon p. "
        "Theirs − 1-max: plain difference of published means (against the same table's 1-max; Table 17 "
        f"against Table 18 k=1); their own 1-max noise is {noise:.2f} points (the largest gap between "
        "their two 1-max figures, Table 18 k=1 and Table 19 all).",
        "",
        "| dataset | arm | ours | theirs | ours − max | 95% interval | p (t / Wilcoxon) | theirs − 1-max | note |",
        "|---|---|--:|--:|--:|--:|--:|--:|---|",
        *body,
        "",
        *sentences,
        *_misprints(rows, config),
    ]


def _misprints(rows: Sequence[dict], config: StudyConfig) -> list[str]:
    """Their misprints among the figures shown: kept as printed, said once under the table."""
    from textcnn.study.reference import published

    shown = {(d, a) for d in config.datasets for a in config.poolings}
    shown &= {(r["dataset"], r["pooling"]) for r in rows}
    found = {f.label + f" ({f.dataset})": f.misprint for d, a in shown for f in published(a, d) if f.misprint}
    return (
        ["", *(f"Misprint in theirs, kept as printed: {k}: {v}." for k, v in sorted(found.items()))]
        if found
        else []
    )


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} minutes"


def _p(value: float) -> str:
    return "—" if value != value else f"{value:.3g}"


def _plot(rows: Sequence[dict], config: StudyConfig, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for dataset in config.datasets:
        dataset_rows = [r for r in rows if r["dataset"] == dataset]
        if not dataset_rows:
            continue
        fig, ax = plt.subplots(figsize=(1.4 * len(config.poolings) + 2, 3.2))
        for x, pooling in enumerate(config.poolings):
            values = [100 * r["test_accuracy"] for r in dataset_rows if r["pooling"] == pooling]
            jitter = [x + 0.08 * ((i % 5) - 2) for i in range(len(values))]
            ax.scatter(jitter, values, s=14, alpha=0.7)
            if values:
                ax.hlines(sum(values) / len(values), x - 0.25, x + 0.25, color="black", linewidth=1.5)
        ax.set_xticks(range(len(config.poolings)), config.poolings)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{dataset}: one point per seed and fold, bar = mean")
        fig.tight_layout()
        path = folder / f"{dataset}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
