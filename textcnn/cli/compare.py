"""`textcnn compare`: the pooling study from the command line (the study itself is textcnn.study)."""

from __future__ import annotations

import argparse
import functools
import sys

from textcnn.cli.flags import STUDY_FLAGS
from textcnn.errors import TextCNNError


def cmd_compare(args: argparse.Namespace) -> int:
    from textcnn.model.linear import BASELINES
    from textcnn.model.pooling import POOLINGS
    from textcnn.study.arms import arm_grammar, arm_options
    from textcnn.study.baselines import baseline_section, baselines_summary, run_baselines
    from textcnn.study.learned import learned_section
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
        "tokenizer": str(args.tokenizer) if args.tokenizer is not None else None,
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
    names = tuple(n.strip() for n in args.baselines.split(",") if n.strip())
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise TextCNNError(
            f"--baselines: unknown baseline {unknown[0]!r}; choose from {', '.join(BASELINES)}"
        )
    baseline_rows = (
        [] if args.no_baselines else run_baselines(config, args.out, args.data_dir, names=names, log=log)
    )
    summary = summarize(rows)
    for dataset, baselines in baselines_summary(baseline_rows).items():
        if dataset in summary:
            summary[dataset]["baselines"] = baselines
    # The command that trains this study (a --report-only call shows the one that trains it).
    words = [w for w in sys.argv[1:] if w != "--report-only"]
    command = "textcnn " + " ".join(words) if words[:1] == ["compare"] else ""
    sections = ["\n".join(baseline_section(rows, baseline_rows, config))]
    sections += probe_sections(load_probes(args.out))
    sections += (
        ["\n".join(learned_section(rows, args.out))] if any(r.get("learned_maps") for r in rows) else []
    )
    report = write_report(summary, rows, config, args.out, command, sections)
    print(f"{len(rows)} runs -> {report}")
    return 0
