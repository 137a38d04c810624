"""The search on Ray Tune: two stages, ASHA, a searcher, a budget, resume, and selection on dev.

Zhang & Wallace (2015)'s advice is a procedure: line-search the region size (single widths 1-10),
then try combinations of sizes near the best one, with the rest of the model searched alongside.
`textcnn tune` runs it as two Tune experiments in `OUT/ray/`:

1. `widths`: the space as given (single widths by default), about 60% of the trials and the time;
2. `combinations`: Zhang & Wallace's combinations around stage 1's best width
   (`space.combinations_around`), every other dimension searched again; skipped when the space
   asks for no combinations or already holds combinations.

Each stage is one `Tuner` with ASHA (epochs as the resource: a trial reports after every epoch,
and trials behind at a rung stop there) and a searcher: Optuna's TPE through Ray Tune's
integration where optuna is installed, random search otherwise. Ctrl-C stops a stage after Tune
has saved its state; the same command restores it (`Tuner.restore`, unfinished and errored trials
resumed from their last epoch), and a finished stage is never run again. A trial whose worker dies
is retried from its last checkpoint (`FailureConfig`), so it costs that trial's retry only.

Selection reads dev accuracy only: the fold the trials see has no test part (`tuning_fold`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from textcnn.data.splits import Fold
from textcnn.errors import TextCNNError
from textcnn.runtime import atomic_write_bytes
from textcnn.tune.space import Space, combinations_around, parse_widths
from textcnn.tune.trial import PID_FILE, TrialData, config_key, run_trial

try:
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
except ImportError as exc:
    cause = "" if exc.name == "ray" else f" (importing ray failed: {exc})"
    raise TextCNNError(f"textcnn tune needs Ray Tune: pip install 'textcnn[tune]'{cause}") from exc

DIMENSIONS = ("pooling", "widths", "maps", "dropout", "lr", "variant", "tokenizer")
STAGES = ("widths", "combinations")
FIRST_STAGE_SHARE = 0.6  # of the trials and of the time budget
TRIALS_FILE = "trials.jsonl"
# A trial that stopped before its last epoch and not by its patience: ASHA cut it at a rung (the
# scheduler notes those in ASHA_FILE), or Tune stopped it with every running trial when the time
# budget ran out, or Ctrl-C caught it running (then the restored stage trains it on).
STOPPED_BY_ASHA = "stopped by ASHA"
STOPPED_BY_BUDGET = "stopped by the time budget"
UNFINISHED = "unfinished (interrupted)"
ASHA_FILE = "asha-stopped.json"  # in the stage's folder: the ids of the trials ASHA stopped


@dataclass(frozen=True)
class Budget:
    trials: int
    seconds: float | None = None  # the whole tune's time budget (both stages)


@dataclass(frozen=True)
class SearchSettings:
    epochs: int = 25  # ASHA's largest resource: a trial that is never cut trains this many epochs
    grace: int = 2  # epochs every trial trains before ASHA may cut it
    reduction: int = 3  # ASHA keeps the best 1/reduction at each rung
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    seed: int = 0  # the searcher's seed (trials train with the command's --seed)
    searcher: str = "auto"  # auto: optuna when installed, else random
    max_failures: int = 2  # retries of a trial whose worker was lost
    patience: int | None = 5  # the trials' early stopping, to tell its stop from ASHA's


def tuning_fold(fold: Fold) -> Fold:
    """The fold trials train and are compared on: its training and dev parts; the test part is
    taken out here, so no trial, scheduler or searcher can read it."""
    return replace(fold, test=None)


def searcher_name(wanted: str) -> str:
    """ "optuna" when asked for or (auto) installed, else "random"."""
    if wanted == "random":
        return "random"
    try:
        import optuna  # noqa: F401
    except ImportError:
        if wanted == "optuna":
            raise TextCNNError("--searcher optuna needs optuna: pip install optuna") from None
        return "random"
    return "optuna"


def param_space(space: Space, widths: Sequence[str]) -> dict:
    """Ray Tune's search space of a `Space`, with the stage's widths."""

    def dimension(values, kind: str):
        if len(values) == 3 and values[2] == "range":
            low, high = values[0], values[1]
            if kind == "int":
                return tune.randint(int(low), int(high) + 1)
            return tune.loguniform(low, high) if kind == "log" else tune.uniform(low, high)
        return tune.choice(list(values))

    return {
        "pooling": tune.choice(list(space.pooling)),
        "widths": tune.choice(list(widths)),
        "maps": dimension(space.maps, "int"),
        "dropout": dimension(space.dropout, "uniform"),
        "lr": dimension(space.lr, "log"),
        "variant": tune.choice(list(space.variant)),
    } | ({"tokenizer": tune.choice(list(space.tokenizer))} if space.tokenizer else {})


def stage_trials(space: Space, budget: Budget) -> dict[str, int]:
    """Trials per stage: all in stage 1 when there is no stage 2."""
    if not (space.combinations and space.single_widths) or budget.trials < 2:
        return {"widths": budget.trials}
    first = min(budget.trials - 1, max(1, math.ceil(FIRST_STAGE_SHARE * budget.trials)))
    return {"widths": first, "combinations": budget.trials - first}


class _Bar:
    """A stage's progress bar: trials finished, the best dev accuracy so far, trials running."""

    def __init__(self, stage: str, total: int, show: bool):
        from tqdm.auto import tqdm

        self.tqdm = tqdm(total=total, desc=f"tune {stage}", unit="trial", disable=not show)
        self.best = 0.0
        self.running: set[str] = set()

    def show(self) -> None:
        self.tqdm.set_postfix(best_dev=f"{self.best:.3f}", running=len(self.running))


