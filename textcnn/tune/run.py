"""`textcnn tune` from data to a servable bundle: search, select on dev, train the choice, report.

The protocol, which `REPORT.md` states:

- a fixed split (a dataset with a test split, or --train/--dev/--test files): trials train on the
  training part and are compared on the dev part; the chosen configuration is trained as a K-seed
  ensemble on the same parts and scored once on the test part;
- a cross-validated dataset (MR, Subj, or --folds): trials train on the first fold's training part and are
  compared on its dev part (held out of the training part); the chosen configuration is then
  trained on every fold and scored on each fold's test part.

Every artefact goes under OUT: `tune.json` (the settings, so a resume with others is refused),
`ray/` (Tune's experiments), `trials.jsonl`, `REPORT.md` with `plots/tune.png`, and `best/`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from textcnn.data.splits import Corpus, Fold
from textcnn.errors import ConfigError
from textcnn.runtime import atomic_write_bytes
from textcnn.tune.space import Space

SETTINGS_FILE = "tune.json"


@dataclass(frozen=True)
class TuneJob:
    """Everything a tune depends on besides its data (which `tune.json` records with it)."""

    space: Space
    budget: object  # search.Budget
    search: object  # search.SearchSettings
    base: object  # RunSettings of the command's flags
    ensemble: int = 5
    top: int = 1
    combine: str = "mean"


def protocol(corpus: Corpus, folds: Sequence[Fold], tuned: Fold) -> str:
    """The protocol in words, for the output and the report."""
    dev = f"{len(tuned.dev):,} dev sentences"
    if len(folds) > 1:
        return (
            f"Selection on dev only: every trial trained on {tuned.name}'s training part "
            f"({len(tuned.train):,} sentences) and was compared on its dev part ({dev} held out of "
            f"the training part); its test part was never read. The chosen configuration was then "
            f"trained on each of the {len(folds)} folds and scored on that fold's test part."
        )
    test = folds[0].test
    scored = (
        f"scored once on the test split ({len(test):,} sentences), which no trial read"
        if test is not None and len(test)
        else "not scored: the data has no test split"
    )
    return (
        f"Selection on dev only: every trial trained on the training part ({len(tuned.train):,} "
        f"sentences) and was compared on the dev part ({dev}); the chosen configuration was trained "
        f"on the same parts and {scored}."
    )


def check_settings(out: Path, recorded: dict) -> None:
    """Write OUT/tune.json, or refuse a resume whose settings differ from the recorded ones."""
    path = out / SETTINGS_FILE
    if path.exists():
        before = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(k for k in set(before) | set(recorded) if before.get(k) != recorded.get(k))
        if changed:
            raise ConfigError(
                f"{out} holds a tune with other settings ({', '.join(changed)}); use another --out "
                "or the same flags to resume it"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(recorded, indent=2).encode())


def train_choice(
    corpus: Corpus,
    folds: Sequence[Fold],
    chosen: Sequence[dict],
    job: TuneJob,
    out: Path,
    progress: bool,
    log: Callable[[str], None],
) -> tuple[dict, bool]:
    """OUT/best/: the chosen configuration as a K-seed ensemble per fold; with --top K, the K best
    configurations' ensembles composed into one bundle (`textcnn.inference.compose`). Returns the
    summary (per fold metrics, and their mean over folds) and whether Ctrl-C interrupted it (the
    folds that finished are kept; the same call trains the rest)."""
    from textcnn.train.protocol import train_folds
    from textcnn.tune.trial import trial_settings

    best_dir = out / "best"
    if len(chosen) == 1:
        settings = trial_settings(job.base, chosen[0]["config"])
        run = train_folds(
            corpus,
            folds,
            best_dir,
            settings,
            resume=True,
            progress=progress,
            ensemble=job.ensemble,
            together=True,
        )
        return run.summary, any(outcome.fit.interrupted for outcome in run.outcomes)
    member_dirs = []
    for i, record in enumerate(chosen):
        member_dir = out / "members" / f"config-{i + 1}"
        log(f"member {i + 1}/{len(chosen)}: {describe(record['config'])}")
        run = train_folds(
            corpus,
            folds,
            member_dir,
            trial_settings(job.base, record["config"]),
            resume=True,
            progress=progress,
            ensemble=job.ensemble,
            together=True,
        )
        if any(outcome.fit.interrupted for outcome in run.outcomes):
            return run.summary, True
        member_dirs.append(member_dir)
    return _compose_folds(corpus, folds, member_dirs, best_dir, job.combine), False


def _compose_folds(corpus, folds, member_dirs: Sequence[Path], best_dir: Path, combine: str) -> dict:
    from textcnn.inference.classifier import Classifier
    from textcnn.inference.compose import compose, split_metrics
    from textcnn.inference.metrics import summarize_folds

    def where(folder: Path, fold: Fold) -> Path:
        return folder if len(folds) == 1 else folder / fold.name

    rows, tested = [], []
    for fold in folds:
        names = [str(where(d, fold)) for d in member_dirs]
        bundles = [Classifier.load(name, device="cpu") for name in names]
        composed = compose(bundles, names, combine, (fold.dev.texts, fold.dev.labels))
        metrics = split_metrics(composed, fold)
        composed.info["metrics"] = metrics
        composed.save(where(best_dir, fold))
        rows.append({"fold": fold.name, "bundle": str(where(best_dir, fold)), **metrics})
        if "test" in metrics:
            tested.append(metrics["test"])
    summary: dict = {"dataset": corpus.name, "folds": rows}
    if len(tested) > 1:
        summary["test"] = summarize_folds(tested)
    if len(folds) > 1:
        atomic_write_bytes(best_dir / "cv.json", json.dumps(summary, indent=2).encode())
    return summary


def describe(config: dict) -> str:
    """A configuration in one line: "avg, widths 3,4,5 x 300 maps, dropout 0.42, lr 0.87, non-static"."""
    return (
        f"{config['pooling']}, widths {config['widths']} x {config['maps']} maps, "
        f"dropout {config['dropout']:.2f}, lr {config['lr']:.3g}, {config['variant']}"
        + (f", tokenizer {config['tokenizer']}" if config.get("tokenizer") else "")
    )
