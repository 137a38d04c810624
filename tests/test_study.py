"""The pooling study: a tiny real study end to end, resuming, and the paired summary."""

import json

import pytest

from textcnn.errors import ConfigError
from textcnn.study.plan import StudyConfig
from textcnn.study.report import write_report
from textcnn.study.results import load_results
from textcnn.study.run import run_study
from textcnn.study.summary import summarize

QUICK = {"max_train": 300, "epochs": 1, "model_options": {"embedding_dim": 16, "num_filters": 8}}


def test_a_tiny_real_study_writes_results_summary_report_and_plots(data_dir, tmp_path, one_thread):
    config = StudyConfig(datasets=("trec",), poolings=("max", "avg"), seeds=2, **QUICK)
    rows = run_study(config, tmp_path, str(data_dir), progress=False)
    assert len(rows) == 4
    assert {(r["seed"], r["pooling"]) for r in rows} == {(0, "max"), (0, "avg"), (1, "max"), (1, "avg")}
    assert all(len(r["test_predictions"]) == len(r["test_labels"]) == 500 for r in rows)
    summary = summarize(rows)
    comparison = summary["trec"]["comparisons"][0]
    assert (comparison["reference"], comparison["other"], comparison["n"]) == ("max", "avg", 2)
    assert len(comparison["mcnemar"]) == 2
    report = write_report(summary, rows, config, tmp_path, "textcnn compare ...").read_text()
    assert "## Test accuracy" in report and "| trec | avg | 2 |" in report
    assert "| trec | 2 / 2 | test split | 2 |" in report  # how far the study has got
    assert "![trec](plots/trec.png)" in report
    assert (tmp_path / "plots" / "trec.png").stat().st_size > 1000
    assert json.loads((tmp_path / "summary.json").read_text())["trec"]["poolings"]["max"]["runs"] == 2
    assert load_results(tmp_path / "results.jsonl") == rows


def fake_training(calls):
    def train(run, fold, label_names, config):
        calls.append(run.key)
        return {
            "dataset": run.dataset,
            "fold": run.fold,
            "seed": run.seed,
            "pooling": run.pooling,
            "test_accuracy": 0.5 + 0.01 * run.seed,
            "test_macro_f1": 0.5,
            "best_epoch": 1,
            "seconds": 0.1,
        }

    return train


def test_an_interrupted_study_continues_where_it_stopped(data_dir, tmp_path):
    config = StudyConfig(datasets=("mr",), poolings=("max", "avg"), seeds=2, max_folds=2)
    calls: list = []
    run_study(config, tmp_path, str(data_dir), progress=False, train=fake_training(calls))
    assert len(calls) == 2 * 2 * 2  # folds x seeds x poolings
    results = tmp_path / "results.jsonl"
    lines = results.read_text().splitlines()
    results.write_text("\n".join(lines[:5]) + "\n" + lines[5][:20])  # killed while writing run 6
    calls.clear()
    rows = run_study(config, tmp_path, str(data_dir), progress=False, train=fake_training(calls))
    assert len(calls) == 3 and len(rows) == 8  # runs 6, 7, 8 again; the first five kept
    assert len(load_results(results)) == 8
    calls.clear()
    run_study(config, tmp_path, str(data_dir), progress=False, train=fake_training(calls))
    assert calls == []  # finished: nothing to do
    calls.clear()  # a study grows by seeds, poolings, folds or datasets and keeps what it has
    grown = StudyConfig(datasets=("mr",), poolings=("max", "avg", "kmax"), seeds=3, max_folds=2)
    run_study(grown, tmp_path, str(data_dir), progress=False, train=fake_training(calls))
    assert len(calls) == 2 * 3 * 3 - 8
    with pytest.raises(ConfigError, match="other settings \\(epochs\\)"):
        run_study(
            StudyConfig(datasets=("mr",), poolings=("max",), epochs=3),
            tmp_path,
            str(data_dir),
            train=fake_training([]),
        )


def row(pooling, seed, accuracy):
    return {
        "dataset": "d",
        "fold": None,
        "seed": seed,
        "pooling": pooling,
        "test_accuracy": accuracy,
        "test_macro_f1": accuracy,
        "best_epoch": 1,
        "seconds": 1.0,
    }