# The bars live here, not in the callback: Tune pickles its callbacks with the experiment and a
# restored tune gets the pickled one back, which then finds this run's bar by its stage.
_BARS: dict[str, _Bar] = {}


class _Progress(tune.Callback):
    """Ray Tune's events to the stage's bar (in the driver's process)."""

    def __init__(self, stage: str):
        self.stage = stage

    def _bar(self) -> _Bar | None:
        return _BARS.get(self.stage)

    def on_trial_start(self, iteration, trials, trial, **info):
        if bar := self._bar():
            bar.running.add(trial.trial_id)
            bar.show()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if bar := self._bar():
            bar.best = max(bar.best, float(result.get("best_dev_accuracy", 0.0)))
            bar.show()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._done(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._done(trial)

    def _done(self, trial) -> None:
        if bar := self._bar():
            bar.running.discard(trial.trial_id)
            bar.tqdm.update()
            bar.show()


class NotingASHA(ASHAScheduler):
    """ASHA that notes in `path` (a JSON list) each trial it stops before its last epoch.

    From a trial's results alone, ASHA's stop and the time budget's look alike: both end a trial
    early. The note is a file in the stage's folder, so a restored stage adds to it; the driver,
    where Tune runs its scheduler, is its only writer."""

    def __init__(self, path: Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.noted_path = str(path)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action == self.STOP and result.get("training_iteration", 0) < self._max_t:
            noted = set(asha_stopped(Path(self.noted_path).parent)) | {trial.trial_id}
            atomic_write_bytes(Path(self.noted_path), json.dumps(sorted(noted)).encode())
        return action


def asha_stopped(stage_dir: Path) -> list[str]:
    """The ids of the trials ASHA stopped in the stage whose folder is `stage_dir`."""
    path = stage_dir / ASHA_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []


def _scheduler(settings: SearchSettings, stage_dir: Path) -> ASHAScheduler:
    return NotingASHA(
        stage_dir / ASHA_FILE,
        time_attr="training_iteration",
        max_t=settings.epochs,
        grace_period=min(settings.grace, settings.epochs),
        reduction_factor=settings.reduction,
    )


def _search_algorithm(settings: SearchSettings):
    if searcher_name(settings.searcher) == "random":
        return None  # Tune's random sampling of the space
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per study and trial: the bar says it
    return OptunaSearch(seed=settings.seed)


def _trainable(data_ref, settings: SearchSettings):
    resources = {"cpu": settings.cpus_per_trial}
    if settings.gpus_per_trial:
        resources["gpu"] = settings.gpus_per_trial
    return tune.with_resources(tune.with_parameters(run_trial, data=data_ref), resources)


def _interrupted_marker(signum, frame):  # pragma: no cover - replaced by Tune's while a stage runs
    raise KeyboardInterrupt


def _fit(tuner) -> tuple[object, bool]:
    """Run a Tuner; (results, interrupted). Tune catches the first Ctrl-C itself: it saves the
    experiment and returns, restoring the SIGINT handler it found; so the handler in place after
    `fit` says whether that happened."""
    if threading.current_thread() is not threading.main_thread():  # no signals there: Tune installs none
        return tuner.fit(), False
    previous = signal.signal(signal.SIGINT, _interrupted_marker)
    try:
        grid = tuner.fit()
        interrupted = signal.getsignal(signal.SIGINT) is _interrupted_marker
    finally:
        signal.signal(signal.SIGINT, previous)
    return grid, interrupted


def run_stage(
    stage: str,
    space: Space,
    widths: Sequence[str],
    trials: int,
    seconds: float | None,
    data_ref,
    out: Path,
    settings: SearchSettings,
    progress: bool,
) -> tuple[list[dict], bool]:
    """One stage's Tuner, new or restored; (its trial records, interrupted)."""
    storage = (out / "ray").resolve()
    path = storage / stage
    _BARS[stage] = _Bar(stage, trials, progress)
    trainable = _trainable(data_ref, settings)
    try:
        if tune.Tuner.can_restore(str(path)):
            tuner = tune.Tuner.restore(
                str(path), trainable, resume_unfinished=True, resume_errored=True, param_space=None
            )
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=param_space(space, widths),
                tune_config=tune.TuneConfig(
                    metric="best_dev_accuracy",
                    mode="max",
                    num_samples=trials,
                    time_budget_s=seconds,
                    scheduler=_scheduler(settings, path),
                    search_alg=_search_algorithm(settings),
                ),
                run_config=tune.RunConfig(
                    name=stage,
                    storage_path=str(storage),
                    verbose=0,
                    callbacks=[_Progress(stage)],
                    failure_config=tune.FailureConfig(max_failures=settings.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                ),
            )
        grid, interrupted = _fit(tuner)
    finally:
        _BARS.pop(stage).tqdm.close()
    # An interrupted stage may hold trials the searcher had not yet given a configuration: not trials yet.
    cut = set(asha_stopped(path))
    # Not ASHA's stop: Ctrl-C's, or the budget's (Tune stops every running trial when it is spent).
    early = UNFINISHED if interrupted else STOPPED_BY_BUDGET if seconds is not None else "stopped early"
    return [_record(stage, result, settings, cut, early) for result in grid if result.config], interrupted


def _record(stage: str, result, settings: SearchSettings, cut: set[str], early: str) -> dict:
    """One trial's line of trials.jsonl; `cut`: the trials ASHA stopped; `early`: the status of a
    trial stopped early by neither ASHA nor its patience."""
    metrics = result.metrics or {}
    curve = list(metrics.get("dev_curve") or [])
    trial_dir = Path(result.path)
    pids = (trial_dir / PID_FILE).read_text().split() if (trial_dir / PID_FILE).exists() else []
    config = {d: result.config[d] for d in DIMENSIONS if d in result.config}  # tokenizer: only when searched
    if result.error is not None:
        status = "error"
    elif len(curve) >= settings.epochs:
        status = "completed"
    elif curve and settings.patience and len(curve) - (curve.index(max(curve)) + 1) >= settings.patience:
        status = "stopped early (patience)"
    else:
        status = "not started" if not curve else STOPPED_BY_ASHA if metrics.get("trial_id") in cut else early
    said = str(result.error).strip().splitlines() if result.error is not None else []
    return {
        "stage": stage,
        "trial": metrics.get("trial_id") or trial_dir.name,
        "config": config,
        "dev_curve": curve,
        "best_dev_accuracy": max(curve) if curve else None,
        "best_epoch": curve.index(max(curve)) + 1 if curve else None,
        "epochs": len(curve),
        "status": status,
        "retries": max(len(pids) - 1, 0),
        "seconds_per_epoch": metrics.get("seconds_per_epoch"),
        **({"error": said[-1] if said else type(result.error).__name__} if result.error is not None else {}),
    }


def best_single_width(records: Sequence[dict]) -> int:
    """The width of stage 1's best single-width trial (by dev accuracy)."""
    scored = [r for r in records if r["best_dev_accuracy"] is not None and "," not in r["config"]["widths"]]
    if not scored:
        raise TextCNNError(
            "no trial of stage 1 finished an epoch: nothing to choose combinations from"
            " (a tight --time-budget ends trials before their first epoch; errors are in OUT/trials.jsonl)"
        )
    return parse_widths(max(scored, key=lambda r: r["best_dev_accuracy"])["config"]["widths"])[0]


def ranked(records: Sequence[dict]) -> list[dict]:
    """Trials with a dev accuracy, best first, one per distinct configuration (its best trial);
    ties keep the earlier trial."""
    scored = [r for r in records if r["best_dev_accuracy"] is not None]
    order = sorted(range(len(scored)), key=lambda i: (-scored[i]["best_dev_accuracy"], i))
    seen, out = set(), []
    for i in order:
        key = config_key(scored[i]["config"], DIMENSIONS)
        if key not in seen:
            seen.add(key)
            out.append(scored[i])
    return out


def write_trials(out: Path, records: Sequence[dict]) -> Path:
    path = out / TRIALS_FILE
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in records).encode())
    return path


