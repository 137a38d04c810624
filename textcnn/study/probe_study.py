"""The probes of the pooling study, put to trained models, for the report.

Accuracy tables say *which* pooling wins; the probes say *why*. For each dataset one max-pooling
and one average-pooling model are trained with the study's own settings (seed 0, the first fold;
the two differ in the pooling only) and kept under `OUT/models/`, so a second call only re-reads
them. Then:

- *invariance*: the pure shift (leading padding, exactly invariant by construction, a check of
  the masking), k neutral filler words in front, and the deciding phrase moved inside its
  sentence (the phrase that max pooling's `explain` names, moved for both models alike);
- *ties, silence and collapse* of the max model's features over the training sentences;
- *where the maximum comes from*: the n-grams that win the most decisive feature maps, and one
  explained prediction.

Everything lands in `OUT/probes.json`, which `write_report` turns into the report's sections.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from textcnn.data.splits import Fold
from textcnn.inference.bundle import CONFIG_FILE
from textcnn.inference.classifier import Classifier
from textcnn.runtime import atomic_write_bytes
from textcnn.study.plan import Run, StudyConfig, study_folds
from textcnn.study.probes import (
    compare_texts,
    explain,
    key_phrase_moved,
    max_statistics,
    pure_shift,
    winning_ngrams,
    with_filler,
)
from textcnn.study.run import train_model

PROBES_FILE = "probes.json"
PROBE_POOLINGS = ("max", "avg")  # the question is max against average
FILLER_COUNTS = (1, 3, 5)
FILLER_WORD = "the"
PURE_SHIFT = 3
DECISIVE_MAPS = 6  # feature maps shown per dataset
NGRAMS_PER_MAP = 3


def probe_model(
    run: Run, fold: Fold, label_names: Sequence[str], config: StudyConfig, models_dir: Path
) -> Classifier:
    """The model of `run`, trained once and kept as a bundle under `models_dir`."""
    path = models_dir / f"{run.dataset}-{run.pooling}"
    if (path / CONFIG_FILE).exists():
        return Classifier.load(path, device="cpu")
    classifier = train_model(run, fold, label_names, config).classifier.to("cpu")
    classifier.save(path)
    return classifier


def decisive_maps(classifier: Classifier, texts: Sequence[str], count: int, per_map: int) -> list[dict]:
    """The `count` feature maps whose output weights differ most between classes (the maps that
    move a decision most per unit of activation), among maps that fire on at least 5% of `texts`,
    each with its most frequent winning n-grams and the class it votes for."""
    weights = classifier.model.classifier.weight.detach().float().cpu()  # (classes, maps)
    spread = weights.max(dim=0).values - weights.min(dim=0).values
    maps = winning_ngrams(classifier, texts, top=per_map)
    candidates = [m for m in range(len(maps)) if maps[m]["fired"] >= 0.05 * len(texts)]
    chosen = sorted(candidates, key=lambda m: -float(spread[m]))[:count]
    return [
        maps[m]
        | {
            "top": [[ngram, count] for ngram, count in maps[m]["top"]],  # as JSON keeps it
            "fired_fraction": maps[m]["fired"] / len(texts),
            "votes_for": classifier.label_names[int(weights[:, m].argmax())],
            "weight_spread": float(spread[m]),
        }
        for m in chosen
    ]


def example_sentence(texts: Sequence[str], classifier: Classifier) -> str | None:
    """A test sentence of ordinary length (8 to 25 tokens) to explain; the first one, so it is fixed."""
    for text in texts:
        if 8 <= len(classifier.encoder.tokenize(text)) <= 25:
            return text
    return texts[0] if texts else None


def probe_dataset(models: dict[str, Classifier], fold: Fold) -> dict:
    """Every probe on one dataset's max and avg models (test sentences; training ones for statistics)."""
    tests = fold.test.texts
    maxed = models["max"]
    originals, moved = key_phrase_moved(maxed, tests)
    result: dict = {"test_sentences": len(tests), "train_sentences": len(fold.train.texts), "poolings": {}}
    for pooling, classifier in models.items():
        predicted = [p.label for p in classifier.predict(tests)]
        result["poolings"][pooling] = {
            "test_accuracy": sum(p == y for p, y in zip(predicted, fold.test.labels, strict=True))
            / len(tests),
            "pure_shift": pure_shift(classifier, tests, PURE_SHIFT).to_json(),
            "filler": {
                str(k): compare_texts(
                    classifier, tests, [with_filler(t, k, FILLER_WORD) for t in tests]
                ).to_json()
                for k in FILLER_COUNTS
            },
            "moved_phrase": compare_texts(classifier, originals, moved).to_json() if originals else None,
        }
    result["max_statistics"] = max_statistics(maxed, fold.train.texts).to_json()
    result["decisive_maps"] = decisive_maps(maxed, fold.train.texts, DECISIVE_MAPS, NGRAMS_PER_MAP)
    example = example_sentence(tests, maxed)
    result["explained"] = explain(maxed, example, top=3) if example else None
    return result


