"""The linear baselines of a pooling study, on the study's own folds, for its report.

A CNN is worth its training only where it beats what a practitioner would fit in seconds. So
each fold of the study (the same train, dev and test texts, cut by the same split seed, and the
same lowercasing) also gets TF-IDF + logistic regression and NBSVM (`textcnn.model.linear`, C chosen
on the fold's dev part, as the CNN chooses its epoch). A baseline is deterministic, so one fit a
fold is the whole replication; rows land in `OUT/baselines.jsonl` as they finish, like the runs,
so a grown study fits only its new folds.

The comparison is paired where it can be: on a cross-validated set, each fold's CNN (its mean over
the fold's seeds) against the baseline on that fold; on a single split, each seed's CNN against
the one baseline figure (an interval over seeds, against a constant), with McNemar's test per seed
on the test predictions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from textcnn.model.linear import BASELINES, WORD_BASELINES, fit_baseline
from textcnn.study.arms import NO_CONV, REFERENCE
from textcnn.study.plan import StudyConfig, study_folds, study_tokenizer, training_fold
from textcnn.study.results import append_row, load_results, training_seconds
from textcnn.study.stats import mcnemar, mean_and_std, paired_comparison

BASELINES_FILE = "baselines.jsonl"
BASELINE_NAMES = {"tfidf-lr": "TF-IDF + LR", "nbsvm": "NBSVM", "char-lr": "char TF-IDF + LR"}


def run_baselines(
    config: StudyConfig,
    out_dir: str | Path,
    data_dir: str | None = None,
    names: Sequence[str] = WORD_BASELINES,
    log: Callable[[str], None] = lambda line: None,
) -> list[dict]:
    """Fit every (dataset, fold, baseline) not yet in `out_dir/baselines.jsonl`; return all rows."""
    path = Path(out_dir) / BASELINES_FILE
    rows = load_results(path)
    done = {(r["dataset"], r["fold"], r["baseline"]) for r in rows}
    if all(_fitted(done, config, dataset, names) for dataset in config.datasets):
        return rows  # a report of a finished study need not load (and fold) every corpus again
    corpora, folds = study_folds(config, data_dir)
    for dataset in config.datasets:
        label_names = list(corpora[dataset].label_names)
        for fold in folds[dataset]:
            for name in names:
                if (dataset, fold.index, name) in done:
                    continue
                result = fit_baseline(
                    name, training_fold(fold, config), label_names, study_tokenizer(config, dataset)
                )
                row = {
                    "dataset": dataset,
                    "fold": fold.index,
                    "baseline": name,
                    "C": result.C,
                    "dev_accuracy": result.dev_accuracy,
                    "test_accuracy": result.test_accuracy,
                    "seconds": round(result.seconds, 2),
                    "test_predictions": result.test_predictions if fold.index is None else None,
                }
                append_row(path, row)
                rows.append(row)
                where = f"fold {fold.index}" if fold.index is not None else "test split"
                log(f"{dataset} {where} {name}: {100 * result.test_accuracy:.1f} (C = {result.C:g})")
    return rows


def _fitted(done: set, config: StudyConfig, dataset: str, names: Sequence[str]) -> bool:
    """Every baseline fitted on the dataset's fixed split, or on each of its planned folds."""
    planned_folds = range(config.max_folds or config.folds)
    return all((dataset, None, name) in done for name in names) or all(
        (dataset, fold, name) in done for fold in planned_folds for name in names
    )


def load_baselines(out_dir: str | Path) -> list[dict]:
    return load_results(Path(out_dir) / BASELINES_FILE)


def _cnn_by_fold(rows: Sequence[dict], dataset: str, arm: str) -> dict:
    """fold -> the arm's mean test accuracy over that fold's seeds (a fixed split is fold None)."""
    by_fold: dict = defaultdict(list)
    for row in rows:
        if row["dataset"] == dataset and row["pooling"] == arm:
            by_fold[row["fold"]].append(row["test_accuracy"])
    return {fold: sum(v) / len(v) for fold, v in by_fold.items()}


