"""A trained model as a folder anyone can serve: config.json, vocab.json, weights.safetensors.

An ensemble (`textcnn.model.ensemble`) is a bundle too: one vocabulary, the members' weights stacked
(the `ModelGroup` layout), and an `ensemble` section in config.json with the member count and
what each member did in training. `Classifier` serves both alike.

No pickle anywhere: the config is JSON (model and training settings, label names, tokenizer
settings, metrics, package versions), the weights are safetensors. `config.json` records the
sha256 of the weights, so a truncated or swapped weights file is caught at load time rather than
producing silent nonsense.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from textcnn.data.text import Batch, TextEncoder, Vocabulary, similar_length_chunks
from textcnn.errors import BundleError, TextCNNError
from textcnn.model.cnn import ModelConfig, TextCNN
from textcnn.model.ensemble import Ensemble
from textcnn.model.pooling import get_pooling
from textcnn.runtime import atomic_write_bytes, package_versions, resolve_device

FORMAT = "textcnn-bundle"
FORMAT_VERSION = 1
CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE = "config.json", "vocab.json", "weights.safetensors"


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float  # probability of `label`
    probabilities: dict[str, float]  # every class, by label name

    def to_json(self) -> dict:
        return {"label": self.label, "score": self.score, "probabilities": self.probabilities}


@dataclass(frozen=True)
class BundleCard:
    """What a bundle folder holds, in brief: which it is, its labels, and how it was made.

    `Classifier.card` of a classifier loaded from (or saved to) a folder; what a server says it serves.
    """

    id: str  # `bundle_id`: "<folder name>@<first 12 hex digits of the weights' sha256>"
    path: Path  # the folder, resolved
    created: str | None  # when it was saved (ISO 8601, UTC)
    labels: tuple[str, ...]  # class names, in the model's output order
    vocab_size: int
    model: dict  # ModelConfig.to_json()
    text: dict  # the encoder's settings (TextEncoder.to_json())
    data: dict | None  # the corpus it was trained on, as training recorded it
    metrics: dict | None
    training: dict  # best_epoch, epochs_run, stopped_early, config (each None if not recorded)
    ensemble: dict | None  # an ensemble's section (size, members); None for a single model
    vectors: dict | None  # the pre-trained word vectors it started from, if any
    versions: dict | None  # the package versions it was trained with
    pooling: dict  # the registry's word on its pooling: name, summary, how explain splits it, exact or not


def _pooling_card(name: str) -> dict:
    pooling = get_pooling(name)
    return {"name": name, "summary": pooling.summary, "explained": pooling.explained, "exact": pooling.exact}


def bundle_id(path: str | Path) -> str:
    """`<folder name>@<first 12 hex digits of the weights' sha256>`, the digest config.json records;
    a config without one (or not readable as JSON) gives the sha256 of config.json itself instead."""
    path = Path(path)
    raw = (path / CONFIG_FILE).read_bytes()
    try:
        digest = json.loads(raw.decode("utf-8"))["weights"]["sha256"]
    except (ValueError, KeyError, TypeError):
        digest = None
    if not isinstance(digest, str) or not digest:
        digest = hashlib.sha256(raw).hexdigest()
    return f"{path.resolve().name}@{digest[:12]}"


class Classifier:
    """A model with its vocabulary and label names: texts in, label names and probabilities out.

    `model` is a `TextCNN` or an `Ensemble` (whose forward gives the log of its members' mean
    probabilities, so everything below treats it as one model's logits)."""

    def __init__(
        self,
        model: TextCNN | Ensemble,
        encoder: TextEncoder,
        label_names: Sequence[str],
        info: dict | None = None,
    ):
        if len(label_names) != model.config.num_classes:
            raise BundleError(
                f"{len(label_names)} label names for a model with {model.config.num_classes} classes"
            )
        if len(encoder.vocab) != model.config.vocab_size:
            raise BundleError(
                f"vocabulary of {len(encoder.vocab)} for a model expecting {model.config.vocab_size}"
            )
        self.model = model.eval()
        self.encoder = encoder
        self.label_names = list(label_names)
        self.info = dict(info or {})  # everything else from config.json: training, data, metrics
        self._card: BundleCard | None = None  # set by load and save

    @property
    def card(self) -> BundleCard:
        """The bundle this classifier was loaded from, or last saved to (BundleError if neither)."""
        if self._card is None:
            raise BundleError("this classifier was neither loaded from a bundle nor saved to one")
        return self._card

    @property
    def is_ensemble(self) -> bool:
        return isinstance(self.model, Ensemble)

    @property
    def members(self) -> list[TextCNN]:
        """The single models behind the predictions: the model itself, or an ensemble's members."""
        return self.model.member_models() if isinstance(self.model, Ensemble) else [self.model]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def min_length(self) -> int:
        return max(self.model.config.map_widths)

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
        if isinstance(texts, str):
            raise TypeError("logits() takes a sequence of texts, not a single string")
        encoded = self.encoder.encode_many(texts)
        out = torch.empty(len(encoded), self.model.config.num_classes)
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
        return torch.softmax(self.logits(texts, batch_size), dim=1).numpy()

    def predictions_from_logits(self, logits: torch.Tensor) -> list[Prediction]:
        probabilities = torch.softmax(logits.float(), dim=1)
        best = probabilities.argmax(dim=1).tolist()
        rows = probabilities.tolist()
        return [
            Prediction(
                label=self.label_names[b],
                score=row[b],
                probabilities=dict(zip(self.label_names, row, strict=True)),
            )
            for b, row in zip(best, rows, strict=True)
        ]

    def predict(self, texts: Sequence[str], batch_size: int = 256) -> list[Prediction]:
        return self.predictions_from_logits(self.logits(texts, batch_size))

    # -- bundles ------------------------------------------------------------------------------

    def save(self, path: str | Path, half: bool = False) -> Path:
        """Write the bundle; `half` stores fp16 weights (half the size, loaded back as fp32)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        from safetensors.torch import save

        state = {
            k: v.detach().to("cpu", torch.float16 if half else torch.float32).contiguous()
            for k, v in self.model.state_dict().items()
        }
        weights = save(state, metadata={"format": FORMAT})
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": package_versions(),
            "labels": self.label_names,
            "vocab_size": len(self.encoder.vocab),
            "text": self.encoder.to_json(),
            "model": self.model.config.to_json(),
            "weights": {
                "file": WEIGHTS_FILE,
                "dtype": "float16" if half else "float32",
                "sha256": hashlib.sha256(weights).hexdigest(),
            },
        } | {k: v for k, v in self.info.items() if k not in _RESERVED_KEYS and k != "ensemble"}
        if self.is_ensemble:  # only an ensemble's config has the section: it decides how to load
            config["ensemble"] = self._ensemble_section()
        # config.json goes last: it names the weights' digest, so a bundle caught half-written
        # (new weights, old config) is reported as inconsistent instead of loading.
        atomic_write_bytes(path / WEIGHTS_FILE, weights)
        atomic_write_bytes(
            path / VOCAB_FILE, json.dumps(self.encoder.vocab.to_json(), ensure_ascii=False).encode()
        )
        atomic_write_bytes(path / CONFIG_FILE, json.dumps(config, indent=2, ensure_ascii=False).encode())
        self._card = self._card_for(path, config)
        return path

    def _card_for(self, path: Path, config: dict) -> BundleCard:
        """The card of the bundle at `path`, whose config.json is `config`, written for this classifier."""
        training = config.get("training") or {}
        return BundleCard(
            id=bundle_id(path),
            path=path.resolve(),
            created=config.get("created"),
            labels=tuple(self.label_names),
            vocab_size=len(self.encoder.vocab),
            model=self.model.config.to_json(),
            text=self.encoder.to_json(),
            data=config.get("data"),
            metrics=config.get("metrics"),
            training={k: training.get(k) for k in ("best_epoch", "epochs_run", "stopped_early", "config")},
            ensemble=config.get("ensemble"),
            vectors=config.get("vectors"),
            versions=config.get("versions"),
            pooling=_pooling_card(self.model.config.pooling),
        )

    def _ensemble_section(self) -> dict:
        """config.json's `ensemble`: the member count (which the weights' shapes follow) and what
        training said of each member (`info["ensemble"]["members"]`, when it came from training)."""
        size = self.model.models
        members = list((self.info.get("ensemble") or {}).get("members") or [{} for _ in range(size)])
        if len(members) != size:
            raise BundleError(f"{len(members)} member records for an ensemble of {size}")
        return {**(self.info.get("ensemble") or {}), "size": size, "members": members}

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "auto") -> Classifier:
        path = Path(path)
        if not path.is_dir():
            raise BundleError(f"{path}: no model bundle here (expected a folder with {CONFIG_FILE})")
        config = _read_config(path)
        vocab = Vocabulary.load(path / VOCAB_FILE)  # raises its own BundleError naming vocab.json
        try:
            model_config = ModelConfig.from_json(config["model"])
            encoder = TextEncoder(vocab, **config.get("text", {}))
        except TextCNNError as exc:
            raise BundleError(f"{path / CONFIG_FILE}: {exc}") from None
        except (KeyError, TypeError) as exc:
            raise BundleError(f"{path / CONFIG_FILE}: malformed model section ({exc})") from None
        model = (
            TextCNN(model_config) if "ensemble" not in config else Ensemble(model_config, _size(path, config))
        )
        model.load_state_dict(_read_weights(path, config, model))
        classifier = cls(
            model, encoder, config["labels"], {k: v for k, v in config.items() if k not in _RESERVED_KEYS}
        )
        classifier._card = classifier._card_for(path, config)
        return classifier.to(device)


_RESERVED_KEYS = {
    "format",
    "format_version",
    "created",
    "versions",
    "labels",
    "vocab_size",
    "text",
    "model",
    "weights",
}


def _read_config(path: Path) -> dict:
    try:
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path}: not a model bundle ({CONFIG_FILE} is missing)") from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path / CONFIG_FILE}: not valid JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise BundleError(f"{path / CONFIG_FILE}: not a textcnn bundle config (format is not {FORMAT!r})")
    version = config.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise BundleError(
            f"{path}: bundle format version {config.get('format_version')!r}; this textcnn reads {FORMAT_VERSION}"
        )
    missing = [k for k in ("labels", "model", "weights") if k not in config]
    if missing:
        raise BundleError(f"{path / CONFIG_FILE}: missing {', '.join(missing)}")
    return config


def _size(path: Path, config: dict) -> int:
    section = config["ensemble"]
    size = section.get("size") if isinstance(section, dict) else None
    members = section.get("members") if isinstance(section, dict) else None
    if type(size) is not int or size < 1 or not isinstance(members, list) or len(members) != size:
        raise BundleError(
            f"{path / CONFIG_FILE}: malformed ensemble section (needs size >= 1 and one record per member)"
        )
    return size


def _read_weights(path: Path, config: dict, model: TextCNN | Ensemble) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    weights_path = path / WEIGHTS_FILE
    try:
        data = weights_path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{path}: {WEIGHTS_FILE} is missing") from None
    expected_digest = config["weights"].get("sha256") if isinstance(config["weights"], dict) else None
    if expected_digest and hashlib.sha256(data).hexdigest() != expected_digest:
        raise BundleError(
            f"{weights_path}: does not match the sha256 in {CONFIG_FILE} (truncated, replaced or half-written)"
        )
    try:
        state = load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise BundleError(f"{weights_path}: unreadable safetensors file ({exc})") from None
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise BundleError(
            f"{weights_path}: tensors do not fit the config (missing {missing}, unexpected {unexpected})"
        )
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise BundleError(
                f"{weights_path}: {name} has shape {tuple(tensor.shape)}, "
                f"config.json implies {tuple(expected[name].shape)}"
            )
        state[name] = tensor.float()
        if not torch.isfinite(state[name]).all():
            raise BundleError(
                f"{weights_path}: {name} holds NaN or infinite values{_which_member(model, state[name])}"
            )
    return state


def _which_member(model: TextCNN | Ensemble, tensor: torch.Tensor) -> str:
    """' (member k of K)' for an ensemble's stacked tensor, naming the first member that is broken."""
    if not isinstance(model, Ensemble) or tensor.dim() == 0:
        return ""
    finite = torch.isfinite(tensor.view(model.models, -1)).all(dim=1)
    return f" (member {int((~finite).nonzero()[0, 0])} of {model.models})"
