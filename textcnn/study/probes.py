"""Probes of what max-over-time pooling keeps and what it throws away.

Two questions from the discussion this project was born from, answered on a trained model:

- *What if several positions share the maximum, or all examples end up looking alike?*
  `max_statistics` counts, over a set of sentences, how often a feature map's maximum is attained
  at two or more windows (after a ReLU, ties at 0 are common: the map saw nothing), which maps are
  dead (0 for every sentence), and how many distinct pooled vectors the sentences map to.
- *Does max pooling give translation invariance?* `pure_shift` moves every sentence k windows
  to the right inside its padding (the masks move with it): with correct masking every pooling is
  exactly invariant. `compare_texts` compares sentences with variants of them (k filler words in
  front by `with_filler`, the deciding phrase moved by `key_phrase_moved`): the maximum of a
  feature that fires on the phrase stays, an average is diluted by the new windows.
- *Where does the maximum come from?* `winning_ngrams` lists, per feature map, the n-grams that
  most often win its maximum; `explain` gives, for one sentence, the n-grams that decided its
  prediction, each with its contribution to the predicted class (pooled value x output weight;
  `textcnn.inference.explain.explain_text` splits the whole logit, for every pooling).

All of it reads the model's own feature maps (`TextCNN.feature_maps`), masked as the model masks
them, so padding can never be reported as a winner.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from textcnn.data.text import similar_length_chunks
from textcnn.inference.classifier import Classifier
from textcnn.inference.explain import explain_text
from textcnn.model.cnn import pool_maps, width_parameters
from textcnn.model.pooling.functions import max_pool


@dataclass(frozen=True)
class MaxStatistics:
    sentences: int
    feature_maps: int
    tied_fraction: float  # of (sentence, map) pairs whose maximum is attained at >= 2 windows
    tied_above_zero_fraction: float  # the same, counting only maxima > 0 (a real feature, not silence)
    silent_fraction: float  # of (sentence, map) pairs whose maximum is 0: the map saw nothing
    dead_maps: int  # maps whose maximum is 0 for every sentence
    distinct_texts: int
    distinct_pooled_vectors: int  # < distinct_texts: different sentences collapsed to one vector

    def to_json(self) -> dict:
        return asdict(self)


def _maps_by_batch(classifier: Classifier, texts: Sequence[str], batch_size: int):
    """(indices, [(maps (B, F, W), mask (B, W)) per width]) for batches of similar length."""
    encoded = classifier.encoder.encode_many(texts)
    lengths = [len(ids) for ids in encoded]
    model = classifier.model
    model.eval()
    with torch.inference_mode():
        for chunk in similar_length_chunks(lengths, batch_size, min_length=classifier.min_length):
            batch = classifier.encoder.pad([encoded[i] for i in chunk], classifier.min_length).to(
                classifier.device
            )
            per_width = model.feature_maps(batch.ids, batch.lengths)
            yield chunk, [(maps.float().cpu(), mask.cpu()) for maps, mask in per_width]


def max_statistics(classifier: Classifier, texts: Sequence[str], batch_size: int = 256) -> MaxStatistics:
    """Ties, silence and collapse of max-over-time features over `texts`.

    For any model: the statistics are of each feature map's maximum over the whole sentence, read
    from the model's own maps, whatever its pooling (for a local or an average pooling they say
    what a max would keep of those maps, not what the model pooled)."""
    tied = tied_above_zero = silent = pairs = 0
    ever_fired: torch.Tensor | None = None
    pooled_vectors: set[bytes] = set()
    for _, per_width in _maps_by_batch(classifier, texts, batch_size):
        maxima = []
        for maps, mask in per_width:
            masked = maps.masked_fill(~mask[:, None, :], float("-inf"))  # (B, F, W)
            best = masked.max(dim=2).values  # (B, F)
            winners = (masked == best[:, :, None]).sum(dim=2)  # (B, F): windows attaining the max
            tied += int((winners >= 2).sum())
            tied_above_zero += int(((winners >= 2) & (best > 0)).sum())
            silent += int((best == 0).sum())
            pairs += best.numel()
            maxima.append(best)
        maxima_all = torch.cat(maxima, dim=1)  # (B, all maps)
        fired = (maxima_all > 0).any(dim=0)
        ever_fired = fired if ever_fired is None else ever_fired | fired
        pooled_vectors.update(row.numpy().tobytes() for row in maxima_all)
    n_maps = 0 if ever_fired is None else len(ever_fired)
    return MaxStatistics(
        sentences=len(texts),
        feature_maps=n_maps,
        tied_fraction=tied / pairs if pairs else 0.0,
        tied_above_zero_fraction=tied_above_zero / pairs if pairs else 0.0,
        silent_fraction=silent / pairs if pairs else 0.0,
        dead_maps=0 if ever_fired is None else int((~ever_fired).sum()),
        distinct_texts=len(set(texts)),
        distinct_pooled_vectors=len(pooled_vectors),
    )


def _map_index(classifier: Classifier) -> list[tuple[int, int]]:
    """(width, filter) for each feature map, in the order of the pooled vector."""
    config = classifier.model.config
    return [(width, f) for width in config.map_widths for f in range(config.maps_per_width)]


def winning_ngrams(
    classifier: Classifier, texts: Sequence[str], top: int = 5, batch_size: int = 256
) -> list[dict]:
    """Per feature map, the n-grams that most often hold its maximum (maxima of 0 not counted)."""
    counters = [Counter() for _ in _map_index(classifier)]
    fired = [0] * len(counters)
    tokens = [[t.text for t in classifier.encoder.encode_tokens(text).tokens] for text in texts]
    widths = classifier.model.config.map_widths
    for chunk, per_width in _maps_by_batch(classifier, texts, batch_size):
        offset = 0
        for width, (maps, mask) in zip(widths, per_width, strict=True):
            maxed = max_pool(maps, mask)  # ties go to the first window
            best, where = maxed.values, maxed.positions[:, :, 0]  # (B, F)
            for row, sentence in enumerate(chunk):
                for f in torch.nonzero(best[row] > 0).flatten().tolist():
                    span = classifier.model.window_tokens(int(where[row, f]), width, len(tokens[sentence]))
                    counters[offset + f][" ".join(tokens[sentence][i] for i in span)] += 1
                    fired[offset + f] += 1
            offset += maps.shape[1]
    return [
        {"width": width, "filter": f, "fired": fired[m], "top": counters[m].most_common(top)}
        for m, (width, f) in enumerate(_map_index(classifier))
    ]


def explain(classifier: Classifier, text: str, top: int = 5) -> dict:
    """`textcnn.inference.explain.explain_text` (any pooling), with the names this module's callers
    read: "bias" for the output bias, and "value" for each n-gram's activation."""
    explanation = explain_text(classifier, text, top)
    for side in ("for", "against"):
        explanation[side] = [ngram | {"value": ngram["activation"]} for ngram in explanation[side]]
    return explanation | {"bias": explanation["output_bias"]}


