"""A linear n-gram model (NBSVM, TF-IDF + LR, or character n-grams + LR) as a bundle member: ids in,
logits out, no pickle.

A linear model over word 1-2-grams errs differently from a CNN (it sees every n-gram at once and
no word vector), and averaging the two beats either (Mesnil et al. 2015 combined NBSVM with neural
models). To sit in a bundle beside CNN members it must read what they read, the bundle's token
ids, and be stored as plain tensors: so its features are defined on ids, not strings.

- A unigram is its word's id `a`; a bigram (a, b) is `V * (a + 1) + b` (V the vocabulary size):
  one int64 key per n-gram, kept sorted in `keys`, so a text's features are found with one
  `searchsorted`. Built from the bundle's vocabulary of the training texts, every training n-gram
  has a key; a word unseen in training is `<unk>`, whose n-grams were never seen either, so they
  are not features, as a CountVectorizer ignores unseen n-grams: the member predicts what the
  scikit-learn baseline (`textcnn.model.linear`) fitted on the same tokens would.
- Its score for class c is `Σ_f value_f · weight[f, c] + bias[c]`: NBSVM's value is 1 for an
  n-gram present (binarized), with the log-count ratio folded into the weight (r ⊙ w); TF-IDF's is
  (1 + log count) · idf, the row then scaled to unit length. A binary model's one score s is
  stored as two columns (−s/2, +s/2), whose softmax is sigmoid(s), so every model has C columns.
- `scale` (a temperature fitted on dev, Guo et al. 2017) turns the scores into calibrated logits:
  an SVM's margins are not probabilities, and averaging them with a CNN's probabilities needs both
  on one footing.

A text's logit is then a sum over its n-grams: each n-gram's part is exact by construction, which
is what `textcnn.inference.explain` shows for this member.

`char-lr` reads character n-grams instead (1 to 5 characters within each token, the token padded
with a space each side: scikit-learn's `char_wb` over the bundle's tokens), TF-IDF + LR as
`tfidf-lr`. Tweets in French or Portuguese spread one word over many forms; their character n-grams
are shared (on UMSAB's test splits char_wb TF-IDF beats word 1-2-grams on English, French,
Portuguese and Spanish, ties on German and loses on Italian: benchmarks/RESULTS.md). The
features follow from the vocabulary alone: each vocabulary token's n-gram counts form a table
(`CharTable`, rebuilt from `vocab.json` at load, never stored), and a text's counts are the sum of
its tokens' rows, so the member still reads token ids. What that costs: a word unseen in training is
`<unk>`, and its n-grams are not read. On UMSAB that costs nothing measurable: macro-F1 averaged
over the six languages is 58.1 for this member and 58.0 for scikit-learn's pipeline on the raw
tokens (per language within 1.8 points, either way: benchmarks/RESULTS.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from textcnn.data.text import PAD_ID
from textcnn.errors import ConfigError
from textcnn.model import output
from textcnn.model.variants import LINEAR_KINDS

C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)  # as the baselines, chosen on dev


@dataclass(frozen=True)
class LinearConfig:
    kind: str  # nbsvm | tfidf-lr
    vocab_size: int
    num_classes: int
    features: int
    C: float = 1.0  # the regularization dev chose
    scale: float = 1.0  # the temperature's inverse, fitted on dev
    multi_label: bool = False  # one-vs-rest: each label's own score, read through a sigmoid

    def __post_init__(self) -> None:
        if self.kind not in LINEAR_KINDS:
            raise ConfigError(f"unknown linear member {self.kind!r}; choose one of {', '.join(LINEAR_KINDS)}")
        for name in ("vocab_size", "num_classes", "features"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"linear member: {name} must be a positive integer, got {value!r}")
        if not (isinstance(self.scale, int | float) and self.scale > 0):
            raise ConfigError(f"linear member: scale must be positive, got {self.scale!r}")

    @property
    def tfidf(self) -> bool:
        return self.kind in ("tfidf-lr", "char-lr")

    @property
    def characters(self) -> bool:
        return self.kind == "char-lr"

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "vocab_size": self.vocab_size,
            "num_classes": self.num_classes,
            "features": self.features,
            "C": self.C,
            "scale": self.scale,
        } | ({"multi_label": True} if self.multi_label else {})

    @classmethod
    def from_json(cls, data: dict) -> LinearConfig:
        known = {"kind", "vocab_size", "num_classes", "features", "C", "scale", "multi_label"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown linear member keys: {', '.join(unknown)}")
        return cls(**data)


def ngram_keys(
    ids: torch.Tensor, lengths: torch.Tensor, vocab_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every n-gram occurrence of a batch (B, T): (row of each, key of each), unigrams first."""
    T = ids.shape[1]
    real = torch.arange(T, device=ids.device)[None, :] < lengths[:, None]
    real &= ids != PAD_ID
    rows = torch.arange(ids.shape[0], device=ids.device)[:, None].expand_as(ids)
    pairs = real[:, :-1] & real[:, 1:]
    bigrams = vocab_size * (ids[:, :-1] + 1) + ids[:, 1:]
    return (
        torch.cat([rows[real], rows[:, 1:][pairs]]),
        torch.cat([ids[real], bigrams[pairs]]),
    )


