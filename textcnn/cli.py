"""The `textcnn` command: a thin shell over the library.

Each subcommand parses flags, calls library functions, and prints. Any `TextCNNError` becomes
one line on stderr and exit code 1 (argparse's own usage errors exit with 2); Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import functools
import json
import signal
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from textcnn.errors import DataWarning, TextCNNError

EXIT_ERROR, EXIT_INTERRUPTED = 1, 130


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _add_data_arguments(parser: argparse.ArgumentParser, dataset_required: bool = False) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset",
        help="registered dataset (mr, sst1, sst2, subj, trec); a local dataset read through `datasets` "
        "(a save_to_disk folder, a folder of data files, or one data file); or a Hub id owner/name",
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
        "--lowercase",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="lowercase before tokenizing (default: per dataset; on for files)",
    )
    group.add_argument(
        "--folds", type=_positive_int, help="k-fold cross-validation for data without a test split"
    )
    group.add_argument("--fold", type=int, help="run only this fold (0-based) of --folds (default 10)")
    group.add_argument(
        "--strict-rows",
        action="store_true",
        help="refuse rows with empty text (an error naming the line) instead of skipping them with a warning",
    )


def _load_corpus(args: argparse.Namespace):
    from textcnn.data.corpus import load_corpus

    return load_corpus(
        args.dataset,
        data_dir=args.data_dir,
        train=args.train_file,
        dev=args.dev_file,
        test=args.test_file,
        text_column=args.text_column,
        label_column=args.label_column,
        lowercase=args.lowercase,
        strict_rows=args.strict_rows,
    )


def build_parser() -> argparse.ArgumentParser:
    from textcnn import __version__
    from textcnn.model.pooling import POOLINGS, describe
    from textcnn.model.variants import VARIANTS
    from textcnn.train.config import AMP_MODES, OPTIMIZERS

    parser = argparse.ArgumentParser(
        prog="textcnn", description="Kim (2014)'s CNN for sentence classification."
    )
    parser.add_argument("--version", action="version", version=f"textcnn {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train a model and write its bundle",
        description="Train a model; the best dev epoch is written as a bundle to --out.",
        formatter_class=functools.partial(ConfigDefaultsFormatter, defaults=train_defaults),
    )
    _add_data_arguments(train)
    train.add_argument(
        "--out", required=True, help="bundle folder to write (one sub-folder per fold with --folds)"
    )
    model = train.add_argument_group("model")
    model.add_argument("--variant", choices=VARIANTS, help="embedding variant (Kim 2014)")
    model.add_argument("--vectors", help="pretrained vectors: a word2vec/GloVe/fastText file or glove-6b-50d")
    model.add_argument("--embedding-dim", type=_positive_int, help="embedding size without --vectors")
    model.add_argument("--filter-widths", type=_int_list, help="comma-separated filter widths")
    model.add_argument("--num-filters", type=_positive_int, help="feature maps per width")
    model.add_argument(
        "--wide",
        action=argparse.BooleanOptionalAction,
        help="wide convolution: width-1 <pad> on both sides of each sentence, as Kim's code",
    )
    model.add_argument(
        "--convolution",
        action=argparse.BooleanOptionalAction,
        help="--no-convolution pools the word vectors themselves: the ablation of the convolution",
    )
    model.add_argument("--pooling", choices=POOLINGS, help=f"pooling over time ({describe()})")
    model.add_argument("--k", type=_positive_int, help="k of kmax pooling")
    model.add_argument("--chunks", type=_positive_int, help="regions of chunk-max pooling")
    model.add_argument("--temperature", type=float, help="temperature of logsumexp pooling")
    model.add_argument(
        "--region", type=_positive_int, help="windows per region of local-max and local-avg pooling"
    )
    model.add_argument(
        "--region-slots",
        type=_positive_int,
        help="regions of local pooling (padded-avg: its padded length in windows); not given (0): as many "
        "as the longest training sentence needs (a longer sentence folds its extra windows into the last region)",
    )
    model.add_argument("--dropout", type=float, help="dropout before the output layer")
    model.add_argument("--max-norm", type=float, help="l2 max-norm of output weight rows; 0 turns it off")
    fitting = train.add_argument_group("training")
    fitting.add_argument("--optimizer", choices=OPTIMIZERS, help="Kim: adadelta")
    fitting.add_argument("--lr", type=float, help="learning rate (default 1.0 Adadelta, 0.001 Adam)")
    fitting.add_argument("--batch-size", type=_positive_int, help="sentences per batch")
    fitting.add_argument("--epochs", type=_positive_int, help="most epochs to train")
    fitting.add_argument("--patience", type=int, help="stop after N epochs without dev gain; 0: never")
    fitting.add_argument("--seed", type=int, help="seed for splits, initialisation and batches")
    fitting.add_argument("--device", help="auto (CUDA when present), cpu or cuda")
    fitting.add_argument(
        "--amp", choices=AMP_MODES, help="bf16 mixed precision: auto (on CUDA only), bf16 (CPU too), off"
    )
    fitting.add_argument("--min-count", type=_positive_int, help="drop words seen fewer times in train")
    fitting.add_argument("--max-vocab", type=int, help="keep at most this many words")
    fitting.add_argument("--max-length", type=_positive_int, help="truncate texts to this many tokens")
    fitting.add_argument(
        "--ensemble",
        type=_positive_int,
        default=1,
        metavar="K",
        help="train K models (seeds SEED .. SEED + K - 1) in one batched computation and save them as "
        "one bundle that predicts the mean of their probabilities; without per-epoch checkpoints "
        "(default: 1, a single model)",
    )
    fitting.add_argument("--half", action="store_true", help="store fp16 weights (half the bundle size)")
    fitting.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from its checkpoint"
    )
    fitting.add_argument("--quiet", action="store_true", help="no progress bars")
    fitting.add_argument(
        "--one-at-a-time",
        action="store_true",
        help="with --folds: train fold after fold, with per-epoch checkpoints, instead of all folds "
        "together as one batched computation (--resume always goes one at a time)",
    )

    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a bundle on a dataset split or a file",
        description="Accuracy, macro-F1, per-class scores and the confusion matrix.",
    )
    evaluate.add_argument("bundle", help="model bundle folder")
    _add_data_arguments(evaluate)
    evaluate.add_argument("--split", choices=("test", "dev", "train"), default="test", help="default test")
    evaluate.add_argument("--seed", type=int, help="split seed for held-out parts (default: the bundle's)")
    evaluate.add_argument("--json", action="store_true", help="print the full metrics as JSON")
    evaluate.add_argument("--device", default="auto", help="auto, cpu or cuda")

    predict = commands.add_parser(
        "predict",
        help="label texts (arguments, or one a line on stdin)",
        description="Print one JSON line per text: label, score, probabilities.",
    )
    predict.add_argument("bundle", help="model bundle folder")
    predict.add_argument("texts", nargs="*", help="texts to label; none: read one a line from stdin")
    predict.add_argument("--batch-size", type=_positive_int, default=256, help="texts per forward pass")
    predict.add_argument("--device", default="auto", help="auto, cpu or cuda")

    explain = commands.add_parser(
        "explain",
        help="the n-grams that decided each prediction",
        description="For each text: the predicted label, the n-grams (windows) that pushed its logit most "
        "for and against that label (pooled share x output weight), and the logit split over the tokens "
        "(any pooling; logsumexp is split approximately, the rest shown as a residual).",
    )
    explain.add_argument("bundle", help="model bundle folder")
    explain.add_argument("texts", nargs="*", help="texts to explain; none: read one a line from stdin")
    explain.add_argument("--top", type=_positive_int, default=5, help="n-grams to show each way")
    explain.add_argument("--json", action="store_true", help="print one JSON line per text")
    explain.add_argument("--device", default="auto", help="auto, cpu or cuda")

    compare = commands.add_parser(
        "compare",
        help="the pooling study: the same runs with only the pooling changed, paired statistics, a report",
        description="Train every (dataset, fold, seed, pooling), record each run in OUT/results.jsonl as it "
        "ends (an interrupted study resumes), then write OUT/summary.json, OUT/REPORT.md and OUT/plots/.",
        formatter_class=functools.partial(ConfigDefaultsFormatter, defaults=study_defaults),
    )
    compare.add_argument(
        "--datasets", default="mr,sst2,trec,subj,sst1", help="comma-separated registered datasets"
    )
    compare.add_argument(
        "--poolings",
        default="max,avg,kmax,chunk-max",
        help="comma-separated arms: POOLING, or kmax:K, local-max:R, local-avg:R (k, region R; plain kmax "
        "is k = 3, plain local-max r = 3); ARM:no-conv pools the word vectors without convolution (the ablation)",
    )
    compare.add_argument("--seeds", type=_positive_int, help="training seeds per arm (0, 1, ...)")
    compare.add_argument(
        "--fixed-split-seeds",
        type=_positive_int,
        help="seeds per arm on the datasets with one fixed split (SST, TREC); default: --seeds",
    )
    compare.add_argument("--folds", type=_positive_int, help="cross-validation folds (MR, Subj)")
    compare.add_argument("--max-folds", type=_positive_int, help="run only the first N folds")
    compare.add_argument("--variant", choices=VARIANTS, help="embedding variant")
    compare.add_argument("--vectors", help="pretrained vectors for non-rand variants")
    compare.add_argument("--epochs", type=_positive_int, help="most epochs per run")
    compare.add_argument("--patience", type=int, help="early stopping patience; 0: never stop early")
    compare.add_argument("--data-dir", help="folder holding the datasets (default: $TEXTCNN_DATA_DIR)")
    compare.add_argument("--out", required=True, help="study folder (results, summary, report, plots)")
    compare.add_argument(
        "--quick", action="store_true", help="a small budget that checks the whole path in about a minute"
    )
    compare.add_argument("--quiet", action="store_true", help="no progress bar")
    compare.add_argument(
        "--no-baselines",
        action="store_true",
        help="skip the linear baselines (TF-IDF + LR, NBSVM) fitted on the study's folds for the report",
    )
    compare.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: write the report (and fit the baselines) from the runs OUT holds so far",
    )
    compare.add_argument(
        "--group-size",
        type=_positive_int,
        default=10,
        help="train up to N runs of one dataset and pooling (seeds, folds) together as one batched "
        "computation; 1: one run at a time (default 10)",
    )
    compare.add_argument(
        "--probes",
        action="store_true",
        help="also train one max and one avg model per dataset (kept in OUT/models) and run the probes "
        "(invariance, ties, winning n-grams) for the report",
    )
    compare.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="train each group as a task on a Ray cluster (the ray extra; docs/ray.md): ADDRESS is the "
        "head's HOST:PORT, or auto for the cluster running on this machine; no ADDRESS: start or join a "
        "local one. This process still writes OUT, as each task returns",
    )
    compare.add_argument(
        "--ray-cpus",
        type=_positive_int,
        default=1,
        metavar="N",
        help="with --ray on a cluster without GPUs: CPUs (torch threads) each task asks for (default 1); "
        "with GPUs, a task asks for one GPU",
    )

    datasets = commands.add_parser("datasets", help="list the registered datasets and where they resolve")
    datasets.add_argument("--data-dir", help="folder holding the datasets (default: $TEXTCNN_DATA_DIR)")
    datasets.add_argument("--json", action="store_true", help="print JSON")
    _add_plugin_commands(commands)
    return parser


PLUGIN_GROUP = "textcnn.commands"


def _add_plugin_commands(commands) -> None:
    """Subcommands that other installed packages register (e.g. `serve`, from this repo's `service`).

    An entry point in group `textcnn.commands` names a function taking the subparsers object; it
    adds its parser and sets `handler(args) -> int` as a default. The library never imports the
    packages built on it: they plug in.
    """
    from importlib.metadata import entry_points

    for entry in entry_points(group=PLUGIN_GROUP):
        try:
            add_command = entry.load()
        except ImportError as exc:  # e.g. the `serve` extra is not installed
            commands.add_parser(entry.name, help=f"(unavailable: {exc})").set_defaults(
                handler=_unavailable(entry.name, exc)
            )
            continue
        add_command(commands)


def _unavailable(name: str, exc: Exception):
    def handler(args: argparse.Namespace) -> int:
        raise TextCNNError(f"'{name}' cannot run here: {exc} (install the project's extras, e.g. .[serve])")

    return handler


def _stop_on_sigterm_as_on_ctrl_c() -> None:
    """`docker stop` and process supervisors send SIGTERM: keep the best model then too, and say so."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


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
    name: name for name in ("optimizer", "lr", "batch_size", "epochs", "patience", "seed", "device", "amp")
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
    # Bad flags fail before any data loads; a local pooling's slots come later, from the data.
    slots = {"region_slots": 1} if "region_slots" not in model_options else {}
    probe = ModelConfig(vocab_size=2, num_classes=2, **(slots | model_options))
    if probe.pretrained and not args.vectors:
        raise TextCNNError(f"--variant {probe.variant} needs --vectors (a vectors file or glove-6b-50d)")
    return RunSettings(
        model_options, TrainConfig(**given(TRAIN_FLAGS)), VocabConfig(**given(VOCAB_FLAGS)), args.vectors
    )


def cmd_train(args: argparse.Namespace) -> int:
    from textcnn.data.folds import make_folds
    from textcnn.inference.metrics import format_metrics, format_summary
    from textcnn.train.protocol import train_folds

    settings = run_settings_from_args(args)
    _stop_on_sigterm_as_on_ctrl_c()
    corpus = _load_corpus(args)
    folds = make_folds(corpus, args.folds, args.fold, seed=settings.train.seed)

    def report(fold, outcome) -> None:
        where = Path(args.out) if len(folds) == 1 else Path(args.out) / fold.name
        parts = [
            f"{fold.name}: best epoch {outcome.fit.best_epoch}",
            f"dev {outcome.dev_metrics['accuracy']:.1%}",
        ]
        if outcome.test_metrics:
            parts.append(f"test {format_metrics(outcome.test_metrics)}")
        print(" | ".join(parts) + f" -> {where}", file=sys.stderr)
        if outcome.vectors:
            print(f"  vectors: {outcome.vectors['summary']}", file=sys.stderr)

    run = train_folds(
        corpus,
        folds,
        args.out,
        settings,
        args.resume,
        not args.quiet,
        args.half,
        on_fold=report,
        together=not (args.one_at_a_time or args.resume),
        ensemble=args.ensemble,
    )
    if "test" in run.summary:
        print(f"{corpus.name}: test {format_summary(run.summary['test'])}", file=sys.stderr)
    print(json.dumps(run.summary))
    stopped = [o for o in run.outcomes if o.fit.interrupted]
    if stopped:
        written = "the best model so far was written" if stopped[0].fit.best_epoch else "no epoch finished"
        print(f"textcnn: interrupted; {written} (continue with --resume)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _data_of_the_bundle(args: argparse.Namespace, trained_on: dict) -> None:
    """No data flags: evaluate on the data the bundle was trained on, its dataset or its files."""
    files = trained_on.get("files")
    if not files:
        if not trained_on.get("dataset"):
            raise TextCNNError(
                f"{args.bundle} does not say what it was trained on; give --dataset or --train FILE"
            )
        args.dataset = trained_on["dataset"]
        return
    missing = [path for path in files.values() if not Path(path).is_file()]
    if missing:
        raise TextCNNError(
            f"{args.bundle} was trained on {', '.join(files.values())}, and {', '.join(missing)} is not here "
            "(paths as given at training, from the folder it ran in); give --train FILE (and --test FILE)"
        )
    # A train file alone was cross-validated: cmd_evaluate then picks the fold it was held out from.
    args.train_file, args.dev_file, args.test_file = (files.get(split) for split in ("train", "dev", "test"))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from textcnn.data.folds import make_folds
    from textcnn.inference.bundle import Classifier
    from textcnn.inference.metrics import classification_metrics, format_metrics

    classifier = Classifier.load(args.bundle, device=args.device)
    trained_on = classifier.info.get("data") or {}
    if args.dataset is None and args.train_file is None:
        _data_of_the_bundle(args, trained_on)
    corpus = _load_corpus(args)
    seed = args.seed if args.seed is not None else trained_on.get("split_seed", 0)
    folds, fold = args.folds, args.fold
    if "all" in corpus.splits and folds is None and fold is None and trained_on.get("dataset") == corpus.name:
        folds, fold = trained_on.get("folds"), trained_on.get("fold_index")  # the fold it was held out from
    (chosen,) = make_folds(corpus, folds, fold if fold is not None or folds is None else 0, seed=seed)
    split = {"train": chosen.train, "dev": chosen.dev, "test": chosen.test}[args.split]
    if split is None:
        raise TextCNNError(f"{corpus.name} has no {args.split} split")
    unknown = sorted(set(split.labels) - set(classifier.label_names))
    if unknown:
        raise TextCNNError(
            f"{split.source}: labels the model does not know: {', '.join(map(repr, unknown[:5]))}"
        )
    index = {name: i for i, name in enumerate(classifier.label_names)}
    predicted = classifier.logits(split.texts).argmax(dim=1).tolist()
    metrics = classification_metrics([index[y] for y in split.labels], predicted, classifier.label_names)
    metrics |= {"dataset": corpus.name, "split": args.split, "fold": chosen.name, "bundle": str(args.bundle)}
    # Lines of the split's file left out for empty text (for a fold: of the file it was drawn from).
    metrics["skipped_empty_text"] = {"rows": len(split.skipped), "lines": list(split.skipped)}
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        scores = format_metrics(metrics)
        if split.skipped:  # inside format_metrics' closing "(n=...)", where the count it qualifies is
            rows = "1 row" if len(split.skipped) == 1 else f"{len(split.skipped)} rows"
            scores = f"{scores.removesuffix(')')}; {rows} with empty text skipped)"
        print(f"{corpus.name} {args.split} ({chosen.name}): {scores}")
        width = max(len(name) for name in classifier.label_names)
        for name, row in metrics["per_class"].items():
            print(
                f"  {name:<{width}}  precision {row['precision']:.3f}  recall {row['recall']:.3f}  "
                f"f1 {row['f1']:.3f}  support {row['support']}"
            )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from textcnn.inference.bundle import Classifier

    classifier = Classifier.load(args.bundle, device=args.device)
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin]
    texts = [text for text in texts if text.strip()]
    for start in range(0, len(texts), 4096):  # stream long inputs in slices
        chunk = texts[start : start + 4096]
        for text, prediction in zip(
            chunk, classifier.predict(chunk, batch_size=args.batch_size), strict=True
        ):
            print(json.dumps({"text": text, **prediction.to_json()}, ensure_ascii=False))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from textcnn.inference.bundle import Classifier
    from textcnn.inference.explain import explain_text

    classifier = Classifier.load(args.bundle, device=args.device)
    texts = [text for text in (args.texts or [line.rstrip("\n") for line in sys.stdin]) if text.strip()]
    for text in texts:
        explanation = explain_text(classifier, text, top=args.top)
        if args.json:
            print(json.dumps(explanation, ensure_ascii=False))
            continue
        print(
            f"{text}\n  -> {explanation['label']} "
            f"(logit {explanation['logit']:.2f}, bias {explanation['output_bias']:.2f})"
        )
        for side in ("for", "against"):
            for c in explanation[side]:
                print(
                    f"     {c['contribution']:+7.3f}  {c['ngram']!r}  (width {c['width']}, filter {c['filter']})"
                )
        parts = "  ".join(
            f"{token} {part:+.3f}"
            for token, part in zip(explanation["tokens"], explanation["token_parts"], strict=True)
        )
        residual = "" if explanation["exact"] else f", residual {explanation['residual']:+.3f}"
        print(f"  parts: {parts}  (filter biases {explanation['filter_bias']:+.3f}{residual})")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from textcnn.model.pooling import POOLINGS
    from textcnn.study.arms import arm_grammar, arm_options
    from textcnn.study.baselines import baseline_section, baselines_summary, run_baselines
    from textcnn.study.plan import StudyConfig
    from textcnn.study.probe_study import load_probes, probe_sections, run_probes
    from textcnn.study.report import write_report
    from textcnn.study.run import run_study
    from textcnn.study.summary import summarize

    poolings = tuple(p.strip() for p in args.poolings.split(",") if p.strip())
    problems = []
    for arm in poolings:
        try:
            arm_options(arm)
        except TextCNNError as exc:
            problems.append(str(exc))
    if problems:
        raise TextCNNError(f"{'; '.join(problems)}; {arm_grammar()}; poolings: {', '.join(POOLINGS)}")
    quick = {
        "max_train": 300,
        "epochs": 2,
        "max_folds": 1,
        "model_options": {"embedding_dim": 32, "num_filters": 16},
    }
    given = {
        name: getattr(args, dest) for dest, name in STUDY_FLAGS.items() if getattr(args, dest) is not None
    }
    settings = {
        "datasets": tuple(d.strip() for d in args.datasets.split(",") if d.strip()),
        "poolings": poolings,
        "max_folds": args.max_folds,
        "vectors": args.vectors,
        **given,
        **({"patience": None} if given.get("patience") == 0 else {}),
    }
    config = StudyConfig(**(settings | (quick if args.quick else {})))
    runner = None
    if args.ray is not None:  # only then: ray is an optional extra, and never imported otherwise
        from textcnn.study.ray_executor import ray_runner

        runner = ray_runner(args.ray or None, args.ray_cpus)
    rows = run_study(
        config,
        args.out,
        args.data_dir,
        progress=not args.quiet,
        group_size=args.group_size,
        runner=runner,
        report_only=args.report_only,
    )
    log = functools.partial(print, file=sys.stderr)
    if args.probes:
        run_probes(config, args.out, args.data_dir, log=log)
    baseline_rows = [] if args.no_baselines else run_baselines(config, args.out, args.data_dir, log=log)
    summary = summarize(rows)
    for dataset, baselines in baselines_summary(baseline_rows).items():
        if dataset in summary:
            summary[dataset]["baselines"] = baselines
    # The command that trains this study (a --report-only call shows the one that trains it).
    words = [w for w in sys.argv[1:] if w != "--report-only"]
    command = "textcnn " + " ".join(words) if words[:1] == ["compare"] else ""
    sections = ["\n".join(baseline_section(rows, baseline_rows, config))]
    sections += probe_sections(load_probes(args.out))
    report = write_report(summary, rows, config, args.out, command, sections)
    print(f"{len(rows)} runs -> {report}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from textcnn.data.registry import dataset_status

    rows = dataset_status(args.data_dir)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':<6} {'classes':>7} {'rows':>22}  {'protocol':<34} location")
    for row in rows:
        counts = "/".join(f"{n:,}" for n in row["rows"].values()) or "-"
        print(f"{row['name']:<6} {row['classes']:>7} {counts:>22}  {row['protocol']:<34} {row['location']}")
    return 0


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "explain": cmd_explain,
    "compare": cmd_compare,
    "datasets": cmd_datasets,
}


def _print_warnings_as_lines(show: Callable[..., None]) -> Callable[..., None]:
    """A `showwarning` that prints the library's warnings as one `textcnn: warning:` line each.

    Python's default format (`data.py:312: DataWarning: ...` plus the source line) points into the
    library, not at the user's data; the message already names the file and line that matter.
    Other warnings (from torch, say) keep their usual form.
    """

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, DataWarning):
            print(f"textcnn: warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return show_warning


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():  # restores `showwarning` when main is called from Python
        warnings.showwarning = _print_warnings_as_lines(warnings.showwarning)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        handler = COMMANDS.get(args.command) or args.handler
        return handler(args)
    except TextCNNError as exc:
        print(f"textcnn: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("textcnn: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `textcnn predict ... | head`
        return 0