def test_summary_pairs_only_runs_that_share_fold_and_seed():
    rows = [
        row("max", 0, 0.80),
        row("max", 1, 0.82),
        row("max", 2, 0.81),
        row("avg", 0, 0.78),
        row("avg", 1, 0.79),
    ]
    summary = summarize(rows)["d"]
    assert summary["poolings"]["max"]["runs"] == 3 and summary["poolings"]["avg"]["runs"] == 2
    comparison = summary["comparisons"][0]
    assert comparison["n"] == 2  # seed 2 has no avg run
    assert comparison["mean_difference"] == pytest.approx((0.02 + 0.03) / 2)
    assert "mcnemar" not in comparison  # no predictions recorded


def test_a_study_needs_distinct_poolings_and_at_least_one_dataset():
    with pytest.raises(ConfigError):
        StudyConfig(datasets=(), poolings=("max",))
    with pytest.raises(ConfigError, match="twice"):
        StudyConfig(datasets=("mr",), poolings=("max", "max"))


def test_no_conv_arms_train_without_convolution():
    from textcnn.study.arms import arm_options

    assert arm_options("avg") == {"pooling": "avg"}
    assert arm_options("max:no-conv") == {"pooling": "max", "convolution": False}


@pytest.mark.parametrize(
    ("arm", "options"),
    [
        ("kmax", {"pooling": "kmax"}),  # k = 3: the committed study's rows stay valid
        ("kmax:5", {"pooling": "kmax", "kmax_k": 5}),
        ("local-max:10", {"pooling": "local-max", "region": 10}),
        ("local-avg:3", {"pooling": "local-avg", "region": 3}),
        ("local-max", {"pooling": "local-max"}),
        ("local-max:3:no-conv", {"pooling": "local-max", "region": 3, "convolution": False}),
        ("kmax:2:no-conv", {"pooling": "kmax", "kmax_k": 2, "convolution": False}),
    ],
)
def test_arms_with_a_number(arm, options):
    from textcnn.study.arms import arm_options

    assert arm_options(arm) == options


@pytest.mark.parametrize(
    ("arm", "message"),
    [
        ("kmax:0", "k must be a positive integer, got '0'"),
        ("local-max:x", "the region must be a positive integer, got 'x'"),
        ("local-avg:", "got ''"),
        ("kmax:05", "got '05'"),  # one spelling per arm: kmax:5
        ("local-max:no-conv:3", "got 'no-conv:3'"),
        ("avg:3", "avg takes no number"),
        ("median", "unknown pooling median"),
        ("median:no-conv", "unknown pooling median"),
    ],
)
def test_bad_arms_are_refused(arm, message):
    from textcnn.study.arms import arm_options

    with pytest.raises(ConfigError, match=message):
        arm_options(arm)
    with pytest.raises(ConfigError, match=message):
        StudyConfig(datasets=("mr",), poolings=("max", arm))


def test_arm_names_with_numbers_round_trip_into_the_summary_and_the_report(tmp_path):
    arms = ("max", "kmax:5", "local-max:3", "local-max:3:no-conv")
    rows = [row(arm, s, 0.80 - 0.01 * i + 0.002 * s * i) for i, arm in enumerate(arms) for s in range(3)]
    summary = summarize(rows)["d"]
    assert set(summary["poolings"]) == set(arms)
    assert [c["other"] for c in summary["comparisons"]] == ["kmax:5", "local-max:3"]
    [convolution] = summary["convolution"]
    assert (convolution["pooling"], convolution["without"]) == ("local-max:3", "local-max:3:no-conv")
    text = write_report(
        summarize(rows), rows, StudyConfig(datasets=("d",), poolings=arms), tmp_path
    ).read_text()
    assert "| dataset | max | kmax:5 | local-max:3 | local-max:3:no-conv |" in text
    assert "| d | kmax:5 | 3 |" in text and "| d | local-max:3 |" in text


