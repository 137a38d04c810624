"""Training: batching, checkpoints and resume, interruption, and real short runs on real data."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from textcnn.data.corpus import load_registered
from textcnn.data.folds import make_folds
from textcnn.errors import ConfigError, TextCNNError
from textcnn.inference.bundle import Classifier
from textcnn.train.batches import EncodedSplit, length_bucketed_batches
from textcnn.train.checkpoint import CHECKPOINT_FILE
from textcnn.train.config import TrainConfig
from textcnn.train.loop import LOG_FILE, fit
from textcnn.train.protocol import train_folds
from textcnn.train.runs import RunSettings, VocabConfig, texts_fold, train_classifier

SMALL = {"embedding_dim": 16, "num_filters": 8}  # tiny model: these tests check behaviour, not accuracy


def toy_texts(n: int = 120) -> tuple[list[str], list[str]]:
    """A separable toy task: 'good' words vs 'bad' words, varied lengths."""
    generator = torch.Generator().manual_seed(0)
    good, bad, filler = (
        ["great", "fine", "lovely"],
        ["awful", "dull", "poor"],
        ["the", "film", "was", "a", "plot"],
    )
    texts, labels = [], []
    for i in range(n):
        words = [
            filler[int(j)]
            for j in torch.randint(
                0, len(filler), (int(torch.randint(0, 12, (1,), generator=generator)),), generator=generator
            )
        ]
        key = (good if i % 2 else bad)[i % 3]
        words.insert(int(torch.randint(0, len(words) + 1, (1,), generator=generator)), key)
        texts.append(" ".join(words))
        labels.append("pos" if i % 2 else "neg")
    return texts, labels


def toy_run(config: TrainConfig, model: dict = SMALL, **kwargs):
    """Train on the toy task with its first 40 sentences as dev."""
    texts, labels = toy_texts()
    fold = texts_fold((texts, labels), (texts[:40], labels[:40]))
    kwargs.setdefault("progress", False)
    return train_classifier(fold, ["neg", "pos"], RunSettings(model, config), **kwargs)


def test_batches_cover_every_sentence_once_and_group_similar_lengths():
    lengths = torch.randint(1, 60, (1000,), generator=torch.Generator().manual_seed(1))
    batches = length_bucketed_batches(lengths, 50, 5, torch.Generator().manual_seed(0))
    flat = torch.cat(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    assert all(len(b) <= 50 for b in batches)
    # padding waste is far below what random batches would pay
    waste = sum(int(lengths[b].max() * len(b) - lengths[b].sum()) for b in batches)
    random_waste = sum(
        int(lengths[b].max() * len(b) - lengths[b].sum()) for b in torch.randperm(1000).split(50)
    )
    assert waste < random_waste / 3


def test_batch_order_is_seeded():
    lengths = torch.randint(1, 60, (300,))
    first = length_bucketed_batches(lengths, 50, 2, torch.Generator().manual_seed(3))
    again = length_bucketed_batches(lengths, 50, 2, torch.Generator().manual_seed(3))
    other = length_bucketed_batches(lengths, 50, 2, torch.Generator().manual_seed(4))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=False))


def test_train_config_validation():
    with pytest.raises(ConfigError):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ConfigError):
        TrainConfig(batch_size=0)
    with pytest.raises(ConfigError):
        TrainConfig(patience=0)
    with pytest.raises(ConfigError, match="amp"):
        TrainConfig(amp="fp8")
    assert TrainConfig().learning_rate == 1.0 and TrainConfig(optimizer="adam").learning_rate == 1e-3


def test_learns_a_toy_task_and_is_repeatable_with_a_seed():
    runs = [toy_run(TrainConfig(epochs=6, patience=None, seed=7, batch_size=10)) for _ in range(2)]
    assert runs[0].dev_metrics["accuracy"] >= 0.9
    assert [h["train_loss"] for h in runs[0].fit.history] == [h["train_loss"] for h in runs[1].fit.history]
    first, second = (r.classifier.model.state_dict() for r in runs)
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_vocabulary_comes_from_training_texts_only():
    texts, labels = toy_texts()
    outcome = train_classifier(
        texts_fold((texts, labels), (["zebra quagga"] * 2, ["neg", "pos"]), (["okapi"], ["neg"])),
        ["neg", "pos"],
        RunSettings(SMALL, TrainConfig(epochs=1)),
        progress=False,
    )
    vocab = outcome.classifier.encoder.vocab
    assert "great" in vocab and "zebra" not in vocab and "okapi" not in vocab


def test_prepare_run_sets_local_region_slots_from_the_longest_training_sentence():
    from textcnn.train.runs import prepare_run

    train = (["a b c d e f g", "a b", "c d e"], ["neg", "pos", "neg"])  # longest: 7 tokens
    dev = (["a b c d e f g a b c d e f g"], ["pos"])  # longer, but not training data
    fold = texts_fold(train, dev)

    def config(**options):
        return prepare_run(fold, ["neg", "pos"], RunSettings(SMALL | options)).model.config

    assert config(pooling="local-max").region_slots == 4  # ceil((7 + 5 - 1) / 3): wide, widest filter 5
    assert config(pooling="local-avg", region=2, wide=False).region_slots == 2  # ceil((7 - 5 + 1) / 2)
    assert config(pooling="local-max", convolution=False, region=7).region_slots == 1  # 7 tokens
    assert config(pooling="local-max", region_slots=9).region_slots == 9  # given: kept
    assert config(pooling="padded-avg").region_slots == 11  # its padded length: 7 + 5 - 1 windows
    assert config(pooling="max").region_slots == 0  # other poolings: not set
    truncated = prepare_run(
        fold, ["neg", "pos"], RunSettings(SMALL | {"pooling": "local-max"}, vocab=VocabConfig(max_length=3))
    )
    assert truncated.model.config.region_slots == 3  # the encoder's 3 tokens: ceil(7 / 3)
    # The pooling only changes the output layer: the same initial embeddings and convolutions.
    local, maxed = (
        prepare_run(fold, ["neg", "pos"], RunSettings(SMALL | {"pooling": p})).model
        for p in ("local-max", "max")
    )
    assert torch.equal(local.embedding.weight, maxed.embedding.weight)
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(local.convs, maxed.convs, strict=True))


def test_runs_whose_region_slots_differ_train_together_as_they_would_alone():
    from textcnn.train.runs import prepare_run, train_together

    texts, labels = toy_texts(60)
    long_text = " ".join(["the"] * 20 + ["great"])
    folds = [
        texts_fold((texts[20:], labels[20:]), (texts[:20], labels[:20])),
        texts_fold(([*texts[20:], long_text], [*labels[20:], "pos"]), (texts[:20], labels[:20])),
    ]
    settings = RunSettings(SMALL | {"pooling": "local-avg"}, TrainConfig(epochs=2, batch_size=10))
    runs = [prepare_run(fold, ["neg", "pos"], settings) for fold in folds]
    assert runs[0].model.config.region_slots < runs[1].model.config.region_slots  # two shapes
    together = train_together(runs, progress=False)
    for fold, outcome in zip(folds, together, strict=True):
        alone = train_classifier(fold, ["neg", "pos"], settings, progress=False)
        assert [h["dev_accuracy"] for h in alone.fit.history] == [
            h["dev_accuracy"] for h in outcome.fit.history
        ]
        assert outcome.classifier.model.config == alone.classifier.model.config


def test_a_normal_run_prints_no_warnings(recwarn):
    # Progress bars on: the step loop's postfix once read a loss that required grad (torch warned).
    toy_run(TrainConfig(epochs=2, batch_size=10), progress=True)
    assert [str(w.message) for w in recwarn] == []


def test_bf16_autocast_on_the_cpu_trains():
    outcome = toy_run(TrainConfig(epochs=6, patience=None, seed=7, batch_size=10, amp="bf16"))
    assert outcome.dev_metrics["accuracy"] >= 0.9
    assert all(p.dtype == torch.float32 for p in outcome.classifier.model.parameters())  # fp32 master weights


def test_adam_and_max_norm_off_also_train():
    outcome = toy_run(TrainConfig(epochs=2, optimizer="adam"), SMALL | {"max_norm": None})
    assert outcome.fit.epochs_run == 2


def test_max_norm_holds_after_training():
    outcome = toy_run(TrainConfig(epochs=3, lr=5.0), SMALL | {"max_norm": 0.5})
    norms = outcome.classifier.model.classifier.weight.detach().norm(dim=1)
    assert float(norms.max()) <= 0.5 + 1e-5


def test_early_stopping_keeps_the_best_epoch(tmp_path):
    outcome = toy_run(TrainConfig(epochs=30, patience=2, batch_size=10), run_dir=tmp_path)
    history = outcome.fit.history
    assert outcome.fit.stopped_early and len(history) < 30
    best = max(history, key=lambda h: h["dev_accuracy"])
    assert outcome.fit.best_epoch == best["epoch"]  # the first epoch reaching the best accuracy
    assert outcome.dev_metrics["accuracy"] == pytest.approx(best["dev_accuracy"])
    log = [json.loads(line) for line in (tmp_path / LOG_FILE).read_text().splitlines()]
    assert [r["epoch"] for r in log] == [h["epoch"] for h in history]


def _encoded(texts, labels):
    fold = texts_fold((texts, labels), (texts[:30], labels[:30]))
    outcome = train_classifier(
        fold, ["neg", "pos"], RunSettings(SMALL, TrainConfig(epochs=1)), progress=False
    )
    encoder = outcome.classifier.encoder
    index = {"neg": 0, "pos": 1}
    split = EncodedSplit.encode(encoder, texts, [index[y] for y in labels], 5)
    dev = EncodedSplit.encode(encoder, texts[:30], [index[y] for y in labels[:30]], 5)
    return outcome.classifier.model.config, split, dev


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    from textcnn.model.cnn import TextCNN

    texts, labels = toy_texts()
    model_config, train, dev = _encoded(texts, labels)
    config = TrainConfig(epochs=4, patience=None, seed=3, batch_size=10)

    torch.manual_seed(0)
    straight = TextCNN(model_config)
    fit(straight, train, dev, config, tmp_path / "straight", progress=False)

    # Interrupt at the start of epoch 3 (as Ctrl-C would), then resume from the checkpoint.
    import textcnn.train.batches as train_module

    real = train_module.length_bucketed_batches
    calls = {"n": 0}

    def interrupt_on_third_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    torch.manual_seed(0)
    interrupted = TextCNN(model_config)
    monkeypatch.setattr(train_module, "length_bucketed_batches", interrupt_on_third_epoch)
    result = fit(interrupted, train, dev, config, tmp_path / "resumed", progress=False)
    assert result.interrupted and result.epochs_run == 2
    assert (tmp_path / "resumed" / CHECKPOINT_FILE).exists()
    monkeypatch.setattr(train_module, "length_bucketed_batches", real)

    torch.manual_seed(123)  # a different init: resume must restore everything from the checkpoint
    resumed = TextCNN(model_config)
    result = fit(resumed, train, dev, config, tmp_path / "resumed", resume=True, progress=False)
    assert result.epochs_run == 4
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_resume_refuses_other_settings_and_missing_checkpoints(tmp_path):
    texts, labels = toy_texts()
    model_config, train, dev = _encoded(texts, labels)
    from textcnn.model.cnn import TextCNN

    fit(TextCNN(model_config), train, dev, TrainConfig(epochs=1), tmp_path, progress=False)
    with pytest.raises(TextCNNError, match="other settings"):
        fit(
            TextCNN(model_config),
            train,
            dev,
            TrainConfig(epochs=1, seed=5),
            tmp_path,
            resume=True,
            progress=False,
        )
    with pytest.raises(TextCNNError, match="no checkpoint"):
        fit(
            TextCNN(model_config),
            train,
            dev,
            TrainConfig(epochs=1),
            tmp_path / "empty",
            resume=True,
            progress=False,
        )


def test_a_corrupt_checkpoint_is_reported_not_crashed(tmp_path):
    texts, labels = toy_texts()
    model_config, train, dev = _encoded(texts, labels)
    from textcnn.model.cnn import TextCNN

    (tmp_path / CHECKPOINT_FILE).write_bytes(b"\x00garbage")
    with pytest.raises(TextCNNError, match="unreadable checkpoint"):
        fit(TextCNN(model_config), train, dev, TrainConfig(epochs=1), tmp_path, resume=True, progress=False)


def test_pretrained_variant_without_vectors_is_refused():
    texts, labels = toy_texts(20)
    with pytest.raises(ConfigError, match="needs pretrained vectors"):
        fold = texts_fold((texts, labels), (texts, labels))
        train_classifier(fold, ["neg", "pos"], RunSettings({"variant": "static"}), progress=False)


def test_static_variant_keeps_the_pretrained_table_frozen(glove_file):
    texts = ["a great film", "an awful film", "a lovely plot", "a dull plot"] * 10
    labels = ["pos", "neg", "pos", "neg"] * 10
    outcome = train_classifier(
        texts_fold((texts, labels), (texts[:8], labels[:8])),
        ["neg", "pos"],
        RunSettings({"variant": "static", "num_filters": 8}, TrainConfig(epochs=2), vectors=str(glove_file)),
        progress=False,
    )
    model = outcome.classifier.model
    assert model.config.embedding_dim == 50 and not model.embedding.weight.requires_grad
    from textcnn.data.vectors import load_pretrained

    table = load_pretrained(outcome.classifier.encoder.vocab, glove_file, seed=0).matrix
    assert torch.equal(model.embedding.weight, torch.from_numpy(table))
    assert outcome.vectors["words_found"] == outcome.vectors["words_total"]


@pytest.mark.slow
def test_real_short_training_on_mr_gives_a_bundle_that_predicts(data_dir, tmp_path):
    corpus = load_registered("mr", data_dir)
    (fold,) = make_folds(corpus, seed=0)
    small_train = fold.train.subset(range(0, len(fold.train), 4))  # a quarter of the fold, 3 epochs
    fold = dataclasses.replace(fold, train=small_train)
    settings = RunSettings(
        {"num_filters": 50, "embedding_dim": 100},
        TrainConfig(epochs=3, patience=None),
        VocabConfig(min_count=1),
    )
    run = train_folds(corpus, [fold], tmp_path / "mr", settings, progress=False)
    outcome = run.outcomes[0]
    assert outcome.test_metrics["accuracy"] > 0.55  # chance is 0.5; a short run on a quarter of MR
    classifier = Classifier.load(tmp_path / "mr")
    predictions = classifier.predict(["a gorgeous , witty , seductive movie .", "boring and tedious ."])
    assert {p.label for p in predictions} <= {"negative", "positive"}
    assert classifier.info["data"]["dataset"] == "mr" and classifier.info["data"]["fold"] == "fold-0"
    assert classifier.info["metrics"]["test"]["accuracy"] == pytest.approx(outcome.test_metrics["accuracy"])
    assert not (tmp_path / "mr" / CHECKPOINT_FILE).exists()  # a finished run leaves no checkpoint
    reloaded = classifier.logits(list(fold.test.texts[:50]))
    assert torch.equal(reloaded, outcome.classifier.logits(list(fold.test.texts[:50])))


@pytest.mark.slow
def test_cross_validation_writes_each_fold_and_a_summary(data_dir, tmp_path):
    from textcnn.data.files import load_files
    from textcnn.data.splits import LabeledTexts

    corpus = load_registered("subj", data_dir)
    few = corpus.splits["all"].subset(range(0, 10_000, 25))  # 400 rows, 3 folds, 1 epoch
    path = tmp_path / "few.jsonl"
    path.write_text(
        "\n".join(json.dumps({"text": t, "label": y}) for t, y in zip(few.texts, few.labels, strict=True))
    )
    small = load_files(path)
    assert isinstance(small.splits["all"], LabeledTexts)
    folds = make_folds(small, folds=3, seed=0)
    run = train_folds(
        small, folds, tmp_path / "cv", RunSettings(SMALL, TrainConfig(epochs=1)), progress=False
    )
    assert [p.name for p in run.bundles] == ["fold-0", "fold-1", "fold-2"]
    summary = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert summary["test"]["folds"] == 3 and len(summary["test"]["accuracy"]["values"]) == 3
    for bundle in run.bundles:
        Classifier.load(bundle)


def toy_folds(tmp_path):
    """The toy task as a user's JSON Lines file, cut into 3 folds."""
    from textcnn.data.files import load_files

    texts, labels = toy_texts(90)
    path = tmp_path / "toy.jsonl"
    path.write_text(
        "\n".join(json.dumps({"text": t, "label": y}) for t, y in zip(texts, labels, strict=True))
    )
    corpus = load_files(path)
    return corpus, make_folds(corpus, folds=3, seed=0)


