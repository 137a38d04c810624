"""A trained model as a folder anyone can serve: config.json, vocab.json, weights.safetensors.

An ensemble (`textcnn.model.ensemble`) is a bundle too: one vocabulary, the members' weights stacked
(the `ModelGroup` layout), and an `ensemble` section in config.json with the member count and
what each member did in training. `Classifier` serves both alike.

A mixed ensemble (`textcnn.model.mixed`: CNN members of several shapes, maybe a linear n-gram
member, combined by weights) is format version 2: a `mixture` section takes the place of `model`
(each CNN group's model config and size, the linear member's config, the combination), the CNN
groups' tensors are `groups.<i>.*` in the weights file, and the linear member's (its n-gram keys,
weights, bias, idf) are `linear.safetensors`, with its own sha256. Every bundle of version 1 is
read as before; a textcnn that knows only version 1 refuses version 2 in one line.

No pickle anywhere: the config is JSON (model and training settings, label names, tokenizer
settings, metrics, package versions), the weights are safetensors. `config.json` records the
sha256 of the weights, so a truncated or swapped weights file is caught at load time rather than
producing silent nonsense.

The tokenizer is config.json's `text.tokenizer`: a registered name and its options
(`textcnn.data.tokenizers`), and for a learned one the files it needs beside config.json
(`tokenizer.json` of `subword`), each with its sha256. A bundle saved before tokenizers were
registered has `text: {"lowercase": ..}`: it was trained with Kim's clean_str, and loads as `kim`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from textcnn.data.text import TextEncoder, Vocabulary
from textcnn.errors import BundleError, TextCNNError
from textcnn.inference.classifier import Classifier, Prediction
from textcnn.inference.decisions import Decision
from textcnn.model.cnn import ModelConfig, TextCNN
from textcnn.model.ensemble import Ensemble
from textcnn.model.linear_member import LinearConfig, LinearMember
from textcnn.model.mixed import MixedEnsemble
from textcnn.model.pooling import get_pooling
from textcnn.runtime import atomic_write_bytes, package_versions

__all__ = ["BundleCard", "Classifier", "Prediction", "bundle_id", "load_bundle", "save_bundle"]

FORMAT = "textcnn-bundle"
FORMAT_VERSION = 1  # a single model or an ensemble of one shape
MIXED_FORMAT_VERSION = 2  # a mixed ensemble
READABLE_VERSIONS = (FORMAT_VERSION, MIXED_FORMAT_VERSION)
CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE = "config.json", "vocab.json", "weights.safetensors"
LINEAR_FILE = "linear.safetensors"


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
    ensemble: dict | None  # an ensemble's section (size, members, combine); None for a single model
    vectors: dict | None  # the pre-trained word vectors it started from, if any
    versions: dict | None  # the package versions it was trained with
    pooling: dict  # the registry's word on its pooling(s): name, summary, how explain splits it, exact or not
    members: tuple[dict, ...]  # each member: kind, weight, and its pooling and shape (CNN) or C (linear)
    tokenizer: dict  # the registry's word on its tokenizer: name, options, summary, what it is for
    tokens: dict | None = None  # what the tokenizer made of the training texts (TokenizerReport.to_json())
    task: str = "single-label"  # or "multi-label": one sigmoid per label, thresholds in `decision`
    decision: dict | None = None  # multi-label: the thresholds and how they were chosen (Decision.to_json())


def _pooling_card(names: Sequence[str]) -> dict:
    """The registry's word on one pooling, or on a mix of them (name "max+avg"; exact if all are)."""
    names = list(dict.fromkeys(names))
    if len(names) == 1:
        pooling = get_pooling(names[0])
        return {
            "name": names[0],
            "summary": pooling.summary,
            "explained": pooling.explained,
            "exact": pooling.exact,
        }
    poolings = [get_pooling(name) for name in names]
    return {
        "name": "+".join(names),
        "summary": "members pool differently: "
        + "; ".join(f"{n}: {p.summary}" for n, p in zip(names, poolings, strict=True)),
        "explained": "each member by its own pooling's rule",
        "exact": all(p.exact for p in poolings),
    }


