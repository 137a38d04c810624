"""The registry of the benchmarks, where their files are found, and which of them are here.

The registry is the one place that knows each benchmark's labels (and whether a row holds several),
splits, language, the tokenizer it suggests, the metric its papers report and their published
figures (Kim 2014's accuracies for the English sets, the UMSAB paper's macro-F1 for the tweets,
GoEmotions' BERT baselines), so that `textcnn datasets`, the loaders, the benchmarks and the tests
agree on them. A dataset only suggests a tokenizer: `--tokenizer`
(`RunSettings.tokenizer`) chooses.
The benchmark files are never copied into this repository: they are read from a data folder given
at run time (`--data-dir` or `TEXTCNN_DATA_DIR`), or fetched from the Hugging Face Hub.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from textcnn.data.splits import _protocol
from textcnn.errors import DataError

DATA_DIR_ENV = "TEXTCNN_DATA_DIR"


@dataclass(frozen=True)
class DatasetSpec:
    """One registry entry; the values mirror the dataset's `dataset.json` card (tests check that)."""

    name: str
    labels: tuple[str, ...]
    splits: tuple[str, ...]
    tokenizer: str  # the tokenizer it suggests, as `--tokenizer` takes it
    hub_id: str | None  # `owner/name`, or `owner/name:config`
    about: str
    kim2014: dict[str, float] = field(default_factory=dict)
    language: str = "en"
    metric: str = "accuracy"  # what its papers report: "accuracy" or "macro_f1"
    reference: dict[str, float] = field(default_factory=dict)  # published figures in `metric` x 100
    # Rows hold a list of labels (the card's `multi_label`), kept in the files' `label_column`.
    multi_label: bool = False
    label_column: str = "label"

    @property
    def protocol(self) -> str:
        return _protocol(self.splits)


# UMSAB (Barbieri, Espinosa Anke, Camacho-Collados, LREC 2022), Table 3: macro-F1 on each language's
# test split: fastText and XLM-R / XLM-T fine-tuned on that language alone (mono) or on all (multi), as the cards give.
_UMSAB = (
    (
        "en",
        "English",
        {
            "fasttext-mono": 50.9,
            "xlm-r-mono": 68.2,
            "xlm-t-mono": 66.9,
            "xlm-r-multi": 68.5,
            "xlm-t-multi": 70.6,
        },
    ),
    (
        "fr",
        "French",
        {
            "fasttext-mono": 54.8,
            "xlm-r-mono": 72.0,
            "xlm-t-mono": 68.2,
            "xlm-r-multi": 70.5,
            "xlm-t-multi": 71.2,
        },
    ),
    (
        "de",
        "German",
        {
            "fasttext-mono": 59.6,
            "xlm-r-mono": 73.6,
            "xlm-t-mono": 76.1,
            "xlm-r-multi": 72.8,
            "xlm-t-multi": 77.3,
        },
    ),
    (
        "it",
        "Italian",
        {
            "fasttext-mono": 54.7,
            "xlm-r-mono": 71.5,
            "xlm-t-mono": 70.9,
            "xlm-r-multi": 68.6,
            "xlm-t-multi": 69.1,
        },
    ),
    (
        "pt",
        "Portuguese",
        {
            "fasttext-mono": 55.1,
            "xlm-r-mono": 67.1,
            "xlm-t-mono": 76.0,
            "xlm-r-multi": 69.8,
            "xlm-t-multi": 75.4,
        },
    ),
    (
        "es",
        "Spanish",
        {
            "fasttext-mono": 50.1,
            "xlm-r-mono": 65.9,
            "xlm-t-mono": 68.5,
            "xlm-r-multi": 66.0,
            "xlm-t-multi": 67.9,
        },
    ),
)