@dataclass(frozen=True)
class ShiftResult:
    sentences: int
    unchanged_predictions: float  # fraction of sentences whose predicted label did not change
    mean_relative_change: float  # mean over sentences of |pooled' - pooled| / |pooled|
    max_abs_change: float  # largest change of any pooled feature

    def to_json(self) -> dict:
        return asdict(self)


def pooled_vectors(
    classifier: Classifier, texts: Sequence[str], shift: int = 0, batch_size: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled vectors (N, P) and logits (N, C) in input order; `shift` moves each sentence's maps.

    Shifting the feature maps k windows to the right, zeros entering and the mask moving with
    them, is what k leading <pad> tokens would give a convolution (it is translation-equivariant,
    and <pad> embeds to zeros) if the mask knew where the sentence starts.
    """
    config = classifier.model.config
    pooled_rows, logit_rows, order = [], [], []
    for chunk, per_width in _maps_by_batch(classifier, texts, batch_size):
        parts = []
        for i, (maps, mask) in enumerate(per_width):
            if shift:
                maps, mask = F.pad(maps, (shift, 0)), F.pad(mask, (shift, 0), value=False)
            learned = width_parameters(classifier.model, i)
            learned = None if learned is None else learned.detach().float().cpu()
            parts.append(pool_maps(maps, mask, config, learned).values)
        pooled = torch.cat(parts, dim=1)
        with torch.inference_mode():
            head = classifier.model.classifier
            logits = F.linear(pooled, head.weight.detach().float().cpu(), head.bias.detach().float().cpu())
        pooled_rows.append(pooled)
        logit_rows.append(logits)
        order.extend(chunk)
    inverse = torch.argsort(torch.as_tensor(order))
    return torch.cat(pooled_rows)[inverse], torch.cat(logit_rows)[inverse]


def _shift_result(
    before: tuple[torch.Tensor, torch.Tensor], after: tuple[torch.Tensor, torch.Tensor]
) -> ShiftResult:
    (pooled, logits), (pooled_after, logits_after) = before, after
    change = (pooled_after - pooled).norm(dim=1) / pooled.norm(dim=1).clamp_min(1e-12)
    return ShiftResult(
        sentences=len(pooled),
        unchanged_predictions=float((logits.argmax(dim=1) == logits_after.argmax(dim=1)).float().mean()),
        mean_relative_change=float(change.mean()),
        max_abs_change=float((pooled_after - pooled).abs().max()) if len(pooled) else 0.0,
    )


def pure_shift(classifier: Classifier, texts: Sequence[str], shift: int) -> ShiftResult:
    """How much a pure shift by `shift` windows changes the pooled vectors and the predictions."""
    return _shift_result(pooled_vectors(classifier, texts), pooled_vectors(classifier, texts, shift=shift))


def compare_texts(classifier: Classifier, texts: Sequence[str], variants: Sequence[str]) -> ShiftResult:
    """How much rewriting each text as its variant (filler in front, a phrase moved) changes things."""
    if len(texts) != len(variants):
        raise ValueError(f"{len(texts)} texts but {len(variants)} variants")
    return _shift_result(pooled_vectors(classifier, texts), pooled_vectors(classifier, variants))


def with_filler(text: str, count: int, filler: str = "the") -> str:
    """`text` shifted right by `count` real tokens of a neutral word."""
    return " ".join([filler] * count + [text])


def move_span(tokens: Sequence[str], start: int, end: int) -> list[str]:
    """`tokens` with tokens[start:end] moved to the front, or to the back when already in front.

    The rest of the sentence keeps its order, so the moved phrase meets new neighbours at both of
    its ends and nothing else changes: the words are the same, only one phrase's position is not.
    """
    if not 0 <= start < end <= len(tokens):
        raise ValueError(f"span [{start}, {end}) is not inside a sentence of {len(tokens)} tokens")
    phrase, rest = list(tokens[start:end]), [*tokens[:start], *tokens[end:]]
    return [*rest, *phrase] if start == 0 else [*phrase, *rest]


def key_phrase_moved(classifier: Classifier, texts: Sequence[str]) -> tuple[list[str], list[str]]:
    """(originals, variants): each text whose prediction `classifier` pins on one n-gram (the top
    contribution of `explain`), as the model tokenised it, and the same text with that n-gram moved
    (`move_span`). Texts that are a single phrase, or that no n-gram speaks for, are left out.

    The pairs depend only on `classifier` (a max-pooling model names one window), so the same pairs can be
    put to a model with another pooling: the question is what the move does to each pooling.
    """
    originals, variants = [], []
    for text in texts:
        tokens = [t.text for t in classifier.encoder.encode_tokens(text).tokens]
        reasons = explain(classifier, text, top=1)["for"]
        if not reasons:
            continue
        start, end = reasons[0]["start"], reasons[0]["end"]
        if end - start >= len(tokens):
            continue
        originals.append(" ".join(tokens))
        variants.append(" ".join(move_span(tokens, start, end)))
    return originals, variants