def versus_baseline(rows: Sequence[dict], baseline_rows: Sequence[dict], dataset: str, arm: str, name: str):
    """The CNN arm minus the baseline: (paired comparison, McNemar tests per seed) or None.

    Cross-validated: paired over folds both have, the CNN as its mean over the fold's seeds.
    Single split: each seed's accuracy against the baseline's one figure."""
    baseline = {r["fold"]: r for r in baseline_rows if r["dataset"] == dataset and r["baseline"] == name}
    if None in baseline:
        runs = [r for r in rows if r["dataset"] == dataset and r["pooling"] == arm and r["fold"] is None]
        if not runs:
            return None
        fixed = baseline[None]
        paired = paired_comparison([r["test_accuracy"] for r in runs], [fixed["test_accuracy"]] * len(runs))
        tests = [
            mcnemar(r["test_labels"], r["test_predictions"], fixed["test_predictions"])
            for r in runs
            if r.get("test_predictions") and r.get("test_labels") and fixed.get("test_predictions")
        ]
        return paired, tests
    cnn = _cnn_by_fold(rows, dataset, arm)
    shared = sorted(set(cnn) & set(baseline))
    if not shared:
        return None
    return paired_comparison([cnn[f] for f in shared], [baseline[f]["test_accuracy"] for f in shared]), []


def _best_arm(rows: Sequence[dict], dataset: str, arms: Sequence[str]) -> str | None:
    means = {}
    for arm in arms:
        values = [r["test_accuracy"] for r in rows if r["dataset"] == dataset and r["pooling"] == arm]
        if values:
            means[arm] = sum(values) / len(values)
    return max(means, key=means.get) if means else None


def _difference_cell(result) -> str:
    if result is None:
        return "—"
    paired, tests = result
    cell = f"{100 * paired.mean_difference:+.2f}"
    if paired.n >= 2:
        cell += f" ({100 * paired.ci_low:+.1f} to {100 * paired.ci_high:+.1f})"
    if tests:
        better = sum(t.p_value < 0.05 and t.only_a_correct > t.only_b_correct for t in tests)
        worse = sum(t.p_value < 0.05 and t.only_a_correct < t.only_b_correct for t in tests)
        cell += f"; McNemar: better in {better}, worse in {worse} of {len(tests)}"
    return cell


def _dataset_cost(rows: Sequence[dict], baseline_rows: Sequence[dict], dataset: str) -> str:
    cnn = training_seconds([r for r in rows if r["dataset"] == dataset])
    cnn_runs = sum(r["dataset"] == dataset for r in rows)
    linear = sum(r["seconds"] for r in baseline_rows if r["dataset"] == dataset)
    fits = sum(r["dataset"] == dataset for r in baseline_rows)
    return f"{cnn / 60:.0f} min for {cnn_runs} runs / {linear:.0f} s for {fits} fits"


