"""REPORT.md, summary.json and the plots of a study, written again from its rows on every call.

The tables under the hand-written FINDINGS.md are regenerated each time, so a grown study updates
its numbers; the sections of other parts of the study (the baselines, the probes) come in as
`extra_sections`, already written, so this module knows nothing of them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from textcnn.study.arms import PADDED, REFERENCE, arms_legend
from textcnn.study.cells import duration, interval_and_verdict, p_cell
from textcnn.study.plan import StudyConfig, planned_runs
from textcnn.study.results import FINDINGS_FILE, REPORT_FILE, SUMMARY_FILE, training_seconds
from textcnn.study.zhang_wallace import zhang_wallace_section


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
        f"{duration(total_seconds)} of training.",
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
    lines += ["", "The arms (each pooling's summary from the registry, textcnn.model.pooling):", ""]
    lines += arms_legend(config.poolings)
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
            interval, verdict = interval_and_verdict(c, "max better", "max worse", digits=1)
            mcnemar_cell = "—"
            if c.get("mcnemar"):
                tests = c["mcnemar"]
                better = sum(m["p_value"] < 0.05 and m["only_a_correct"] > m["only_b_correct"] for m in tests)
                worse = sum(m["p_value"] < 0.05 and m["only_a_correct"] < m["only_b_correct"] for m in tests)
                mcnemar_cell = f"max better in {better}, worse in {worse} of {len(tests)} seeds"
            lines.append(
                f"| {dataset} | {c['other']} | {c['n']} | {100 * c['mean_difference']:+.2f} | {interval} | "
                f"{p_cell(c['t_p_value'])} | {p_cell(c['wilcoxon_p_value'])} | {mcnemar_cell} | "
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
        wall = duration(training_seconds(dataset_rows)) if dataset_rows else "—"
        lines.append(
            f"| {dataset} | {done} / {planned if planned is not None else '?'} | {fold_cell} | {seeds} | {wall} |"
        )
    return lines


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
        interval, verdict = interval_and_verdict(c, "convolution helps", "convolution hurts", digits=1)
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
        interval, verdict = interval_and_verdict(c, "padding costs", "padding helps")
        versus = {x["other"]: x for x in summary[dataset]["comparisons"]}
        gaps = [f"{100 * versus[a]['mean_difference']:+.2f}" if a in versus else "—" for a in ("avg", PADDED)]
        lines.append(
            f"| {dataset} | {100 * masked:.2f} | {100 * padded:.2f} | {c['n']} | {100 * c['mean_difference']:+.2f} | "
            f"{interval} | {verdict} | {gaps[0]} | {gaps[1]} |"
        )
    return lines


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