def test_no_conv_arms_are_compared_with_their_own_pooling_in_their_own_section(tmp_path):
    rows = [row("max", s, 0.80 + 0.01 * s) for s in range(3)]
    rows += [row("avg", s, 0.79) for s in range(3)]
    rows += [row("max:no-conv", s, 0.70 + 0.01 * s + 0.001 * s * s) for s in range(3)]
    summary = summarize(rows)["d"]
    assert [c["other"] for c in summary["comparisons"]] == ["avg"]  # no-conv arms stay out of max vs rest
    [convolution] = summary["convolution"]
    assert (convolution["pooling"], convolution["without"], convolution["n"]) == ("max", "max:no-conv", 3)
    assert convolution["mean_difference"] == pytest.approx(0.10 - 0.005 / 3)
    config = StudyConfig(datasets=("d",), poolings=("max", "avg", "max:no-conv"))
    (tmp_path / "FINDINGS.md").write_text("## What we found\n\nA hand-written reading.\n")
    report = write_report(summarize(rows), rows, config, tmp_path, extra_sections=["## Probe\n\nbody"])
    text = report.read_text()
    assert "| d | max | 81.0 | 71.2 | 3 | +9.83 |" in text
    assert "yes: convolution helps" in text
    assert text.index("A hand-written reading.") < text.index("## Test accuracy") < text.index("## Probe")


def test_avg_and_padded_avg_get_a_section_of_their_own(tmp_path):
    rows = [row("max", s, 0.90) for s in range(3)]
    rows += [row("avg", s, 0.88 + 0.01 * s) for s in range(3)]
    rows += [row("padded-avg", s, 0.86 + 0.005 * s) for s in range(3)]
    [padding] = summarize(rows)["d"]["padding"]
    assert (padding["masked"], padding["padded"], padding["n"]) == ("avg", "padded-avg", 3)
    assert padding["mean_difference"] == pytest.approx(0.02 + 0.005)  # masked minus padded
    config = StudyConfig(datasets=("d",), poolings=("max", "avg", "padded-avg"))
    text = write_report(summarize(rows), rows, config, tmp_path).read_text()
    assert "## Does averaging over padding sink the average?" in text
    assert "| d | 89.00 | 86.50 | 3 | +2.50 | " in text and "| yes: padding costs | +1.00 | +3.50 |" in text
    alone = [r for r in rows if r["pooling"] != "avg"]  # no avg: no section
    assert summarize(alone)["d"]["padding"] == []
    assert "## Does averaging" not in write_report(summarize(alone), alone, config, tmp_path).read_text()


def test_runs_trained_together_are_recorded_like_runs_trained_alone(data_dir, tmp_path, one_thread):
    from textcnn.study.results import training_seconds

    config = StudyConfig(datasets=("trec",), poolings=("max", "avg"), seeds=2, **QUICK)
    alone = run_study(config, tmp_path / "alone", str(data_dir), progress=False)
    together = run_study(config, tmp_path / "together", str(data_dir), progress=False, group_size=4)
    assert len(together) == 4 and {r["group_size"] for r in together} == {2}  # one group per pooling
    assert len({r["group"] for r in together}) == 2
    by_key = {(r["seed"], r["pooling"]): r for r in alone}
    for row in together:
        twin = by_key[(row["seed"], row["pooling"])]
        assert row["best_epoch"] == twin["best_epoch"]
        assert row["test_accuracy"] == pytest.approx(
            twin["test_accuracy"], abs=2 / 500
        )  # rounding may flip one
    assert load_results(tmp_path / "together" / "results.jsonl") == together
    groups = {}
    for row in together:
        groups[row["group"]] = max(groups.get(row["group"], 0), row["seconds"])
    assert training_seconds(together) == pytest.approx(sum(groups.values()))
    assert training_seconds(alone) == pytest.approx(sum(r["seconds"] for r in alone))


def test_chunks_of_one_shape_keep_their_own_group_even_started_in_the_same_second(
    data_dir, tmp_path, one_thread, monkeypatch
):
    import time

    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.0)  # every group starts in one second
    config = StudyConfig(datasets=("trec",), poolings=("max",), seeds=3, **QUICK)
    rows = run_study(config, tmp_path, str(data_dir), progress=False, group_size=2)
    assert [r["group_size"] for r in rows] == [2, 2, 1]
    assert len({r["group"] for r in rows}) == 2  # training_seconds counts each chunk


