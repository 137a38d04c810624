"""The pooling study on a real Ray cluster: a local one, started by these tests on this machine.

Ray is an optional extra: without it these tests skip, except the two that check the CLI without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import ray_on_loopback

from textcnn.study.plan import StudyConfig
from textcnn.study.results import load_results
from textcnn.study.run import run_study

REPO = Path(__file__).resolve().parents[1]
QUICK = {"max_train": 300, "epochs": 1, "model_options": {"embedding_dim": 16, "num_filters": 8}}
TWO_BY_TWO = {"datasets": ("trec",), "poolings": ("max", "avg"), "seeds": 2, **QUICK}
TASK_TITLE = "ray::train_group"  # a Ray worker's process title while it runs study_ray.train_group


@pytest.fixture(scope="module")
def cluster():
    """A 2-CPU Ray cluster of this process (`conftest.ray_on_loopback`), its address for other
    drivers; shut down after the module."""
    with ray_on_loopback() as ray:
        assert ray.util.get_node_ip_address() == "127.0.0.1"
        yield ray.get_runtime_context().gcs_address


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


def python(
    code: str, *args: str, timeout: float = 240, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`python -c code args` in the repository; `env`: its whole environment (default: this one's)."""
    env = {**(os.environ if env is None else env), "OMP_NUM_THREADS": "1"}  # 2 threads of tiny tensors crawl
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


def _stop_session(leader: int) -> None:
    """Stop every process of the session `leader` began (Ray's daemons stay in it), by pid, never by
    name: other Ray clusters may run on this machine. SIGTERM, then SIGKILL what is left after 3 s."""
    import psutil  # ray ships it

    def alive() -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):
                if os.getsid(process.pid) == leader and process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
        return found

    for sig, grace in ((signal.SIGTERM, 3), (signal.SIGKILL, 2), (signal.SIGKILL, 2)):
        processes = alive()
        for process in processes:
            with contextlib.suppress(psutil.Error):
                process.send_signal(sig)
        psutil.wait_procs(processes, timeout=grace)


@pytest.fixture(scope="module")
def token_cluster():
    """A 1-CPU head started as a user starts one, by `ray start --head`, which turns Ray's token
    authentication on where it finds a token: here a new one in a file named by RAY_AUTH_TOKEN_PATH
    (the user's ~/.ray/auth_token untouched). Yields its address and the environment of a driver on
    the head's machine: loopback only, the same token file, no RAY_AUTH_MODE.

    Its processes live in a session of their own, stopped by pid (`_stop_session`) after the module;
    its --temp-dir keeps its address out of /tmp/ray, where other drivers of this machine look."""
    pytest.importorskip("ray")
    folder = Path(tempfile.mkdtemp(prefix="textcnn-ray-", dir="/tmp" if Path("/tmp").is_dir() else None))
    token = folder / "auth_token"  # a short folder: Ray's socket paths under it must fit in 107 bytes
    token.write_text(secrets.token_hex(32))
    env = {name: value for name, value in os.environ.items() if not name.startswith("RAY_AUTH_")}
    env |= {"RAY_AUTH_TOKEN_PATH": str(token), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    start = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--port", "0", "--num-cpus", "1",
         "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", str(folder / "ray")],
        env=env, cwd=REPO, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        output, _ = start.communicate(timeout=120)
        assert start.returncode == 0, output
        assert "Token authentication is enabled for this Ray cluster" in output, output
        yield (folder / "ray" / "ray_current_cluster").read_text().strip(), env
    finally:
        _stop_session(start.pid)
        shutil.rmtree(folder, ignore_errors=True)


# Ray retries a refused connection once a second for 20 s before it gives up; 2 tries say the same.
FEW_TRIES = {"RAY_gcs_server_port_wait_time_s": "2"}
HEADS_TOKEN = (
    "the head's token (`ray get-auth-token` on the head prints it) "
    "in ~/.ray/auth_token, in a file named by RAY_AUTH_TOKEN_PATH, or in RAY_AUTH_TOKEN"
)


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    """The command's error, which must be its last line on stderr (Ray's own log lines come before)."""
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("textcnn: error: ")]
    assert errors == result.stderr.strip().splitlines()[-1:], result.stderr
    return errors