CHAR_NGRAMS = (1, 5)  # as the char_wb baseline (textcnn.model.linear)


def char_ngrams(token: str, low: int = CHAR_NGRAMS[0], high: int = CHAR_NGRAMS[1]) -> list[str]:
    """A token's character n-grams as scikit-learn's `char_wb` analyzer makes them: the token with a
    space each side, every n-gram of `low`..`high` characters (a token shorter than n gives one)."""
    padded = f" {token} "
    out = []
    for n in range(low, high + 1):
        if len(padded) <= n:  # the whole padded token, once, and no longer n-grams (as scikit-learn)
            out.append(padded)
            break
        out.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return out


class CharTable:
    """Each vocabulary token's character n-gram counts (a CSR table: rows `ptr[v]..ptr[v + 1]` of
    `feature` and `count`), the features numbered in sorted n-gram order. `<pad>` and `<unk>` have
    none. Built from the vocabulary's tokens, so a bundle stores only its weights."""

    def __init__(self, tokens: Sequence[str], special: int = 2):
        rows = [Counter(char_ngrams(token)) if v >= special else Counter() for v, token in enumerate(tokens)]
        self.names = sorted(set().union(*rows))  # feature index -> n-gram
        index = {name: i for i, name in enumerate(self.names)}
        ptr, feature, count = [0], [], []
        for row in rows:
            for name, n in sorted(row.items()):
                feature.append(index[name])
                count.append(n)
            ptr.append(len(feature))
        self.ptr = torch.as_tensor(ptr, dtype=torch.long)
        self.feature = torch.as_tensor(feature, dtype=torch.long)
        self.count = torch.as_tensor(count, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.names)

    def occurrences(
        self, ids: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every (row, token position, feature, count) of a batch (B, T)'s real tokens' n-grams."""
        T = ids.shape[1]
        real = torch.arange(T, device=ids.device)[None, :] < lengths[:, None]
        rows, positions = real.nonzero(as_tuple=True)
        token_ids = ids[rows, positions]
        ptr = self.ptr.to(ids.device)
        starts, sizes = ptr[token_ids], ptr[token_ids + 1] - ptr[token_ids]
        total = int(sizes.sum())
        owner = torch.repeat_interleave(torch.arange(len(token_ids), device=ids.device), sizes)
        first = torch.cumsum(sizes, 0) - sizes  # each token's first slot among all the n-grams
        slot = starts[owner] + torch.arange(total, device=ids.device) - first[owner]
        return (
            rows[owner],
            positions[owner],
            self.feature.to(ids.device)[slot],
            self.count.to(ids.device)[slot],
        )


def key_tokens(key: int, vocab_size: int) -> tuple[int, ...]:
    """The ids of an n-gram key: (a,) or (a, b)."""
    return (key,) if key < vocab_size else (key // vocab_size - 1, key % vocab_size)


class LinearMember(nn.Module):
    """A fitted linear n-gram model over the bundle's ids; `forward(ids, lengths)` gives logits (B, C).

    A `char-lr` member needs the vocabulary's tokens (`vocab`) for its n-gram table."""

    def __init__(
        self, config: LinearConfig, vocab: Sequence[str] | None = None, table: CharTable | None = None
    ):
        super().__init__()
        self.config = config
        F, C = config.features, config.num_classes
        self.chars = None
        if config.characters:
            if vocab is None or len(vocab) != config.vocab_size:
                raise ConfigError(
                    f"a {config.kind} member needs its vocabulary of {config.vocab_size} tokens"
                )
            self.chars = table if table is not None else CharTable(vocab)
            if len(self.chars) != F:
                raise ConfigError(
                    f"the vocabulary gives {len(self.chars)} character n-grams, the member was fitted on {F}"
                )
        self.register_buffer("keys", torch.zeros(0 if config.characters else F, dtype=torch.long))
        self.register_buffer("weight", torch.zeros(F, C))
        self.register_buffer("bias", torch.zeros(C))
        self.register_buffer("idf", torch.ones(F if config.tfidf else 0))

    def counts(
        self, ids: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(row, feature index, count) of each distinct feature of each row of a batch (B, T)."""
        F = self.config.features
        if self.chars is not None:
            rows, _, feature, count = self.chars.occurrences(ids, lengths)
            flat, inverse = torch.unique(rows * F + feature, return_inverse=True)
            counts = torch.zeros(len(flat), dtype=count.dtype, device=ids.device).index_add_(
                0, inverse, count
            )
            return flat // F, flat % F, counts
        rows, keys = ngram_keys(ids, lengths, self.config.vocab_size)
        where = torch.searchsorted(self.keys, keys).clamp_max(F - 1)
        found = self.keys[where] == keys
        flat, counts = torch.unique(rows[found] * F + where[found], return_counts=True)
        return flat // F, flat % F, counts

    def features(
        self, ids: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The batch's features as (row, feature index, value) triples, one per distinct n-gram of a row."""
        rows, index, counts = self.counts(ids, lengths)
        if not self.config.tfidf:
            return rows, index, torch.ones(len(index), dtype=self.weight.dtype, device=ids.device)
        values = (1.0 + torch.log(counts.to(self.weight.dtype))) * self.idf[index]
        norms = torch.zeros(ids.shape[0], dtype=values.dtype, device=ids.device).index_add_(
            0, rows, values**2
        )
        return rows, index, values / norms.sqrt()[rows]

    def scores(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The fitted model's own decision values (B, C), before `scale`."""
        rows, index, values = self.features(ids, lengths)
        out = self.bias.expand(ids.shape[0], -1).clone()
        return out.index_add_(0, rows, values[:, None] * self.weight[index])

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.config.scale * self.scores(ids, lengths)

    # -- as a member (textcnn.model.members) -----------------------------------------------------

    @property
    def kind(self) -> str:
        return self.config.kind

    def card_fields(self, group: int | None) -> dict:
        return {"features": self.config.features, "C": self.config.C}

    # -- fitting ----------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        kind: str,
        train: tuple[torch.Tensor, torch.Tensor, Sequence],
        dev: tuple[torch.Tensor, torch.Tensor, Sequence],
        vocab_size: int,
        num_classes: int,
        grid: Sequence[float] = C_GRID,
        vocab: Sequence[str] | None = None,
        multi_label: bool = False,
    ) -> LinearMember:
        """Fit on `train` (ids, lengths, labels) for each C of `grid`, keep the best on dev
        accuracy (ties: the smaller C), then fit `scale` on dev's log loss. `vocab`: the
        vocabulary's tokens, which a `char-lr` member's features come from. `multi_label`: the
        labels are 0/1 rows (N, C), one binary model per label (one-vs-rest), C chosen on dev
        macro-F1 at the best shared threshold, `scale` on dev's binary log loss."""
        if kind not in LINEAR_KINDS:
            raise ConfigError(f"unknown linear member {kind!r}; choose one of {', '.join(LINEAR_KINDS)}")
        if kind == "char-lr":
            if vocab is None:
                raise ConfigError("a char-lr member is fitted with its vocabulary's tokens")
            table, keys = CharTable(vocab), None
            X_train = _char_matrix(table, train[0], train[1])
        else:
            table, keys = None, torch.unique(ngram_keys(train[0], train[1], vocab_size)[1])  # sorted
            X_train = _count_matrix(train[0], train[1], keys, vocab_size)
        features = X_train.shape[1]
        member = cls(
            LinearConfig(kind, vocab_size, num_classes, features, multi_label=multi_label), vocab, table
        )
        with torch.no_grad():
            if keys is not None:
                member.keys.copy_(keys)
            if member.config.tfidf:
                member.idf.copy_(torch.as_tensor(_idf(X_train), dtype=torch.float32))
        y_train, y_dev = np.asarray(train[2]), np.asarray(dev[2])
        best = None
        for C in grid:
            if multi_label:
                weight, bias = _fit_one_vs_rest(kind, X_train, y_train, C)
            else:
                weight, bias = _fit_weights(kind, X_train, y_train, C, num_classes)
            with torch.no_grad():
                member.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
                member.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
                dev_scores = member.scores(dev[0], dev[1])
            if multi_label:
                scale = fit_scale(dev_scores, torch.as_tensor(y_dev), multi_label=True)
                score = output.macro_f1_at_best_cut(torch.sigmoid(scale * dev_scores), torch.as_tensor(y_dev))
            else:
                score = float((dev_scores.argmax(dim=1).numpy() == y_dev).mean())
            if best is None or score > best[0]:
                best = (score, C, member.weight.clone(), member.bias.clone(), dev_scores)
        _, C, weight, bias, dev_scores = best
        with torch.no_grad():
            member.weight.copy_(weight)
            member.bias.copy_(bias)
        scale = fit_scale(dev_scores, torch.as_tensor(y_dev), multi_label=multi_label)
        member.config = LinearConfig(kind, vocab_size, num_classes, features, C, scale, multi_label)
        return member.eval()


def _count_matrix(ids: torch.Tensor, lengths: torch.Tensor, keys: torch.Tensor, vocab_size: int):
    """Rows x features counts (scipy CSR) of the n-grams found in `keys`."""
    from scipy.sparse import csr_matrix

    rows, found_keys = ngram_keys(ids, lengths, vocab_size)
    where = torch.searchsorted(keys, found_keys).clamp_max(len(keys) - 1)
    found = keys[where] == found_keys
    data = np.ones(int(found.sum()))
    matrix = csr_matrix((data, (rows[found].numpy(), where[found].numpy())), shape=(ids.shape[0], len(keys)))
    matrix.sum_duplicates()
    return matrix


def _char_matrix(table: CharTable, ids: torch.Tensor, lengths: torch.Tensor):
    """Rows x character n-gram counts (scipy CSR): each row the sum of its tokens' table rows."""
    from scipy.sparse import csr_matrix

    rows, _, feature, count = table.occurrences(ids, lengths)
    matrix = csr_matrix(
        (count.double().numpy(), (rows.numpy(), feature.numpy())), shape=(ids.shape[0], len(table))
    )
    matrix.sum_duplicates()
    return matrix


def _idf(X_counts) -> np.ndarray:
    """scikit-learn's smooth idf: ln((1 + n) / (1 + df)) + 1."""
    n = X_counts.shape[0]
    df = np.bincount(X_counts.indices, minlength=X_counts.shape[1])
    return np.log((1 + n) / (1 + df)) + 1


def _fit_weights(kind: str, X, y: np.ndarray, C: float, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(weight (F, C), bias (C,)) of the fitted model's decision function over X's columns."""
    if kind == "nbsvm":
        from textcnn.model.linear import NBSVM

        model = NBSVM(C=C).fit(X, y)
        columns = [r * w for r, w in zip(model.ratios_, model.weights_, strict=True)]
        weight, bias = np.column_stack(columns), np.asarray(model.biases_)
        classes = model.classes_
    else:
        from sklearn.feature_extraction.text import TfidfTransformer
        from sklearn.linear_model import LogisticRegression

        features = TfidfTransformer(sublinear_tf=True).fit_transform(X)
        model = LogisticRegression(C=C, max_iter=2000).fit(features, y)
        weight, bias, classes = model.coef_.T, model.intercept_, model.classes_
    if weight.shape[1] == 1:  # binary: one score s for the second class -> (−s/2, +s/2)
        weight, bias = np.hstack([-weight / 2, weight / 2]), np.array([-bias[0] / 2, bias[0] / 2])
        classes = np.arange(2)
    full_weight = np.zeros((X.shape[1], num_classes))
    full_bias = np.full(num_classes, -1e4)  # a class missing from the training texts is never predicted
    full_weight[:, classes], full_bias[classes] = weight, bias
    return full_weight, full_bias


def _fit_one_vs_rest(kind: str, X, Y: np.ndarray, C: float) -> tuple[np.ndarray, np.ndarray]:
    """(weight (F, C), bias (C,)): one binary model per label column of Y (N, C) against the rest."""
    weight, bias = np.zeros((X.shape[1], Y.shape[1])), np.full(Y.shape[1], -1e4)
    for c in range(Y.shape[1]):
        if 0 < Y[:, c].sum() < len(Y):  # a label on no (or every) training row stays off (on)
            w, b = _fit_weights(kind, X, Y[:, c].astype(np.int64), C, 2)
            weight[:, c], bias[c] = w[:, 1] - w[:, 0], b[1] - b[0]
        elif Y[:, c].sum():
            bias[c] = 1e4
    return weight, bias


def fit_scale(
    scores: torch.Tensor, labels: torch.Tensor, steps: int = 60, multi_label: bool = False
) -> float:
    """The positive factor a minimizing the log loss of softmax(a · scores) (sigmoid per label for
    `multi_label`, labels then 0/1 rows) (a convex problem in log a is not guaranteed, so a
    bracketed golden-section search over log a in [e^-6, e^6])."""
    scores = scores.double()

    def loss(log_scale: float) -> float:
        if multi_label:
            return float(output.loss(scores * np.exp(log_scale), labels, True).mean())
        return float(torch.nn.functional.cross_entropy(scores * np.exp(log_scale), labels))

    low, high = -6.0, 6.0
    ratio = (np.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = loss(a), loss(b)
    for _ in range(steps):
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = loss(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = loss(b)
    return float(np.exp((low + high) / 2))