def start_ray(address: str | None, cpus: int | None) -> None:
    """Join `address` as `compare --ray` does, or start a quiet local Ray on this machine."""
    if ray.is_initialized():
        return
    from textcnn.study.ray_cluster import connect, quiet_token_notice

    if address:
        connect(address)
        return
    quiet_token_notice()
    ray.init(
        num_cpus=cpus,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="WARNING",
        configure_logging=True,
    )


def search(
    data: TrialData,
    space: Space,
    budget: Budget,
    out: Path,
    settings: SearchSettings,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> tuple[list[dict], bool]:
    """Both stages (each skipped when finished before); (every trial's record, interrupted).
    `trials.jsonl` is rewritten after each stage."""
    # Ray Tune would otherwise copy the driver's working directory into each trial's.
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    # A trial checkpoints every epoch, on purpose (resume, retries): Tune's warning about frequent
    # experiment snapshots is then three lines per epoch for nothing.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune's newer console output prints a box per experiment whatever `verbose` says; the older
    # one honours verbose=0, and the progress bars here say what is going on.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune's default loggers warn once per stage that TensorboardX is missing; only its warning goes.
    logging.getLogger("ray.tune.utils.callback").setLevel(logging.ERROR)
    plan = stage_trials(space, budget)
    state_path = out / "ray" / "stages.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    data_ref = ray.put(data)
    records: list[dict] = []
    for stage, trials in plan.items():
        done = state.get(stage, {})
        if done.get("finished"):
            records += done["records"]
            continue
        if stage == "widths":
            widths = space.widths
        else:
            best = best_single_width(records)
            widths = combinations_around(best)
            log(f"stage 2: combinations around width {best}: {'; '.join(widths)}")
        seconds = None
        if budget.seconds is not None:  # stage 1 its share; stage 2 what stage 1 left
            first = budget.seconds * (FIRST_STAGE_SHARE if len(plan) > 1 else 1.0)
            spent = state.get("widths", {}).get("seconds", 0.0)
            seconds = first if stage == "widths" else max(budget.seconds - spent, 1.0)
        started = time.monotonic()
        stage_records, interrupted = run_stage(
            stage, space, widths, trials, seconds, data_ref, out, settings, progress
        )
        state[stage] = {
            "finished": not interrupted,
            "records": stage_records,
            "widths": list(widths),
            "seconds": done.get("seconds", 0.0) + time.monotonic() - started,
        }
        atomic_write_bytes(state_path, json.dumps(state, indent=1).encode())
        records += stage_records
        write_trials(out, records)
        if interrupted:
            return records, True
    write_trials(out, records)
    return records, False