def test_compare_on_a_token_cluster_without_ray_auth_mode_says_so_in_one_line(
    token_cluster, data_dir, tmp_path
):
    address, env = token_cluster
    result = python(
        COMPARE + "sys.exit(code)", *QUICK_COMPARE, "--data-dir", str(data_dir), "--ray", address,
        "--out", str(tmp_path / "out"), env={**env, **FEW_TRIES},
    )  # fmt: skip
    assert error_lines(result) == [
        f"textcnn: error: --ray {address}: the Ray cluster asks for an authentication token and "
        "RAY_AUTH_MODE is not set, so Ray sends none: set RAY_AUTH_MODE=token in this shell, and Ray sends "
        f"the token from {env['RAY_AUTH_TOKEN_PATH']} (RAY_AUTH_TOKEN_PATH), which must be the head's; "
        "or, on the head's machine, pass --ray auto"
    ]


CONNECT = """import sys
from textcnn.errors import TextCNNError
from textcnn.study.ray_cluster import connect
try:
    connect(sys.argv[1], flag="--ray")
except TextCNNError as exc:
    sys.exit(f"textcnn: error: {exc}")
"""


def test_a_token_missing_or_refused_is_said_in_one_line_with_where_the_token_goes(token_cluster, tmp_path):
    address, env = token_cluster
    (tmp_path / "home").mkdir()  # another machine: no ~/.ray/auth_token there
    elsewhere = {name: value for name, value in env.items() if name != "RAY_AUTH_TOKEN_PATH"}
    elsewhere |= {"HOME": str(tmp_path / "home"), **FEW_TRIES}
    cases = {
        "no RAY_AUTH_MODE, no token": (
            elsewhere,
            "the Ray cluster asks for an authentication token and RAY_AUTH_MODE is not set, so Ray sends "
            f"none: set RAY_AUTH_MODE=token in this shell and give this machine {HEADS_TOKEN}; "
            "or, on the head's machine, pass --ray auto",
        ),
        "RAY_AUTH_MODE=token, no token": (
            {**elsewhere, "RAY_AUTH_MODE": "token"},
            f"RAY_AUTH_MODE=token, but Ray found no authentication token here: give this machine {HEADS_TOKEN}",
        ),
        "RAY_AUTH_MODE=token, another token": (
            {**elsewhere, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)},
            f"the Ray cluster refused the token from RAY_AUTH_TOKEN: give this machine {HEADS_TOKEN}",
        ),
    }
    with ThreadPoolExecutor(len(cases)) as pool:  # side by side: each waits on Ray, not on a core
        results = {
            case: pool.submit(python, CONNECT, address, env=its_env) for case, (its_env, _) in cases.items()
        }
    for case, (_, said) in cases.items():
        assert error_lines(results[case].result()) == [f"textcnn: error: --ray {address}: {said}"], case


def test_compare_on_a_token_cluster_with_ray_auth_mode_token_joins_it(token_cluster, data_dir, tmp_path):
    address, env = token_cluster
    result = python(
        COMPARE + "sys.exit(code)", *QUICK_COMPARE, "--data-dir", str(data_dir), "--ray", address,
        "--out", str(tmp_path / "out"), env={**env, "RAY_AUTH_MODE": "token"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 runs -> " in result.stdout and (tmp_path / "out" / "REPORT.md").exists()
    assert len(load_results(tmp_path / "out" / "results.jsonl")) == 2


TUNE = [
    "tune", "--dataset", "trec", "--trials", "2", "--epochs", "1", "--ensemble", "1", "--optimizer", "adam",
    "--quiet", "--space",
]  # fmt: skip


def test_tune_joins_a_token_cluster_as_compare_does(token_cluster, data_dir, tmp_path):
    """`textcnn tune --ray ADDRESS` goes through the same `connect`: the same one line without the
    token, and its trials on the cluster with it."""
    address, env = token_cluster
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"pooling": ["max"], "widths": [2, 3], "maps": [8], "combinations": False}))
    flags = [*TUNE, str(space), "--data-dir", str(data_dir), "--ray", address]
    refused = python(
        COMPARE + "sys.exit(code)", *flags, "--out", str(tmp_path / "no"), env={**env, **FEW_TRIES}
    )
    assert error_lines(refused)[0].startswith(
        f"textcnn: error: --ray {address}: the Ray cluster asks for an authentication token and "
        "RAY_AUTH_MODE is not set"
    )
    out = tmp_path / "tuned"
    joined = python(
        COMPARE + "sys.exit(code)", *flags, "--out", str(out), env={**env, "RAY_AUTH_MODE": "token"}
    )
    assert joined.returncode == 0, joined.stderr[-3000:]
    trials = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert len(trials) == 2 and all(t["epochs"] == 1 for t in trials)
    assert (out / "best" / "config.json").exists()
