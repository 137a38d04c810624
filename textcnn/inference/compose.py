"""One bundle from several trained on the same data: `textcnn ensemble MEMBER_BUNDLE... --out DIR`.

Members trained apart (a max model today, an average-pooling one tomorrow, a linear baseline)
can be averaged only if they read a text the same way and answer the same question: the same
labels in the same order, the same tokenizer settings, the same vocabulary (so the ids are encoded
once), and the same training data and split (a member that saw another member's test texts would
make the bundle's test figures a lie). `compose` refuses anything else in one line, naming the
bundle and what differs.

Every member of every bundle becomes a member of the result (an ensemble's members, a mixed
bundle's groups and linear member), regrouped by shape so each shape is one grouped forward. The
result is a plain `Ensemble` (format version 1) when the members share one shape, have no linear
member and are combined by the mean; else a `MixedEnsemble`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from textcnn.errors import BundleError
from textcnn.inference.classifier import Classifier
from textcnn.inference.decisions import Decision, choose_thresholds
from textcnn.inference.metrics import headline
from textcnn.model.cnn import ModelConfig, TextCNN
from textcnn.model.ensemble import Ensemble
from textcnn.model.linear_member import LinearMember
from textcnn.model.mixed import MixedEnsemble, weigh_on_dev

# The parts of a bundle's `data` section that say which texts it was trained and tested on.
SPLIT_KEYS = ("dataset", "files", "fold", "fold_index", "folds", "split_seed", "dev", "rows")


def check_compatible(bundles: Sequence[Classifier], names: Sequence[str]) -> None:
    """Raise BundleError, one line, at the first member that differs from the first one."""
    first, first_name = bundles[0], names[0]
    first_split = _split(first)
    for bundle, name in zip(bundles[1:], names[1:], strict=True):
        if bundle.label_names != first.label_names:
            raise BundleError(
                f"{name}: labels {bundle.label_names} differ from {first_name}'s {first.label_names}"
            )
        if bundle.multi_label != first.multi_label:
            kinds = {True: "multi-label", False: "single-label"}
            raise BundleError(
                f"{name} is {kinds[bundle.multi_label]}, {first_name} {kinds[first.multi_label]}: "
                "members must answer the same question"
            )
        if bundle.encoder.to_json() != first.encoder.to_json():
            raise BundleError(
                f"{name}: tokenizer settings {bundle.encoder.to_json()} differ from {first_name}'s "
                f"{first.encoder.to_json()}"
            )
        split = _split(bundle)
        if split != first_split:
            differing = sorted(k for k in SPLIT_KEYS if split.get(k) != first_split.get(k))
            raise BundleError(
                f"{name}: trained on another split than {first_name} (differs in {', '.join(differing)})"
            )
        if bundle.encoder.vocab.to_json() != first.encoder.vocab.to_json():
            raise BundleError(
                f"{name}: its vocabulary ({len(bundle.encoder.vocab)} words) differs from {first_name}'s "
                f"({len(first.encoder.vocab)}): members must be trained on the same texts with the same "
                "vocabulary settings"
            )
    linear = [name for bundle, name in zip(bundles, names, strict=True) if _linear(bundle) is not None]
    if len(linear) > 1:
        raise BundleError(f"at most one linear member per bundle; {', '.join(linear)} each hold one")


def _split(bundle: Classifier) -> dict:
    data = bundle.info.get("data") or {}
    return {k: data.get(k) for k in SPLIT_KEYS}


def _linear(bundle: Classifier) -> LinearMember | None:
    return next((m.model for m in bundle.member_list() if m.kind != "cnn"), None)


def _records(bundle: Classifier, name: str) -> list[dict]:
    """What each of a bundle's members did in training, as its `ensemble` section (or its own
    training summary, for a single model) records it, with the bundle it came from."""
    members = bundle.member_list()
    section = bundle.info.get("ensemble") or {}
    records = list(section.get("members") or [])
    if len(records) != len(members):
        training, metrics = bundle.info.get("training") or {}, bundle.info.get("metrics") or {}
        seed = (training.get("config") or {}).get("seed")
        records = [
            {
                "seed": seed,
                "best_epoch": training.get("best_epoch"),
                "dev_accuracy": (metrics.get("dev") or {}).get("accuracy"),
                "test_accuracy": (metrics.get("test") or {}).get("accuracy"),
            }
            for _ in members
        ]
    return [{**record, "bundle": name} for record in records]


def compose(
    bundles: Sequence[Classifier],
    names: Sequence[str],
    combine: str = "mean",
    dev: tuple[Sequence[str], Sequence[str]] | None = None,
) -> Classifier:
    """The members of `bundles` as one classifier. `combine` "dev" chooses weights on `dev`
    (texts, labels) as `textcnn train --combine dev` does; "mean" needs no data."""
    if not bundles:
        raise BundleError("no member bundles given")
    check_compatible(bundles, names)
    cnns: list[tuple[TextCNN, dict]] = []
    linear, linear_record = None, None
    for bundle, name in zip(bundles, names, strict=True):
        for member, record in zip(bundle.member_list(), _records(bundle, name), strict=True):
            if member.kind == "cnn":
                cnns.append((member.model, record | {"kind": "cnn", "pooling": member.model.config.pooling}))
            else:
                linear, linear_record = member.model, record | {"kind": member.kind}
    shapes: dict[ModelConfig, list[int]] = {}
    for k, (model, _) in enumerate(cnns):
        shapes.setdefault(model.config, []).append(k)
    order = [k for ks in shapes.values() for k in ks]
    groups = [Ensemble.of([cnns[k][0] for k in ks]).eval() for ks in shapes.values()]
    records = [cnns[k][1] for k in order] + ([linear_record] if linear is not None else [])
    first = bundles[0]
    info = {k: v for k, v in first.info.items() if k in ("data", "vectors", "text")}
    sources = {"composed_from": list(names)}
    if combine == "dev" and dev is None:
        raise BundleError("weights chosen on dev need the dev texts (the members' data)")
    if len(groups) == 1 and linear is None and combine == "mean" and len(cnns) > 1:
        section = {"combine": "mean of the members' probabilities", "members": records, **sources}
        composed = Classifier(groups[0], first.encoder, first.label_names, info | {"ensemble": section})
    elif len(cnns) == 1 and linear is None:
        training = {"training": first.info.get("training")}
        composed = Classifier(cnns[0][0], first.encoder, first.label_names, info | training)
    else:
        model = MixedEnsemble(groups, linear).eval()
        section: dict = {"combine": "mean of the members' probabilities", "members": records, **sources}
        composed = Classifier(model, first.encoder, first.label_names, info | {"ensemble": section})
        if combine == "dev":
            labels = _dev_targets(composed, dev[1])
            section |= weigh_on_dev(model, _dev_batches(composed, dev[0]), labels)
    if composed.multi_label:
        composed.decision = _decision(composed, first, dev)
    return composed


def _dev_targets(classifier: Classifier, labels: Sequence) -> torch.Tensor:
    """Dev labels as the model's targets: class ids, or (multi-label) 0/1 rows."""
    if classifier.multi_label:
        return torch.as_tensor(classifier.label_rows(labels), dtype=torch.float32)
    return torch.as_tensor([classifier.label_names.index(y) for y in labels])


