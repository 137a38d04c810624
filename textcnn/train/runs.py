"""From texts to a trained classifier: one run (`train_classifier`), or several as one group.

A run is a `data.Fold` (train, dev, and maybe test texts) plus `RunSettings`: the vocabulary comes
from the training texts only, pretrained vectors are read for that vocabulary, the model is drawn
from the run's seed, `textcnn.train.loop.fit` trains it, and the outcome carries the `Classifier` with
its dev and test metrics. `train_together` trains several prepared runs as one batched computation.

An ensemble of K (`train_folds(..., ensemble=K)`) is K runs of one fold that differ only in their
seed (seed, seed + 1, ...: `member_settings`), trained together by `fit_group` and joined by
`finish_ensemble`; a single model and an ensemble end the same way (`_outcome`). A `Mixture` asks
for members that differ (member k pools with `poolings[k % n]`) and a linear n-gram member,
combined by the mean of probabilities or by weights chosen on dev: `finish_mixed` joins those. The protocol over
a dataset's folds (bundle folders, resume, cv.json) is `textcnn.train.protocol`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from textcnn.data.splits import Corpus, Fold, LabeledTexts
from textcnn.data.text import TextEncoder, TokenizerReport, encode_training_texts, fit_tokenizer
from textcnn.data.tokenizers import DEFAULT_TOKENIZER, TokenizerConfig
from textcnn.errors import ConfigError
from textcnn.inference.classifier import Classifier
from textcnn.inference.decisions import THRESHOLD_MODES, choose_thresholds
from textcnn.inference.metrics import classification_metrics, headline, multilabel_metrics
from textcnn.model import output
from textcnn.model.cnn import ModelConfig, TextCNN
from textcnn.model.ensemble import Ensemble
from textcnn.model.linear_member import LinearMember
from textcnn.model.mixed import MixedEnsemble, weigh_on_dev
from textcnn.model.pooling import POOLINGS, SLOT_POOLINGS
from textcnn.model.variants import COMBINE_METHODS, LINEAR_KINDS
from textcnn.runtime import package_versions
from textcnn.train.batches import EncodedSplit
from textcnn.train.config import TrainConfig
from textcnn.train.evaluation import evaluate_split
from textcnn.train.loop import FitResult, fit, fit_group


@dataclass(frozen=True)
class VocabConfig:
    min_count: int = 1  # Kim keeps every training word
    max_size: int | None = None
    max_length: int | None = None  # truncate longer texts (tokens); None: keep everything


@dataclass(frozen=True)
class RunSettings:
    """Everything a run takes besides its data: the same for every fold of a protocol.

    `model_options` are ModelConfig fields other than vocab_size and num_classes (which follow
    from the data); with `vectors`, embedding_dim follows from the vectors.
    """

    model_options: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)
    vectors: str | None = None  # a vectors file or a named source (textcnn.data.vectors)
    # The tokenizer (`textcnn.data.tokenizers`), or its `--tokenizer` spelling; None: what the data
    # suggests (`for_corpus`: the registry's choice for a benchmark), else `unicode`.
    tokenizer: TokenizerConfig | str | None = None
    # Multi-label data: how the thresholds are chosen on dev (`textcnn.inference.decisions`), and
    # whether a text always gets its top label (None: when every training text has a label).
    thresholds: str = "per-label"
    at_least_one: bool | None = None

    def __post_init__(self) -> None:
        if isinstance(self.tokenizer, str):
            object.__setattr__(self, "tokenizer", TokenizerConfig.parse(self.tokenizer))
        if self.thresholds not in THRESHOLD_MODES:
            raise ConfigError(
                f"unknown threshold mode {self.thresholds!r}; choose {' or '.join(THRESHOLD_MODES)}"
            )

    @property
    def tokenizer_config(self) -> TokenizerConfig:
        """The tokenizer a run uses: the one chosen, else the default for user data."""
        return self.tokenizer or TokenizerConfig.parse(DEFAULT_TOKENIZER)

    def for_corpus(self, corpus: Corpus) -> RunSettings:
        """These settings with the corpus's suggested tokenizer where none was chosen."""
        if self.tokenizer is not None:
            return self
        return dataclasses.replace(self, tokenizer=TokenizerConfig.parse(corpus.tokenizer))


