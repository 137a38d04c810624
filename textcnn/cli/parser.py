"""The `textcnn` argument parser: every command's flags, and the plug-in commands of other packages."""

from __future__ import annotations

import argparse
import functools

from textcnn.cli.flags import (
    ConfigDefaultsFormatter,
    add_data_arguments,
    add_tokenizer_arguments,
    int_list,
    non_negative_int,
    pooling_list,
    positive_int,
    probability,
    study_defaults,
    tokenizer_choice,
    train_defaults,
)
from textcnn.errors import TextCNNError


def build_parser() -> argparse.ArgumentParser:
    from textcnn import __version__
    from textcnn.model.pooling import POOLINGS, describe
    from textcnn.model.variants import (
        COMBINE_METHODS,
        LINEAR_KINDS,
        MIN_SUPPORT,
        THRESHOLD_MODES,
        VARIANTS,
    )
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
    add_data_arguments(train)
    add_tokenizer_arguments(train)
    train.add_argument(
        "--out", required=True, help="bundle folder to write (one sub-folder per fold with --folds)"
    )
    model = train.add_argument_group("model")
    model.add_argument("--variant", choices=VARIANTS, help="embedding variant (Kim 2014)")
    model.add_argument("--vectors", help="pretrained vectors: a word2vec/GloVe/fastText file or glove-6b-50d")
    model.add_argument("--embedding-dim", type=positive_int, help="embedding size without --vectors")
    model.add_argument("--filter-widths", type=int_list, help="comma-separated filter widths")
    model.add_argument("--num-filters", type=positive_int, help="feature maps per width")
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
    model.add_argument(
        "--pooling",
        type=pooling_list,
        metavar="POOLING[,POOLING...]",
        help=f"pooling over time, one of {', '.join(POOLINGS)} ({describe()}); with --ensemble K, a "
        "comma-separated list splits the K members between them (member k pools with the (k mod n)-th)",
    )
    model.add_argument("--k", type=positive_int, help="k of kmax pooling")
    model.add_argument("--chunks", type=positive_int, help="regions of chunk-max pooling")
    model.add_argument("--temperature", type=float, help="temperature of logsumexp pooling")
    model.add_argument(
        "--region", type=positive_int, help="windows per region of local-max and local-avg pooling"
    )
    model.add_argument(
        "--region-slots",
        type=positive_int,
        help="regions of local pooling (padded-avg: its padded length in windows); not given (0): as many "
        "as the longest training sentence needs (a longer sentence folds its extra windows into the last region)",
    )
    model.add_argument("--dropout", type=float, help="dropout before the output layer")
    model.add_argument("--max-norm", type=float, help="l2 max-norm of output weight rows; 0 turns it off")
    fitting = train.add_argument_group("training")
    fitting.add_argument("--optimizer", choices=OPTIMIZERS, help="Kim: adadelta")
    fitting.add_argument("--lr", type=float, help="learning rate (default 1.0 Adadelta, 0.001 Adam)")
    fitting.add_argument("--batch-size", type=positive_int, help="sentences per batch")
    fitting.add_argument("--epochs", type=positive_int, help="most epochs to train")
    fitting.add_argument(
        "--max-steps",
        type=positive_int,
        help="a step budget: stop after N optimizer steps in all (mid-epoch: that epoch is evaluated "
        "on dev and is the last)",
    )
    fitting.add_argument("--patience", type=int, help="stop after N epochs without dev gain; 0: never")
    fitting.add_argument("--seed", type=int, help="seed for splits, initialisation and batches")
    fitting.add_argument("--device", help="auto (CUDA when present), cpu or cuda")
    fitting.add_argument(
        "--amp", choices=AMP_MODES, help="bf16 mixed precision: auto (on CUDA only), bf16 (CPU too), off"
    )
    fitting.add_argument("--min-count", type=positive_int, help="drop words seen fewer times in train")
    fitting.add_argument("--max-vocab", type=int, help="keep at most this many words")
    fitting.add_argument("--max-length", type=positive_int, help="truncate texts to this many tokens")
    fitting.add_argument(
        "--ensemble",
        type=non_negative_int,
        default=1,
        metavar="K",
        help="train K models (seeds SEED .. SEED + K - 1) in one batched computation and save them as "
        "one bundle that predicts the mean of their probabilities; without per-epoch checkpoints "
        "(default: 1, a single model; 0 with --linear: the linear model alone, as a bundle)",
    )
    fitting.add_argument(
        "--linear",
        choices=LINEAR_KINDS,
        help="add a linear n-gram member to the bundle (NBSVM or TF-IDF + LR over word 1-2-grams, or "
        "char-lr: TF-IDF + LR over character 1-5-grams within tokens; its C and a temperature chosen on dev)",
    )
    fitting.add_argument(
        "--combine",
        choices=COMBINE_METHODS,
        help="how an ensemble combines its members: mean of their probabilities (default), or dev: "
        "each part's weight (a pooling's members, the linear member) chosen on dev by log loss",
    )
    labels = train.add_argument_group("multi-label data (rows with several labels)")
    labels.add_argument(
        "--thresholds",
        choices=THRESHOLD_MODES,
        help="how the thresholds that decide a text's labels are chosen on dev: per-label (default: one "
        f"shared cut, then its own for each label with at least {MIN_SUPPORT} dev rows) or global (one for all)",
    )
    labels.add_argument(
        "--at-least-one",
        action=argparse.BooleanOptionalAction,
        help="a text whose labels all miss their thresholds still gets its most probable one (default: "
        "when every training row has a label)",
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
    add_data_arguments(evaluate)
    evaluate.add_argument("--split", choices=("test", "dev", "train"), default="test", help="default test")
    evaluate.add_argument("--seed", type=int, help="split seed for held-out parts (default: the bundle's)")
    evaluate.add_argument("--json", action="store_true", help="print the full metrics as JSON")
    evaluate.add_argument(
        "--threshold", type=probability, help="multi-label bundles: one threshold for every label"
    )
    evaluate.add_argument("--device", default="auto", help="auto, cpu or cuda")

    ensemble = commands.add_parser(
        "ensemble",
        help="compose bundles trained on the same data into one (mixed poolings, a linear member)",
        description="Every member of every MEMBER_BUNDLE (a single model, an ensemble, a mixed or a linear "
        "bundle) becomes a member of one bundle at --out. They must share labels, tokenizer, vocabulary and "
        "training split (refused in one line otherwise). Dev and test figures come from the members' data "
        "when it is here (or the data flags).",
    )
    ensemble.add_argument("bundles", nargs="+", metavar="MEMBER_BUNDLE", help="member bundle folders")
    ensemble.add_argument("--out", required=True, help="bundle folder to write")
    ensemble.add_argument(
        "--combine",
        choices=COMBINE_METHODS,
        default="mean",
        help="mean of the members' probabilities (default), or dev: each part's weight chosen on the "
        "members' dev split by log loss (needs their data)",
    )
    ensemble.add_argument("--half", action="store_true", help="store fp16 CNN weights")
    add_data_arguments(ensemble)
    ensemble.add_argument("--seed", type=int, help="split seed for held-out parts (default: the bundles')")

    predict = commands.add_parser(
        "predict",
        help="label texts (arguments, or one a line on stdin)",
        description="Print one JSON line per text: label, score, probabilities.",
    )
    predict.add_argument("bundle", help="model bundle folder")
    predict.add_argument("texts", nargs="*", help="texts to label; none: read one a line from stdin")
    predict.add_argument("--batch-size", type=positive_int, default=256, help="texts per forward pass")
    predict.add_argument(
        "--threshold",
        type=probability,
        help="multi-label bundles: one threshold for every label instead of the bundle's (chosen on dev)",
    )
    predict.add_argument("--device", default="auto", help="auto, cpu or cuda")
    files = predict.add_argument_group(
        "files", "score whole files as a stream instead of texts (every column kept, answers appended)"
    )
    files.add_argument(
        "--input", nargs="+", metavar="FILE", help="csv, tsv, jsonl, json, parquet (maybe .gz); globs too"
    )
    files.add_argument("--output", metavar="FILE", help="where to write (default: JSON Lines on stdout)")
    files.add_argument(
        "--format", choices=("csv", "tsv", "jsonl", "parquet"), help="default: --output's suffix"
    )
    files.add_argument("--text-column", help="the column holding the text (default: text)")
    files.add_argument("--top-k", type=positive_int, help="add the k most probable labels (JSON)")
    files.add_argument("--probabilities", action="store_true", help="add a p_<label> column per label")
    files.add_argument("--no-coverage", action="store_true", help="leave out the coverage column")
    files.add_argument("--resume", action="store_true", help="continue an interrupted run into --output")
    files.add_argument(
        "--workers", type=non_negative_int, help="tokenizing processes (0: none; default: from the CPU count)"
    )
    files.add_argument(
        "--chunk-rows", type=positive_int, help="rows read, scored and committed at a time (default: 4096)"
    )
    files.add_argument("--quiet", action="store_true", help="no progress bar")
    files.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="score on a Ray cluster (docs/ray.md; no ADDRESS: a local one); --output is then a folder",
    )
    files.add_argument(
        "--ray-workers", type=positive_int, help="Ray actors, each holding the bundle (default: 2)"
    )

    explain = commands.add_parser(
        "explain",
        help="the n-grams that decided each prediction",
        description="For each text: the predicted label, the n-grams (windows) that pushed its logit most "
        "for and against that label (pooled share x output weight), and the logit split over the tokens "
        "(any pooling; logsumexp is split approximately, the rest shown as a residual).",
    )
    explain.add_argument("bundle", help="model bundle folder")
    explain.add_argument("texts", nargs="*", help="texts to explain; none: read one a line from stdin")
    explain.add_argument("--top", type=positive_int, default=5, help="n-grams to show each way")
    explain.add_argument(
        "--threshold", type=probability, help="multi-label bundles: one threshold for every label"
    )
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
    compare.add_argument("--seeds", type=positive_int, help="training seeds per arm (0, 1, ...)")
    compare.add_argument(
        "--fixed-split-seeds",
        type=positive_int,
        help="seeds per arm on the datasets with one fixed split (SST, TREC); default: --seeds",
    )
    compare.add_argument("--folds", type=positive_int, help="cross-validation folds (MR, Subj)")
    compare.add_argument("--max-folds", type=positive_int, help="run only the first N folds")
    compare.add_argument("--variant", choices=VARIANTS, help="embedding variant")
    compare.add_argument("--vectors", help="pretrained vectors for non-rand variants")
    compare.add_argument("--epochs", type=positive_int, help="most epochs per run")
    compare.add_argument("--patience", type=int, help="early stopping patience; 0: never stop early")
    compare.add_argument("--data-dir", help="folder holding the datasets (default: $TEXTCNN_DATA_DIR)")
    compare.add_argument(
        "--tokenizer",
        type=tokenizer_choice,
        metavar="NAME[:OPTION=VALUE,...]",
        help="the tokenizer of every run and baseline (default: each dataset's: kim, lowercased, for the "
        "English benchmarks; unicode for the others)",
    )
    compare.add_argument(
        "--baselines",
        default="tfidf-lr,nbsvm",
        help="comma-separated linear baselines fitted on the study's folds: tfidf-lr, nbsvm, char-lr "
        "(character 1-5-grams) (default: tfidf-lr,nbsvm)",
    )
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
        type=positive_int,
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
        type=positive_int,
        default=1,
        metavar="N",
        help="with --ray on a cluster without GPUs: CPUs (torch threads) each task asks for (default 1); "
        "with GPUs, a task asks for one GPU",
    )

    _add_tune(commands, VARIANTS, OPTIMIZERS, COMBINE_METHODS)

    datasets = commands.add_parser("datasets", help="list the registered datasets and where they resolve")
    datasets.add_argument("--data-dir", help="folder holding the datasets (default: $TEXTCNN_DATA_DIR)")
    datasets.add_argument("--json", action="store_true", help="print JSON")
    _add_plugin_commands(commands)
    return parser