def _tokenizer_card(encoder: TextEncoder) -> dict:
    """The registry's word on the bundle's tokenizer."""
    config = encoder.tokenizer_config
    entry = config.entry
    return {
        "name": config.name,
        "spelled": str(config),  # as --tokenizer takes it
        "options": dict(config.options),
        "summary": entry.summary,
        "use": entry.use,
        "learned": entry.learned,
    }


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


def save_bundle(classifier: Classifier, path: Path, half: bool = False) -> BundleCard:
    """Write `classifier` as a bundle folder at `path` (`Classifier.save`); its card."""
    path.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save

    state = {
        k: v.detach().to("cpu", torch.float16 if half else torch.float32).contiguous()
        for k, v in classifier.model.state_dict().items()
        if not k.startswith("linear.")
    }
    weights = save(state, metadata={"format": FORMAT})
    mixed = isinstance(classifier.model, MixedEnsemble)
    config = {
        "format": FORMAT,
        "format_version": MIXED_FORMAT_VERSION if mixed else FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "labels": classifier.label_names,
        "vocab_size": len(classifier.encoder.vocab),
        "text": classifier.encoder.to_json(),
        **({"mixture": None} if mixed else {"model": classifier.model.config.to_json()}),
        "weights": {
            "file": WEIGHTS_FILE,
            "dtype": "float16" if half else "float32",
            "sha256": hashlib.sha256(weights).hexdigest(),
        },
    } | {k: v for k, v in classifier.info.items() if k not in _RESERVED_KEYS and k != "ensemble"}
    linear = None
    if mixed and classifier.model.linear is not None:  # fp32 always: its keys are int64, its weights few
        linear = save(
            {k: v.detach().cpu().contiguous() for k, v in classifier.model.linear.state_dict().items()},
            metadata={"format": FORMAT},
        )
    if mixed:
        config["mixture"] = _mixture_section(classifier, linear)
    if classifier.is_ensemble:  # only an ensemble's config has the section: it decides how to load
        config["ensemble"] = _ensemble_section(classifier)
    if classifier.decision is not None:
        config["decision"] = classifier.decision.to_json()
    # config.json goes last: it names the weights' digests, so a bundle caught half-written
    # (new weights, old config) is reported as inconsistent instead of loading.
    atomic_write_bytes(path / WEIGHTS_FILE, weights)
    if linear is not None:
        atomic_write_bytes(path / LINEAR_FILE, linear)
    atomic_write_bytes(
        path / VOCAB_FILE, json.dumps(classifier.encoder.vocab.to_json(), ensure_ascii=False).encode()
    )
    for name, data in classifier.encoder.files().items():  # a learned tokenizer's model (sha256 in config)
        atomic_write_bytes(path / name, data)
    atomic_write_bytes(path / CONFIG_FILE, json.dumps(config, indent=2, ensure_ascii=False).encode())
    if linear is None:  # a mixed bundle's linear member, from an earlier save to this folder
        (path / LINEAR_FILE).unlink(missing_ok=True)
    return _card_for(classifier, path, config)


def _card_for(classifier: Classifier, path: Path, config: dict) -> BundleCard:
    """The card of the bundle at `path`, whose config.json is `config`, written for `classifier`."""
    training = config.get("training") or {}
    members = classifier.member_list()
    cnns = [m.model.config for m in members if m.kind == "cnn"]
    return BundleCard(
        id=bundle_id(path),
        path=path.resolve(),
        created=config.get("created"),
        labels=tuple(classifier.label_names),
        vocab_size=len(classifier.encoder.vocab),
        # a mixed bundle's first CNN shape (each member's is in `members`)
        model=cnns[0].to_json() if cnns else {},
        text=classifier.encoder.to_json(),
        data=config.get("data"),
        metrics=config.get("metrics"),
        training={k: training.get(k) for k in ("best_epoch", "epochs_run", "stopped_early", "config")},
        ensemble=config.get("ensemble"),
        vectors=config.get("vectors"),
        versions=config.get("versions"),
        pooling=_pooling_card([c.pooling for c in cnns]) if cnns else _LINEAR_POOLING,
        members=tuple(m.card for m in members),
        tokenizer=_tokenizer_card(classifier.encoder),
        tokens=config.get("tokens"),
        task="multi-label" if classifier.multi_label else "single-label",
        decision=classifier.decision.to_json() if classifier.decision is not None else None,
    )