def texts_fold(
    train: tuple[Sequence[str], Sequence[str]],
    dev: tuple[Sequence[str], Sequence[str]],
    test: tuple[Sequence[str], Sequence[str]] | None = None,
) -> Fold:
    """A fold of (texts, labels) held in memory, for callers that have no corpus behind them."""

    def part(name: str, pair: tuple[Sequence[str], Sequence[str]]) -> LabeledTexts:
        return LabeledTexts(tuple(pair[0]), tuple(pair[1]), f"<{name} texts>")

    return Fold(
        "split", None, part("train", train), part("dev", dev), part("test", test) if test else None, "given"
    )


@dataclass
class TrainOutcome:
    classifier: Classifier
    fit: FitResult
    dev_metrics: dict
    test_metrics: dict | None
    vectors: dict | None  # coverage report of the pretrained vectors, if any
    test_predictions: list[int] | None = None  # class ids, in the order of the test texts
    tokens: TokenizerReport | None = None  # what the tokenizer made of the training texts


@dataclass
class PreparedRun:
    """Everything one training needs before `fit`: vocabulary, model, encoded splits."""

    model: TextCNN
    encoder: TextEncoder
    label_names: list[str]
    train: EncodedSplit
    dev: EncodedSplit
    test: EncodedSplit | None
    settings: RunSettings
    coverage: dict | None
    fingerprint: dict
    info: dict | None
    tokens: TokenizerReport | None = None


def prepare_run(
    fold: Fold,
    label_names: Sequence[str],
    settings: RunSettings | None = None,
    info: dict | None = None,
) -> PreparedRun:
    """The tokenizer (fitted on the fold's training texts if it learns), the vocabulary of the
    training texts only, optional pretrained vectors, the initial model (drawn right after seeding
    with the run's seed, so it is the same wherever it will train); `info` goes into the bundle's
    config. Training texts the tokenizer cannot read are refused here (`TokenizerReport.check`)."""
    settings = settings or RunSettings()
    options, vectors = dict(settings.model_options), settings.vectors
    variant = options.get("variant", "rand")
    if variant != "rand" and vectors is None:
        raise ConfigError(f"variant {variant!r} needs pretrained vectors (--vectors)")
    parts = [fold.train, fold.dev, *([fold.test] if fold.test is not None and len(fold.test) else [])]
    label_index = {name: i for i, name in enumerate(label_names)}
    multi_label = fold.train.multi_label
    if any(part.multi_label != multi_label for part in parts):
        raise ConfigError("train, dev and test must all be multi-label, or none of them")
    seen = {label for part in parts for row in part.labels for label in (row if multi_label else (row,))}
    unknown = sorted(seen - set(label_index))
    if unknown:
        raise ConfigError(f"labels not among the label names: {', '.join(map(repr, unknown[:5]))}")

    def targets(part: LabeledTexts) -> torch.Tensor:  # (N,) class ids, or (N, C) 0/1 rows
        return torch.from_numpy(part.label_array(label_names))

    max_length = settings.vocab.max_length
    tokenizer = fit_tokenizer(settings.tokenizer_config, fold.train.texts)
    # One pass over the training texts: vocabulary, ids and report, no list per text.
    vocab, train_ids, report = encode_training_texts(
        tokenizer,
        fold.train.texts,
        settings.vocab.min_count,
        settings.vocab.max_size,
        max_length,
        fold.train.where if len(fold.train.lines) else None,
    )
    report.check()
    encoder = TextEncoder(vocab, tokenizer, max_length)
    torch.manual_seed(settings.train.seed)

    coverage = table = None
    if vectors is not None:
        from textcnn.data.vectors import load_pretrained

        pretrained = load_pretrained(vocab, vectors, seed=settings.train.seed)
        options["embedding_dim"] = pretrained.dim
        table = torch.from_numpy(pretrained.matrix)
        coverage = {
            "source": str(vectors),
            **pretrained.coverage.to_json(),
            "summary": str(pretrained.coverage),
        }
    # A local pooling's slots (padded-avg's padded length) follow from the longest training sentence,
    # known once it is encoded: until then the config holds a placeholder (slots given are kept).
    set_slots = options.get("pooling") in SLOT_POOLINGS and not options.get("region_slots")
    config = ModelConfig(
        vocab_size=len(vocab),
        num_classes=len(label_names),
        **(
            options
            | ({"region_slots": 1} if set_slots else {})
            | ({"multi_label": True} if multi_label else {})
        ),
    )
    widest = max(config.filter_widths)
    train = EncodedSplit.of(train_ids, targets(fold.train), widest)
    dev, *test = (EncodedSplit.encode(encoder, part.texts, targets(part), widest) for part in parts[1:])
    if set_slots:
        config = dataclasses.replace(config, region_slots=config.region_slots_for(int(train.lengths.max())))
    model = TextCNN(config)  # nothing since the seeding drew random numbers: the same initial model
    if table is not None:
        model.load_pretrained(table)
    fingerprint = {
        "vocab_size": len(vocab),
        "train_rows": len(train),
        "dev_rows": len(dev),
        "vectors": str(vectors) if vectors else None,
        "tokenizer": str(tokenizer.config),
        **({"multi_label": True} if multi_label else {}),
    }
    return PreparedRun(
        model,
        encoder,
        list(label_names),
        train,
        dev,
        test[0] if test else None,
        settings,
        coverage,
        fingerprint,
        info,
        report,
    )


