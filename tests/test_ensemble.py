"""Ensembles: K models of one shape trained in one pass, saved as one bundle, predicting as one."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load, save
from test_cli import assert_one_line_error, textcnn
from test_train import SMALL, toy_folds

from textcnn.data.text import TextEncoder, Vocabulary
from textcnn.errors import BundleError
from textcnn.inference.bundle import Classifier
from textcnn.inference.explain import explain_text
from textcnn.model.cnn import ModelConfig, TextCNN
from textcnn.model.ensemble import Ensemble
from textcnn.train.config import TrainConfig
from textcnn.train.loop import LOG_FILE
from textcnn.train.protocol import train_folds
from textcnn.train.runs import RunSettings, member_settings

pytestmark = pytest.mark.usefixtures("one_thread")

WORDS = ["<pad>", "<unk>", "the", "film", "was", "great", "fine", "lovely", "awful", "dull", "poor", "a"]
WORDS += ["plot", "and", "but"]
SHAPE = {"num_classes": 3, "embedding_dim": 6, "num_filters": 4, "filter_widths": (2, 3)}


def members(k: int, **options) -> list[TextCNN]:
    models = []
    for seed in range(k):
        torch.manual_seed(seed)
        models.append(TextCNN(ModelConfig(vocab_size=len(WORDS), **SHAPE, **options)).eval())
    return models


def batch(rows: int = 5, width: int = 8, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (rows,), generator=generator)
    ids = torch.randint(2, len(WORDS), (rows, width), generator=generator)
    ids[torch.arange(width)[None, :] >= lengths[:, None]] = 0
    return ids, lengths


def classifier_of(models: list[TextCNN]) -> Classifier:
    encoder = TextEncoder(Vocabulary(WORDS), "kim")
    return Classifier(Ensemble.of(models).eval(), encoder, ["a", "b", "c"], {"data": {"dataset": "toy"}})


# -- the model ----------------------------------------------------------------------------------


@pytest.mark.parametrize("pooling", ["max", "avg", "kmax", "local-max", "logsumexp"])
@pytest.mark.parametrize("shape", [{"wide": True}, {"wide": False}, {"convolution": False}])
@pytest.mark.parametrize("conv_mode", ["grouped", "looped"])
def test_the_grouped_forward_equals_the_members_run_one_by_one(pooling, shape, conv_mode):
    local = {"region": 2, "region_slots": 3} if pooling == "local-max" else {}
    models = members(3, pooling=pooling, **shape, **local)
    ensemble = Ensemble.of(models).eval()
    ensemble.conv_mode = conv_mode
    ids, lengths = batch()
    with torch.no_grad():
        expected = torch.stack([torch.softmax(m(ids, lengths), dim=1) for m in models]).mean(dim=0)
        torch.testing.assert_close(torch.softmax(ensemble(ids, lengths), dim=1), expected)
        torch.testing.assert_close(ensemble(ids, lengths).exp(), expected)  # log-probabilities
        for k, model in enumerate(models):
            torch.testing.assert_close(ensemble.member_logits(ids, lengths)[k], model(ids, lengths))
        with torch.enable_grad():  # the convolutions, as training runs them
            torch.testing.assert_close(ensemble(ids, lengths).detach().exp(), expected)


def test_an_ensemble_of_one_is_the_single_model():
    (model,) = members(1)
    ensemble = Ensemble.of([model]).eval()
    assert {k: v.shape for k, v in ensemble.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
    ids, lengths = batch()
    with torch.no_grad():
        torch.testing.assert_close(ensemble(ids, lengths).exp(), torch.softmax(model(ids, lengths), dim=1))
    single = Classifier(model, classifier_of([model]).encoder, ["a", "b", "c"])
    texts = ["the film was great", "awful and dull", "a plot"]
    numpy = pytest.importorskip("numpy")
    numpy.testing.assert_allclose(
        classifier_of([model]).predict_proba(texts), single.predict_proba(texts), rtol=1e-5, atol=1e-6
    )
    one, alone = explain_text(classifier_of([model]), texts[0]), explain_text(single, texts[0])
    assert one["attribution"].endswith("The mean of 1 members' logits.")
    for key in ("label", "logit", "output_bias", "filter_bias", "token_parts", "residual"):
        assert one[key] == pytest.approx(alone[key], abs=1e-6)
    assert [g["ngram"] for g in one["for"]] == [g["ngram"] for g in alone["for"]]
    assert all(g["member"] == 0 for g in one["for"] + one["against"])


def test_members_must_share_their_config():
    with pytest.raises(ValueError, match="share their config"):
        Ensemble.of([*members(1), *members(1, pooling="avg")])


# -- bundles ------------------------------------------------------------------------------------


def test_an_ensemble_bundle_round_trips_and_names_a_broken_member(tmp_path):
    classifier = classifier_of(members(3))
    texts = ["the film was great", "awful and dull", "a plot but lovely", "poor"]
    classifier.save(tmp_path / "e")
    config = json.loads((tmp_path / "e" / "config.json").read_text())
    assert config["ensemble"]["size"] == 3 and len(config["ensemble"]["members"]) == 3
    loaded = Classifier.load(tmp_path / "e", device="cpu")
    assert loaded.is_ensemble and len(loaded.members) == 3
    assert loaded.predict(texts) == classifier.predict(texts)
    half = Classifier.load(classifier.save(tmp_path / "half", half=True), device="cpu")
    numpy = pytest.importorskip("numpy")
    numpy.testing.assert_allclose(half.predict_proba(texts), classifier.predict_proba(texts), atol=1e-2)

    weights = tmp_path / "e" / "weights.safetensors"
    state = load(weights.read_bytes())
    rows = state["convs.1.weight"].shape[0] // 3
    state["convs.1.weight"][2 * rows] = float("nan")  # member 2's first width-3 filter
    weights.write_bytes(save(state, metadata={"format": "textcnn-bundle"}))
    config["weights"]["sha256"] = __import__("hashlib").sha256(weights.read_bytes()).hexdigest()
    (tmp_path / "e" / "config.json").write_text(json.dumps(config))
    with pytest.raises(BundleError, match=r"convs.1.weight holds NaN or infinite values \(member 2 of 3\)"):
        Classifier.load(tmp_path / "e")
    assert_one_line_error(textcnn("predict", tmp_path / "e", "a text"), "member 2 of 3")

    config["ensemble"]["size"] = 2  # two members said, three stacked
    (tmp_path / "e" / "config.json").write_text(json.dumps(config))
    with pytest.raises(BundleError, match="malformed ensemble section"):
        Classifier.load(tmp_path / "e")


def test_a_single_model_bundle_never_becomes_an_ensemble(tmp_path):
    (model,) = members(1)
    single = Classifier(model, classifier_of([model]).encoder, ["a", "b", "c"], {"ensemble": {"size": 9}})
    config = json.loads((single.save(tmp_path / "s") / "config.json").read_text())
    assert "ensemble" not in config and not Classifier.load(tmp_path / "s").is_ensemble


def test_an_ensembles_explanation_is_its_members_mean_logit_split():
    models = members(3)
    classifier = classifier_of(models)
    text = "the film was great but the plot was dull"
    explained = explain_text(classifier, text, top=50)
    numpy = pytest.importorskip("numpy")
    expected = numpy.mean([classifier_of([m]).predict_proba([text])[0] for m in models], axis=0)
    assert list(explained["probabilities"].values()) == pytest.approx(expected.tolist(), abs=1e-6)
    label = explained["label"]
    assert label == classifier.predict([text])[0].label
    c = classifier.label_names.index(label)
    ids = classifier.encoder.pad([classifier.encoder.encode(text)], 3).ids
    with torch.no_grad():
        member_logits = [float(m(ids, torch.tensor([ids.shape[1]]))[0, c]) for m in models]
    assert explained["logit"] == pytest.approx(sum(member_logits) / 3, abs=1e-5)
    parts = explained["output_bias"] + explained["filter_bias"] + sum(explained["token_parts"])
    assert explained["residual"] == pytest.approx(explained["logit"] - parts, abs=1e-9)
    assert abs(explained["residual"]) < 1e-5 and explained["exact"]
    assert {g["member"] for g in explained["for"] + explained["against"]} <= {0, 1, 2}
    # a member's entries are its own, at a third of their size
    for entry in explained["for"]:
        own = explain_text(Classifier(models[entry["member"]], classifier.encoder, ["a", "b", "c"]), text, 50)
        if own["label"] == label:
            match = [
                g
                for g in own["for"]
                if (g["filter"], g["slot"], g["start"]) == (entry["filter"], entry["slot"], entry["start"])
            ]
            assert match and match[0]["contribution"] / 3 == pytest.approx(entry["contribution"])


# -- training -----------------------------------------------------------------------------------


def test_ensemble_members_train_as_they_would_alone_and_make_one_bundle_per_fold(tmp_path):
    corpus, folds = toy_folds(tmp_path)
    settings = RunSettings(SMALL, TrainConfig(epochs=3, patience=None, batch_size=10, seed=4))
    run = train_folds(
        corpus, folds[:2], tmp_path / "ens", settings, progress=False, together=True, ensemble=3
    )
    assert [p.name for p in run.bundles] == ["fold-0", "fold-1"]
    bundle = Classifier.load(tmp_path / "ens" / "fold-1", device="cpu")
    records = bundle.info["ensemble"]["members"]
    assert [r["seed"] for r in records] == [4, 5, 6] and bundle.model.models == 3
    assert bundle.info["metrics"]["test"]["accuracy"] == run.outcomes[1].test_metrics["accuracy"]
    log = [json.loads(line) for line in (tmp_path / "ens" / "fold-1" / LOG_FILE).read_text().splitlines()]
    assert sorted({(e["member"], e["epoch"]) for e in log}) == [(k, e) for k in range(3) for e in (1, 2, 3)]

    # Member 2 of fold 1 is the model `--seed 6` trains alone on that fold.
    alone = train_folds(corpus, [folds[1]], tmp_path / "alone", member_settings(settings, 2), progress=False)
    assert records[2]["dev_accuracy"] == alone.outcomes[0].dev_metrics["accuracy"]
    texts = list(folds[1].test.texts)
    numpy = pytest.importorskip("numpy")
    member = Classifier(bundle.members[2], bundle.encoder, bundle.label_names)
    numpy.testing.assert_allclose(
        member.predict_proba(texts), alone.outcomes[0].classifier.predict_proba(texts), atol=1e-4
    )


def test_ctrl_c_keeps_each_members_best_so_far_and_resume_trains_the_ensemble_again(tmp_path, monkeypatch):
    import textcnn.train.batches as train_module

    corpus, folds = toy_folds(tmp_path)
    settings = RunSettings(SMALL, TrainConfig(epochs=3, patience=None, batch_size=10))
    real, calls = train_module.length_bucketed_batches, {"n": 0}

    def interrupt_in_second_epoch(*args, **kwargs):  # 2 members plan each epoch: call 3 is epoch 2
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "length_bucketed_batches", interrupt_in_second_epoch)
    stopped = train_folds(corpus, folds[:2], tmp_path / "cv", settings, progress=False, ensemble=2)
    assert [o.fit.interrupted for o in stopped.outcomes] == [True]  # fold 1 never started
    interrupted = json.loads((tmp_path / "cv" / "fold-0" / "config.json").read_text())
    assert interrupted["training"]["interrupted"] and interrupted["ensemble"]["size"] == 2
    assert [r["epochs_run"] for r in interrupted["ensemble"]["members"]] == [1, 1]
    assert not (tmp_path / "cv" / "fold-1").exists()

    monkeypatch.setattr(train_module, "length_bucketed_batches", real)
    resumed = train_folds(
        corpus, folds[:2], tmp_path / "cv", settings, resume=True, progress=False, ensemble=2
    )
    assert [o.fit.interrupted for o in resumed.outcomes] == [False, False]
    assert [o.fit.epochs_run for o in resumed.outcomes] == [3, 3]  # fold 0 again, from the start
    finished = (tmp_path / "cv" / "fold-0" / "weights.safetensors").read_bytes()
    again = train_folds(corpus, folds[:2], tmp_path / "cv", settings, resume=True, progress=False, ensemble=2)
    assert (
        tmp_path / "cv" / "fold-0" / "weights.safetensors"
    ).read_bytes() == finished  # kept, not retrained
    assert again.summary["test"]["folds"] == 2


def test_train_ensemble_through_the_cli_then_predict_evaluate_explain(tmp_path):
    from conftest import REPO

    tiny = REPO / "data" / "samples" / "tiny.csv"
    out = tmp_path / "tiny-ensemble"
    args = ["--embedding-dim", "8", "--num-filters", "4", "--epochs", "2", "--quiet", "--seed", "3"]
    trained = textcnn(
        "train", "--train", tiny, "--folds", "3", "--fold", "1", "--ensemble", "3", "--out", out, *args
    )
    assert trained.returncode == 0, trained.stderr
    assert [m["seed"] for m in json.loads((out / "config.json").read_text())["ensemble"]["members"]] == [
        3,
        4,
        5,
    ]
    predicted = textcnn("predict", out, "a wonderful film")
    assert predicted.returncode == 0 and json.loads(predicted.stdout)["label"] in ("negative", "positive")
    evaluated = textcnn("evaluate", out, "--train", tiny, "--json")  # finds fold 1 of 3, split seed 3
    assert evaluated.returncode == 0, evaluated.stderr
    tested = json.loads((out / "config.json").read_text())["metrics"]["test"]
    assert json.loads(evaluated.stdout)["n"] == 4
    assert json.loads(evaluated.stdout)["accuracy"] == pytest.approx(tested["accuracy"])
    explained = textcnn("explain", out, "a wonderful film", "--json")
    assert explained.returncode == 0, explained.stderr
    assert "members' logits" in json.loads(explained.stdout.splitlines()[0])["attribution"]
    refused = textcnn("train", "--train", tiny, "--ensemble", "0", "--out", tmp_path / "x")
    assert refused.returncode == 1 and "--ensemble 0 trains no CNN: give --linear KIND" in refused.stderr
    assert "Traceback" not in refused.stderr