def test_resume_of_cross_validation_keeps_finished_folds(tmp_path, monkeypatch):
    import textcnn.train.batches as train_module

    corpus, folds = toy_folds(tmp_path)
    config = RunSettings(SMALL, TrainConfig(epochs=2, patience=None, batch_size=10))

    real = train_module.length_bucketed_batches
    calls = {"n": 0}

    def interrupt_in_second_fold(*args, **kwargs):  # fold 0: epochs 1-2; fold 1: epoch 1, then Ctrl-C
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "length_bucketed_batches", interrupt_in_second_fold)
    first = train_folds(corpus, folds, tmp_path / "cv", config, progress=False)
    assert [o.fit.interrupted for o in first.outcomes] == [False, True]
    assert (tmp_path / "cv" / "fold-1" / CHECKPOINT_FILE).exists() and not (
        tmp_path / "cv" / "fold-2"
    ).exists()
    fold0_weights = (tmp_path / "cv" / "fold-0" / "weights.safetensors").read_bytes()

    monkeypatch.setattr(train_module, "length_bucketed_batches", real)
    resumed = train_folds(corpus, folds, tmp_path / "cv", config, resume=True, progress=False)
    assert [o.fit.interrupted for o in resumed.outcomes] == [False, False, False]
    assert (tmp_path / "cv" / "fold-0" / "weights.safetensors").read_bytes() == fold0_weights  # not retrained
    assert [len(o.fit.history) for o in resumed.outcomes] == [2, 2, 2]
    assert resumed.summary["test"]["folds"] == 3
    assert not any((tmp_path / "cv" / f"fold-{k}" / CHECKPOINT_FILE).exists() for k in range(3))