def _ensemble_section(classifier: Classifier) -> dict:
    """config.json's `ensemble`: the member count (which the weights' shapes follow), what
    training said of each member (`info["ensemble"]["members"]`, when it came from training)
    and, for a mixed ensemble, how the members are combined."""
    size = len(classifier.member_list())
    section = dict(classifier.info.get("ensemble") or {})
    members = list(section.get("members") or [{} for _ in range(size)])
    if len(members) != size:
        raise BundleError(f"{len(members)} member records for an ensemble of {size}")
    if isinstance(classifier.model, MixedEnsemble):
        section.setdefault("combine", "mean of the members' probabilities")
        section["weights"] = classifier.model.weights.tolist()
        members = [
            {**record, "kind": m.kind, **({"pooling": m.model.config.pooling} if m.kind == "cnn" else {})}
            for record, m in zip(members, classifier.model.members(), strict=True)
        ]
    return {**section, "size": size, "members": members}


def _mixture_section(classifier: Classifier, linear: bytes | None) -> dict:
    """config.json's `mixture` (version 2): what to build before the weights are read."""
    model: MixedEnsemble = classifier.model
    section: dict = {
        "groups": [{"model": g.config.to_json(), "size": g.models} for g in model.groups],
        "linear": None,
        "weights": model.weights.tolist(),
    }
    if linear is not None:
        section["linear"] = model.linear.config.to_json() | {
            "file": LINEAR_FILE,
            "sha256": hashlib.sha256(linear).hexdigest(),
        }
    return section


def load_bundle(path: str | Path, device: str | torch.device = "auto") -> Classifier:
    """The classifier of the bundle at `path` (`Classifier.load`)."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path}: no model bundle here (expected a folder with {CONFIG_FILE})")
    config = _read_config(path)
    vocab = Vocabulary.load(path / VOCAB_FILE)  # raises its own BundleError naming vocab.json
    encoder = _encoder(path, config.get("text") or {}, vocab)
    try:
        if config["format_version"] == MIXED_FORMAT_VERSION:
            model = _mixed_model(config["mixture"], vocab)
        else:
            model_config = ModelConfig.from_json(config["model"])
            model = (
                TextCNN(model_config)
                if "ensemble" not in config
                else Ensemble(model_config, _size(path, config))
            )
    except TextCNNError as exc:
        raise BundleError(f"{path / CONFIG_FILE}: {exc}") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise BundleError(f"{path / CONFIG_FILE}: malformed model section ({exc!r})") from None
    model.load_state_dict(_read_weights(path, config, model), strict=not isinstance(model, MixedEnsemble))
    if isinstance(model, MixedEnsemble) and model.linear is not None:
        model.linear.load_state_dict(_read_linear(path, config["mixture"]["linear"], model.linear))
    decision = None
    if model.multi_label:
        try:
            decision = Decision.from_json(config["decision"], len(config["labels"]))
        except TextCNNError as exc:
            raise BundleError(f"{path / CONFIG_FILE}: decision: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(
                f"{path / CONFIG_FILE}: a multi-label bundle needs its decision ({exc!r})"
            ) from None
    classifier = Classifier(
        model,
        encoder,
        config["labels"],
        {k: v for k, v in config.items() if k not in _RESERVED_KEYS},
        decision,
    )
    classifier._card = _card_for(classifier, path, config)
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
    "mixture",
    "weights",
    "decision",
}
_LINEAR_POOLING = {
    "name": None,
    "summary": "no pooling: a linear model over the text's word 1-2-grams",
    "explained": "each n-gram's weight",
    "exact": True,
}


def _mixed_model(section: dict, vocab: Vocabulary) -> MixedEnsemble:
    """An empty `MixedEnsemble` of the shapes config.json's `mixture` names (weights read after)."""
    groups = [Ensemble(ModelConfig.from_json(g["model"]), _positive(g["size"])) for g in section["groups"]]
    linear = None
    if section.get("linear") is not None:
        fields = {k: v for k, v in section["linear"].items() if k not in ("file", "sha256")}
        linear = LinearMember(LinearConfig.from_json(fields), vocab.itos)
    return MixedEnsemble(groups, linear, section["weights"])