def run_probes(
    config: StudyConfig,
    out_dir: str | Path,
    data_dir: str | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Probe every dataset of the study not yet in `OUT/probes.json`; return all of it."""
    out = Path(out_dir)
    path = out / PROBES_FILE
    probes = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    pending = [name for name in config.datasets if name not in probes]
    if not pending:
        return probes
    corpora, folds = study_folds(dataclasses.replace(config, datasets=tuple(pending)), data_dir)
    for dataset in pending:
        fold = folds[dataset][0]
        models = {}
        for pooling in PROBE_POOLINGS:
            log(f"probes: {dataset} {pooling} model")
            run = Run(dataset, fold.index, 0, pooling)
            models[pooling] = probe_model(run, fold, corpora[dataset].label_names, config, out / "models")
        log(f"probes: {dataset}")
        probes[dataset] = {"fold": fold.index, "seed": 0, **probe_dataset(models, fold)}
        atomic_write_bytes(path, json.dumps(probes, indent=2).encode())  # kept dataset by dataset
    return probes


def load_probes(out_dir: str | Path) -> dict:
    path = Path(out_dir) / PROBES_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _shift_cell(result: dict | None) -> str:
    if result is None:
        return "—"
    return f"{_pct(result['unchanged_predictions'])} ({result['mean_relative_change']:.3f})"


def probe_sections(probes: dict) -> list[str]:
    """The report's sections for probes 2 to 4 (Markdown), from `probes.json`."""
    if not probes:
        return []
    first = next(iter(probes.values()))
    models = ", ".join(
        f"{d} {p} {_pct(r['poolings'][p]['test_accuracy'])}" for d, r in probes.items() for p in r["poolings"]
    )
    invariance = [
        "## Does max pooling make the features position-invariant?",
        "",
        f"One max and one avg model per dataset (seed {first['seed']}, first fold; test accuracy: {models}). "
        "Each cell: the share of test predictions left unchanged, and in brackets the mean relative "
        "change of the pooled vector, |v' - v| / |v|.",
        "",
        f"- *pure shift*: the sentence moved {PURE_SHIFT} positions to the right inside its padding. With "
        "correct masking every pooling is invariant (max exactly; an average up to the rounding of its sum): "
        "this column checks the masking, not the pooling.",
        f"- *filler k*: k neutral words ('{FILLER_WORD}') in front. A feature that fires on a phrase keeps "
        "its maximum as long as the phrase is intact; only the windows at the new border differ (in wide "
        "mode the windows that hung over the sentence start now see filler instead of padding), and "
        "the new windows compete for the maximum. An average is diluted by every new window.",
        "- *moved phrase*: the n-gram that max pooling's explanation names as deciding, moved to the front "
        "of its sentence (or to the back, when already in front); the same sentences for both models. "
        "Only windows that cross the phrase's new borders change.",
        "",
        "| dataset | pooling | pure shift | "
        + " | ".join(f"filler {k}" for k in FILLER_COUNTS)
        + " | moved phrase | moved sentences |",
        "|---|---|--:|" + "--:|" * len(FILLER_COUNTS) + "--:|--:|",
    ]
    for dataset, result in probes.items():
        for pooling, r in result["poolings"].items():
            cells = [_shift_cell(r["pure_shift"])] + [_shift_cell(r["filler"][str(k)]) for k in FILLER_COUNTS]
            moved = r["moved_phrase"]
            cells += [_shift_cell(moved), str(moved["sentences"]) if moved else "0"]
            invariance.append(f"| {dataset} | {pooling} | " + " | ".join(cells) + " |")

    ties = [
        "## Ties, silence and collapse under max pooling",
        "",
        "The max model's feature maps over its training sentences. *Tied*: the maximum is attained at two "
        "or more windows (its gradient then flows to the first only); *above zero*: ties of a real "
        "activation, not of silence; *silent*: the map's maximum is 0 (after the ReLU it saw nothing); "
        "*dead*: silent on every sentence; *distinct vectors*: how many different pooled vectors the "
        "distinct sentences map to (fewer means sentences collapse onto the same features).",
        "",
        "| dataset | sentences | maps | tied | above zero | silent | dead maps | distinct texts | distinct vectors |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for dataset, result in probes.items():
        s = result["max_statistics"]
        ties.append(
            f"| {dataset} | {s['sentences']:,} | {s['feature_maps']} | {_pct(s['tied_fraction'])} | "
            f"{_pct(s['tied_above_zero_fraction'])} | {_pct(s['silent_fraction'])} | {s['dead_maps']} | "
            f"{s['distinct_texts']:,} | {s['distinct_pooled_vectors']:,} |"
        )

    origins = [
        "## Where does the maximum come from?",
        "",
        f"For the max model of each dataset, the {DECISIVE_MAPS} feature maps whose output weights differ "
        "most between classes (among maps firing on at least 5% of training sentences), with the n-grams "
        "that most often hold their maximum over the training sentences, and one test sentence explained: "
        "each deciding n-gram's contribution to the predicted class is its pooled value times its output "
        "weight (`textcnn explain BUNDLE TEXT` prints the same for any text).",
    ]
    for dataset, result in probes.items():
        origins += [
            "",
            f"**{dataset}**",
            "",
            "| map (width, filter) | votes for | fires on | most frequent winning n-grams (count) |",
            "|---|---|--:|---|",
        ]
        for m in result["decisive_maps"]:
            ngrams = ", ".join(f"*{_md(g)}* ({n})" for g, n in m["top"])
            origins.append(
                f"| {m['width']}, {m['filter']} | {_md(m['votes_for'])} | {_pct(m['fired_fraction'])} | {ngrams} |"
            )
        explained = result.get("explained")
        if explained:
            reasons = [f"*{_md(c['ngram'])}* {c['contribution']:+.2f}" for c in explained["for"]]
            against = [f"*{_md(c['ngram'])}* {c['contribution']:+.2f}" for c in explained["against"]]
            origins += [
                "",
                f"> {_md(explained['text'])}",
                ">",
                f"> predicted **{_md(explained['label'])}**; for: {', '.join(reasons) or '—'}; "
                f"against: {', '.join(against) or '—'}",
            ]
    return ["\n".join(invariance), "\n".join(ties), "\n".join(origins)]


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell or emphasis."""
    return text.replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")
