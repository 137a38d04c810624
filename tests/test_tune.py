"""`textcnn tune`: the space and its file, and the whole command on a user's CSV on a real local Ray,
its resume after Ctrl-C, a trial worker killed by pid, and the bundle it writes served over HTTP.

The Ray tests start Ray on this machine (loopback only) and skip without the tune extra.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ray_on_loopback

from textcnn.cli import main
from textcnn.errors import ConfigError
from textcnn.tune.space import DEFAULT_POOLINGS, check_space, combinations_around, load_space, widths_name

REPO = Path(__file__).resolve().parents[1]


# -- the space ----------------------------------------------------------------------------------


def test_the_default_space_spans_the_registry_widths_maps_dropout_and_rate():
    plain = check_space({}, vectors=False)
    assert plain.pooling == DEFAULT_POOLINGS and "learned" in plain.pooling
    assert plain.widths == tuple(str(w) for w in range(1, 11)) and plain.single_widths
    assert plain.maps == (100, 200, 300, 400, 500, 600) and plain.dropout == (0.0, 0.5, "range")
    assert plain.variant == ("rand",)
    assert check_space({}, vectors=True).variant == ("non-static", "static", "multichannel")
    assert check_space({}, vectors=False, optimizer="adam").lr == (1e-4, 3e-3, "range")


def test_zhang_and_wallace_combinations_surround_the_best_width():
    assert combinations_around(7)[:4] == ("7", "7,7", "7,7,7", "7,7,7,7")
    assert {"6,7,8", "5,6,7", "7,8,9", "6,7,8,9"} <= set(combinations_around(7))
    assert all(min(int(w) for w in c.split(",")) >= 1 for c in combinations_around(1))
    assert widths_name([3, 4, 5]) == widths_name("3, 4,5") == "3,4,5" and widths_name(2) == "2"


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"poolings": ["max"]}, "unknown key 'poolings'; a space has pooling, widths"),
        ({"pooling": ["max", "median-ish"]}, "pooling: unknown pooling median-ish"),
        ({"pooling": ["avg:no-conv"]}, "pooling: 'avg:no-conv' is not a pooling arm"),
        ({"widths": [3, 0]}, "widths: 0 is not a width"),
        ({"widths": {"low": 1, "high": 3}}, "widths: a list of widths or combinations, not a range"),
        ({"maps": [100, 2.5]}, "maps: 2.5 is not a positive whole number"),
        ({"maps": {"low": 300, "high": 100}}, "maps: a range needs low < high"),
        ({"maps": {"low": 100}}, "maps: a range is {low: A, high: B}"),
        ({"dropout": [0.5, 1.0]}, "dropout: 1.0 is not a rate in [0, 1)"),
        ({"lr": {"low": 0, "high": 1}}, "lr: 0 is not a positive rate"),
        ({"variant": ["non-static"]}, "variant: non-static needs pretrained vectors"),
        ({"variant": ["fancy"]}, "variant: 'fancy' is not one of"),
        ({"combinations": "yes"}, "combinations: true or false"),
        (["max"], "a space is a mapping"),
    ],
)
def test_a_bad_space_is_one_error_naming_its_key(space, message):
    with pytest.raises(ConfigError) as caught:
        check_space(space, vectors=False, source="--space s.yaml")
    said = str(caught.value)
    assert said.startswith("--space s.yaml: ") and message in said and "\n" not in said


def test_a_space_file_is_yaml_or_json_and_a_bad_one_is_one_line_from_the_cli(tmp_path, capsys):
    yaml_file = tmp_path / "space.yaml"
    yaml_file.write_text("pooling: [max, learned]\nwidths: [3, '3,4,5', [2, 3]]\nmaps: {low: 50, high: 80}\n")
    space = load_space(yaml_file, vectors=False)
    assert space.pooling == ("max", "learned") and space.widths == ("3", "3,4,5", "2,3")
    assert space.maps == (50, 80, "range") and not space.single_widths
    json_file = tmp_path / "space.json"
    json_file.write_text(json.dumps({"dropout": [0.1, 0.3], "combinations": False}))
    assert load_space(json_file, vectors=False).dropout == (0.1, 0.3)
    (tmp_path / "bad.yaml").write_text("pooling: [max\n")
    (tmp_path / "wrong.yaml").write_text("maps: [100, -1]\n")
    for name, said in (
        ("bad.yaml", "not YAML (line"),
        ("wrong.yaml", "maps: -1 is not a positive whole number"),
        ("missing.json", "cannot read it"),
    ):
        code = main(["tune", "--train", str(REPO / "data/samples/tiny.csv"), "--out", str(tmp_path / "o"),
                     "--space", str(tmp_path / name)])  # fmt: skip
        err = capsys.readouterr().err.strip()
        assert code == 1 and len(err.splitlines()) == 1 and said in err, err
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_tune_without_the_extra_is_one_error_line(tmp_path):
    code = "import sys\nsys.modules['ray'] = None  # as if the extra were not installed\nfrom textcnn.cli import main\n"
    result = subprocess.run(
        [sys.executable, "-c", code + "sys.exit(main(sys.argv[1:]))", "tune",
         "--train", str(REPO / "data/samples/tiny.csv"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "textcnn: error: textcnn tune needs Ray Tune: pip install 'textcnn[tune]'"
    ]
    assert not (tmp_path / "out").exists()  # stopped before any work


def test_trials_never_see_the_test_part():
    pytest.importorskip("ray.tune")
    from textcnn.data.splits import Fold, LabeledTexts
    from textcnn.tune.search import tuning_fold

    part = LabeledTexts(("a",), ("x",), "p")
    assert tuning_fold(Fold("fold-0", 0, part, part, part, "given")).test is None


def test_the_trials_split_between_the_stages_and_the_ranking_keeps_distinct_configurations(monkeypatch):
    pytest.importorskip("ray.tune")
    from textcnn.tune import search

    single, combined = check_space({}, vectors=False), check_space({"widths": ["3,4,5"]}, vectors=False)
    assert search.stage_trials(single, search.Budget(10)) == {"widths": 6, "combinations": 4}
    assert search.stage_trials(single, search.Budget(1)) == {"widths": 1}
    assert search.stage_trials(combined, search.Budget(10)) == {"widths": 10}  # combinations given: one stage
    assert search.stage_trials(check_space({"combinations": False}, vectors=False), search.Budget(5)) == {
        "widths": 5
    }
    config = {"pooling": "max", "widths": "3", "maps": 100, "dropout": 0.5, "lr": 1.0, "variant": "rand"}
    records = [
        {"config": config, "best_dev_accuracy": 0.80},
        {"config": config | {"lr": 1.0000001}, "best_dev_accuracy": 0.82},  # the same configuration, rounded
        {"config": config | {"pooling": "avg"}, "best_dev_accuracy": 0.81},
        {"config": config | {"widths": "4"}, "best_dev_accuracy": None},  # never finished an epoch
    ]
    assert [r["best_dev_accuracy"] for r in search.ranked(records)] == [0.82, 0.81]
    assert search.best_single_width(records) == 3
    monkeypatch.setitem(sys.modules, "optuna", None)  # optuna not installed: random search
    assert search.searcher_name("auto") == "random"
    with pytest.raises(Exception, match="--searcher optuna needs optuna"):
        search.searcher_name("optuna")


def test_asha_notes_the_trials_it_cuts_so_that_they_are_told_from_the_time_budgets(tmp_path):
    pytest.importorskip("ray.tune")
    from types import SimpleNamespace

    from textcnn.tune.search import ASHA_FILE, NotingASHA, asha_stopped

    asha = NotingASHA(tmp_path / ASHA_FILE, time_attr="training_iteration", metric="best_dev_accuracy",
                      mode="max", max_t=3, grace_period=1, reduction_factor=2)  # fmt: skip
    ahead, behind = SimpleNamespace(trial_id="ahead"), SimpleNamespace(trial_id="behind")
    for trial in (ahead, behind):
        asha.on_trial_add(None, trial)
    assert (
        asha.on_trial_result(None, ahead, {"training_iteration": 1, "best_dev_accuracy": 0.9}) == "CONTINUE"
    )
    assert asha.on_trial_result(None, behind, {"training_iteration": 1, "best_dev_accuracy": 0.5}) == "STOP"
    assert asha.on_trial_result(None, ahead, {"training_iteration": 3, "best_dev_accuracy": 0.95}) == "STOP"
    assert asha_stopped(tmp_path) == ["behind"]  # the last epoch's stop is not a cut


# -- the command on a real local Ray -----------------------------------------------------------

SMALL_SPACE = {"pooling": ["max", "avg", "learned"], "widths": ["2", "3"], "maps": [8, 12], "dropout": [0.3]}


@pytest.fixture(scope="module")
def reviews(data_dir, tmp_path_factory) -> Path:
    """A user's CSV: 300 MR sentences (text, label), as someone would export their own data."""
    rows = [json.loads(line) for line in (data_dir / "mr" / "all.jsonl").read_text().splitlines()]
    path = tmp_path_factory.mktemp("user") / "reviews.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for row in rows[::35][:300]:
            writer.writerow([row["text"], row["label"]])
    return path