def baseline_section(rows: Sequence[dict], baseline_rows: Sequence[dict], config: StudyConfig) -> list[str]:
    """The report's section: each dataset's baselines beside the CNN's max arm and its best arm."""
    if not baseline_rows:
        return []
    names = [n for n in BASELINES if any(r["baseline"] == n for r in baseline_rows)]
    arms = [a for a in config.poolings if not a.endswith(NO_CONV)]
    header = " | ".join(BASELINE_NAMES.get(n, n) for n in names)
    versus = " | ".join(f"{c} − {BASELINE_NAMES.get(n, n)}" for c in ("max", "best arm") for n in names)
    lines = [
        "",
        "## Linear baselines on the same folds",
        "",
        "TF-IDF (word 1-2-grams) + logistic regression and NBSVM (Wang & Manning 2012), `textcnn.model.linear`: "
        "fitted on each fold's training texts of the study (same split seed, same lowercasing), C chosen "
        "on the same dev part, scored on the same test texts. Accuracy in percent, mean ± std over the folds "
        "the CNN has run so far "
        "(a single split has one figure: a baseline is deterministic). Differences are CNN minus baseline "
        "with their 95% t-interval: on cross-validated sets paired over folds (the CNN as its mean over the "
        "fold's seeds), on single splits over seeds against the one baseline figure, with McNemar's exact "
        "test per seed (better / worse: p < 0.05). Cost: the CNN arms' training wall time against all the "
        "baselines' fits (the C search included) on this machine's CPU.",
        "",
        f"| dataset | folds | {header} | max | best arm | {versus} | cost (CNN / linear) |",
        "|---|--:|" + "--:|" * len(names) + "--:|---|" + "--:|" * (2 * len(names)) + "---|",
    ]
    sentences = []
    for dataset in config.datasets:
        dataset_rows = [r for r in baseline_rows if r["dataset"] == dataset]
        if not dataset_rows:
            continue
        # On the folds the CNN has run so far (a study grows fold by fold), so the columns compare.
        cnn_folds = {r["fold"] for r in rows if r["dataset"] == dataset}
        all_folds = len({r["fold"] for r in dataset_rows})
        dataset_rows = [r for r in dataset_rows if not cnn_folds or r["fold"] in cnn_folds]
        cells, figures = [], {}
        for name in names:
            values = [r["test_accuracy"] for r in dataset_rows if r["baseline"] == name]
            mean, std = mean_and_std(values)
            figures[name] = mean
            cells.append(f"{100 * mean:.1f} ± {100 * std:.1f}" if len(values) > 1 else f"{100 * mean:.1f}")
        folds = len({r["fold"] for r in dataset_rows})
        folds_cell = f"{folds}" if folds == all_folds else f"{folds} of {all_folds}"
        best = _best_arm(rows, dataset, arms)
        arm_cells, differences = [], []
        for arm in (REFERENCE, best):
            values = [r["test_accuracy"] for r in rows if r["dataset"] == dataset and r["pooling"] == arm]
            arm_cells.append(f"{100 * sum(values) / len(values):.1f}" if values else "—")
        for arm in (REFERENCE, best):
            for name in names:
                result = versus_baseline(rows, baseline_rows, dataset, arm, name) if arm else None
                differences.append(_difference_cell(result))
        best_cell = f"{arm_cells[1]} ({best})" if best else "—"
        lines.append(
            f"| {dataset} | {folds_cell} | {' | '.join(cells)} | {arm_cells[0]} | {best_cell} | "
            f"{' | '.join(differences)} | {_dataset_cost(rows, baseline_rows, dataset)} |"
        )
        if best:
            sentences.append(_verdict(rows, baseline_rows, dataset, best, names, figures))
    return [*lines, "", *sentences]


def _verdict(rows, baseline_rows, dataset: str, best: str, names: Sequence[str], figures: dict) -> str:
    """One plain line: does the study's best CNN arm beat the stronger linear model, and does it hold?"""
    strongest = max(names, key=lambda n: figures[n])
    result = versus_baseline(rows, baseline_rows, dataset, best, strongest)
    label = BASELINE_NAMES.get(strongest, strongest)
    if result is None:
        return f"- {dataset}: no CNN runs on the baselines' folds yet."
    paired, _ = result
    if paired.n < 2:
        return f"- {dataset}: the best CNN arm ({best}) against {label}: {100 * paired.mean_difference:+.2f}, one pair."
    if paired.ci_low > 0:
        verdict = f"the best CNN arm ({best}) beats {label}, and the interval excludes 0"
    elif paired.ci_high < 0:
        verdict = f"{label} beats the study's best CNN arm ({best}), and the interval excludes 0"
    else:
        verdict = f"the best CNN arm ({best}) and {label} cannot be told apart"
    return f"- {dataset}: {verdict} ({100 * paired.mean_difference:+.2f} points over {paired.n} pairs)."


def baselines_summary(baseline_rows: Sequence[dict]) -> dict:
    """dataset -> baseline -> folds, mean and std of test accuracy (for summary.json)."""
    by_dataset: dict = {}
    for row in baseline_rows:
        by_dataset.setdefault(row["dataset"], {}).setdefault(row["baseline"], []).append(row["test_accuracy"])
    summary: dict = {}
    for dataset, by_name in by_dataset.items():
        for name, values in by_name.items():
            mean, std = mean_and_std(values)
            summary.setdefault(dataset, {})[name] = {
                "folds": len(values),
                "accuracy_mean": mean,
                "accuracy_std": std,
            }
    return summary
