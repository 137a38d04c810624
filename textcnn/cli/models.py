"""The commands over one model: train it, evaluate, predict and explain with its bundle, and list
the datasets it can train on. Each parses nothing itself (`parser.py`) and prints what it returns."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
from pathlib import Path
from textwrap import indent

from textcnn.cli.flags import (
    load_corpus_from_args,
    mixture_from_args,
    run_settings_from_args,
    tokenizer_from_args,
)
from textcnn.errors import TextCNNError

EXIT_INTERRUPTED = 130


def _stop_on_sigterm_as_on_ctrl_c() -> None:
    """`docker stop` and process supervisors send SIGTERM: keep the best model then too, and say so."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def cmd_train(args: argparse.Namespace) -> int:
    from textcnn.data.folds import make_folds
    from textcnn.inference.metrics import format_metrics, format_summary, per_label_table
    from textcnn.train.protocol import train_folds

    settings = run_settings_from_args(args)
    mixture = mixture_from_args(args)
    _stop_on_sigterm_as_on_ctrl_c()
    corpus = load_corpus_from_args(args)
    settings = dataclasses.replace(settings, tokenizer=tokenizer_from_args(args, corpus))
    folds = make_folds(corpus, args.folds, args.fold, seed=settings.train.seed)

    def prepared(fold, run) -> None:
        if run.tokens is not None and not args.quiet:
            name = f"{fold.name}: " if len(folds) > 1 else ""
            print(f"{name}{run.tokens.summary()}", file=sys.stderr)

    def report(fold, outcome) -> None:
        where = Path(args.out) if len(folds) == 1 else Path(args.out) / fold.name
        dev = outcome.dev_metrics
        parts = [
            f"{fold.name}: best epoch {outcome.fit.best_epoch}",
            f"dev macro-F1 {dev['macro_f1']:.1%}" if dev.get("multi_label") else f"dev {dev['accuracy']:.1%}",
        ]
        if outcome.test_metrics:
            parts.append(f"test {format_metrics(outcome.test_metrics)}")
        print(" | ".join(parts) + f" -> {where}", file=sys.stderr)
        decision = outcome.classifier.decision
        if decision is not None:  # multi-label: the thresholds and each label's figures
            print(f"  thresholds {decision.chosen}", file=sys.stderr)
            table = per_label_table(outcome.test_metrics or dev, decision.thresholds)
            split = "test" if outcome.test_metrics else "dev"
            print(f"  per label, on {split}:\n" + indent(table, "    "), file=sys.stderr)
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
        mixture=mixture,
        on_prepared=prepared,
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
    # and its labels are read as they were at training (columns, separator, 0/1 columns), unless given
    defaults = {"text_column": "text", "label_column": "label"}
    for flag, value in (trained_on.get("reading") or {}).items():
        if getattr(args, flag, None) in (None, False, defaults.get(flag)):
            setattr(args, flag, value)


def _bundle_fold(args: argparse.Namespace, classifier):
    """(corpus, fold) a bundle is measured on: the data flags given, else the data it was trained
    on, and the fold it was held out from (`--seed`, `--folds`, `--fold` override)."""
    from textcnn.data.folds import make_folds

    trained_on = classifier.info.get("data") or {}
    if args.dataset is None and args.train_file is None:
        _data_of_the_bundle(args, trained_on)
    corpus = load_corpus_from_args(args)
    seed = args.seed if args.seed is not None else trained_on.get("split_seed", 0)
    folds, fold = args.folds, args.fold
    if "all" in corpus.splits and folds is None and fold is None and trained_on.get("dataset") == corpus.name:
        folds, fold = trained_on.get("folds"), trained_on.get("fold_index")  # the fold it was held out from
    (chosen,) = make_folds(corpus, folds, fold if fold is not None or folds is None else 0, seed=seed)
    return corpus, chosen


