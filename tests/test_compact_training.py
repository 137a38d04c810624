"""Training on flat token arrays trains the same models as the padded tensors it replaced.

`tests/fixtures/compact_training_reference.json` holds digests recorded with the padded code of
commit 8f0e9d8 (`python tests/test_compact_training.py --record` run against that commit's
`textcnn/`): the vocabulary, every split's encoded ids, every trained tensor and the dev
predictions of a single run, a truncated one, an ensemble of three, a mixed ensemble with a linear
member and dev weights, a multi-label run and a learned (subword) tokenizer's run. CPU, fp32, seed 0.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REFERENCE = Path(__file__).parent / "fixtures" / "compact_training_reference.json"
SMALL_MODEL = {"embedding_dim": 32, "num_filters": 16, "filter_widths": (3, 4, 5)}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split_digest(split) -> dict:
    """The rows' ids (concatenated, int64) and lengths, whatever the split's layout holds them in."""
    lengths = split.lengths.cpu().to(torch.int64)
    if hasattr(split, "tokens"):  # flat: all rows' ids, one after another
        flat = torch.cat([split.row(i) for i in range(len(split))]).to(torch.int64)
    else:  # padded (the reference's layout, 8f0e9d8)
        flat = torch.cat([split.ids[i, : int(n)] for i, n in enumerate(lengths)]).to(torch.int64)
    labels = split.labels.cpu()
    return {
        "rows": len(split),
        "ids": _sha(flat.numpy().tobytes()),
        "lengths": _sha(lengths.numpy().tobytes()),
        "labels": _sha(labels.numpy().tobytes()) + str(labels.dtype),
    }


def model_digest(classifier, dev_texts) -> dict:
    state = classifier.model.state_dict()
    probabilities = classifier.predict_proba(list(dev_texts))
    probabilities = np.ascontiguousarray(probabilities, dtype=np.float32)
    return {
        "weights": {name: _sha(t.detach().cpu().contiguous().numpy().tobytes()) for name, t in state.items()},
        "weight_stats": {name: _stats(t.detach().cpu().numpy()) for name, t in state.items()},
        "dev_probabilities": _sha(probabilities.tobytes()),
        "dev_probability_stats": _stats(probabilities),
        "dev_argmax": _sha(probabilities.argmax(axis=1).astype(np.int64).tobytes()),
    }


def _stats(values: np.ndarray) -> list[float]:
    # For the parts fitted by scikit-learn's lbfgs (a mixed bundle's linear member), which differ
    # between two runs of the same code (relative 1.2e-6 in a sum, seen recording this file): compared
    # with a tolerance, through these sums, instead of bit for bit.
    flat = values.astype(np.float64).ravel()
    return [float(flat.sum()), float((flat * flat).sum()), float((flat * np.arange(flat.size) % 7).sum())]


def run_digest(run) -> dict:
    return {
        "itos": _sha(json.dumps(run.encoder.vocab.itos, ensure_ascii=False).encode()),
        "vocab_size": len(run.encoder.vocab),
        "splits": {
            name: split_digest(split)
            for name, split in (("train", run.train), ("dev", run.dev), ("test", run.test))
            if split is not None
        },
        "report": run.tokens.to_json() | {"empty": list(run.tokens.empty)}
        if run.tokens is not None
        else None,
    }


def _fold(corpus, train_rows: range, dev_rows: range, test_rows: range | None):
    from textcnn.data.splits import Fold

    train_split = corpus.splits["train"]
    dev_split = corpus.splits.get("dev", train_split)
    test = corpus.splits["test"].subset(test_rows) if test_rows is not None else None
    return Fold("reference", None, train_split.subset(train_rows), dev_split.subset(dev_rows), test, "given")


def recipe(data_dir: str | Path, out: Path) -> dict:
    """Every case's digests; `out`: a scratch folder for the protocol's bundles."""
    from textcnn.data.corpus import load_registered
    from textcnn.train.config import TrainConfig
    from textcnn.train.loop import fit
    from textcnn.train.protocol import train_folds
    from textcnn.train.runs import Mixture, RunSettings, VocabConfig, finish_run, prepare_run

    torch.set_num_threads(1)
    cases: dict[str, dict] = {}
    train_config = TrainConfig(epochs=2, seed=0, device="cpu")
    trec = load_registered("trec", data_dir)
    fold = _fold(trec, range(1200), range(1200, 1500), range(200))
    base = RunSettings(model_options=SMALL_MODEL, train=train_config).for_corpus(trec)

    def single(name: str, fold, settings: RunSettings, label_names) -> None:
        run = prepare_run(fold, label_names, settings)
        digest = run_digest(run)
        outcome = finish_run(run, fit(run.model, run.train, run.dev, settings.train, progress=False))
        cases[name] = digest | model_digest(outcome.classifier, fold.dev.texts)

    single("trec", fold, base, trec.label_names)
    truncated = RunSettings(
        model_options=SMALL_MODEL | {"pooling": "kmax"},
        train=train_config,
        vocab=VocabConfig(min_count=2, max_size=300, max_length=9),
    ).for_corpus(trec)
    single("trec_truncated", fold, truncated, trec.label_names)
    subword = RunSettings(model_options=SMALL_MODEL, train=train_config, tokenizer="subword")
    single("trec_subword", _fold(trec, range(600), range(600, 800), None), subword, trec.label_names)

    for name, ensemble, mixture in (
        ("trec_ensemble", 3, None),
        ("trec_mixed", 3, Mixture(poolings=("max", "avg"), linear="nbsvm", combine="dev")),
    ):
        protocol = train_folds(
            trec, [fold], out / name, base, progress=False, ensemble=ensemble, mixture=mixture
        )
        cases[name] = model_digest(protocol.outcomes[0].classifier, fold.dev.texts)

    goemotions = load_registered("goemotions", data_dir)
    multi_fold = _fold(goemotions, range(1500), range(400), None)
    multi = RunSettings(model_options=SMALL_MODEL, train=train_config).for_corpus(goemotions)
    single("goemotions", multi_fold, multi, goemotions.label_names)
    return cases


def test_training_on_flat_arrays_reproduces_the_padded_reference(data_dir, tmp_path):
    reference = json.loads(REFERENCE.read_text())
    cases = recipe(data_dir, tmp_path)
    assert set(cases) == set(reference["cases"])
    for name, expected in reference["cases"].items():
        got = cases[name]
        for key in expected:
            if key in ("weights", "dev_probabilities", "weight_stats", "dev_probability_stats"):
                continue
            assert got[key] == expected[key], f"{name}: {key} differs from the reference"
        # Every CNN tensor bit for bit; the linear member's (and so a mixed bundle's probabilities)
        # to a relative 1e-4 (see `_stats`: two runs of the old code differed by 1.2e-6).
        for tensor, digest in expected["weights"].items():
            if tensor.startswith("linear."):
                assert got["weight_stats"][tensor] == pytest.approx(
                    expected["weight_stats"][tensor], rel=1e-4
                )
            else:
                assert got["weights"][tensor] == digest, f"{name}: {tensor} differs from the reference"
        if any(tensor.startswith("linear.") for tensor in expected["weights"]):
            assert got["dev_probability_stats"] == pytest.approx(expected["dev_probability_stats"], rel=1e-4)
        else:
            assert got["dev_probabilities"] == expected["dev_probabilities"], name


@pytest.mark.parametrize("vocab", [(1, None, None), (2, 300, 9)])
def test_one_pass_over_the_training_texts_gives_what_the_lists_gave(data_dir, vocab):
    from textcnn.data.corpus import load_registered
    from textcnn.data.text import TextEncoder, Vocabulary, encode_training_texts, tokenizer_report
    from textcnn.data.tokenizers import TokenizerConfig

    train = load_registered("goemotions", data_dir).splits["train"].subset(range(3000))
    tokenizer = TokenizerConfig.parse("unicode").build()
    min_count, max_size, max_length = vocab
    built, flat, report = encode_training_texts(
        tokenizer, train.texts, min_count, max_size, max_length, train.where
    )
    tokenized = [tokenizer.split(text) for text in train.texts]
    expected = Vocabulary.build(tokenized, min_count, max_size)
    assert built.itos == expected.itos and built.counts == expected.counts
    encoded = TextEncoder(expected, tokenizer, max_length).encode_many(train.texts)
    assert flat.lengths.tolist() == [len(ids) for ids in encoded]
    assert flat.tokens.tolist() == [i for ids in encoded for i in ids]
    where = [train.where(i) for i in range(len(train))]
    assert report == tokenizer_report(tokenizer, train.texts, tokenized, expected, where)


def test_ids_past_the_memory_limit_are_mapped_from_a_file_and_batch_the_same(data_dir):
    from textcnn.data.corpus import load_registered
    from textcnn.data.text import FlatIds, IdBuffer, TextEncoder, Vocabulary
    from textcnn.data.tokenizers import TokenizerConfig
    from textcnn.train.batches import EncodedSplit

    texts = load_registered("trec", data_dir).splits["train"].texts[:500]
    tokenizer = TokenizerConfig.parse("kim").build()
    encoder = TextEncoder(Vocabulary.build(tokenizer.split(t) for t in texts), tokenizer)
    in_memory = EncodedSplit.encode(encoder, texts, [0] * len(texts), 5)
    buffer = IdBuffer(limit=1000)  # bytes: spills every 250 ids
    for text in texts:
        buffer.extend(encoder.encode(text))
    mapped = buffer.finish()
    assert isinstance(mapped, np.memmap)
    on_disk = EncodedSplit.of(FlatIds(mapped, in_memory.lengths.numpy()), [0] * len(texts), 5)
    rows = torch.tensor([3, 499, 0, 250, 17])
    width = max(int(in_memory.lengths[rows].max()), 5)  # a batch's width, as the loop asks for it
    assert torch.equal(on_disk.padded(rows, width)[0], in_memory.padded(rows, width)[0])
    padded = encoder.pad([encoder.encode(texts[i]) for i in rows.tolist()], 5)
    assert torch.equal(in_memory.padded(rows, width)[0], padded.ids)


def test_a_step_budget_ends_the_run_where_it_is_spent_and_resume_keeps_it_ended(data_dir, tmp_path):
    import dataclasses

    from textcnn.data.corpus import load_registered
    from textcnn.train.config import TrainConfig
    from textcnn.train.loop import fit
    from textcnn.train.runs import RunSettings, prepare_run

    trec = load_registered("trec", data_dir)
    fold = _fold(trec, range(400), range(400, 500), None)
    one_epoch = RunSettings(model_options=SMALL_MODEL, train=TrainConfig(epochs=1, device="cpu")).for_corpus(
        trec
    )
    per_epoch = -(-400 // one_epoch.train.batch_size)  # 8 steps: batches of 50
    budgeted = dataclasses.replace(
        one_epoch, train=dataclasses.replace(one_epoch.train, epochs=5, max_steps=per_epoch + 3)
    )
    runs = [prepare_run(fold, trec.label_names, settings) for settings in (one_epoch, budgeted)]
    alone = fit(runs[0].model, runs[0].train, runs[0].dev, one_epoch.train, progress=False)
    budget = fit(runs[1].model, runs[1].train, runs[1].dev, budgeted.train, tmp_path, progress=False)
    assert budget.epochs_run == 2 and [r["steps"] for r in budget.history] == [per_epoch, per_epoch + 3]
    assert budget.history[0]["dev_loss"] == alone.history[0]["dev_loss"]  # epoch 1: the same model
    again = prepare_run(fold, trec.label_names, budgeted)
    resumed = fit(again.model, again.train, again.dev, budgeted.train, tmp_path, resume=True, progress=False)
    assert resumed.history == budget.history and resumed.best_epoch == budget.best_epoch


if __name__ == "__main__" and sys.argv[1:2] == ["--record"]:
    import os
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        cases = recipe(os.environ["TEXTCNN_DATA_DIR"], Path(scratch))
    import textcnn

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
    ).stdout.strip()
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    REFERENCE.write_text(
        json.dumps(
            {
                "recorded_with": f"textcnn at {textcnn.__file__}, repository HEAD {commit} (see the module's note)",
                "torch": torch.__version__,
                "recipe": "tests/test_compact_training.py::recipe (CPU, fp32, one thread, seed 0, 2 epochs)",
                "cases": cases,
            },
            indent=1,
        )
        + "\n"
    )


def test_dropout_masks_drawn_in_blocks_are_the_masks_of_one_draw():
    """Masks are drawn MASK_BLOCK steps at a time (an epoch's at once cost 1.5 KB per training
    row); on the CPU they are exactly the masks one draw per model gave, for models of unequal steps."""
    from textcnn.train.batches import MASK_BLOCK, DropoutMasks, epoch_seed

    seeds, steps, batch, width, p = [3, 11], [2 * MASK_BLOCK + 5, MASK_BLOCK - 1], 4, 6, 0.5
    masks = DropoutMasks(seeds, 2, steps, batch, width, p, torch.device("cpu"))
    drawn = torch.stack([masks[step] for step in range(max(steps))])  # (S, K, B, P)
    for k, (seed, count) in enumerate(zip(seeds, steps, strict=True)):
        generator = torch.Generator().manual_seed(epoch_seed(seed, 2) + 1)
        expected = torch.rand((count, batch, width), generator=generator) >= p
        assert torch.equal(drawn[:count, k], expected)
        assert bool(drawn[count:, k].all())  # past a model's own steps: kept (its slots are empty)
    with pytest.raises(IndexError):
        masks[0]  # a generator only goes forward