def test_group_runs_keeps_one_shape_per_group_and_lets_the_poolings_take_turns():
    from textcnn.study.plan import Run, group_runs

    runs = [Run("mr", f, s, p) for f in range(2) for s in range(2) for p in ("max", "avg")]
    runs += [Run("trec", None, s, p) for s in range(2) for p in ("max", "avg")]
    groups = group_runs(runs, 3)
    assert [[(r.dataset, r.fold, r.seed, r.pooling) for r in g] for g in groups] == [
        [("mr", 0, 0, "max"), ("mr", 0, 1, "max"), ("mr", 1, 0, "max")],
        [("mr", 0, 0, "avg"), ("mr", 0, 1, "avg"), ("mr", 1, 0, "avg")],
        [("mr", 1, 1, "max")],
        [("mr", 1, 1, "avg")],
        [("trec", None, 0, "max"), ("trec", None, 1, "max")],
        [("trec", None, 0, "avg"), ("trec", None, 1, "avg")],
    ]


def cv_row(dataset, pooling, fold, seed, accuracy):
    return {**row(pooling, seed, accuracy), "dataset": dataset, "fold": fold}


@pytest.mark.parametrize(
    ("arm", "dataset", "figures"),
    [
        ("max", "mr", [(18, "k=1", 81.25, 81.00, 81.47), (19, "all", 81.28, 81.16, 81.54)]),
        ("kmax:5", "sst2", [(18, "k=5", 84.61, 84.47, 84.90)]),
        ("kmax:20", "trec", [(18, "k=20", 89.05, 88.85, 89.34)]),
        ("local-max:30", "sst1", [(19, "r=30", 47.02, 46.59, 47.59)]),
        ("local-avg:3", "trec", [(17, "r=3", 88.89, 88.67, 88.97)]),
        ("avg", "trec", [(17, "all", 83.30, 83.11, 83.57)]),
        ("padded-avg", "trec", [(17, "all", 83.30, 83.11, 83.57)]),  # their average, padded as theirs
        ("avg", "mr", []),  # Table 17 has CR and TREC only
        ("local-avg:10", "subj", []),
        ("kmax", "mr", []),  # k = 3: they ran no such k
        ("kmax:3", "mr", []),
        ("local-max:5", "mr", []),
        ("max:no-conv", "mr", []),
        ("local-max:3:no-conv", "mr", []),
        ("chunk-max", "mr", []),
        ("max", "cr", []),  # not one of our datasets
    ],
)
def test_arms_map_to_their_published_figures(arm, dataset, figures):
    from textcnn.study.reference import published

    assert [(f.table, f.setting, f.mean, f.low, f.high) for f in published(arm, dataset)] == figures


def test_their_misprints_are_kept_as_printed_and_flagged():
    from textcnn.study.reference import figure, one_max_noise

    trec_all = figure(19, "all", "trec")
    assert (trec_all.mean, trec_all.low, trec_all.high) == (91.56, 91.67, 91.88) and trec_all.misprint
    trec_20 = figure(17, 20, "trec")
    assert (trec_20.mean, trec_20.high) == (86.45, 86.42) and trec_20.misprint
    assert not figure(18, 1, "trec").misprint
    assert one_max_noise() == pytest.approx(0.24)  # SST-1: 47.24 (Table 18) against 47.00 (Table 19)


# 2 seeds x 2 folds of mr; a replication is one seed's mean over its folds.
CV_ROWS = [
    cv_row("mr", "max", 0, 0, 0.80),
    cv_row("mr", "max", 1, 0, 0.82),
    cv_row("mr", "max", 0, 1, 0.84),
    cv_row("mr", "max", 1, 1, 0.86),
    cv_row("mr", "kmax:5", 0, 0, 0.79),
    cv_row("mr", "kmax:5", 1, 0, 0.80),
    cv_row("mr", "kmax:5", 0, 1, 0.82),
    cv_row("mr", "kmax:5", 1, 1, 0.85),
]


def test_a_replication_is_one_seed_averaged_over_its_folds():
    from textcnn.study.summary import replications

    assert replications(CV_ROWS, "mr", "max") == pytest.approx({0: 81.0, 1: 85.0})
    assert replications(CV_ROWS, "mr", "kmax:5") == pytest.approx({0: 79.5, 1: 83.5})
    single = [row("max", 0, 0.90), row("max", 1, 0.92)]  # a fixed split: its test accuracy
    assert replications(single, "d", "max") == pytest.approx({0: 90.0, 1: 92.0})


