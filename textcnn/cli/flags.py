"""The flags the commands share, and how they become the library's configs.

A flag that sets a config field defaults to None, "not given", so the dataclass default applies:
a default lives in one place, the config, and `--help` reads it from there (`ConfigDefaultsFormatter`).
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable

from textcnn.errors import TextCNNError


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def probability(text: str) -> float:
    """A number strictly between 0 and 1 (a threshold)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def pooling_list(text: str) -> tuple[str, ...]:
    """`--pooling max` or `--pooling max,avg` (an ensemble's members split between them)."""
    from textcnn.model.pooling import POOLINGS

    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in POOLINGS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown pooling {(unknown or [text])[0]!r}; choose from {', '.join(POOLINGS)}"
        )
    return names


def int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def name_list(text: str) -> tuple[str, ...]:
    """`--label-columns joy,love,fear`: names, comma-separated, none empty or repeated."""
    names = tuple(part.strip() for part in text.split(","))
    if not all(names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected distinct comma-separated column names, got {text!r}")
    return names


def add_data_arguments(parser: argparse.ArgumentParser, dataset_required: bool = False) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset",
        help="registered dataset (`textcnn datasets` lists them: mr, sst1, sst2, subj, trec, umsab-en ... "
        "umsab-es, chnsenticorp, goemotions), or several with one label set, comma-separated, trained as one "
        "(umsab-en,umsab-fr,...); a local dataset read through `datasets` (a save_to_disk folder, a folder "
        "of data files, or one data file); or a Hub id owner/name",
    )
    group.add_argument(
        "--data-dir", help="folder holding the registered datasets (default: $TEXTCNN_DATA_DIR)"
    )
    group.add_argument(
        "--train", dest="train_file", metavar="FILE", help="training file: JSON Lines, CSV or TSV"
    )
    group.add_argument(
        "--dev", dest="dev_file", metavar="FILE", help="dev file (default: 10%% of train held out)"
    )
    group.add_argument("--test", dest="test_file", metavar="FILE", help="test file")
    group.add_argument("--text-column", default="text", help="column holding the text (default: text)")
    group.add_argument("--label-column", default="label", help="column holding the label (default: label)")
    group.add_argument(
        "--label-separator",
        metavar="SEP",
        help="multi-label files: split the label cell on SEP (e.g. '|' for joy|love); "
        "a JSON list in the label field needs no flag",
    )
    group.add_argument(
        "--label-columns",
        type=name_list,
        metavar="A,B,C",
        help="multi-label files: one 0/1 column per label, these named columns (in place of --label-column)",
    )
    group.add_argument(
        "--allow-empty-labels",
        action="store_true",
        help="multi-label files: accept rows with no label (refused by default, naming the line)",
    )
    group.add_argument(
        "--folds", type=positive_int, help="k-fold cross-validation for data without a test split"
    )
    group.add_argument("--fold", type=int, help="run only this fold (0-based) of --folds (default 10)")
    group.add_argument(
        "--strict-rows",
        action="store_true",
        help="refuse rows with empty text (an error naming the line) instead of skipping them with a warning",
    )


def load_corpus_from_args(args: argparse.Namespace):
    from textcnn.data.corpus import load_corpus

    return load_corpus(
        args.dataset,
        data_dir=args.data_dir,
        train=args.train_file,
        dev=args.dev_file,
        test=args.test_file,
        text_column=args.text_column,
        label_column=args.label_column,
        strict_rows=args.strict_rows,
        label_separator=args.label_separator,
        label_columns=args.label_columns,
        allow_empty_labels=args.allow_empty_labels,
    )


def tokenizer_choice(text: str):
    """`--tokenizer NAME` or `NAME:OPTION=VALUE,...`, checked against the tokenizer registry."""
    from textcnn.data.tokenizers import TokenizerConfig

    try:
        return TokenizerConfig.parse(text)
    except TextCNNError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_tokenizer_arguments(parser: argparse.ArgumentParser) -> None:
    """`--tokenizer` and its `--lowercase` shorthand, read from the tokenizer registry."""
    from textcnn.data.tokenizers import TOKENIZERS, describe

    group = parser.add_argument_group("tokenizer")
    group.add_argument(
        "--tokenizer",
        type=tokenizer_choice,
        metavar="NAME[:OPTION=VALUE,...]",
        help=f"how texts are cut into tokens, one of {', '.join(TOKENIZERS)} ({describe()}). "
        "Default: what the dataset suggests (kim for the English benchmarks, unicode for the others and "
        "for your own files)",
    )
    group.add_argument(
        "--lowercase",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the tokenizer's lowercase option (default: the tokenizer's, or the dataset's: TREC keeps case)",
    )


def tokenizer_from_args(args: argparse.Namespace, corpus):
    """The tokenizer chosen (`--tokenizer`), else the one the corpus suggests; `--lowercase` on top."""
    from textcnn.data.tokenizers import TokenizerConfig

    chosen = args.tokenizer or TokenizerConfig.parse(corpus.tokenizer)
    if getattr(args, "lowercase", None) is not None:
        if not chosen.has("lowercase"):
            raise TextCNNError(f"--lowercase: the {chosen.name} tokenizer has no lowercase option")
        chosen = chosen.replace(lowercase=args.lowercase)
    return chosen