def finish_run(run: PreparedRun, result: FitResult) -> TrainOutcome:
    """Metrics of the trained model on dev (and test), and the classifier with its summary."""
    return _outcome(run, run.model, result)


def train_classifier(
    fold: Fold,
    label_names: Sequence[str],
    settings: RunSettings | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    info: dict | None = None,
) -> TrainOutcome:
    """`prepare_run`, `fit`, `finish_run`: from a fold's texts to a trained classifier with its
    metrics. With `run_dir`, per-epoch checkpoints and `resume` as `fit` has them."""
    run = prepare_run(fold, label_names, settings, info)
    result = fit(
        run.model, run.train, run.dev, run.settings.train, run_dir, resume, progress, run.fingerprint
    )
    return finish_run(run, result)


def train_together(
    runs: Sequence[PreparedRun],
    progress: bool = True,
    on_outcome: Callable[[int, TrainOutcome], None] | None = None,
) -> list[TrainOutcome]:
    """Train prepared runs as one group (`fit_group`) per model shape; `on_outcome(k, outcome)`
    as each run finishes, so its result can be kept before the others are done.

    Runs of one protocol mostly share their shape; a local pooling's region slots follow each
    fold's longest training sentence, so its folds may differ: each shape trains as its own group,
    one after another (after a Ctrl-C the shapes not yet started are not trained, nor returned)."""
    outcomes: dict[int, TrainOutcome] = {}
    shapes: dict[ModelConfig, list[int]] = {}
    for k, run in enumerate(runs):
        shapes.setdefault(dataclasses.replace(run.model.config, vocab_size=2), []).append(k)

    for members in shapes.values():

        def finished(position: int, result: FitResult, members: list[int] = members) -> None:
            k = members[position]
            outcomes[k] = finish_run(runs[k], result)
            if on_outcome is not None:
                on_outcome(k, outcomes[k])

        fit_group(
            [runs[k].model for k in members],
            [runs[k].train for k in members],
            [runs[k].dev for k in members],
            [runs[k].settings.train for k in members],
            progress=progress,
            on_finished=finished,
        )
        if any(outcomes[k].fit.interrupted for k in members):
            break  # Ctrl-C: the shapes not yet started are left out
    return [outcomes[k] for k in sorted(outcomes)]


