"""`textcnn tune`: the search from the command line (the search itself is `textcnn.tune`)."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
from pathlib import Path

from textcnn.cli.flags import load_corpus_from_args, tokenizer_from_args
from textcnn.cli.models import EXIT_INTERRUPTED
from textcnn.errors import TextCNNError


def _space(args: argparse.Namespace):
    from textcnn.tune.space import check_space, load_space

    if args.space:
        return load_space(args.space, bool(args.vectors), args.optimizer)
    return check_space({}, bool(args.vectors), args.optimizer)


def _base_settings(args: argparse.Namespace):
    from textcnn.train.config import TrainConfig
    from textcnn.train.runs import RunSettings

    train = {
        "optimizer": args.optimizer,
        "epochs": args.epochs,
        "patience": None if args.patience == 0 else args.patience,
        "seed": args.seed,
        **({"batch_size": args.batch_size} if args.batch_size else {}),
        **({"device": args.device} if args.device else {}),
    }
    if args.patience < 0:
        raise TextCNNError(f"--patience must be >= 0, got {args.patience}")
    return RunSettings({}, TrainConfig(**train), vectors=args.vectors)


def cmd_tune(args: argparse.Namespace) -> int:
    space = _space(args)  # a bad space file is one line before anything loads
    if args.top > args.trials:
        raise TextCNNError(f"--top {args.top} needs at least as many --trials (got {args.trials})")
    if args.time_budget is not None and not args.time_budget > 0:
        raise TextCNNError(f"--time-budget must be positive seconds, got {args.time_budget}")
    base = _base_settings(args)

    from textcnn.data.folds import make_folds
    from textcnn.tune import run as tune_run
    from textcnn.tune.search import (
        Budget,
        SearchSettings,
        ranked,
        search,
        searcher_name,
        start_ray,
        tuning_fold,
    )
    from textcnn.tune.trial import TrialData

    log = functools.partial(print, file=sys.stderr)
    out = Path(args.out)
    corpus = load_corpus_from_args(args)
    base = dataclasses.replace(base, tokenizer=tokenizer_from_args(args, corpus))
    folds = make_folds(corpus, args.folds, args.fold, seed=args.seed)
    tuned = tuning_fold(folds[0])
    budget = Budget(args.trials, args.time_budget)
    settings = SearchSettings(
        epochs=args.epochs,
        grace=args.grace,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        seed=args.seed,
        searcher=args.searcher,
        patience=base.train.patience,
    )
    job = tune_run.TuneJob(space, budget, settings, base, args.ensemble, args.top, args.combine)
    recorded = {
        "data": {
            "corpus": corpus.name,
            "folds": [f.name for f in folds],
            "train": len(tuned.train),
            "dev": len(tuned.dev),
        },
        "space": space.to_json(),
        "trials": budget.trials,
        "time_budget": budget.seconds,
        "search": {k: v for k, v in vars(settings).items() if k not in ("cpus_per_trial", "gpus_per_trial")},
        "training": base.train.to_json() | {"device": None},
        "vectors": base.vectors,
        "tokenizer": str(base.tokenizer),
        "bundle": {"ensemble": args.ensemble, "top": args.top, "combine": args.combine},
    }
    tune_run.check_settings(out, recorded)
    protocol = tune_run.protocol(corpus, folds, tuned)
    log(protocol)
    searcher = searcher_name(args.searcher)
    threads = max(1, int(args.cpus_per_trial))
    start_ray(args.ray, None)
    data = TrialData(tuned, tuple(corpus.label_names), base, threads)
    records, interrupted = search(data, space, budget, out, settings, not args.quiet, log)
    chosen = ranked(records)[: args.top]
    header = {
        "data": corpus.name,
        # what trials are ranked by: early stopping's own score (textcnn.train.loop.selection_score)
        "selection": "dev macro-F1" if corpus.multi_label else "dev accuracy",
        "command": "textcnn " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["tune"] else "",
        "budget": f"{budget.trials} trials" + (f", {budget.seconds:.0f} s" if budget.seconds else ""),
        "searcher": searcher,
        "grace": settings.grace,
        "epochs": settings.epochs,
        "reduction": settings.reduction,
        "stages": _stages(out),
        "space": json.dumps(space.to_json()),
        "bundle": (
            f"the {args.top} best configurations, each" if args.top > 1 else "the chosen configuration"
        )
        + f" as {args.ensemble} seed(s), per fold",
    }
    if interrupted or not chosen:
        from textcnn.tune.report import write_report

        write_report(out, records, chosen, None, protocol, header)
        if interrupted:  # also before any trial's first epoch: the restored stage starts them again
            log(f"textcnn: interrupted after {len(records)} trials; the same command resumes the tune")
            return EXIT_INTERRUPTED
        raise TextCNNError(
            "no trial finished an epoch: nothing to choose"
            " (a tight --time-budget ends trials before their first epoch; errors are in OUT/trials.jsonl)"
        )
    for i, record in enumerate(chosen):
        log(f"chosen {i + 1}: {tune_run.describe(record['config'])} (dev {record['best_dev_accuracy']:.1%})")
    summary, stopped = tune_run.train_choice(corpus, folds, chosen, job, out, not args.quiet, log)
    from textcnn.tune.report import write_report

    if stopped:
        write_report(out, records, chosen, None, protocol, header)
        log("textcnn: interrupted while training best/; the same command resumes it")
        return EXIT_INTERRUPTED
    report = write_report(out, records, chosen, summary, protocol, header)
    if "test" in summary:
        test = summary["test"]["accuracy"]
        log(
            f"{corpus.name}: test accuracy {test['mean']:.1%} ± {test['std']:.1%} over {summary['test']['folds']} folds"
        )
    elif summary["folds"] and summary["folds"][0].get("test"):
        log(f"{corpus.name}: test accuracy {summary['folds'][0]['test']['accuracy']:.1%}")
    log(f"{len(records)} trials -> {out / 'trials.jsonl'}; report -> {report}; bundle -> {out / 'best'}")
    print(json.dumps({"chosen": [r["config"] for r in chosen], "summary": summary}))
    return 0


def _stages(out: Path) -> str:
    path = out / "ray" / "stages.json"
    if not path.exists():
        return "none finished"
    state = json.loads(path.read_text(encoding="utf-8"))
    return "; ".join(
        f"{stage}: {len(s['records'])} trials over widths {', '.join(s['widths'])}"
        + ("" if s["finished"] else " (interrupted)")
        for stage, s in state.items()
    )