def _dev_batches(classifier: Classifier, texts: Sequence[str]):
    encoded = classifier.encoder.encode_many(texts)
    for start in range(0, len(encoded), 512):
        batch = classifier.encoder.pad(encoded[start : start + 512], classifier.min_length)
        yield batch.ids, batch.lengths


def _decision(composed: Classifier, first: Classifier, dev: tuple | None) -> Decision:
    """A multi-label bundle's thresholds: chosen again on dev for the composed model (its
    probabilities are not any member's), or, without dev texts, the first bundle's, said so."""
    if dev is None:
        return Decision(
            first.decision.thresholds,
            first.decision.at_least_one,
            f"{first.decision.chosen} (of the first member bundle; no dev texts to choose again)",
        )
    probabilities = torch.sigmoid(composed.logits(list(dev[0]))).numpy()
    decision, _ = choose_thresholds(
        probabilities, np.asarray(composed.label_rows(dev[1])), "per-label", first.decision.at_least_one
    )
    return decision


def split_metrics(classifier: Classifier, fold) -> dict:
    """n, accuracy and macro-F1 of `classifier` on the fold's dev and test parts (those it has): what
    `textcnn ensemble` and `textcnn tune --top K` record in a composed bundle's info."""
    metrics = {}
    for split_name, split in (("dev", fold.dev), ("test", fold.test)):
        if split is None or not len(split):
            continue
        scores = classifier.score(split.texts, split.labels)
        metrics[split_name] = headline(scores)
    return metrics
