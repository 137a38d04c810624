"""Where a learned pooling's maps sit between the average and the max: the network's own answer.

The learned pooling (`textcnn.model.pooling`, "learned") gives each feature map a sharpness β that
training moves: β = 0 is the mean of the map's windows, a large β its max. β alone does not say
where a map sits, because the same β is sharp for large activations and mild for small ones; so
the position is read from what the map actually pooled, per sentence:

    position = (pooled - mean) / (max - mean)    0: the average, 1: the max

averaged over the sentences where the map's max exceeds its mean (a map that is constant over a
sentence has no position there). Each study run of the learned arm records a histogram of its
maps' positions on its test sentences (`learned_record`); the report sums them per dataset into
one figure (`learned_section`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

BINS = 10  # positions in [0, 1], in tenths
STUDY_ARM = "learned"


def map_positions(classifier, texts: Sequence[str], batch_size: int = 256):
    """(positions (maps,), sharpness (maps,)) of a learned-pooling classifier over `texts`:
    each map's mean position between its average (0) and its max (1), NaN where never defined."""
    import torch

    from textcnn.model.cnn import width_parameters
    from textcnn.model.pooling.functions import avg_pool, learned_pool, max_pool, sharpness
    from textcnn.study.probes import _maps_by_batch

    model = classifier.model
    learned = [width_parameters(model, i) for i in range(len(model.config.map_widths))]
    if learned[0] is None:
        raise ValueError(f"a {model.config.pooling} model has no learned pooling")
    thetas = [theta.detach().float().cpu() for theta in learned]
    total = count = None
    for _, per_width in _maps_by_batch(classifier, texts, batch_size):
        parts, defined = [], []
        for theta, (maps, mask) in zip(thetas, per_width, strict=True):
            pooled = learned_pool(maps, mask, theta).values
            mean, top = avg_pool(maps, mask).values, max_pool(maps, mask).values
            spread = top - mean
            ok = spread > 1e-6 * top.abs().clamp_min(1.0)
            parts.append(torch.where(ok, (pooled - mean) / spread.clamp_min(1e-12), 0.0))
            defined.append(ok)
        position, ok = torch.cat(parts, dim=1), torch.cat(defined, dim=1)  # (B, maps)
        batch_total, batch_count = position.double().sum(dim=0), ok.double().sum(dim=0)
        total = batch_total if total is None else total + batch_total
        count = batch_count if count is None else count + batch_count
    positions = torch.where(count > 0, total / count.clamp_min(1.0), float("nan"))
    return positions.float(), sharpness(torch.cat(thetas))


def learned_record(classifier, texts: Sequence[str]) -> dict:
    """A study row's summary of a learned pooling: its maps' positions as a histogram of `BINS`
    tenths, their median, and the median and range of the learned sharpness β."""
    import torch

    positions, beta = map_positions(classifier, texts)
    known = positions[~positions.isnan()].clamp(0.0, 1.0)
    histogram = torch.histc(known, bins=BINS, min=0.0, max=1.0) if len(known) else torch.zeros(BINS)
    return {
        "position_histogram": [int(n) for n in histogram.tolist()],
        "position_median": float(known.median()) if len(known) else None,
        "position_mean": float(known.mean()) if len(known) else None,
        "maps": len(positions),
        "sharpness_median": float(beta.median()),
        "sharpness_range": [float(beta.min()), float(beta.max())],
    }


def _histograms(rows: Sequence[dict]) -> dict[str, list[int]]:
    per_dataset: dict[str, list[int]] = {}
    for row in rows:
        record = row.get("learned_maps")
        if row.get("pooling") != STUDY_ARM or not record:
            continue
        into = per_dataset.setdefault(row["dataset"], [0] * BINS)
        for i, n in enumerate(record["position_histogram"]):
            into[i] += n
    return per_dataset