PLUGIN_GROUP = "textcnn.commands"


def _add_tune(commands, variants, optimizers, combine_methods) -> None:
    tune = commands.add_parser(
        "tune",
        help="search pooling, widths, maps, dropout, variant and rate on Ray Tune; a bundle of the best",
        description="Search the model's shape on your data with Ray Tune (the tune extra): single widths "
        "first, then Zhang & Wallace's combinations around the best; ASHA stops weak trials early; "
        "trials are compared on dev only. Writes OUT/trials.jsonl, OUT/REPORT.md with a plot, and "
        "OUT/best/, a servable bundle of the chosen configuration. Ctrl-C stops it; the same command resumes.",
    )
    add_data_arguments(tune)
    add_tokenizer_arguments(tune)
    tune.add_argument("--out", required=True, help="folder for the trials, the report and best/")
    tune.add_argument(
        "--vectors",
        help="pretrained vectors (a file or glove-6b-50d): the space then searches the pretrained variants",
    )
    tune.add_argument(
        "--space",
        metavar="FILE",
        help="a YAML or JSON search space replacing the default's keys (pooling, widths, maps, dropout, lr, "
        "variant, combinations; docs/tune.md)",
    )
    budget = tune.add_argument_group("budget")
    budget.add_argument("--trials", type=positive_int, default=20, help="trials in all (default 20)")
    budget.add_argument(
        "--time-budget",
        type=float,
        metavar="SECONDS",
        help="end the search after this long, running trials included (both stages; best/ trains after it)",
    )
    budget.add_argument("--epochs", type=positive_int, default=25, help="most epochs per trial (default 25)")
    budget.add_argument(
        "--grace", type=positive_int, default=2, help="epochs before ASHA may stop a trial (default 2)"
    )
    budget.add_argument(
        "--patience", type=int, default=5, help="early stopping patience per trial; 0: never (default 5)"
    )
    budget.add_argument(
        "--searcher",
        choices=("auto", "optuna", "random"),
        default="auto",
        help="Optuna's TPE (when optuna is installed) or random search (default auto)",
    )
    budget.add_argument(
        "--cpus-per-trial", type=float, default=1.0, help="CPUs (torch threads) per trial (default 1)"
    )
    budget.add_argument(
        "--gpus-per-trial", type=float, default=0.0, help="GPU share per trial, e.g. 0.25 (default 0)"
    )
    budget.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="join the Ray cluster at ADDRESS (HOST:PORT, or auto), as compare --ray does (docs/ray.md); "
        "default: a local Ray on this machine",
    )
    fitting = tune.add_argument_group("training and the bundle")
    fitting.add_argument(
        "--optimizer", choices=optimizers, default="adadelta", help="the rate searched is its rate"
    )
    fitting.add_argument("--batch-size", type=positive_int, help="sentences per batch (default 50)")
    fitting.add_argument(
        "--seed", type=int, default=0, help="seed of the splits, the trials and the searcher"
    )
    fitting.add_argument("--device", help="auto (CUDA when present), cpu or cuda")
    fitting.add_argument(
        "--ensemble",
        type=positive_int,
        default=5,
        metavar="K",
        help="best/ is the chosen configuration as K seeds (default 5)",
    )
    fitting.add_argument(
        "--top",
        type=positive_int,
        default=1,
        metavar="K",
        help="best/ mixes the K best distinct configurations, each as --ensemble seeds (default 1)",
    )
    fitting.add_argument(
        "--combine", choices=combine_methods, default="mean", help="how --top K's members combine"
    )
    fitting.add_argument("--quiet", action="store_true", help="no progress bars")


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