def cmd_evaluate(args: argparse.Namespace) -> int:
    from textcnn.inference.classifier import Classifier
    from textcnn.inference.metrics import format_metrics, per_label_table

    classifier = Classifier.load(args.bundle, device=args.device)
    corpus, chosen = _bundle_fold(args, classifier)
    split = {"train": chosen.train, "dev": chosen.dev, "test": chosen.test}[args.split]
    if split is None:
        raise TextCNNError(f"{corpus.name} has no {args.split} split")
    if split.multi_label != classifier.multi_label:
        kinds = {True: "multi-label", False: "single-label"}
        raise TextCNNError(
            f"{split.source}: {kinds[split.multi_label]} data for a {kinds[classifier.multi_label]} bundle"
        )
    if args.threshold is not None and not classifier.multi_label:
        raise TextCNNError("--threshold is for multi-label bundles; this one gives one label per text")
    seen = {y for row in split.labels for y in row} if split.multi_label else set(split.labels)
    unknown = sorted(seen - set(classifier.label_names))
    if unknown:
        raise TextCNNError(
            f"{split.source}: labels the model does not know: {', '.join(map(repr, unknown[:5]))}"
        )
    metrics = classifier.score(split.texts, split.labels, args.threshold) | {
        "dataset": corpus.name,
        "split": args.split,
        "fold": chosen.name,
        "bundle": str(args.bundle),
    }
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
        unread = (
            f"; {metrics['unread']} unread (no word known: scored by the biases)" if metrics["unread"] else ""
        )
        print(f"  coverage: {metrics['coverage']:.1%} of the tokens known, on average{unread}")
        if classifier.multi_label:
            decision = classifier.decision.with_threshold(args.threshold)
            print(f"  thresholds {decision.chosen}; per label:")
            print(indent(per_label_table(metrics, decision.thresholds), "    "))
            return 0
        width = max(len(name) for name in classifier.label_names)
        for name, row in metrics["per_class"].items():
            print(
                f"  {name:<{width}}  precision {row['precision']:.3f}  recall {row['recall']:.3f}  "
                f"f1 {row['f1']:.3f}  support {row['support']}"
            )
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    """Compose member bundles into one (`textcnn.inference.compose`), measured on their data when it is here."""
    from textcnn.inference.classifier import Classifier
    from textcnn.inference.compose import check_compatible, compose, split_metrics

    names = [str(path) for path in args.bundles]
    if any(Path(path).resolve() == Path(args.out).resolve() for path in args.bundles):
        raise TextCNNError(
            f"--out {args.out} is one of the member bundles; write the composed bundle elsewhere"
        )
    bundles = [Classifier.load(path, device="cpu") for path in args.bundles]
    check_compatible(bundles, names)  # before any data loads
    args.bundle = names[0]
    fold = None
    try:
        _, fold = _bundle_fold(args, bundles[0])
    except TextCNNError as exc:
        if args.combine == "dev":
            raise
        print(f"textcnn: no dev/test figures for the bundle: {exc}", file=sys.stderr)
    dev = (fold.dev.texts, fold.dev.labels) if fold is not None else None
    composed = compose(bundles, names, args.combine, dev)
    if fold is not None:
        composed.info["metrics"] = split_metrics(composed, fold)
    composed.save(args.out, half=args.half)
    kinds: dict[str, int] = {}
    for member in composed.member_list():
        kind = member.model.config.pooling if member.kind == "cnn" else member.kind
        kinds[kind] = kinds.get(kind, 0) + 1
    parts = ", ".join(f"{kind} x{n}" if n > 1 else kind for kind, n in kinds.items())
    key, shown = ("macro_f1", " macro-F1") if composed.multi_label else ("accuracy", "")
    figures = "".join(
        f" | {name}{shown} {scores[key]:.1%}" for name, scores in (composed.info.get("metrics") or {}).items()
    )
    print(
        f"{args.out}: {len(composed.member_list())} members ({parts}), {args.combine}{figures}",
        file=sys.stderr,
    )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from textcnn.inference.classifier import Classifier

    if args.ray is not None:
        return _predict_on_ray(args)
    classifier = Classifier.load(args.bundle, device=args.device)
    if args.threshold is not None and not classifier.multi_label:
        raise TextCNNError("--threshold is for multi-label bundles; this one gives one label per text")
    if args.input:
        return _predict_files(classifier, args)
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin]
    texts = [text for text in texts if text.strip()]
    for start in range(0, len(texts), 4096):  # stream long inputs in slices
        chunk = texts[start : start + 4096]
        predictions = classifier.predict(chunk, batch_size=args.batch_size, threshold=args.threshold)
        for text, prediction in zip(chunk, predictions, strict=True):
            print(json.dumps({"text": text, **prediction.to_json()}, ensure_ascii=False))
    return 0


def _score_options(args: argparse.Namespace):
    """The `ScoreOptions` of `predict --input` (one process or Ray): the flags given, else its defaults."""
    from textcnn.inference.scoring import ScoreOptions

    if args.texts:
        raise TextCNNError("give texts or --input files, not both")
    given = {
        "text_column": args.text_column,
        "top_k": args.top_k,
        "probabilities": args.probabilities or None,
        "coverage": False if args.no_coverage else None,
        "threshold": args.threshold,
        "batch_size": args.batch_size,
    }
    return ScoreOptions(**{k: v for k, v in given.items() if v is not None})


def _predict_on_ray(args: argparse.Namespace) -> int:
    """`predict BUNDLE --ray [ADDRESS] --input GLOB... --output DIR`: `score_files_on_ray`; its summary on stdout."""
    from textcnn.inference.ray_scoring import RayScoring, score_files_on_ray

    if not args.input or not args.output:
        raise TextCNNError("--ray scores files: give --input FILE... and --output DIR")
    if args.resume:
        raise TextCNNError("--resume is for one process; a Ray run retries failed work itself")
    given = {"output_format": args.format, "workers": args.ray_workers, "progress": not args.quiet}
    config = RayScoring(**{name: value for name, value in given.items() if value is not None})
    summary = score_files_on_ray(
        args.bundle, args.input, args.output, _score_options(args), address=args.ray or None, config=config
    )
    print(json.dumps(summary))
    return 0