@dataclass(frozen=True)
class Mixture:
    """What makes an ensemble mixed: members that pool differently, a linear member, a combination.

    `poolings`: member k pools with poolings[k % n] (empty: the settings' own pooling for all);
    `linear`: a linear n-gram member's kind (`textcnn.model.linear_member.LINEAR_KINDS`), fitted on
    the fold's training texts, its C and scale chosen on dev; `combine`: "mean" of the members'
    probabilities, or "dev": weights per part (each pooling's members, the linear member) from a
    grid, the lowest dev log loss (`textcnn.model.mixed.dev_weights`). Test texts are never seen."""

    poolings: tuple[str, ...] = ()
    linear: str | None = None
    combine: str = "mean"

    def __post_init__(self) -> None:
        unknown = [p for p in self.poolings if p not in POOLINGS]
        if unknown:
            raise ConfigError(f"unknown pooling {unknown[0]!r}; choose from {', '.join(POOLINGS)}")
        if self.linear is not None and self.linear not in LINEAR_KINDS:
            raise ConfigError(
                f"unknown linear member {self.linear!r}; choose one of {', '.join(LINEAR_KINDS)}"
            )
        if self.combine not in COMBINE_METHODS:
            raise ConfigError(
                f"unknown combination {self.combine!r}; choose one of {', '.join(COMBINE_METHODS)}"
            )

    def check(self, members: int) -> None:
        """Refuse, in one line, a mixture that `members` CNN members cannot make."""
        if len(set(self.poolings)) > members:
            raise ConfigError(
                f"{len(set(self.poolings))} poolings for {members} CNN member(s): ask for at least as many"
            )
        if members < 1 and self.linear is None:
            raise ConfigError("an ensemble of 0 CNN members needs a linear member")

    @property
    def mixed(self) -> bool:
        """Whether the bundle needs a mixed ensemble (else a plain one of one shape does)."""
        return len(set(self.poolings)) > 1 or self.linear is not None or self.combine != "mean"


def member_settings(settings: RunSettings, member: int, poolings: Sequence[str] = ()) -> RunSettings:
    """Member k of an ensemble: the run's settings with seed + k (initial weights, data order,
    dropout masks, random vectors for words the pretrained table lacks), and, given `poolings`,
    pooling poolings[k % len(poolings)]."""
    options = settings.model_options
    if poolings:
        options = options | {"pooling": poolings[member % len(poolings)]}
    return dataclasses.replace(
        settings,
        model_options=options,
        train=dataclasses.replace(settings.train, seed=settings.train.seed + member),
    )


def finish_ensemble(runs: Sequence[PreparedRun], members: Sequence[TrainOutcome]) -> TrainOutcome:
    """One classifier from the trained members of one fold (`member_settings`): their weights
    stacked as an `Ensemble`, its own dev and test metrics, and what each member did, in the
    bundle's `ensemble` section. Its `fit`: the latest best epoch of any member, the ensemble's
    dev accuracy, interrupted if any member was."""
    fit = _members_fit(members, list(range(len(members))))
    records = [_member_record(run, m) for run, m in zip(runs, members, strict=True)]
    ensemble = Ensemble.of([m.classifier.model for m in members]).eval()
    section = {"combine": "mean of the members' probabilities", "members": records}
    outcome = _outcome(runs[0], ensemble, fit, {"ensemble": section})
    fit.best_dev_accuracy = _selected(outcome.dev_metrics)
    return outcome


def _selected(metrics: dict) -> float:
    """What selection reads of a split's metrics: accuracy, or multi-label macro-F1 (as the loop)."""
    return metrics["macro_f1"] if metrics.get("multi_label") else metrics["accuracy"]


