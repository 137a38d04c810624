"""One prediction's logit split exactly over the output bias, the filter biases and the tokens.

For class c the logit is b_c + Σ_j W[c, j] · pooled_j. Every pooling here makes pooled_j a weighted
sum of window activations, pooled_j = Σ_p α_jp · a_p, and where a window's ReLU passes (its
pre-activation is > 0) the activation is linear in the word vectors:

    a_p = bias_f + Σ_o K_f[:, o] · x_(token at offset o of window p)

so W[c, j] · α_jp · a_p splits exactly into a filter-bias share and one term per token of the window.
A window whose ReLU blocks has a_p = 0 and contributes nothing; the zero columns of wide mode (and
the <pad> rows of a text shorter than a filter) are zero vectors and contribute nothing either.
Summed over features, windows and offsets:

    logit_c = output_bias + filter_bias + Σ_t token_parts[t] + residual

with a residual of float32 rounding only (the split is done in float64; ~1e-6), except for logsumexp.
Each token's part is also gradient × input at its word vector (the logit is piecewise linear in
the word vectors, and this split is that linear map), which is how the tests check it. Which
windows were picked comes from the model's own float32 forward (`Pooled.positions`), so the
n-grams named are the model's; only the arithmetic is redone in float64.

What "the winning n-gram" is depends on the pooling: its registered rule gives the α above
(`textcnn.model.pooling.attribution`, where each pooling's rule is described).

An entry's "activation" is its share α·a_p of the pooled value, "contribution" = weight × activation
= its "filter_bias" + Σ its "token_parts" (one per token start..end-1). Entries that contribute
exactly 0 (a window the ReLU blocks, an empty slot, a column of weight 0) are never listed; ties
go to the earlier width, filter, slot and window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from textcnn.inference.classifier import Classifier
from textcnn.model import output
from textcnn.model.cnn import ModelConfig, TextCNN, width_parameters
from textcnn.model.linear_member import LinearMember
from textcnn.model.members import Member
from textcnn.model.pooling import get_pooling
from textcnn.model.pooling.functions import Pooled
from textcnn.model.variants import LINEAR_KINDS


@dataclass(frozen=True)
class _Windows:
    """One filter width's real windows in float64; without convolution a window is one token."""

    width: int
    shift: int  # window p, offset o reads token p + o - shift
    activations: torch.Tensor  # (F, n)
    bias: torch.Tensor  # (F, n): the filter bias inside each activation (0 where the ReLU blocks)
    terms: torch.Tensor  # (F, n, width): each offset's token term (0 where blocked or outside the text)


def _word_vectors(model: TextCNN, ids: list[int]) -> torch.Tensor:
    """(L, D) float64: the summed channels for multichannel, as `TextCNN.embed` sums them."""
    # Rows first, then float64: converting the whole table would copy it for every text.
    index = torch.as_tensor(ids, dtype=torch.long, device=model.embedding.weight.device)
    x = model.embedding.weight.detach()[index].cpu().double()
    if model.static_embedding is not None:
        x = x + model.static_embedding.weight.detach()[index].cpu().double()
    return x


def _windows(model: TextCNN, x: torch.Tensor) -> list[_Windows]:
    config, length = model.config, x.shape[0]
    if not config.convolution:
        values = x.T  # (D, L): the word vectors are the maps
        return [_Windows(1, 0, values, torch.zeros_like(values), values[:, :, None])]
    groups = []
    for conv, width in zip(model.convs, config.filter_widths, strict=True):
        kernel = conv.weight.detach().cpu().double()  # (F, D, w)
        bias = conv.bias.detach().cpu().double()  # (F,)
        # Wide: w - 1 zero rows each side (L + w - 1 windows); narrow: <pad> rows up to w (max(L - w + 1, 1)).
        shift = width - 1 if config.wide else 0
        padded = torch.nn.functional.pad(x.T, (shift, shift if config.wide else max(width - length, 0))).T
        windows = padded.unfold(0, width, 1)  # (n, D, w)
        terms = torch.einsum("fdo,ndo->fno", kernel, windows)  # (F, n, w)
        passes = bias[:, None] + terms.sum(dim=2) > 0  # (F, n): where the ReLU lets the window through
        bias_share = torch.where(passes, bias[:, None], 0.0)
        terms = terms * passes[:, :, None]
        groups.append(_Windows(width, shift, bias_share + terms.sum(dim=2), bias_share, terms))
    return groups