def test_our_difference_from_max_is_paired_comparison_over_the_shared_runs():
    from textcnn.study.stats import paired_comparison
    from textcnn.study.summary import versus_max

    rows = [*CV_ROWS, cv_row("mr", "max", 2, 0, 0.99)]  # fold 2 has no kmax:5 run: left out
    paired = versus_max(rows, "mr", "kmax:5")
    expected = paired_comparison([0.79, 0.82, 0.80, 0.85], [0.80, 0.84, 0.82, 0.86])  # (fold, seed) order
    assert paired == expected
    assert versus_max(rows, "mr", "max") is None


def test_the_report_sets_our_replications_beside_theirs(tmp_path):
    from textcnn.study.stats import paired_comparison

    config = StudyConfig(datasets=("mr",), poolings=("max", "kmax:5", "kmax"), seeds=2, max_folds=2)
    rows = [*CV_ROWS, *(cv_row("mr", "kmax", f, s, 0.8) for f in range(2) for s in range(2))]
    text = write_report(summarize(rows), rows, config, tmp_path).read_text()
    section = text[text.index("## Beside Zhang & Wallace (2015)") :]
    assert "variant `rand`, vectors none (random init), 2 seed(s), 2 fold(s) of 10-fold CV planned" in section
    assert "non-static 300-d word2vec, 10 replications of 10-fold CV" in section
    assert "no reproduction" in section
    paired = paired_comparison([0.79, 0.82, 0.80, 0.85], [0.80, 0.84, 0.82, 0.86])
    interval = f"{100 * paired.ci_low:+.2f} to {100 * paired.ci_high:+.2f}"
    # ours: seeds 79.5 and 83.5 -> mean 81.50, std 2.83; theirs: Table 18 k=5, 80.83 - 81.25 = -0.42
    assert (
        f"| mr | kmax:5 | 81.50 ± 2.83 (79.50, 83.50), 2 seed(s) | 80.83 (80.69, 80.91) [Table 18 k=5] | "
        f"-1.50 (4 pairs) | {interval} | {paired.t_p_value:.3g} / {paired.wilcoxon_p_value:.3g} | -0.42 | — |"
    ) in section
    assert (
        "| mr | max | 83.00 ± 2.83 (81.00, 85.00), 2 seed(s) | 81.25 (81.00, 81.47) [Table 18 k=1]; "
        in section
    )
    assert "their two 1-max figures differ by 0.03" in section
    assert "| mr | kmax |" not in section  # k = 3: no figure of theirs
    assert "- mr: the direction against max agrees for kmax:5." in section


def test_their_differences_inside_their_noise_and_overlapping_ranges_are_noted(tmp_path):
    arms = ("max", "local-max:30", "local-max:3")
    rows = [cv_row("sst1", a, 0, s, 0.45 + 0.01 * s - 0.01 * i) for i, a in enumerate(arms) for s in range(2)]
    rows[2]["test_accuracy"] += 0.03  # ours: local-max:30 above max in one pair, mean difference +0.01
    config = StudyConfig(datasets=("sst1",), poolings=arms, seeds=2, max_folds=1)
    text = write_report(summarize(rows), rows, config, tmp_path).read_text()
    # theirs: 47.02 - 47.00 = +0.02, within 0.24 and the ranges overlap; r=3 is 2.02 below, apart
    assert "| +0.02 | within their 1-max noise (0.24); ranges overlap Table 19 all |" in text
    assert "| -2.02 | — |" in text
    assert "- sst1: the direction against max agrees for local-max:30, local-max:3" in text
    assert "theirs is within their own 1-max noise for local-max:30." in text


def test_a_study_without_a_published_counterpart_has_no_section_beside_theirs(tmp_path):
    rows = [row(arm, s, 0.8) for arm in ("max", "kmax", "max:no-conv") for s in range(2)]
    config = StudyConfig(datasets=("d",), poolings=("max", "kmax", "max:no-conv"), seeds=2)
    assert "Zhang & Wallace" not in write_report(summarize(rows), rows, config, tmp_path).read_text()
    config = StudyConfig(datasets=("mr",), poolings=("kmax", "chunk-max"), seeds=2)
    mr_rows = [cv_row("mr", arm, 0, s, 0.8) for arm in ("kmax", "chunk-max") for s in range(2)]
    assert "Zhang & Wallace" not in write_report(summarize(mr_rows), mr_rows, config, tmp_path).read_text()


