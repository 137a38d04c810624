"""One trial of `textcnn tune`: a configuration trained on the tuning fold, reported every epoch.

A trial is `prepare_run` + `fit`, the same training as `textcnn train`, with two additions:
after each epoch it reports the epoch's dev accuracy (and the best so far) to Ray Tune, which is
what ASHA compares at its rungs; and it hands Tune the epoch's checkpoint (`fit`'s own
`checkpoint.safetensors`, written atomically, and its log), so a trial whose worker dies starts
again from its last epoch, not from the first, and an interrupted tune resumes each trial likewise.

The fold a trial sees has no test part (`search.tuning_fold` removes it): whatever a trial does,
the test sentences cannot reach a selection.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from textcnn.data.splits import Fold
from textcnn.study.arms import arm_options
from textcnn.tune.space import parse_widths

PID_FILE = "worker.pid"  # in the trial's folder: the process of each start of the trial, a line each


@dataclass(frozen=True)
class TrialData:
    """What every trial of a tune shares, sent once to Ray's object store."""

    fold: Fold  # the tuning fold: train and dev parts only
    label_names: tuple[str, ...]
    settings: object  # the `RunSettings` of the command's flags; each trial overrides its dimensions
    threads: int  # torch threads per trial (its CPUs)


def trial_settings(base, config: dict):
    """The `RunSettings` of one trial: the command's flags, with the trial's dimensions on top."""
    from textcnn.train.runs import RunSettings

    options = {
        key: value
        for key, value in base.model_options.items()
        if key not in ("pooling", "kmax_k", "region", "convolution", "region_slots")
    }
    options |= arm_options(config["pooling"])
    options |= {
        "filter_widths": parse_widths(config["widths"]),
        "num_filters": int(config["maps"]),
        "dropout": float(config["dropout"]),
        "variant": config["variant"],
    }
    return RunSettings(
        options,
        replace(base.train, lr=float(config["lr"])),
        base.vocab,
        base.vectors,
        config.get("tokenizer") or base.tokenizer,
    )


def _restore(run_dir: Path) -> bool:
    """Copy the trial's last checkpoint (if Tune holds one) into `run_dir`; True if there was one."""
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return False
    with checkpoint.as_directory() as folder:
        for item in Path(folder).iterdir():
            shutil.copy2(item, run_dir / item.name)
    return True


def _curve(run_dir: Path) -> list[float]:
    """Dev accuracy by epoch (multi-label data: dev macro-F1, what early stopping selects on too),
    from `fit`'s log (which a restored checkpoint carries)."""
    from textcnn.train.loop import LOG_FILE, selection_score

    by_epoch: dict[int, float] = {}
    log = run_dir / LOG_FILE
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if "epoch" in record and "dev_accuracy" in record:
                by_epoch[int(record["epoch"])] = float(selection_score(record))
    return [by_epoch[e] for e in sorted(by_epoch)]


def run_trial(config: dict, data: TrialData) -> None:
    """Ray Tune's function trainable: train `config` on the tuning fold, reporting each epoch."""
    import torch
    from ray import tune

    from textcnn.train.checkpoint import CHECKPOINT_FILE
    from textcnn.train.loop import fit, selection_score
    from textcnn.train.runs import prepare_run

    torch.set_num_threads(data.threads)
    trial_dir = Path(tune.get_context().get_trial_dir())
    trial_dir.mkdir(parents=True, exist_ok=True)
    with (trial_dir / PID_FILE).open("a", encoding="utf-8") as pids:  # a line per start: retries = lines - 1
        pids.write(f"{os.getpid()}\n")
    run_dir = Path(tempfile.mkdtemp(prefix="textcnn-trial-"))
    try:
        resumed = _restore(run_dir) and (run_dir / CHECKPOINT_FILE).exists()
        run = prepare_run(data.fold, data.label_names, trial_settings(data.settings, config))

        def report(record: dict) -> None:
            curve = _curve(run_dir)
            checkpoint = tune.Checkpoint.from_directory(str(run_dir))
            tune.report(
                {
                    "dev_accuracy": selection_score(record),  # multi-label: dev macro-F1
                    "best_dev_accuracy": max(curve),
                    "best_epoch": curve.index(max(curve)) + 1,
                    "epoch": record["epoch"],
                    "dev_curve": curve,
                    "seconds_per_epoch": record["seconds"],
                },
                checkpoint=checkpoint,
            )

        fit(
            run.model,
            run.train,
            run.dev,
            run.settings.train,
            run_dir,
            resumed,
            progress=False,
            fingerprint=run.fingerprint,
            on_epoch=report,
        )
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def config_key(config: dict, dimensions: Sequence[str]) -> tuple:
    """A configuration as a hashable key (two trials of one configuration are one configuration)."""
    values = ((d, config.get(d)) for d in dimensions)  # a dimension not searched (tokenizer) is None
    return tuple((d, round(v, 6) if isinstance(v, float) else v) for d, v in values)