def _coefficients(
    config: ModelConfig, group: _Windows, pooled: Pooled, learned: torch.Tensor | None
) -> list[tuple[str | None, torch.Tensor]]:
    """Per part of the pooled vector: (name, α (F, m, n)), by the pooling's registered rule
    (`textcnn.model.pooling.attribution`); column f * m + s of the part is (f, s). Positions are
    the model's own choice, -1 for an empty slot; `learned`: the width's learned pooling parameters."""
    positions = pooled.positions[0].cpu() if pooled.positions is not None else None  # (F, m)
    pooling = get_pooling(config.pooling)
    if pooling.learned:
        return pooling.attribution(config, group.activations, positions, learned)
    return pooling.attribution(config, group.activations, positions)


def _ngram(group, tokens, entry, weights, alpha, shares) -> dict:
    f, s, p = entry
    span = range(max(p - group.shift, 0), min(p - group.shift + group.width, len(tokens)))
    coefficient = float(weights[f, s] * alpha[f, s, p])
    return {
        "start": span.start,
        "end": span.stop,
        "ngram": " ".join(tokens[i] for i in span),
        "width": group.width,
        "filter": f,
        "slot": s,
        "activation": float(alpha[f, s, p] * group.activations[f, p]),
        "weight": float(weights[f, s]),
        "contribution": float(shares[f, s, p]),
        "filter_bias": coefficient * float(group.bias[f, p]) + 0.0,  # + 0.0: no -0.0
        "token_parts": [coefficient * float(group.terms[f, p, t - p + group.shift]) for t in span],
        "characters": False,
    }


def _strongest(shares: torch.Tensor, top: int, sign: float) -> list[tuple[int, int, int]]:
    """Indices (f, s, p) of the `top` entries of `shares` (F, m, n) with the largest sign × value > 0;
    a stable sort, so ties go to the earlier filter, slot and window."""
    signed = (sign * shares).flatten()
    values, flat = signed.sort(descending=True, stable=True)
    chosen = flat[:top][values[:top] > 0]
    return [tuple(int(i) for i in torch.unravel_index(k, shares.shape)) for k in chosen]


def _split(group: _Windows, alpha: torch.Tensor, weights: torch.Tensor, length: int):
    """(contribution of each (f, s, p) (F, m, n), its filter-bias share summed, token parts (L,))."""
    coefficient = weights[:, :, None] * alpha  # (F, m, n)
    shares = coefficient * group.activations[:, None, :]
    filter_bias = float((coefficient * group.bias[:, None, :]).sum())
    per_offset = torch.einsum("fsn,fno->no", coefficient, group.terms)  # (n, w)
    n, width = per_offset.shape
    token = torch.arange(n)[:, None] + torch.arange(width)[None, :] - group.shift  # (n, w)
    inside = (token >= 0) & (token < length)
    token_parts = torch.zeros(length, dtype=torch.float64).index_add_(0, token[inside], per_offset[inside])
    return shares, filter_bias, token_parts


def _forward(model: TextCNN, batch) -> tuple[torch.Tensor, list[Pooled]]:
    """The float32 logits (C,) as the model computes them, and its pooled features per width."""
    with torch.inference_mode():
        pooled = model.eval().features(batch.ids, batch.lengths)
        logits = model.classifier(torch.cat([p.values for p in pooled], dim=1)).float()[0].cpu()
    return logits, pooled


def _member_split(model: TextCNN, tokens: list[str], ids: list[int], pooled: list[Pooled], c: int, top: int):
    """One model's logit of class c split: (output bias, filter bias, token parts (L,), entries for
    and against), as the module docstring has it."""
    config = model.config
    row = model.classifier.weight.detach()[c].cpu().double()  # (P,)
    output_bias = float(model.classifier.bias.detach()[c].cpu().double())
    filter_bias, token_parts = 0.0, torch.zeros(len(tokens), dtype=torch.float64)
    sides: dict[str, list[dict]] = {"for": [], "against": []}
    column = 0
    for i, (group, part) in enumerate(zip(_windows(model, _word_vectors(model, ids)), pooled, strict=True)):
        for name, alpha in _coefficients(config, group, part, width_parameters(model, i)):
            maps, slots, _ = alpha.shape
            weights = row[column : column + maps * slots].view(maps, slots)
            column += maps * slots
            shares, bias_share, parts = _split(group, alpha, weights, len(tokens))
            filter_bias += bias_share
            token_parts += parts
            for side, sign in (("for", 1.0), ("against", -1.0)):
                for entry in _strongest(shares, top, sign):
                    ngram = _ngram(group, tokens, entry, weights, alpha, shares)
                    sides[side].append(ngram if name is None else ngram | {"part": name})
    assert column == row.numel(), (column, row.numel())
    return output_bias, filter_bias, token_parts, sides