def _plot(per_dataset: dict[str, list[int]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(per_dataset)
    figure, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.8), sharey=True, squeeze=False)
    edges = [i / BINS for i in range(BINS)]
    for ax, name in zip(axes[0], names, strict=True):
        counts = per_dataset[name]
        share = [100.0 * n / max(sum(counts), 1) for n in counts]
        ax.bar(edges, share, width=1.0 / BINS, align="edge", color="#4c72b0", edgecolor="white")
        ax.set_title(name)
        ax.set_xlim(0, 1)
        ax.set_xticks([0, 0.5, 1], ["avg", "0.5", "max"])
    axes[0][0].set_ylabel("% of feature maps")
    figure.suptitle("Where the learned pooling's maps sit between average (0) and max (1)", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def learned_section(rows: Sequence[dict], out: str | Path) -> list[str]:
    """The report's section on the learned arm: a figure of the maps' positions per dataset and a
    line per dataset; [] when the study has no learned run with a record."""
    per_dataset = _histograms(rows)
    if not per_dataset:
        return []
    _plot(per_dataset, Path(out) / "plots" / "learned-positions.png")
    lines = [
        "## Where the learned pooling puts its maps",
        "",
        "Each feature map of the `learned` arm has its own sharpness β (a softmax-weighted mean: the "
        "average at β = 0, the max as β grows). A map's position is (pooled − mean) / (max − mean) on "
        "the test sentences, 0 the average and 1 the max, averaged over sentences "
        "(`textcnn.study.learned`). The figure sums every run's maps per dataset.",
        "",
        "![learned positions](plots/learned-positions.png)",
        "",
        "| dataset | runs | maps | median position | mean position | maps nearer max (> 0.5) | median β |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, counts in per_dataset.items():
        records = [r["learned_maps"] for r in rows if r.get("pooling") == STUDY_ARM and r["dataset"] == name]
        records = [record for record in records if record]
        total = max(sum(counts), 1)
        medians = sorted(rec["position_median"] for rec in records if rec["position_median"] is not None)
        means = [rec["position_mean"] for rec in records if rec["position_mean"] is not None]
        betas = sorted(rec["sharpness_median"] for rec in records)
        lines.append(
            f"| {name} | {len(records)} | {sum(counts)} | {medians[len(medians) // 2]:.2f} | "
            f"{sum(means) / len(means):.2f} | {100.0 * sum(counts[BINS // 2 :]) / total:.0f}% | "
            f"{betas[len(betas) // 2]:.2f} |"
        )
    return [*lines, "", *_versus_ends(rows)]


def _versus_ends(rows: Sequence[dict]) -> list[str]:
    """Does the learned pooling beat both ends? learned minus max and minus avg, paired over the
    (fold, seed) runs all three arms ran (`textcnn.study.stats.paired_comparison`)."""
    from textcnn.study.stats import paired_comparison

    by_arm: dict[tuple[str, str], dict] = {}
    for row in rows:
        if row.get("pooling") in (STUDY_ARM, "max", "avg"):
            by_arm.setdefault((row["dataset"], row["pooling"]), {})[(row["fold"], row["seed"])] = row[
                "test_accuracy"
            ]
    lines = [
        "Against both ends, paired over the runs all three arms ran (test accuracy, %; 95% t-intervals):",
        "",
        "| dataset | pairs | learned | max | avg | learned − max | learned − avg | verdict |",
        "|---|---:|---:|---:|---:|---|---|---|",
    ]
    for dataset in dict.fromkeys(d for d, arm in by_arm if arm == STUDY_ARM):
        runs = [by_arm.get((dataset, arm), {}) for arm in (STUDY_ARM, "max", "avg")]
        keys = sorted(set(runs[0]) & set(runs[1]) & set(runs[2]), key=str)
        if len(keys) < 2:
            continue
        learned, top, mean = ([100 * r[k] for k in keys] for r in runs)
        versus = [paired_comparison(learned, other) for other in (top, mean)]
        cells = [f"{c.mean_difference:+.2f} ({c.ci_low:+.2f} to {c.ci_high:+.2f})" for c in versus]
        lines.append(
            f"| {dataset} | {len(keys)} | {sum(learned) / len(keys):.2f} | {sum(top) / len(keys):.2f} | "
            f"{sum(mean) / len(keys):.2f} | {cells[0]} | {cells[1]} | {_verdict(versus)} |"
        )
    return [*lines, ""]


def _verdict(versus) -> str:
    above = [c.mean_difference > 0 for c in versus]
    holds = [c.ci_low > 0 for c in versus]
    below = [c.ci_high < 0 for c in versus]
    if all(holds):
        return "beats both"
    if all(above):
        return "above both, not holding"
    names = ("max", "avg")
    said = [f"{'beats' if h else 'under' if b else 'above' if a else 'below'} {n}"
            for n, a, h, b in zip(names, above, holds, below, strict=True)]  # fmt: skip
    return ", ".join(said) + (" (not holding)" if not any(holds) and not any(below) else "")