def _encoder(path: Path, section: dict, vocab: Vocabulary) -> TextEncoder:
    """The bundle's encoder: its tokenizer (restored from its files, each checked against its
    sha256) and vocabulary, truncating as it was trained to."""
    try:
        config, digests = TextEncoder.tokenizer_of(section)
        tokenizer = config.build()
    except TextCNNError as exc:  # an unknown tokenizer (one a newer textcnn registered), a bad option
        raise BundleError(f"{path / CONFIG_FILE}: {exc}") from None
    files = {}
    for name, digest in digests.items():
        if Path(name).name != name:
            raise BundleError(f"{path / CONFIG_FILE}: tokenizer file {name!r} is not a file name")
        try:
            data = (path / name).read_bytes()
        except FileNotFoundError:
            raise BundleError(f"{path}: {name} (the {config.name} tokenizer) is missing") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise BundleError(
                f"{path / name}: does not match the sha256 in {CONFIG_FILE} (truncated, replaced or half-written)"
            )
        files[name] = data
    try:
        tokenizer.restore(files)
    except BundleError as exc:
        raise BundleError(f"{path}: {exc}") from None
    if not tokenizer.fitted:
        raise BundleError(
            f"{path / CONFIG_FILE}: the {config.name} tokenizer is learned, but no file of it is named"
        )
    try:
        return TextEncoder(vocab, tokenizer, section.get("max_length"))
    except TextCNNError as exc:
        raise BundleError(f"{path / CONFIG_FILE}: {exc}") from None


def _positive(value) -> int:
    if type(value) is not int or value < 1:
        raise BundleError(f"a group's size must be a positive integer, got {value!r}")
    return value


def _read_linear(path: Path, section: dict, member: LinearMember) -> dict[str, torch.Tensor]:
    """The linear member's tensors, checked against its sha256 and its config."""
    linear_path = path / LINEAR_FILE
    state = _checked_tensors(linear_path, "the linear member", section.get("sha256") or "required")
    expected = member.state_dict()
    if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in expected):
        raise BundleError(f"{linear_path}: tensors do not fit the linear member's config")
    keys = state["keys"]
    if keys.dtype != torch.long or (len(keys) > 1 and not bool((keys[1:] > keys[:-1]).all())):
        raise BundleError(f"{linear_path}: the n-gram keys are not sorted int64 (corrupted?)")
    for name in ("weight", "bias", "idf"):
        if not torch.isfinite(state[name]).all():
            raise BundleError(f"{linear_path}: {name} holds NaN or infinite values")
    return state


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
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise BundleError(
            f"{path}: bundle format version {config.get('format_version')!r}; this textcnn reads "
            f"{' and '.join(map(str, READABLE_VERSIONS))}"
        )
    model_key = "mixture" if version == MIXED_FORMAT_VERSION else "model"
    missing = [k for k in ("labels", model_key, "weights") if k not in config]
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


def _read_weights(
    path: Path, config: dict, model: TextCNN | Ensemble | MixedEnsemble
) -> dict[str, torch.Tensor]:
    weights_path = path / WEIGHTS_FILE
    expected_digest = config["weights"].get("sha256") if isinstance(config["weights"], dict) else None
    state = _checked_tensors(weights_path, None, expected_digest)
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith("linear.")}
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


def _checked_tensors(file: Path, what: str | None, digest: str | None) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors, its sha256 checked when `digest` is given; one line if not."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{file.parent}: {file.name}{f' ({what})' if what else ''} is missing") from None
    if digest and hashlib.sha256(data).hexdigest() != digest:
        raise BundleError(
            f"{file}: does not match the sha256 in {CONFIG_FILE} (truncated, replaced or half-written)"
        )
    try:
        return load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise BundleError(f"{file}: unreadable safetensors file ({exc})") from None


def _which_member(model: TextCNN | Ensemble | MixedEnsemble, tensor: torch.Tensor) -> str:
    """' (member k of K)' for an ensemble's stacked tensor, naming the first member that is broken."""
    if not isinstance(model, Ensemble) or tensor.dim() == 0:
        return ""
    finite = torch.isfinite(tensor.view(model.models, -1)).all(dim=1)
    return f" (member {int((~finite).nonzero()[0, 0])} of {model.models})"