def finish_mixed(
    runs: Sequence[PreparedRun], members: Sequence[TrainOutcome], mixture: Mixture, base: PreparedRun
) -> TrainOutcome:
    """A `MixedEnsemble` from one fold's trained CNN members (maybe none) and, if asked, a linear
    member fitted now on `base`'s training split (`base`: the fold's run, for its data): the CNN
    members grouped by shape (first seen first), weights by `mixture.combine`, and the bundle's
    `ensemble` section recording every member, the linear one included, and the combination."""
    shapes: dict[ModelConfig, list[int]] = {}
    for k, outcome in enumerate(members):
        shapes.setdefault(outcome.classifier.model.config, []).append(k)
    order = [k for ks in shapes.values() for k in ks]
    groups = [Ensemble.of([members[k].classifier.model for k in ks]) for ks in shapes.values()]
    records = [_member_record(runs[k], members[k]) for k in order]
    linear = None
    if mixture.linear is not None:
        train, dev = base.train, base.dev
        # The linear member's features are sparse matrices of the whole split, built from padded
        # rows: padded here, for the time of the fit (the flat split's rows at its own width).
        linear = LinearMember.fit(
            mixture.linear,
            (
                *train.padded(torch.arange(len(train)), train.width),
                train.labels.long().tolist() if train.multi_label else train.labels.tolist(),
            ),
            (
                *dev.padded(torch.arange(len(dev)), dev.width),
                dev.labels.long().tolist() if dev.multi_label else dev.labels.tolist(),
            ),
            len(base.encoder.vocab),
            len(base.label_names),
            vocab=base.encoder.vocab.itos,
            multi_label=train.multi_label,
        )
        score = "macro_f1" if train.multi_label else "accuracy"
        records.append(
            {
                "kind": mixture.linear,
                "C": linear.config.C,
                "scale": linear.config.scale,
                f"dev_{score}": _alone_score(linear, dev),
                f"test_{score}": _alone_score(linear, base.test) if base.test is not None else None,
            }
        )
    model = MixedEnsemble(groups, linear).eval()
    combine: dict = {"combine": "mean of the members' probabilities"}
    if mixture.combine == "dev":
        combine = weigh_on_dev(model, _chunks(base.dev), base.dev.labels)
        combine["parts"] = [_part_name(model, i) for i in range(len(model.parts()))]
    fit = _members_fit(members, order)
    outcome = _outcome(base, model, fit, {"ensemble": {**combine, "members": records}})
    fit.best_dev_accuracy = _selected(outcome.dev_metrics)
    return outcome


def _member_record(run: PreparedRun, member: TrainOutcome) -> dict:
    """What an ensemble's `ensemble` section records of a trained member."""
    record = {
        "seed": run.settings.train.seed,
        "best_epoch": member.fit.best_epoch,
        "epochs_run": member.fit.epochs_run,
        "stopped_early": member.fit.stopped_early,
        "dev_accuracy": member.dev_metrics["accuracy"],
        "test_accuracy": member.test_metrics["accuracy"] if member.test_metrics else None,
    }
    if member.dev_metrics.get("multi_label"):
        record["dev_macro_f1"] = member.dev_metrics["macro_f1"]
        record["test_macro_f1"] = member.test_metrics["macro_f1"] if member.test_metrics else None
    return record


def _members_fit(members: Sequence[TrainOutcome], order: Sequence[int]) -> FitResult:
    """An ensemble's `fit`: the latest best epoch of any member (1 for none: a linear bundle), every
    member's epochs in the history (as member `order.index(k)`, its place in the bundle), interrupted
    if any member was; the ensemble's own dev accuracy is set once `_outcome` has evaluated it."""
    fits = [m.fit for m in members]
    return FitResult(
        best_epoch=max((f.best_epoch for f in fits), default=1),
        best_dev_accuracy=float("nan"),
        epochs_run=max((f.epochs_run for f in fits), default=0),
        history=[{"member": order.index(k), **epoch} for k, f in enumerate(fits) for epoch in f.history],
        interrupted=any(f.interrupted for f in fits),
        stopped_early=all(f.stopped_early for f in fits),
        seconds=max((f.seconds for f in fits), default=0.0),
    )