def _share(entry: dict, member: Member) -> dict:
    """An ensemble member's entry as its share of the members' weighted mean logit: contribution,
    filter bias and token parts times the member's weight (activation and weight stay its own)."""
    w = member.weight
    return entry | {
        "member": member.index,
        "kind": member.kind,
        "contribution": entry["contribution"] * w,
        "filter_bias": entry["filter_bias"] * w,
        "token_parts": [part * w for part in entry["token_parts"]],
    }


def _linear_forward(member: LinearMember, batch) -> torch.Tensor:
    with torch.inference_mode():
        return member(batch.ids, batch.lengths).float()[0].cpu()


def _linear_split(member: LinearMember, tokens: list[str], ids: list[int], c: int, top: int):
    """The linear member's logit of class c split over its n-grams: exact by construction (the
    logit is scale · (Σ_f value_f · weight[f, c] + bias[c])). A feature counts once however often
    its n-gram occurs (NBSVM binarizes; TF-IDF's value already holds the count), so its part goes
    to the tokens of its first occurrence."""
    config = member.config
    if member.chars is not None:
        return _char_split(member, tokens, ids, c, top)
    batch_ids = torch.as_tensor([ids], dtype=torch.long, device=member.keys.device)
    with torch.inference_mode():
        _, index, values = member.features(batch_ids, torch.as_tensor([len(ids)], device=member.keys.device))
    weights = member.weight[index, c].double().cpu() * config.scale
    values = values.double().cpu()
    keys = member.keys[index].tolist()
    first = {}
    for i in range(len(ids)):  # the first occurrence of each unigram and bigram key
        first.setdefault(ids[i], (i, i + 1))
        if i + 1 < len(ids):
            first.setdefault(config.vocab_size * (ids[i] + 1) + ids[i + 1], (i, i + 2))
    token_parts = torch.zeros(len(tokens), dtype=torch.float64)
    entries = []
    for f, key, value, weight in zip(index.tolist(), keys, values.tolist(), weights.tolist(), strict=True):
        start, end = first[key]
        contribution = value * weight
        token_parts[start:end] += contribution / (end - start)
        entries.append(
            {
                "start": start,
                "end": end,
                "ngram": " ".join(tokens[start:end]),
                "characters": False,
                "width": end - start,
                "filter": f,
                "slot": 0,
                "activation": value,
                "weight": weight,
                "contribution": contribution,
                "filter_bias": 0.0,
                "token_parts": [contribution / (end - start)] * (end - start),
            }
        )
    sides = {
        "for": sorted((e for e in entries if e["contribution"] > 0), key=lambda e: -e["contribution"])[:top],
        "against": sorted((e for e in entries if e["contribution"] < 0), key=lambda e: e["contribution"])[
            :top
        ],
    }
    output_bias = float(member.bias[c].double().cpu()) * config.scale
    return output_bias, 0.0, token_parts, sides


