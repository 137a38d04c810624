"""A trained model with its vocabulary and label names: texts in, labels and probabilities out.

`Classifier` is what training returns, what a bundle loads as (`textcnn.inference.bundle`, the file
format, is the only code that reads or writes a bundle folder) and what the service and the CLI
call. Its model is any `textcnn.model.members.MemberModel` (a CNN, an ensemble, a mixed
ensemble): it reads them all through that one interface. A single-label model's probabilities are
a softmax over classes; a multi-label model's are one sigmoid per label (`textcnn.model.output`),
and which labels a text gets is its `Decision` (`textcnn.inference.decisions`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from textcnn.data.text import Batch, TextEncoder, similar_length_chunks
from textcnn.errors import BundleError, ConfigError
from textcnn.inference.decisions import Decision
from textcnn.model import output
from textcnn.model.cnn import TextCNN
from textcnn.model.members import Member, MemberModel
from textcnn.runtime import resolve_device

if TYPE_CHECKING:
    from textcnn.inference.bundle import BundleCard


@dataclass(frozen=True)
class Prediction:
    """One text's answer. A text with no token the model knows, or known only by its punctuation
    (`coverage` 0, `textcnn.data.text.coverage`), is *unread*: the model's output for it would be its
    biases (and punctuation), so it gets no label, score or probabilities.

    A multi-label bundle's answer has `labels`: every label that reached its threshold (or, if the
    bundle says so, at least the most probable one), most probable first, each with its own
    probability; `label` and `score` are the first of them (None when no label was given)."""

    label: str | None  # None: unread (or, multi-label, no label given)
    score: float | None  # probability of `label`
    probabilities: dict[str, float] | None  # every class, by label name
    coverage: float = 1.0  # the share of the text's tokens the vocabulary knows
    labels: tuple[tuple[str, float], ...] | None = None  # multi-label only: (label, probability)
    multi_label: bool = False  # from a multi-label bundle: the answer has `labels`

    @property
    def unread(self) -> bool:
        return self.coverage == 0

    def to_json(self) -> dict:
        answer = {
            "label": self.label,
            "score": self.score,
            "probabilities": self.probabilities,
            "coverage": self.coverage,
            "unread": self.unread,
        }
        if self.multi_label:  # null for an unread text, as its label
            answer["labels"] = (
                None if self.labels is None else [{"label": n, "score": p} for n, p in self.labels]
            )
        return answer


class Classifier:
    """A model with its vocabulary and label names: texts in, label names and probabilities out.

    `model` is a `TextCNN`, an `Ensemble` or a `MixedEnsemble`, read through their one interface
    (`textcnn.model.members.MemberModel`; an ensemble's forward gives its members' combined
    probabilities as logits, so everything below treats it as one model's logits)."""

    def __init__(
        self,
        model: MemberModel,
        encoder: TextEncoder,
        label_names: Sequence[str],
        info: dict | None = None,
        decision: Decision | None = None,
    ):
        classes, vocab_size = model.num_classes, model.vocab_size
        if len(label_names) != classes:
            raise BundleError(f"{len(label_names)} label names for a model with {classes} classes")
        if len(encoder.vocab) != vocab_size:
            raise BundleError(f"vocabulary of {len(encoder.vocab)} for a model expecting {vocab_size}")
        self.model = model.eval()
        self.encoder = encoder
        self.label_names = list(label_names)
        self.info = dict(info or {})  # everything else from config.json: training, data, metrics
        # Multi-label: which labels a text gets (thresholds chosen on dev); None for single-label.
        self.decision = (decision or Decision.default(classes)) if self.multi_label else None
        self._card: BundleCard | None = None  # set by load and save

    @property
    def card(self) -> BundleCard:
        """The bundle this classifier was loaded from, or last saved to (BundleError if neither)."""
        if self._card is None:
            raise BundleError("this classifier was neither loaded from a bundle nor saved to one")
        return self._card

    @property
    def is_ensemble(self) -> bool:
        """More than one model behind the predictions (an ensemble, or a mixed one)."""
        return self.model.is_ensemble

    @property
    def members(self) -> list[TextCNN]:
        """The CNNs behind the predictions: the model itself, or an ensemble's CNN members."""
        return [m.model for m in self.model.members() if m.kind == "cnn"]

    def member_list(self) -> list[Member]:
        """Every member with its kind and its weight in the combination (one, weight 1, for a single model)."""
        return self.model.members()

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    @property
    def multi_label(self) -> bool:
        """One sigmoid per label (texts get any number of labels) instead of a softmax over classes."""
        return self.model.multi_label

    @property
    def device(self) -> torch.device:
        # a linear member alone holds buffers and no parameters
        return next(itertools.chain(self.model.parameters(), self.model.buffers())).device

    @property
    def min_length(self) -> int:
        return self.model.min_length

    def to(self, device: str | torch.device) -> Classifier:
        self.model.to(resolve_device(device))
        return self

    @torch.inference_mode()
    def logits_for_batch(self, batch: Batch) -> torch.Tensor:
        """Logits (B, C) as float32 on the CPU for an already padded batch (the service's hot path)."""
        batch = batch.to(self.device)
        return self.model(batch.ids, batch.lengths).float().cpu()

    def logits(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Logits (N, C) in input order; batches are formed from texts of similar length."""
        return self.logits_of_ids(self._encoded(texts), batch_size)

    def _encoded(self, texts: Sequence[str]) -> list[list[int]]:
        if isinstance(texts, str):
            raise TypeError("takes a sequence of texts, not a single string")
        return self.encoder.encode_many(texts)

    def logits_of_ids(self, encoded: Sequence[Sequence[int]], batch_size: int = 256) -> torch.Tensor:
        """Logits (N, C) of encoded texts (`encoder.encode_many`), in input order."""
        out = torch.empty(len(encoded), self.num_classes)
        for rows, batch in self.batches(encoded, batch_size):
            out[rows] = self.logits_for_batch(batch)
        return out

    def batches(
        self, sequences: Sequence[Sequence[int]], max_rows: int, max_tokens: int | None = None
    ) -> Iterator[tuple[list[int], Batch]]:
        """Encoded texts as padded batches of similar length, each with the indices of its rows.

        At most `max_rows` rows each, and rows x padded length at most `max_tokens` (a longer text
        goes alone); see `similar_length_chunks`. Made one at a time, as they are asked for.
        """
        lengths = [len(ids) for ids in sequences]
        for rows in similar_length_chunks(lengths, max_rows, max_tokens, min_length=self.min_length):
            yield rows, self.encoder.pad([sequences[i] for i in rows], self.min_length)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        return output.probabilities(self.logits(texts, batch_size), self.multi_label).numpy()

    def predictions_from_logits(
        self, logits: torch.Tensor, coverages: Sequence[float] | None = None, threshold: float | None = None
    ) -> list[Prediction]:
        """Label names and probabilities from logits (N, C); `coverages[i]` (the share of text i's
        tokens the vocabulary knows, `textcnn.data.text.coverage`) 0 makes text i unread.
        `threshold` (multi-label only) replaces the bundle's thresholds for every label."""
        coverages = [1.0] * len(logits) if coverages is None else coverages
        if self.multi_label:
            return self._multi_label_predictions(logits, coverages, threshold)
        if threshold is not None:
            raise ConfigError("a threshold is for a multi-label bundle; this one gives one label per text")
        probabilities = torch.softmax(logits.float(), dim=1)
        best = probabilities.argmax(dim=1).tolist()
        rows = probabilities.tolist()
        return [
            Prediction(
                label=self.label_names[b],
                score=row[b],
                probabilities=dict(zip(self.label_names, row, strict=True)),
                coverage=share,
            )
            if share > 0
            else Prediction(None, None, None, 0.0)
            for b, row, share in zip(best, rows, coverages, strict=True)
        ]

    def _multi_label_predictions(
        self, logits: torch.Tensor, coverages: Sequence[float], threshold: float | None
    ) -> list[Prediction]:
        probabilities = torch.sigmoid(logits.float()).numpy()
        chosen = self.decision.with_threshold(threshold).decide(probabilities)
        answers = []
        for row, given, share in zip(probabilities.tolist(), chosen, coverages, strict=True):
            if share <= 0:
                answers.append(Prediction(None, None, None, 0.0, None, True))
                continue
            labels = sorted(
                ((self.label_names[c], row[c]) for c in np.flatnonzero(given)), key=lambda pair: -pair[1]
            )
            top = labels[0] if labels else (None, None)
            answers.append(
                Prediction(
                    top[0], top[1], dict(zip(self.label_names, row, strict=True)), share, tuple(labels), True
                )
            )
        return answers

    def predict(
        self, texts: Sequence[str], batch_size: int = 256, threshold: float | None = None
    ) -> list[Prediction]:
        encoded = self._encoded(texts)
        coverages = [self.encoder.coverage(text, ids) for text, ids in zip(texts, encoded, strict=True)]
        return self.predictions_from_logits(self.logits_of_ids(encoded, batch_size), coverages, threshold)

    def label_rows(self, labels: Sequence) -> list[list[int]]:
        """Multi-label: each text's label names (a tuple, maybe empty) as a 0/1 row over this
        bundle's labels; BundleError-free: a name it does not know raises ConfigError."""
        index = {name: i for i, name in enumerate(self.label_names)}
        rows = []
        for names in labels:
            row = [0] * len(index)
            for name in names:
                if name not in index:
                    raise ConfigError(f"label {name!r} is not among this bundle's labels")
                row[index[name]] = 1
            rows.append(row)
        return rows

    def score(self, texts: Sequence[str], labels: Sequence, threshold: float | None = None) -> dict:
        """`classification_metrics` of this classifier on labelled texts (label names it knows): what
        `textcnn evaluate` prints and a composed bundle records for its dev and test parts."""
        from textcnn.inference.metrics import classification_metrics

        index = {name: i for i, name in enumerate(self.label_names)}
        encoded = self._encoded(list(texts))
        logits = self.logits_of_ids(encoded)
        if self.multi_label:
            from textcnn.inference.metrics import multilabel_metrics

            predicted = self.decision.with_threshold(threshold).decide(torch.sigmoid(logits).numpy())
            metrics = multilabel_metrics(self.label_rows(labels), predicted, self.label_names)
        else:
            predicted = logits.argmax(dim=1).tolist()
            metrics = classification_metrics([index[y] for y in labels], predicted, self.label_names)
        # Unread texts are scored by the class the biases favour, as always; how many there were:
        shares = [self.encoder.coverage(text, ids) for text, ids in zip(texts, encoded, strict=True)]
        metrics["unread"] = sum(1 for share in shares if share == 0)
        metrics["coverage"] = sum(shares) / len(shares) if shares else None
        return metrics

    # -- bundles: the file format is textcnn.inference.bundle -----------------------------------

    def save(self, path: str | Path, half: bool = False) -> Path:
        """Write the bundle; `half` stores fp16 weights (half the size, loaded back as fp32)."""
        from textcnn.inference.bundle import save_bundle

        path = Path(path)
        self._card = save_bundle(self, path, half)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "auto") -> Classifier:
        """The classifier of the bundle folder at `path` (BundleError, one line, if it is not one)."""
        from textcnn.inference.bundle import load_bundle

        return load_bundle(path, device)