def _part_name(model: MixedEnsemble, i: int) -> str:
    if i < len(model.groups):
        config = model.groups[i].config
        return f"{config.pooling} ({','.join(map(str, config.filter_widths))} x {config.num_filters}, {config.variant})"
    return model.linear.config.kind


def _chunks(split: EncodedSplit, size: int = 1000):
    """A split's rows in order, in chunks cut to their own longest row."""
    for start in range(0, len(split), size):
        rows = torch.arange(start, min(start + size, len(split)), device=split.device)
        yield split.padded(rows, max(int(split.lengths[rows].max()), 1))


def _alone_score(linear: LinearMember, split: EncodedSplit) -> float:
    """The linear member's accuracy on a split, evaluated as every model is (`evaluate_split`);
    multi-label: its macro-F1 at the best shared threshold."""
    predicted, _ = evaluate_split(MixedEnsemble([], linear), split)
    if split.multi_label:
        return output.macro_f1_at_best_cut(predicted, split.labels)
    return float((predicted == split.labels.cpu()).double().mean())


def _outcome(
    run: PreparedRun,
    model: TextCNN | Ensemble | MixedEnsemble,
    result: FitResult,
    sections: dict | None = None,
) -> TrainOutcome:
    """How every training ends, one model's (`finish_run`) or an ensemble's (`finish_ensemble`):
    `model`'s metrics on the run's dev (and test) split, and the classifier with the bundle's
    summary (`sections` after the run's own)."""
    label_names = run.label_names
    dev_predictions, _ = evaluate_split(model, run.dev)
    decision = chosen = None
    if run.dev.multi_label:  # thresholds from dev, then every split scored with them
        at_least_one = run.settings.at_least_one
        if at_least_one is None:  # the data says so: every training text has a label
            at_least_one = bool((run.train.labels.sum(dim=1) > 0).all())
        decision, chosen = choose_thresholds(
            dev_predictions.numpy(), run.dev.labels.numpy(), run.settings.thresholds, at_least_one
        )
        dev_metrics = multilabel_metrics(
            run.dev.labels.numpy(), decision.decide(dev_predictions.numpy()), label_names
        )
    else:
        dev_metrics = classification_metrics(run.dev.labels.tolist(), dev_predictions.tolist(), label_names)
    test_metrics = test_predictions = None
    if run.test is not None:
        predicted, _ = evaluate_split(model, run.test)
        if decision is not None:
            test_predictions = decision.decide(predicted.numpy()).tolist()
            test_metrics = multilabel_metrics(run.test.labels.numpy(), test_predictions, label_names)
        else:
            test_predictions = predicted.tolist()
            test_metrics = classification_metrics(run.test.labels.tolist(), test_predictions, label_names)

    model.to("cpu")
    summary = {
        "training": {
            "config": run.settings.train.to_json(),
            "vocab": dataclasses.asdict(run.settings.vocab),
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "stopped_early": result.stopped_early,
            "interrupted": result.interrupted,
            "seconds": round(result.seconds, 2),
            "versions": package_versions(),
            **({"thresholds": chosen} if chosen is not None else {}),
        },
        "vectors": run.coverage,
        "tokens": run.tokens.to_json() if run.tokens is not None else None,
        "metrics": {"dev": headline(dev_metrics), "test": headline(test_metrics) if test_metrics else None},
        **(run.info or {}),
        **(sections or {}),
    }
    if decision is not None:
        summary["metrics"]["per_label"] = {  # the card's per-label table: test's, else dev's
            name: {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
            for name, row in (test_metrics or dev_metrics)["per_class"].items()
        }
    classifier = Classifier(model, run.encoder, label_names, summary, decision)
    return TrainOutcome(
        classifier, result, dev_metrics, test_metrics, run.coverage, test_predictions, run.tokens
    )