def test_the_section_names_their_misprints_once(tmp_path):
    rows = [cv_row("trec", "max", None, s, 0.9) for s in range(2)]
    rows += [cv_row("trec", "kmax:5", None, s, 0.88) for s in range(2)]
    config = StudyConfig(datasets=("trec",), poolings=("max", "kmax:5"), seeds=2)
    text = write_report(summarize(rows), rows, config, tmp_path).read_text()
    assert "Ours: variant `rand`, vectors none (random init), 2 seed(s), fixed splits." in text
    assert "91.56 (91.67, 91.88) [Table 19 all, misprint]" in text
    assert text.count("Misprint in theirs, kept as printed: Table 19 all (trec)") == 1


def test_fixed_split_seeds_give_single_split_datasets_their_own_number_of_seeds():
    from textcnn.data.splits import Fold
    from textcnn.study.plan import plan_runs

    config = StudyConfig(datasets=("mr", "trec"), poolings=("max",), seeds=2, fixed_split_seeds=5)
    folds = {
        "mr": [Fold("f", i, None, None, None, "") for i in range(3)],
        "trec": [Fold("t", None, None, None, None, "")],
    }
    runs = plan_runs(config, folds)
    assert [(r.fold, r.seed) for r in runs if r.dataset == "mr"] == [
        (f, s) for f in range(3) for s in range(2)
    ]
    assert [(r.fold, r.seed) for r in runs if r.dataset == "trec"] == [(None, s) for s in range(5)]
    assert "fixed_split_seeds" not in config.run_settings()  # a study grows by it
    assert config.seeds_text() == "2 seed(s) per fold, 5 on fixed splits"
    with pytest.raises(ConfigError):
        StudyConfig(datasets=("mr",), poolings=("max",), fixed_split_seeds=0)


@pytest.mark.parametrize("group_size", [1, 2])
def test_ctrl_c_stops_the_study_and_records_no_half_trained_run(data_dir, tmp_path, monkeypatch, group_size):
    import textcnn.train.batches as train_module

    config = StudyConfig(datasets=("trec",), poolings=("max", "avg"), seeds=2, **QUICK)
    real, calls = train_module.length_bucketed_batches, {"n": 0}

    def ctrl_c_in_the_second_group(*args, **kwargs):  # one call per model and epoch; 1 epoch each
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "length_bucketed_batches", ctrl_c_in_the_second_group)
    with pytest.raises(KeyboardInterrupt):
        run_study(config, tmp_path, str(data_dir), progress=False, group_size=group_size)
    kept = load_results(tmp_path / "results.jsonl")
    assert len(kept) == 2  # the first two runs; the interrupted one (and the rest) are not results
    monkeypatch.setattr(train_module, "length_bucketed_batches", real)
    rows = run_study(config, tmp_path, str(data_dir), progress=False, group_size=group_size)
    keys = [(r["seed"], r["pooling"]) for r in rows]
    assert len(keys) == len(set(keys)) == 4 and rows[:2] == kept


def test_the_coverage_table_says_how_many_runs_each_arm_has_of_its_plan():
    from textcnn.study.report import coverage_section

    config = StudyConfig(
        datasets=("mr", "trec", "subj"), poolings=("max", "avg"), seeds=3, fixed_split_seeds=10
    )
    rows = [cv_row("mr", "max", fold, seed, 0.8) for fold in range(2) for seed in range(3)]
    rows += [cv_row("mr", "avg", 0, seed, 0.8) for seed in range(3)]
    rows += [cv_row("trec", arm, None, seed, 0.9) for arm in ("max", "avg") for seed in range(10)]
    lines = coverage_section(rows, config)
    assert any(line.startswith("| mr | 3–6 / 30 | 2 (0, 1) | 3 |") for line in lines)
    assert any(line.startswith("| trec | 10 / 10 | test split | 10 |") for line in lines)
    assert "| subj | 0 / 30 | — | 0 | — |" in lines
