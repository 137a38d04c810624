"""The pooling study's training groups as Ray tasks (`textcnn compare --ray`).

A full grid of Zhang & Wallace's study is thousands of trainings, and its groups are independent:
each one (`group_runs`) becomes one task, so a cluster's nodes share them. What stays on the
driver is what must happen once: the corpora and folds are loaded there and go to the object store
once per dataset, not once per task; and the driver alone appends to results.jsonl, as each task
returns its rows, through `run_study`'s own `record`. A task's rows come back only when the whole
task ends, so a worker killed half-way records nothing and Ray's retry trains the group again:
every run is recorded once. Resuming, growing and the report are those of an in-process study.

Ray is an optional extra; this module is imported only for `--ray`, and imports ray at once (through
`ray_cluster`, which also joins the cluster) so that a missing extra is one readable error before
any work.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path

from textcnn.data.splits import Fold
from textcnn.errors import TextCNNError
from textcnn.study.plan import Run, StudyConfig
from textcnn.study.ray_cluster import connect, ray  # ray, or the one-line error: how to install it
from textcnn.study.run import GroupRunner, train_run, train_runs_together

# A worker process lost (killed, out of memory, its node gone) is retried: it says nothing about the
# group. An exception raised by the training itself is not: it would fail again, every time.
MAX_RETRIES = 3


@ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)
def train_group(
    runs: list[Run],
    data: tuple[list[Fold], list[str]],
    config: StudyConfig,
    together: bool,
    threads: int,
) -> list[dict]:
    """One group's training on a worker; its rows go back to the driver, which writes them.

    `data` is the dataset's (folds, label names), resolved by Ray from the object store.
    """
    import torch

    torch.set_num_threads(threads)  # the CPUs the task asked for, not all the node's cores
    folds, label_names = data
    fold_of = {fold.index: fold for fold in folds}
    if not together:
        return [train_run(run, fold_of[run.fold], label_names, config) for run in runs]
    rows: list[dict] = []
    train_runs_together(runs, [fold_of[run.fold] for run in runs], label_names, config, rows.append)
    return rows


def _portable(config: StudyConfig) -> StudyConfig:
    """The config as the workers need it: a vectors file named by a relative path is found from the
    driver's folder, which a worker does not run in. Only the copy sent out changes, not study.json."""
    from textcnn.data.vectors import NAMED_SOURCES

    vectors = config.vectors
    if vectors is None or vectors in NAMED_SOURCES or Path(vectors).is_absolute():
        return config
    return dataclasses.replace(config, vectors=str(Path(vectors).resolve()))


def _describe(runs: list[Run]) -> str:
    first = runs[0]
    fold = "" if first.fold is None else f" fold {first.fold}"
    return f"the group of {len(runs)} {first.dataset} {first.pooling} run(s) from seed {first.seed}{fold}"


def _failure(failures: list[tuple[list[Run], Exception]], groups: int) -> Exception:
    """The error to raise once every other group is recorded: the first failure, said for a person
    when it is one (a TextCNNError on a worker, a worker lost past its retries); a bug's own
    RayTaskError (with the worker's traceback) otherwise."""
    runs, exc = failures[0]
    where = f"{len(failures)} of {groups} groups failed on the Ray cluster; {_describe(runs)}"
    cause = getattr(exc, "cause", None)
    if isinstance(exc, ray.exceptions.RayTaskError) and not isinstance(cause, TextCNNError):
        return exc
    if isinstance(cause, TextCNNError):
        return TextCNNError(f"{where}: {cause}")
    said = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return TextCNNError(
        f"{where} lost its worker {MAX_RETRIES + 1} times ({type(exc).__name__}: {said}); "
        "the runs recorded are kept: the same command trains the rest"
    )


def run_groups_on_ray(
    groups: list[list[Run]],
    folds: dict[str, list[Fold]],
    label_names: dict[str, list[str]],
    config: StudyConfig,
    together: bool,
    record: Callable[[dict], None],
    address: str | None = None,
    cpus: int = 1,
) -> None:
    """`run_study`'s runner on Ray: every group at once as a task (Ray queues what the cluster cannot
    start yet), each asking for one GPU when the cluster has any, else `cpus` CPUs; `record(row)`
    for each run as its task returns, once per run key whatever Ray retried. A failed group does
    not stop the others: they are recorded, then the first failure is raised."""
    if not groups:
        return
    connect(address)
    gpu = ray.cluster_resources().get("GPU", 0) >= 1
    task = train_group.options(**({"num_gpus": 1} if gpu else {"num_cpus": cpus}))
    threads = 1 if gpu else cpus
    datasets = sorted({group[0].dataset for group in groups})
    data = {name: ray.put((folds[name], label_names[name])) for name in datasets}  # once per study
    shipped = _portable(config)
    running = {
        task.remote(group, data[group[0].dataset], shipped, together, threads): group for group in groups
    }
    waiting = {run.key for group in groups for run in group}
    failures: list[tuple[list[Run], Exception]] = []
    try:
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                group = running.pop(ref)
                try:
                    rows = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    failures.append((group, exc))
                    continue
                for row in rows:
                    key = (row["dataset"], row["fold"], row["seed"], row["pooling"])
                    if key in waiting:  # never twice, nor a run this study did not send
                        waiting.discard(key)
                        record(row)
    finally:
        for ref in running:  # interrupted: free the cluster of this study's work
            ray.cancel(ref)
    if failures:
        raise _failure(failures, len(groups))


def ray_runner(address: str | None = None, cpus: int = 1) -> GroupRunner:
    """The runner for `run_study(..., runner=...)`: groups on the Ray cluster at `address`."""
    return functools.partial(run_groups_on_ray, address=address, cpus=cpus)