# Hub ids name public copies of the same corpora for machines with internet. They are not
# exercised by the tests (which run offline), and their column names and label encodings differ
# from the files here (e.g. CogComp/trec keeps its labels in `coarse_label`), so pass
# --text-column/--label-column as the Hub card says.
REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="mr",
            labels=("negative", "positive"),
            splits=("all",),
            tokenizer="kim",
            hub_id="cornell-movie-review-data/rotten_tomatoes",
            about="Movie-review snippets, one sentence each, positive or negative (Pang and Lee, 2005).",
            kim2014={"rand": 76.1, "static": 81.0, "non-static": 81.5, "multichannel": 81.1},
        ),
        DatasetSpec(
            name="sst1",
            labels=("very negative", "negative", "neutral", "positive", "very positive"),
            splits=("train", "dev", "test"),
            tokenizer="kim",
            hub_id="SetFit/sst5",
            about=(
                "Stanford Sentiment Treebank, sentences only, five classes (Socher et al., 2013). "
                "Kim also trained on phrases; these files hold sentences only."
            ),
            kim2014={"rand": 45.0, "static": 45.5, "non-static": 48.0, "multichannel": 47.4},
        ),
        DatasetSpec(
            name="sst2",
            labels=("negative", "positive"),
            splits=("train", "dev", "test"),
            tokenizer="kim",
            hub_id="SetFit/sst2",
            about=(
                "SST with neutral sentences removed, binary labels. "
                "Sentences only (Kim also trained on phrases)."
            ),
            kim2014={"rand": 82.7, "static": 86.8, "non-static": 87.2, "multichannel": 88.1},
        ),
        DatasetSpec(
            name="subj",
            labels=("subjective", "objective"),
            splits=("all",),
            tokenizer="kim",
            hub_id="SetFit/subj",
            about="Subjectivity: is a sentence subjective or objective (Pang and Lee, 2004).",
            kim2014={"rand": 89.6, "static": 93.0, "non-static": 93.4, "multichannel": 93.2},
        ),
        DatasetSpec(
            name="trec",
            labels=("DESC", "ENTY", "ABBR", "HUM", "LOC", "NUM"),
            splits=("train", "test"),
            tokenizer="kim:lowercase=false",  # Kim's clean_str(TREC=True): question words' case is kept
            hub_id="CogComp/trec",
            about="TREC question types, six coarse classes (Li and Roth, 2002).",
            kim2014={"rand": 91.2, "static": 92.8, "non-static": 93.6, "multichannel": 92.2},
        ),
        *(
            DatasetSpec(
                name=f"umsab-{code}",
                labels=("negative", "neutral", "positive"),
                splits=("train", "dev", "test"),
                tokenizer="unicode",
                hub_id=f"cardiffnlp/tweet_sentiment_multilingual:{language.lower()}",
                about=(
                    f"Tweets in {language}, negative / neutral / positive (UMSAB, the unified multilingual "
                    "sentiment benchmark of XLM-T; Barbieri et al., LREC 2022). Raw tweet text: user handles, "
                    "URLs, hashtags and emoji as posted."
                ),
                language=code,
                metric="macro_f1",
                reference=reference,
            )
            for code, language, reference in _UMSAB
        ),
        DatasetSpec(
            name="goemotions",
            # The card's order (Demszky et al.'s, neutral last), which is also the Hub's ClassLabel ids.
            labels=(
                "admiration",
                "amusement",
                "anger",
                "annoyance",
                "approval",
                "caring",
                "confusion",
                "curiosity",
                "desire",
                "disappointment",
                "disapproval",
                "disgust",
                "embarrassment",
                "excitement",
                "fear",
                "gratitude",
                "grief",
                "joy",
                "love",
                "nervousness",
                "optimism",
                "pride",
                "realization",
                "relief",
                "remorse",
                "sadness",
                "surprise",
                "neutral",
            ),
            splits=("train", "dev", "test"),
            tokenizer="unicode",  # Reddit text: emoji, [NAME] masks, non-Latin words now and then
            # The `simplified` configuration is these splits, its `labels` a list of ClassLabel ids
            # (`textcnn.data.hub` names them); pass --label-column labels.
            hub_id="google-research-datasets/go_emotions:simplified",
            about=(
                "Reddit comments, each with one or more of 27 emotions or neutral (GoEmotions, Demszky "
                "et al., ACL 2020). Multi-label: 'labels' is a list. Names and religions are masked as "
                "[NAME], [RELIGION]."
            ),
            metric="macro_f1",
            reference={
                "bert-base-cased (Demszky et al. 2020)": 46.0,
                "bert-base-cased (monologg/GoEmotions-pytorch, test)": 50.3,
            },
            multi_label=True,
            label_column="labels",
        ),
        DatasetSpec(
            name="chnsenticorp",
            labels=("negative", "positive"),
            splits=("all",),
            tokenizer="unicode",
            hub_id=None,  # the Hub's ChnSentiCorp copies are another release (9,600 / 1,200 / 1,200)
            about=(
                "Chinese hotel reviews, positive or negative (ChnSentiCorp_htl_all, Tan Songbo; as "
                "redistributed in SophonPlus/ChineseNlpCorpus). No spaces between words."
            ),
            language="zh",
        ),
    )
}


def resolve_data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The benchmark data folder: an explicit path wins, then $TEXTCNN_DATA_DIR; None if neither."""
    if explicit is not None and str(explicit):
        return Path(explicit).expanduser()
    from_env = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(from_env).expanduser() if from_env else None


def _known_names() -> str:
    return ", ".join(REGISTRY)


def _spec(name: str) -> DatasetSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r} (known: {_known_names()})") from None


def _dataset_folder(spec: DatasetSpec, data_dir: str | os.PathLike | None) -> Path:
    root = resolve_data_dir(data_dir)
    if root is None:
        hint = f", or on a machine with internet use the Hub copy {spec.hub_id!r}" if spec.hub_id else ""
        raise DataError(
            f"{spec.name}: no data folder; give --data-dir or set {DATA_DIR_ENV} "
            f"(the folder holding {spec.name}/{spec.splits[0]}.jsonl){hint}"
        )
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found; give --data-dir or set {DATA_DIR_ENV}")
    return _folder_in(root, spec)


def _folder_in(root: Path, spec: DatasetSpec) -> Path:
    folder = root / spec.name
    # Also accept the dataset's own folder (`--data-dir data/mr`), an easy slip to forgive.
    return root if not folder.is_dir() and root.name == spec.name else folder


def _count_rows(path: Path) -> int:
    """Non-blank lines: cheap enough for a status listing, without parsing every row."""
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def dataset_status(data_dir: str | os.PathLike | None = None) -> list[dict]:
    """One row per registered dataset for `textcnn datasets`: what it is and whether it is here."""
    root = resolve_data_dir(data_dir)
    rows = []
    for spec in REGISTRY.values():
        folder = _folder_in(root, spec) if root is not None else None
        found = {s: folder / f"{s}.jsonl" for s in spec.splits} if folder is not None else {}
        present = {s: p for s, p in found.items() if p.is_file()}
        complete = folder is not None and len(present) == len(spec.splits)
        rows.append(
            {
                "name": spec.name,
                "classes": len(spec.labels),
                "labels": list(spec.labels),
                "protocol": spec.protocol,
                "rows": {s: _count_rows(p) for s, p in present.items()},
                "location": str(folder) if complete else "not found",
                "hub_id": spec.hub_id,
                "language": spec.language,
                "tokenizer": spec.tokenizer,
                "metric": spec.metric,
                "kim2014": dict(spec.kim2014),
                "reference": dict(spec.reference),
                "multi_label": spec.multi_label,
            }
        )
    return rows