def test_folds_trained_together_match_folds_trained_one_at_a_time(tmp_path, monkeypatch):
    import textcnn.train.batches as train_module

    corpus, folds = toy_folds(tmp_path)
    config = RunSettings(SMALL, TrainConfig(epochs=3, patience=None, batch_size=10))
    alone = train_folds(corpus, folds, tmp_path / "alone", config, progress=False)
    seen = []
    together = train_folds(
        corpus,
        folds,
        tmp_path / "together",
        config,
        progress=False,
        together=True,
        on_fold=lambda fold, outcome: seen.append(fold.name),
    )
    assert sorted(seen) == ["fold-0", "fold-1", "fold-2"]
    assert [p.name for p in together.bundles] == ["fold-0", "fold-1", "fold-2"]
    for a, b in zip(alone.outcomes, together.outcomes, strict=True):
        assert [h["dev_accuracy"] for h in a.fit.history] == [h["dev_accuracy"] for h in b.fit.history]
        assert a.test_metrics["accuracy"] == b.test_metrics["accuracy"]
    assert json.loads((tmp_path / "together" / "cv.json").read_text())["test"]["folds"] == 3

    # Ctrl-C in a group: every fold keeps its best bundle, marked interrupted, and no checkpoint;
    # --resume trains those folds again (one at a time) instead of taking them for finished.
    real = train_module.length_bucketed_batches
    calls = {"n": 0}

    def interrupt_in_second_epoch(*args, **kwargs):  # 3 folds plan each epoch: call 4 is epoch 2
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "length_bucketed_batches", interrupt_in_second_epoch)
    stopped = train_folds(corpus, folds, tmp_path / "cv", config, progress=False, together=True)
    assert [o.fit.interrupted for o in stopped.outcomes] == [True, True, True]
    assert [o.fit.epochs_run for o in stopped.outcomes] == [1, 1, 1]
    assert all((tmp_path / "cv" / f"fold-{k}" / "config.json").exists() for k in range(3))
    monkeypatch.setattr(train_module, "length_bucketed_batches", real)
    resumed = train_folds(corpus, folds, tmp_path / "cv", config, resume=True, progress=False)
    assert [o.fit.epochs_run for o in resumed.outcomes] == [3, 3, 3]
    assert [o.fit.interrupted for o in resumed.outcomes] == [False, False, False]
