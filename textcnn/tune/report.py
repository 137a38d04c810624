"""`OUT/REPORT.md` of a tune: the protocol, what was searched, what was chosen, the test figures,
and a plot of the trials' dev accuracy by pooling and by width (`plots/tune.png`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from textcnn.runtime import atomic_write_bytes
from textcnn.tune.run import describe


def plot_trials(records: Sequence[dict], path: Path, selection: str = "dev accuracy") -> bool:
    """Dev accuracy of every trial that finished an epoch, by pooling and by width; False if none."""
    scored = [r for r in records if r["best_dev_accuracy"] is not None]
    if not scored:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, dimension, title in ((axes[0], "pooling", "by pooling"), (axes[1], "widths", "by widths")):
        values = sorted({r["config"][dimension] for r in scored}, key=_order(dimension))
        for x, value in enumerate(values):
            points = [r for r in scored if r["config"][dimension] == value]
            ys = [100 * r["best_dev_accuracy"] for r in points]
            colours = [
                "#4c72b0" if r["status"] == "completed" or "patience" in r["status"] else "#c44e52"
                for r in points
            ]
            jitter = [x + 0.12 * ((i % 5) - 2) / 2 for i in range(len(points))]
            ax.scatter(jitter, ys, s=16, c=colours, alpha=0.8)
            ax.hlines(max(ys), x - 0.3, x + 0.3, color="black", linewidth=1)
        ax.set_xticks(range(len(values)), values, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{selection} {title}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(f"best {selection} (%)")
    figure.text(
        0.5,
        0.01,
        "blue: trained to the end or stopped by patience; red: stopped by ASHA, the time budget or Ctrl-C; "
        "bar: the best",
        ha="center",
        fontsize=8,
    )
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def _order(dimension: str):
    if dimension == "widths":
        return lambda name: (name.count(","), [int(w) for w in name.split(",")])
    return str


def write_report(
    out: Path,
    records: Sequence[dict],
    chosen: Sequence[dict],
    summary: dict | None,
    protocol: str,
    header: dict,
) -> Path:
    """REPORT.md; `summary` None: the search ended but no bundle was trained (interrupted)."""
    lines = [f"# textcnn tune: {header['data']}", ""]
    if header.get("command"):
        lines += [f"Command: `{header['command']}`", ""]
    lines += ["## Protocol", "", protocol, ""]
    statuses = Counter(r["status"] for r in records)
    retries = sum(r["retries"] for r in records)
    lines += [
        "## The search",
        "",
        f"- {len(records)} trials ({', '.join(f'{n} {s}' for s, n in statuses.most_common())}); "
        f"{retries} retried after a lost worker.",
        f"- Budget: {header['budget']}. Searcher: {header['searcher']}. ASHA over epochs "
        f"(grace {header['grace']}, at most {header['epochs']}, keeping 1/{header['reduction']} at each rung).",
        f"- Stages: {header['stages']}.",
        f"- Space: `{header['space']}`.",
        "",
    ]
    if plot_trials(records, out / "plots" / "tune.png", header.get("selection", "dev accuracy")):
        lines += ["![trials](plots/tune.png)", ""]
    lines += [
        f"## Best configurations ({header.get('selection', 'dev accuracy')})",
        "",
        "| rank | dev | epochs | stage | configuration |",
        "|---:|---:|---:|---|---|",
    ]
    from textcnn.tune.search import ranked

    for i, record in enumerate(ranked(records)[:10]):
        lines.append(
            f"| {i + 1} | {100 * record['best_dev_accuracy']:.2f} | {record['epochs']} | {record['stage']} | "
            f"{describe(record['config'])} |"
        )
    lines += ["", "## Chosen", ""]
    for record in chosen:
        lines.append(f"- {describe(record['config'])} (dev {100 * record['best_dev_accuracy']:.2f})")
    lines.append("")
    if summary is None:
        lines += ["The tune was interrupted before `best/` was finished: run the same command again.", ""]
    else:
        lines += [f"`best/`: {header['bundle']}.", ""]
        lines += _figures(summary)
    path = out / "REPORT.md"
    atomic_write_bytes(path, "\n".join(lines).encode())
    return path


def _figures(summary: dict) -> list[str]:
    lines = ["| fold | dev accuracy | test accuracy | test macro-F1 |", "|---|---:|---:|---:|"]
    for row in summary["folds"]:
        dev, test = row.get("dev") or {}, row.get("test") or {}
        lines.append(
            f"| {row['fold']} | {_pct(dev.get('accuracy'))} | {_pct(test.get('accuracy'))} | "
            f"{_pct(test.get('macro_f1'))} |"
        )
    if "test" in summary:
        acc, f1 = summary["test"]["accuracy"], summary["test"]["macro_f1"]
        lines.append(
            f"| mean ± std | | {100 * acc['mean']:.2f} ± {100 * acc['std']:.2f} | "
            f"{100 * f1['mean']:.2f} ± {100 * f1['std']:.2f} |"
        )
    return [*lines, ""]


def _pct(value) -> str:
    return "" if value is None else f"{100 * value:.2f}"
