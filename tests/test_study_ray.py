"""The pooling study on a real Ray cluster: a local one, started by these tests on this machine.

Ray is an optional extra: without it these tests skip, except the two that check the CLI without it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from textcnn.study.plan import StudyConfig
from textcnn.study.results import load_results
from textcnn.study.run import run_study

REPO = Path(__file__).resolve().parents[1]
QUICK = {"max_train": 300, "epochs": 1, "model_options": {"embedding_dim": 16, "num_filters": 8}}
TWO_BY_TWO = {"datasets": ("trec",), "poolings": ("max", "avg"), "seeds": 2, **QUICK}
TASK_TITLE = "ray::train_group"  # a Ray worker's process title while it runs study_ray.train_group


@pytest.fixture(scope="module")
def cluster():
    """A 2-CPU Ray cluster of this process, its address for other drivers; shut down after the module.

    Its workers inherit this process's environment, PYTHONPATH included, so they import this
    checkout's textcnn. It listens on loopback only: Ray turns 127.0.0.1 into the machine's network
    address, except where it believes clusters unsupported (read once, when ray is imported), which
    this variable makes it believe on Linux too; its workers and the CLI's drivers inherit it."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert ray.util.get_node_ip_address() == "127.0.0.1"
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")


def keys(rows):
    return [(r["dataset"], r["fold"], r["seed"], r["pooling"]) for r in rows]


def same_runs(ours, theirs):
    """The same run keys, and per run the same test accuracy: exactly so far on this machine, but
    allowed to differ by 2 of TREC's 500 test sentences (float rounding across processes)."""
    assert sorted(keys(ours)) == sorted(keys(theirs))
    by_key = dict(zip(keys(theirs), theirs, strict=True))
    for key, row in zip(keys(ours), ours, strict=True):
        assert row["test_accuracy"] == pytest.approx(by_key[key]["test_accuracy"], abs=2 / 500), key
        assert row["best_epoch"] == by_key[key]["best_epoch"]


def test_a_study_on_ray_records_the_runs_of_the_study_in_process(cluster, data_dir, tmp_path, one_thread):
    from textcnn.study.ray_executor import ray_runner

    config = StudyConfig(**TWO_BY_TWO)
    here = run_study(config, tmp_path / "here", str(data_dir), progress=False, group_size=2)
    there = run_study(
        config, tmp_path / "ray", str(data_dir), progress=False, group_size=2, runner=ray_runner()
    )
    same_runs(there, here)
    assert {r["group_size"] for r in there} == {2} and len({r["group"] for r in there}) == 2
    assert load_results(tmp_path / "ray" / "results.jsonl") == there
    grown = StudyConfig(**{**TWO_BY_TWO, "seeds": 3})  # resumes and grows like a study in process
    rows = run_study(
        grown, tmp_path / "ray", str(data_dir), progress=False, group_size=2, runner=ray_runner()
    )
    assert len(rows) == 6 and rows[:4] == there and Counter(keys(rows)).most_common(1)[0][1] == 1


def test_a_failing_group_is_not_retried_and_the_error_is_one_sentence(cluster, data_dir, tmp_path):
    from textcnn.errors import TextCNNError
    from textcnn.study.ray_executor import ray_runner

    # The vectors are read on the worker: a missing file fails every group there, not on the driver.
    config = StudyConfig(**TWO_BY_TWO, variant="static", vectors=str(tmp_path / "missing.txt"))
    started = time.perf_counter()
    with pytest.raises(TextCNNError, match=r"2 of 2 groups failed on the Ray cluster; .*missing\.txt"):
        run_study(config, tmp_path / "out", str(data_dir), progress=False, group_size=2, runner=ray_runner())
    assert time.perf_counter() - started < 30  # not retried
    assert load_results(tmp_path / "out" / "results.jsonl") == []