def _char_split(member: LinearMember, tokens: list[str], ids: list[int], c: int, top: int):
    """A character n-gram member's logit of class c split over its n-grams, each n-gram's part over
    the tokens holding it by how often each holds it: exact by construction, as for word n-grams."""
    config, device = member.config, member.bias.device
    batch_ids = torch.as_tensor([ids], dtype=torch.long, device=device)
    lengths = torch.as_tensor([len(ids)], device=device)
    with torch.inference_mode():
        _, index, values = member.features(batch_ids, lengths)
        _, positions, features, counts = member.chars.occurrences(batch_ids, lengths)
    holders: dict[int, dict[int, float]] = {}  # feature -> token position -> count
    for p, f, n in zip(positions.tolist(), features.tolist(), counts.tolist(), strict=True):
        holders.setdefault(f, {})
        holders[f][p] = holders[f].get(p, 0.0) + n
    weights = member.weight[index, c].double().cpu() * config.scale
    token_parts = torch.zeros(len(tokens), dtype=torch.float64)
    entries = []
    for f, value, weight in zip(
        index.tolist(), values.double().cpu().tolist(), weights.tolist(), strict=True
    ):
        contribution = value * weight
        held = holders[f]
        start, end = min(held), max(held) + 1
        total = sum(held.values())
        parts = [contribution * held.get(p, 0.0) / total for p in range(start, end)]
        token_parts[start:end] += torch.as_tensor(parts, dtype=torch.float64)
        entries.append(
            {
                "start": start,
                "end": end,
                "ngram": member.chars.names[f],  # the characters; a space marks a token's edge
                "characters": True,
                "width": len(member.chars.names[f]),
                "filter": f,
                "slot": 0,
                "activation": value,
                "weight": weight,
                "contribution": contribution,
                "filter_bias": 0.0,
                "token_parts": parts,
            }
        )
    sides = {
        "for": sorted((e for e in entries if e["contribution"] > 0), key=lambda e: -e["contribution"])[:top],
        "against": sorted((e for e in entries if e["contribution"] < 0), key=lambda e: e["contribution"])[
            :top
        ],
    }
    return float(member.bias[c].double().cpu()) * config.scale, 0.0, token_parts, sides


@dataclass(frozen=True)
class _Explainer:
    """How a kind of member is explained: its forward (logits (C,) and what its split needs of
    that forward) and its split of one class's logit (output bias, filter bias, token parts, entries)."""

    forward: Callable[[Any, Any], tuple[torch.Tensor, Any]]
    split: Callable[[Any, list[str], list[int], Any, int, int], tuple]


_CNN = _Explainer(_forward, _member_split)
_LINEAR = _Explainer(
    lambda member, batch: (_linear_forward(member, batch), None),
    lambda member, tokens, ids, _, c, top: _linear_split(member, tokens, ids, c, top),
)
EXPLAINERS = {"cnn": _CNN} | dict.fromkeys(LINEAR_KINDS, _LINEAR)  # by `Member.kind`


