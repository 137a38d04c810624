"""The probes of the pooling study on real (tiny) trained models, and their report sections."""

import json

import textcnn.study.probe_study as study_probes
from textcnn.study.plan import StudyConfig
from textcnn.study.probe_study import load_probes, probe_sections, run_probes

TINY = {"max_train": 300, "epochs": 1, "model_options": {"embedding_dim": 16, "num_filters": 8}}


def test_probes_train_once_measure_everything_and_render(data_dir, tmp_path, one_thread, monkeypatch):
    config = StudyConfig(datasets=("trec",), poolings=("max", "avg"), **TINY)
    logged: list[str] = []
    probes = run_probes(config, tmp_path, str(data_dir), log=logged.append)
    assert logged == ["probes: trec max model", "probes: trec avg model", "probes: trec"]
    trec = probes["trec"]
    assert (trec["fold"], trec["seed"], trec["test_sentences"]) == (None, 0, 500)
    for pooling in ("max", "avg"):
        result = trec["poolings"][pooling]
        assert 0.0 <= result["test_accuracy"] <= 1.0
        # A pure shift inside the padding cannot change a correctly masked pooling (an average's
        # sum may round differently when its terms sit at other offsets).
        assert result["pure_shift"]["max_abs_change"] <= (0.0 if pooling == "max" else 1e-5)
        assert result["pure_shift"]["unchanged_predictions"] == 1.0
        assert set(result["filler"]) == {"1", "3", "5"}
        assert result["moved_phrase"]["sentences"] > 0
    # Filler words are new windows: an average always moves.
    assert trec["poolings"]["avg"]["filler"]["5"]["mean_relative_change"] > 0
    stats = trec["max_statistics"]
    assert stats["sentences"] == trec["train_sentences"] and stats["feature_maps"] == 3 * 8
    assert 0 < len(trec["decisive_maps"]) <= study_probes.DECISIVE_MAPS
    assert all(m["fired_fraction"] >= 0.05 for m in trec["decisive_maps"])
    assert trec["explained"]["label"] in {"ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"}
    assert json.loads((tmp_path / "probes.json").read_text()) == probes == load_probes(tmp_path)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["trec-avg", "trec-max"]

    # Done datasets are not probed again; a new dataset reuses nothing but trains its own models,
    # and kept models are loaded, not retrained.
    def no_training(*args, **kwargs):
        raise AssertionError("a kept model was trained again")

    monkeypatch.setattr(study_probes, "train_model", no_training)
    assert run_probes(config, tmp_path, str(data_dir), log=logged.append) == probes
    (tmp_path / "probes.json").unlink()
    assert run_probes(config, tmp_path, str(data_dir), log=logged.append).keys() == {"trec"}

    invariance, ties, origins = probe_sections(probes)
    assert "| trec | max | 100.0% (0.000) |" in invariance and "| trec | avg | 100.0% (0.000) |" in invariance
    assert ties.count("| trec |") == 1
    assert "**trec**" in origins and "> predicted **" in origins
    assert probe_sections({}) == []
