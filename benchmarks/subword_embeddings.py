"""Does subword information in the embeddings help on these sets? A measurement, not a feature.

fastText (Bojanowski et al. 2017) gives each word the sum of its own vector and the vectors of its
hashed character n-grams (3 to 6 characters, the word wrapped in < and >), so rare and unseen
forms of a word share most of their vector with its common forms. The issue asked for it as an
option if it measurably helps here. This script answers that before any of it goes into the
model: the same small text CNN (CNN-rand, widths 3, 4, 5 x 100 maps, max pooling, dropout 0.5,
Adam, early stopping on dev macro-F1), trained with and without the n-gram vectors, on the UMSAB
languages, several seeds each, paired by seed. Words never seen in training get their n-gram
vectors only (fastText's behaviour), so the comparison includes what the option would do for
unseen words at prediction time, which a vocabulary-only model maps to <unk>.

    python benchmarks/subword_embeddings.py                      # fr, es, it, pt, de, en; 3 seeds
    python benchmarks/subword_embeddings.py --languages fr --seeds 1

Writes benchmarks/results/subword_embeddings.json; RESULTS.md has the table and the verdict.
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn

from textcnn.data.corpus import load_registered
from textcnn.data.tokenizers import TokenizerConfig
from textcnn.runtime import atomic_write_bytes, package_versions

RESULTS = Path(__file__).parent / "results" / "subword_embeddings.json"
BUCKETS = 100_000  # fastText uses 2M for large corpora; these sets have ~20k words


def ngrams(word: str, low: int = 3, high: int = 6) -> list[int]:
    wrapped = f"<{word}>"
    return [
        zlib.crc32(wrapped[i : i + n].encode()) % BUCKETS
        for n in range(low, high + 1)
        for i in range(len(wrapped) - n + 1)
    ]


class CNN(nn.Module):
    def __init__(self, vocab: int, classes: int, ngram_index: torch.Tensor | None, dim: int = 128):
        super().__init__()
        self.words = nn.Embedding(vocab, dim, padding_idx=0)
        nn.init.uniform_(self.words.weight, -0.25, 0.25)
        with torch.no_grad():
            self.words.weight[0].zero_()
        self.ngram_index = ngram_index  # (V, G) bucket ids + 1, 0 = none
        if ngram_index is not None:
            self.ngrams = nn.EmbeddingBag(BUCKETS + 1, dim, mode="mean", padding_idx=0)
            nn.init.uniform_(self.ngrams.weight, -0.25, 0.25)
        self.convs = nn.ModuleList(nn.Conv1d(dim, 100, w, padding=w - 1) for w in (3, 4, 5))
        self.dropout = nn.Dropout(0.5)
        self.out = nn.Linear(300, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.words(ids)  # (B, T, D)
        if self.ngram_index is not None:
            flat = self.ngram_index[ids.flatten()]  # (B*T, G)
            x = x + self.ngrams(flat).view(*ids.shape, -1) * (ids != 0)[..., None]
        x = x.transpose(1, 2)
        mask = ids != 0
        pooled = []
        for conv in self.convs:
            maps = torch.relu(conv(x))  # (B, F, T + w - 1)
            w = conv.kernel_size[0]
            real = nn.functional.pad(mask, (0, w - 1))  # windows starting at a real token
            for shift in range(1, w):
                real = real | nn.functional.pad(mask, (shift, w - 1 - shift))
            pooled.append(maps.masked_fill(~real[:, None, :], -1e4).max(dim=2).values)
        return self.out(self.dropout(torch.cat(pooled, dim=1)))


def encode(tokenized, index):
    width = max(5, max(len(t) for t in tokenized))
    ids = torch.zeros(len(tokenized), width, dtype=torch.long)
    for row, tokens in enumerate(tokenized):
        ids[row, : len(tokens)] = torch.as_tensor([index.get(t, 1) for t in tokens] or [1])
    return ids


MODES = ("none", "vocabulary", "all")  # no n-grams; n-grams of training words only; of every word


def run(language: str, seed: int, mode: str, data_dir: str | None) -> dict:
    subwords = mode != "none"
    corpus = load_registered(f"umsab-{language}", data_dir)
    tokenizer = TokenizerConfig.parse("unicode").build()
    parts = {
        s: [tokenizer.split(t) or ["<unk>"] for t in corpus.splits[s].texts] for s in ("train", "dev", "test")
    }
    labels = {
        s: torch.as_tensor([corpus.label_names.index(y) for y in corpus.splits[s].labels]) for s in parts
    }
    train_words = sorted({w for tokens in parts["train"] for w in tokens})
    # Every word gets an id; a word unseen in training keeps a zero, never-updated word vector, so with
    # subwords it is its n-grams alone (fastText), without them it reads as nothing but its position.
    unseen = sorted({w for s in ("dev", "test") for tokens in parts[s] for w in tokens} - set(train_words))
    words = ["<pad>", "<unk>", *train_words, *unseen]
    index = {w: i for i, w in enumerate(words)}
    ngram_index = None
    if subwords:
        seen = len(words) - len(unseen)  # "vocabulary": an unseen word reads as <unk>, as in a bundle
        grams = [
            [] if i < 2 or (mode == "vocabulary" and i >= seen) else [g + 1 for g in ngrams(w)]
            for i, w in enumerate(words)
        ]
        width = max(len(g) for g in grams)
        ngram_index = torch.zeros(len(words), width, dtype=torch.long)
        for i, g in enumerate(grams):
            ngram_index[i, : len(g)] = torch.as_tensor(g, dtype=torch.long)
    torch.manual_seed(seed)
    model = CNN(len(words), len(corpus.label_names), ngram_index)
    if mode != "all":
        with torch.no_grad():
            model.words.weight[len(words) - len(unseen) :].zero_()  # unseen words: <unk>-like, no vector
    ids = {s: encode(parts[s], index) for s in parts}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    best, best_state, waited = -1.0, None, 0
    for _epoch in range(20):
        model.train()
        for batch in torch.randperm(len(ids["train"]), generator=generator).split(50):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(ids["train"][batch]), labels["train"][batch])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            dev = f1_score(labels["dev"], model(ids["dev"]).argmax(1), average="macro")
        if dev > best:
            best, best_state, waited = dev, {k: v.clone() for k, v in model.state_dict().items()}, 0
        else:
            waited += 1
            if waited >= 4:
                break
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        test = f1_score(labels["test"], model(ids["test"]).argmax(1), average="macro")
    return {
        "language": language,
        "seed": seed,
        "ngrams": mode,
        "dev_macro_f1": best,
        "test_macro_f1": test,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--languages", default="fr,es,it,pt,de,en")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data-dir")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    started = time.perf_counter()
    for language in args.languages.split(","):
        for seed in range(args.seeds):
            for mode in MODES:
                rows.append(run(language, seed, mode, args.data_dir))
                print(json.dumps(rows[-1]), flush=True)
    by = {}
    for r in rows:
        by.setdefault((r["language"], r["ngrams"]), []).append(100 * r["test_macro_f1"])
    summary = {}
    for language in args.languages.split(","):
        plain = np.array(by[(language, "none")])
        summary[language] = {"none": round(float(plain.mean()), 2)}
        for mode in MODES[1:]:
            sub = np.array(by[(language, mode)])
            summary[language] |= {
                mode: round(float(sub.mean()), 2),
                f"{mode}_minus_none": round(float((sub - plain).mean()), 2),
                f"{mode}_minus_none_std": round(float((sub - plain).std(ddof=1)), 2)
                if len(plain) > 1
                else None,
            }
        print(language, summary[language], flush=True)
    for mode in MODES[1:]:
        summary[f"mean_{mode}_minus_none"] = round(
            float(np.mean([summary[lang][f"{mode}_minus_none"] for lang in args.languages.split(",")])), 2
        )
    record = {
        "machine": "2-core CPU (torch threads 1)",
        "versions": package_versions(),
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
        "summary": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, json.dumps(record, indent=2).encode())


if __name__ == "__main__":
    main()
