"""The report's section beside Zhang & Wallace (2015): our arms next to the figures they published.

Their protocol counts a replication as one run of 10-fold CV; ours as one seed (its mean over the
folds it ran, or its test accuracy on a single split), so the section converts our rows to theirs
before it compares; their published figures, misprints included, live in `textcnn.study.reference`.
"""

from __future__ import annotations

from collections.abc import Sequence

from textcnn.study.arms import REFERENCE
from textcnn.study.cells import p_cell
from textcnn.study.plan import StudyConfig
from textcnn.study.reference import PROTOCOL, SOURCE, one_max, one_max_noise, published
from textcnn.study.stats import mean_and_std
from textcnn.study.summary import replications, versus_max


def _their_cell(figures) -> str:
    def one(f) -> str:
        low, high = ("?" if v is None else f"{v:.2f}" for v in (f.low, f.high))
        return f"{f.mean:.2f} ({low}, {high}) [{f.label}{', misprint' if f.misprint else ''}]"

    return "; ".join(one(f) for f in figures)


def _their_difference(dataset: str, figure, noise: float) -> tuple[float | None, str]:
    """Their arm minus their 1-max (plain difference of means) and what it is worth."""
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
            p_values = f"{p_cell(paired.t_p_value)} / {p_cell(paired.wilcoxon_p_value)}"
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
    shown = {(d, a) for d in config.datasets for a in config.poolings}
    shown &= {(r["dataset"], r["pooling"]) for r in rows}
    found = {f.label + f" ({f.dataset})": f.misprint for d, a in shown for f in published(a, d) if f.misprint}
    return (
        ["", *(f"Misprint in theirs, kept as printed: {k}: {v}." for k, v in sorted(found.items()))]
        if found
        else []
    )