def _predict_files(classifier, args: argparse.Namespace) -> int:
    from textcnn.inference.stream import Interrupted, StreamConfig, predict_files

    options = _score_options(args)
    streamed = {
        "output": args.output,
        "format": args.format,
        "workers": args.workers,
        "chunk_rows": args.chunk_rows,
    }
    config = StreamConfig(
        inputs=tuple(args.input),
        options=options,
        resume=args.resume,
        progress=not args.quiet,
        **{k: v for k, v in streamed.items() if v is not None},
    )
    try:
        done = predict_files(classifier, config)
    except Interrupted as stop:
        print(f"textcnn: {stop}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.output and not args.quiet:
        print(
            f"textcnn: {done['rows']} rows scored into {args.output} ({done['errors']} with an error) "
            f"in {done['seconds']:.1f}s",
            file=sys.stderr,
        )
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from textcnn.inference.classifier import Classifier
    from textcnn.inference.explain import explain_text

    classifier = Classifier.load(args.bundle, device=args.device)
    if args.threshold is not None and not classifier.multi_label:
        raise TextCNNError("--threshold is for multi-label bundles; this one gives one label per text")
    texts = [text for text in (args.texts or [line.rstrip("\n") for line in sys.stdin]) if text.strip()]
    for text in texts:
        explanation = explain_text(classifier, text, top=args.top, threshold=args.threshold)
        if args.json:
            print(json.dumps(explanation, ensure_ascii=False))
            continue
        if explanation["unread"]:
            tokens = " ".join(explanation["tokens"]) if explanation["spans"] != [[0, 0]] else "no token"
            print(f"{text}\n  -> not read: none of its tokens ({tokens}) is known to the model; no label")
            continue
        if classifier.multi_label:
            _print_labels(text, explanation)
            continue
        print(
            f"{text}\n  -> {explanation['label']} "
            f"(logit {explanation['logit']:.2f}, bias {explanation['output_bias']:.2f}; "
            f"{explanation['coverage']:.0%} of its tokens known)"
        )
        for member in explanation.get("members") or []:
            what = member["pooling"] or member["kind"]
            print(
                f"     member {member['member']} ({what}, weight {member['weight']:.3f}): {member['label']} "
                f"{member['probabilities'][member['label']]:.1%}, its part {sum(member['token_parts']):+.3f}"
            )
        for side in ("for", "against"):
            for c in explanation[side]:
                where = (
                    f"{c['kind']} {c['width']}-gram"
                    if c.get("kind") not in (None, "cnn")
                    else f"width {c['width']}, filter {c['filter']}"
                )
                member = f", member {c['member']}" if c.get("member") is not None else ""
                print(f"     {c['contribution']:+7.3f}  {c['ngram']!r}  ({where}{member})")
        parts = "  ".join(
            f"{token}{'' if known else ' (unknown)'} {part:+.3f}"
            for token, part, known in zip(
                explanation["tokens"], explanation["token_parts"], explanation["known"], strict=True
            )
        )
        residual = "" if explanation["exact"] else f", residual {explanation['residual']:+.3f}"
        print(f"  parts: {parts}  (filter biases {explanation['filter_bias']:+.3f}{residual})")
    return 0


def _print_labels(text: str, explanation: dict) -> None:
    """A multi-label explanation: each label given, its probability, and the n-grams for and against it."""
    given = explanation["labels"]
    names = ", ".join(f"{g['label']} {g['score']:.0%}" for g in given) or "no label reaches its threshold"
    print(f"{text}\n  -> {names} ({explanation['coverage']:.0%} of its tokens known)")
    for label in given:
        print(f"  {label['label']}: logit {label['logit']:.2f}, bias {label['output_bias']:.2f}")
        for side in ("for", "against"):
            for c in label[side]:
                print(f"     {c['contribution']:+7.3f}  {c['ngram']!r}")


def cmd_datasets(args: argparse.Namespace) -> int:
    from textcnn.data.registry import dataset_status

    rows = dataset_status(args.data_dir)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(row["name"]) for row in rows)
    print(
        f"{'name':<{width}} {'lang':<4} {'classes':>7} {'rows':>22}  {'protocol':<26} {'tokenizer':<20} location"
    )
    for row in rows:
        counts = "/".join(f"{n:,}" for n in row["rows"].values()) or "-"
        print(
            f"{row['name']:<{width}} {row['language']:<4} {row['classes']:>7} {counts:>22}  "
            f"{row['protocol']:<26} {row['tokenizer']:<20} {row['location']}"
        )
    return 0