def _kill_first_task_worker(killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the first of this process's Ray workers seen running a study task (by its title)."""
    import psutil  # ray ships it

    me = psutil.Process()
    while not stop.is_set():
        for process in me.children(recursive=True):
            try:
                title = (process.cmdline() or [""])[0]
            except psutil.Error:
                continue
            if title == TASK_TITLE:
                os.kill(process.pid, signal.SIGKILL)
                killed.append(process.pid)
                return
        time.sleep(0.01)


def test_a_worker_killed_mid_study_is_retried_and_every_run_is_recorded_once(
    cluster, data_dir, tmp_path, one_thread
):
    from textcnn.study.ray_executor import ray_runner

    config = StudyConfig(**TWO_BY_TWO)
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_first_task_worker, args=(killed, stop), daemon=True)
    killer.start()
    try:
        rows = run_study(config, tmp_path, str(data_dir), progress=False, group_size=1, runner=ray_runner())
    finally:
        stop.set()
        killer.join()
    assert len(killed) == 1  # a worker did die in the middle of a task
    recorded = keys(load_results(tmp_path / "results.jsonl"))
    assert len(recorded) == len(set(recorded)) == 4
    assert (
        sorted(recorded)
        == sorted(keys(rows))
        == sorted(("trec", None, seed, pooling) for seed in (0, 1) for pooling in ("max", "avg"))
    )


def python(code: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # on 2 shared cores, 2 threads of tiny tensors crawl
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
    )


COMPARE = "import sys\nfrom textcnn.cli import main\ncode = main(sys.argv[1:])\n"
QUICK_COMPARE = [
    "compare",
    "--quick",
    "--datasets",
    "trec",
    "--poolings",
    "max,avg",
    "--seeds",
    "1",
    "--quiet",
]


def test_compare_with_ray_joins_the_cluster_and_without_it_never_imports_ray(cluster, data_dir, tmp_path):
    with_ray = python(
        COMPARE + "sys.exit(code)", *QUICK_COMPARE, "--data-dir", str(data_dir), "--ray", cluster,
        "--out", str(tmp_path / "ray"),
    )  # fmt: skip
    assert with_ray.returncode == 0, with_ray.stderr
    assert "2 runs -> " in with_ray.stdout and (tmp_path / "ray" / "REPORT.md").exists()
    without = python(
        COMPARE + "assert 'ray' not in sys.modules, 'ray was imported'\nsys.exit(code)",
        *QUICK_COMPARE, "--data-dir", str(data_dir), "--out", str(tmp_path / "here"),
    )  # fmt: skip
    assert without.returncode == 0, without.stderr
    same_runs(
        load_results(tmp_path / "ray" / "results.jsonl"), load_results(tmp_path / "here" / "results.jsonl")
    )
    assert json.loads((tmp_path / "ray" / "study.json").read_text()) == json.loads(
        (tmp_path / "here" / "study.json").read_text()
    )


def test_compare_with_ray_but_without_the_extra_is_one_error_line(tmp_path):
    result = python(
        "import sys\nsys.modules['ray'] = None  # as if the extra were not installed\n" + COMPARE + "sys.exit(code)",
        "compare", "--datasets", "trec", "--ray", "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "textcnn: error: --ray needs the ray extra: pip install 'textcnn[ray]'"
    ]
    assert not (tmp_path / "out").exists()  # stopped before any work


def test_a_relative_vectors_path_is_sent_absolute_and_a_named_source_as_it_is(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    from textcnn.study.ray_executor import _portable

    monkeypatch.chdir(tmp_path)
    config = StudyConfig(**TWO_BY_TWO, variant="static", vectors="vectors/glove.txt")
    assert _portable(config).vectors == str(tmp_path / "vectors" / "glove.txt")
    assert config.vectors == "vectors/glove.txt"  # study.json keeps what was typed
    named = StudyConfig(**TWO_BY_TWO, variant="static", vectors="glove-6b-50d")
    assert _portable(named) is named