@pytest.fixture(scope="module")
def local_ray():
    """Ray in this process, 2 CPUs on loopback (see test_study_ray.py's cluster); the CLI reuses it."""
    pytest.importorskip("ray.tune")
    with ray_on_loopback() as ray:
        yield ray


def tune_args(reviews: Path, out: Path, space: Path, *extra: str) -> list[str]:
    return ["tune", "--train", str(reviews), "--out", str(out), "--space", str(space), "--optimizer", "adam",
            "--quiet", "--epochs", "3", "--grace", "1", *extra]  # fmt: skip


def read_trials(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def trial_folders(out: Path) -> list[Path]:
    return sorted(p for p in (out / "ray").glob("*/run_trial_*") if p.is_dir())


def holding_after_the_first_epoch(gate: Path):
    """`run_trial` whose workers, after reporting an epoch, wait until `gate/release` exists.

    Tune hands a report to the driver before `tune.report` returns, so a worker killed while it
    waits here is killed mid-trial with its first epoch's checkpoint known: without the wait, a
    tiny trial can finish its last epoch between the checkpoint showing up and the kill, and the
    kill then hits an idle worker. Defined inside a function so that Ray ships it by value.
    """
    release, folder = gate / "release", str(gate)

    def run_trial(config, data):
        import os
        import time

        from ray import tune

        from textcnn.tune import trial

        report = tune.report

        def report_then_wait(metrics, checkpoint=None):
            report(metrics, checkpoint=checkpoint)
            Path(folder, f"{os.getpid()}.held").touch()
            deadline = time.monotonic() + 120  # never hang the suite: a lost killer lets it go on
            while not release.exists() and time.monotonic() < deadline:
                time.sleep(0.1)

        tune.report = report_then_wait
        try:
            trial.run_trial(config, data)
        finally:
            tune.report = report

    return run_trial


@pytest.mark.slow
def test_tune_on_a_csv_writes_trials_a_report_and_a_mixed_bundle_and_a_killed_worker_costs_one_retry(
    local_ray, reviews, tmp_path, capsys, monkeypatch
):
    """The whole command in this process on a real local Ray; one trial's worker is killed by pid
    after its first epoch: that trial is retried from its checkpoint, and nothing else changes."""
    from textcnn.inference.bundle import Classifier
    from textcnn.tune import search

    space = tmp_path / "space.json"
    space.write_text(json.dumps(SMALL_SPACE))
    out, gate = tmp_path / "tuned", tmp_path / "gate"
    gate.mkdir()
    monkeypatch.setattr(search, "run_trial", holding_after_the_first_epoch(gate))
    killed: list[int] = []

    def kill_the_first_waiting_worker() -> None:
        try:
            held = wait_for(lambda: next(iter(gate.glob("*.held")), None), 240, "a trial's first epoch")
            pid = int(held.stem)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        finally:
            (gate / "release").touch()

    killer = threading.Thread(target=kill_the_first_waiting_worker, daemon=True)
    killer.start()
    code = main(tune_args(reviews, out, space, "--trials", "3", "--top", "2", "--ensemble", "2"))
    killer.join(timeout=5)
    captured = capsys.readouterr()
    assert code == 0 and killed, captured.err[-2000:]
    trials = read_trials(out)
    assert len(trials) == 3 and {t["stage"] for t in trials} == {"widths", "combinations"}
    assert sorted(t["retries"] for t in trials) == [0, 0, 1]
    for trial in trials:
        assert trial["status"] in ("completed", "stopped by ASHA")  # no time budget, no Ctrl-C
        assert set(trial["config"]) == set(SMALL_SPACE) | {"lr", "variant"}
        assert 1 <= trial["epochs"] == len(trial["dev_curve"]) <= 3
        assert trial["best_dev_accuracy"] == max(trial["dev_curve"])
    best_single = max((t for t in trials if t["stage"] == "widths"), key=lambda t: t["best_dev_accuracy"])
    stage_two = next(t for t in trials if t["stage"] == "combinations")["config"]["widths"]
    assert stage_two in combinations_around(int(best_single["config"]["widths"]))
    report = (out / "REPORT.md").read_text()
    assert "Selection on dev only" in report and "which no trial read" in report
    assert "1 retried after a lost worker" in report
    assert "![trials](plots/tune.png)" in report and (out / "plots" / "tune.png").stat().st_size > 5000
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert len(summary["chosen"]) == 2 and summary["chosen"][0] != summary["chosen"][1]
    bundle = Classifier.load(out / "best")
    assert len(bundle.member_list()) == 4  # two configurations, two seeds each
    assert bundle.info["metrics"]["test"]["n"] == summary["summary"]["folds"][0]["test"]["n"] > 0
    assert bundle.logits(["a fine film"]).shape == (1, 2)


HOLDING = """import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_tune import holding_after_the_first_epoch
from textcnn.tune import search
search.run_trial = holding_after_the_first_epoch(Path({gate!r}))
from textcnn.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_ctrl_c_stops_the_tune_and_the_same_command_resumes_it_and_its_bundle_serves(
    data_dir, reviews, tmp_path
):
    pytest.importorskip("ray.tune")
    from test_service_e2e import serving

    from textcnn.inference.bundle import Classifier

    space = tmp_path / "space.json"
    space.write_text(json.dumps(SMALL_SPACE))
    out = tmp_path / "tuned"
    flags = tune_args(reviews, out, space, "--trials", "3", "--ensemble", "2")
    command = [sys.executable, "-m", "textcnn", *flags]
    env = os.environ | {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONPATH": str(REPO)}
    # The first run's trials wait after their first epoch (see holding_after_the_first_epoch), so
    # Ctrl-C surely lands in stage 1, not after a search that tiny trials could finish first.
    gate = tmp_path / "gate"
    gate.mkdir()
    holding = HOLDING.format(tests=str(REPO / "tests"), gate=str(gate))
    first = subprocess.Popen(
        [sys.executable, "-c", holding, *flags],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: next(iter(gate.glob("*.held")), None), 240, "the first trial's epoch")
        first.send_signal(signal.SIGINT)
        (gate / "release").touch()
        _, stderr = first.communicate(timeout=180)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, stderr[-2000:]
    assert "the same command resumes the tune" in stderr and "Traceback" not in stderr
    assert "Token authentication is enabled" not in stderr  # Ray's notice at a local start, dropped
    assert not (out / "best").exists()
    before = {f.name for f in trial_folders(out)}

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    trials = read_trials(out)
    assert len(trials) == 3 and len({t["trial"] for t in trials}) == 3
    assert before <= {
        f.name for f in trial_folders(out)
    }  # the trials started before were resumed, not redone
    assert all(t["epochs"] <= 3 for t in trials)

    with serving("--model", str(out / "best")) as (_, url):
        import httpx

        answer = httpx.post(f"{url}/predict", json={"text": "a gorgeous , moving film"}, timeout=30)
        assert answer.status_code == 200, answer.text
        label = answer.json()["predictions"][0]["label"]
        assert label == Classifier.load(out / "best").predict(["a gorgeous , moving film"])[0].label


def test_resuming_with_other_settings_is_refused(tmp_path):
    from textcnn.tune.run import check_settings

    check_settings(tmp_path, {"trials": 4, "space": {"maps": [8]}})
    check_settings(tmp_path, {"trials": 4, "space": {"maps": [8]}})  # the same: resumes
    with pytest.raises(ConfigError, match=r"other settings \(space, trials\); use another --out"):
        check_settings(tmp_path, {"trials": 5, "space": {"maps": [9]}})


@pytest.mark.parametrize(
    ("interrupted", "code", "said"),
    [
        (True, 130, "textcnn: interrupted after 1 trials; the same command resumes the tune"),
        (
            False,
            1,
            "textcnn: error: no trial finished an epoch: nothing to choose (a tight --time-budget ends trials"
            " before their first epoch; errors are in OUT/trials.jsonl)",
        ),
    ],
)
def test_a_tune_with_no_finished_epoch_is_an_interrupt_if_ctrl_c_ended_it(
    interrupted, code, said, reviews, tmp_path, capsys, monkeypatch
):
    """Ctrl-C before any trial's first epoch (Ray's workers are slow to start on a busy machine)
    still leaves a resumable tune and exit 130; only a search that ran out is an error."""
    pytest.importorskip("ray.tune")
    from textcnn.tune import search

    not_started = {"stage": "widths", "trial": "t1", "config": {"pooling": "max", "widths": "3"},
                   "dev_curve": [], "best_dev_accuracy": None, "best_epoch": None, "epochs": 0,
                   "status": "not started", "retries": 0, "seconds_per_epoch": None}  # fmt: skip
    monkeypatch.setattr(search, "start_ray", lambda address, cpus: None)
    monkeypatch.setattr(search, "search", lambda *args: ([not_started], interrupted))
    out = tmp_path / "tuned"
    assert main(["tune", "--train", str(reviews), "--out", str(out), "--quiet"]) == code
    assert capsys.readouterr().err.strip().splitlines()[-1] == said
    assert (out / "REPORT.md").exists()