def explain_text(classifier: Classifier, text: str, top: int = 5, threshold: float | None = None) -> dict:
    """The predicted class's logit of `text`, split over biases and tokens; see the module docstring.

    A multi-label bundle's answer has `labels`: one such split per label it gives (its thresholds, or
    `threshold` for every label), most probable first; the top-level split is its most probable label's.

    An ensemble predicts the (weighted) mean of its members' probabilities; what is split is then the
    weighted mean of its members' logits for the class it predicts: each member's split times its
    weight, added up (entries carry their "member" and its "kind"), and "members" says what each
    member alone predicted. The log of a mean of softmaxes has no exact split over tokens, but the
    mean logit does, and it is what moves each member's probability. A linear member's logit is a
    sum over its n-grams, split exactly (`_linear_split`)."""
    members = classifier.member_list()
    encoded = classifier.encoder.encode_tokens(text)
    tokens, ids = [t.text for t in encoded.tokens], encoded.ids
    read = {
        "spans": [[t.start, t.end] for t in encoded.tokens],
        "known": encoded.known,
        "coverage": encoded.coverage,
        "unread": encoded.coverage == 0,
    }
    if read["unread"]:
        return _unread(classifier, text, tokens, read)
    batch = classifier.encoder.pad([ids], classifier.min_length).to(classifier.device)
    explainers = [EXPLAINERS[m.kind] for m in members]
    forwards = [e.forward(m.model, batch) for m, e in zip(members, explainers, strict=True)]
    own = [output.probabilities(logits, classifier.multi_label) for logits, _ in forwards]
    probabilities = sum(m.weight * p for m, p in zip(members, own, strict=True))
    c = int(probabilities.argmax())

    def split(c: int) -> tuple[dict, list[dict]]:
        """Label c's logit split over biases and tokens, and each member's verdict."""
        logit = output_bias = filter_bias = 0.0
        token_parts = torch.zeros(len(tokens), dtype=torch.float64)
        sides: dict[str, list[dict]] = {"for": [], "against": []}
        verdicts = []
        for member, explainer, (logits, state), p in zip(members, explainers, forwards, own, strict=True):
            bias, filters, parts, entries = explainer.split(member.model, tokens, ids, state, c, top)
            w = member.weight
            logit += float(logits[c]) * w
            output_bias += bias * w
            filter_bias += filters * w
            token_parts += parts * w
            for side, listed in entries.items():
                sides[side] += listed if not classifier.is_ensemble else [_share(e, member) for e in listed]
            verdicts.append(
                {
                    "member": member.index,
                    "kind": member.kind,
                    "pooling": member.model.config.pooling if member.kind == "cnn" else None,
                    "weight": w,
                    "label": classifier.label_names[int(p.argmax())],
                    "probabilities": dict(zip(classifier.label_names, p.tolist(), strict=True)),
                    "logit": float(logits[c]),
                    "token_parts": (parts * w).tolist(),
                }
            )
        return {
            "logit": logit,
            "output_bias": output_bias,
            "filter_bias": filter_bias,
            "token_parts": token_parts.tolist(),
            "residual": logit - output_bias - filter_bias - float(token_parts.sum()),
            "for": sorted(sides["for"], key=lambda g: -g["contribution"])[:top],
            "against": sorted(sides["against"], key=lambda g: g["contribution"])[:top],
        }, verdicts

    top_split, verdicts = split(c)
    label: str | None = classifier.label_names[c]
    labels = None
    if classifier.multi_label:  # one split per label given, most probable first
        given = classifier.decision.with_threshold(threshold).decide(probabilities[None].numpy())[0]
        order = sorted(np.flatnonzero(given).tolist(), key=lambda k: -float(probabilities[k]))
        labels = [
            {"label": classifier.label_names[k], "score": float(probabilities[k]), **split(k)[0]}
            for k in order
        ]
        label = labels[0]["label"] if labels else None
    cnns = [m.model.config for m in members if m.kind == "cnn"]
    return {
        "text": text,
        "tokens": tokens,
        **read,
        "label": label,
        "probabilities": dict(zip(classifier.label_names, probabilities.tolist(), strict=True)),
        **{k: v for k, v in top_split.items() if k not in ("for", "against")},
        "exact": all(get_pooling(config.pooling).exact for config in cnns),
        "attribution": _combined_attribution(classifier, members, cnns),
        "for": top_split["for"],
        "against": top_split["against"],
        "members": verdicts if classifier.is_ensemble else None,
        **({"labels": labels} if classifier.multi_label else {}),
    }


def _unread(classifier: Classifier, text: str, tokens: list[str], read: dict) -> dict:
    """A text with no token the model knows: nothing to split, and no label (its logits would be
    the biases alone, the same for every such text)."""
    return {
        "text": text,
        "tokens": tokens,
        **read,
        "label": None,
        "probabilities": None,
        "logit": None,
        "output_bias": None,
        "filter_bias": None,
        "token_parts": [0.0] * len(tokens),
        "residual": None,
        "exact": True,
        "attribution": "not read: none of the text's words is in the model's vocabulary, so it has no label "
        "(the model's output for it would be its biases alone)",
        "for": [],
        "against": [],
        "members": None,
        **({"labels": None} if classifier.multi_label else {}),
    }


def _combined_attribution(classifier: Classifier, members: list[Member], cnns: list[ModelConfig]) -> str:
    parts = list(dict.fromkeys(_attribution(config) for config in cnns))
    linear = [m for m in members if m.kind != "cnn"]
    if linear:
        parts.append(
            f"the {linear[0].kind} member: each n-gram's value times its weight, exact by construction."
        )
    text = " ".join(parts)
    if not classifier.is_ensemble:
        return text
    weights = {round(m.weight, 12) for m in members}
    if len(weights) == 1:
        return text + f" The mean of {len(members)} members' logits."
    return text + f" The mean of {len(members)} members' logits, weighted as the bundle combines them."


def _attribution(config: ModelConfig) -> str:
    if config.convolution:
        window = "a window's activation is its filter's bias plus one term per token where the ReLU passes"
    else:
        window = "without convolution a window is one token, its value the word-vector coordinate (no bias)"
    return f"{config.pooling} pooling: {get_pooling(config.pooling).explained}; {window}."