# The flags of `train` that set a config field (flag dest -> field). They default to None, "not
# given", so the dataclass default applies: a default lives in one place, the config.
MODEL_FLAGS = {
    "variant": "variant",
    "embedding_dim": "embedding_dim",
    "filter_widths": "filter_widths",
    "num_filters": "num_filters",
    "wide": "wide",
    "convolution": "convolution",
    "pooling": "pooling",
    "k": "kmax_k",
    "chunks": "chunks",
    "temperature": "temperature",
    "region": "region",
    "region_slots": "region_slots",
    "dropout": "dropout",
    "max_norm": "max_norm",
}
TRAIN_FLAGS = {
    name: name
    for name in ("optimizer", "lr", "batch_size", "epochs", "max_steps", "patience", "seed", "device", "amp")
}
VOCAB_FLAGS = {"min_count": "min_count", "max_vocab": "max_size", "max_length": "max_length"}
OFF_WHEN_ZERO = {"max_norm", "patience"}  # `--max-norm 0`, `--patience 0`: the config's None


STUDY_FLAGS = {
    name: name for name in ("seeds", "fixed_split_seeds", "folds", "variant", "epochs", "patience")
}


def _defaults_of(pairs) -> dict[str, object]:
    import dataclasses

    defaults: dict[str, object] = {}
    for config, flags in pairs:
        fields = {f.name: f.default for f in dataclasses.fields(config)}
        defaults |= {dest: fields[name] for dest, name in flags.items()}
    return defaults


@functools.cache
def train_defaults() -> dict[str, object]:
    """Each `train` config flag's default, read from its dataclass (imports torch: for --help only)."""
    from textcnn.model.cnn import ModelConfig
    from textcnn.train.config import TrainConfig
    from textcnn.train.runs import VocabConfig

    return _defaults_of(((ModelConfig, MODEL_FLAGS), (TrainConfig, TRAIN_FLAGS), (VocabConfig, VOCAB_FLAGS)))


@functools.cache
def study_defaults() -> dict[str, object]:
    from textcnn.study.plan import StudyConfig

    return _defaults_of(((StudyConfig, STUDY_FLAGS),))


class ConfigDefaultsFormatter(argparse.HelpFormatter):
    """Shows each config flag's dataclass default in --help, so the help cannot go stale; the
    configs are imported only when help is printed."""

    def __init__(self, prog: str, defaults: Callable[[], dict[str, object]], **kwargs) -> None:
        super().__init__(prog, **kwargs)
        self._defaults = defaults

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        default = self._defaults().get(action.dest)
        if default is None:
            return help_text
        if isinstance(default, bool):
            shown = "on" if default else "off"
        elif isinstance(default, tuple):
            shown = ",".join(map(str, default))
        else:
            shown = str(default)
        return f"{help_text} (default: {shown})"


def run_settings_from_args(args: argparse.Namespace):
    """`RunSettings` from the flags given; every flag not given falls through to its config."""
    from textcnn.model.cnn import ModelConfig
    from textcnn.train.config import TrainConfig
    from textcnn.train.runs import RunSettings, VocabConfig

    def given(flags: dict[str, str]) -> dict:
        values = {
            name: getattr(args, dest) for dest, name in flags.items() if getattr(args, dest) is not None
        }
        return {
            name: None if name in OFF_WHEN_ZERO and value == 0 else value for name, value in values.items()
        }

    model_options = given(MODEL_FLAGS)
    poolings = model_options.pop("pooling", ())
    if poolings:
        model_options["pooling"] = poolings[0]  # the others, members' (`mixture_from_args`)
    # Bad flags fail before any data loads; a local pooling's slots come later, from the data.
    slots = {"region_slots": 1} if "region_slots" not in model_options else {}
    for pooling in poolings or (None,):
        probe = ModelConfig(
            vocab_size=2, num_classes=2, **(slots | model_options | ({"pooling": pooling} if pooling else {}))
        )
    if probe.pretrained and not args.vectors:
        raise TextCNNError(f"--variant {probe.variant} needs --vectors (a vectors file or glove-6b-50d)")
    decisions = {
        name: getattr(args, name)
        for name in ("thresholds", "at_least_one")
        if getattr(args, name, None) is not None
    }
    return RunSettings(
        model_options,
        TrainConfig(**given(TRAIN_FLAGS)),
        VocabConfig(**given(VOCAB_FLAGS)),
        args.vectors,
        **decisions,
    )


def mixture_from_args(args: argparse.Namespace):
    """The `Mixture` of `train --ensemble K --pooling a,b --linear KIND --combine dev`."""
    from textcnn.train.runs import Mixture

    poolings = tuple(args.pooling or ())
    if len(set(poolings)) > max(args.ensemble, 1):
        raise TextCNNError(
            f"--pooling {','.join(poolings)} splits the members between {len(set(poolings))} poolings: "
            f"ask for at least {len(set(poolings))} (--ensemble)"
        )
    if args.ensemble == 0 and not args.linear:
        raise TextCNNError("--ensemble 0 trains no CNN: give --linear KIND for a linear bundle")
    return Mixture(poolings if len(set(poolings)) > 1 else (), args.linear, args.combine or "mean")
