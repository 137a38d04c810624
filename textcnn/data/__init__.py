"""The data layer: labelled sentences in, the train/dev/test arrangements to run and their encoding out.

`registry` holds Kim (2014)'s benchmarks (labels, splits, casing, his accuracies) and finds their
folders; `files` reads JSON Lines, CSV and TSV with one-line errors naming the file and line;
`hub` reads Hugging Face `datasets` (Hub ids, saved or local datasets); `corpus` picks the loader
for what the user named (`load_corpus`); `splits` holds the types they return (`LabeledTexts`,
`Corpus`, `Fold`); `folds` applies Kim's protocols (10-fold cross-validation or the fixed splits,
with dev held out where none exists); `tokenizers` is the tokenizer registry (`kim`, `unicode`,
`subword`); `text` builds the vocabulary, encodes batches and measures coverage; `vectors` loads
pretrained word vectors. A corpus is never copied into this repository: it is read
at run time from `--data-dir` or `$TEXTCNN_DATA_DIR`, or fetched from the Hub.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textcnn.lazy import lazy_getattr

# Public names are imported on first use (PEP 562), so `import textcnn.data` (for `textcnn
# datasets` and `--help`) does not pay for importing torch, which `text` and `vectors` need.
_EXPORTS = {
    "Corpus": "textcnn.data.splits",
    "Fold": "textcnn.data.splits",
    "LabeledTexts": "textcnn.data.splits",
    "DATA_DIR_ENV": "textcnn.data.registry",
    "REGISTRY": "textcnn.data.registry",
    "DatasetSpec": "textcnn.data.registry",
    "dataset_status": "textcnn.data.registry",
    "resolve_data_dir": "textcnn.data.registry",
    "load_files": "textcnn.data.files",
    "read_labeled_file": "textcnn.data.files",
    "corpus_from_hf": "textcnn.data.hub",
    "load_hub": "textcnn.data.hub",
    "load_local": "textcnn.data.hub",
    "load_corpus": "textcnn.data.corpus",
    "load_registered": "textcnn.data.corpus",
    "make_folds": "textcnn.data.folds",
    "PAD_ID": "textcnn.data.text",
    "UNK_ID": "textcnn.data.text",
    "Batch": "textcnn.data.text",
    "TextEncoder": "textcnn.data.text",
    "Vocabulary": "textcnn.data.text",
    "similar_length_chunks": "textcnn.data.text",
    "TokenizerReport": "textcnn.data.text",
    "coverage": "textcnn.data.text",
    "TOKENIZERS": "textcnn.data.tokenizers",
    "TokenizerConfig": "textcnn.data.tokenizers",
    "TokenizerEntry": "textcnn.data.tokenizers",
    "register_tokenizer": "textcnn.data.tokenizers",
    "load_pretrained": "textcnn.data.vectors",
}
__all__ = [  # noqa: RUF022 - the data types first, then by module
    "Corpus",
    "Fold",
    "LabeledTexts",
    "DATA_DIR_ENV",
    "REGISTRY",
    "DatasetSpec",
    "dataset_status",
    "resolve_data_dir",
    "load_files",
    "read_labeled_file",
    "corpus_from_hf",
    "load_hub",
    "load_local",
    "load_corpus",
    "load_registered",
    "make_folds",
    "PAD_ID",
    "UNK_ID",
    "Batch",
    "TextEncoder",
    "Vocabulary",
    "similar_length_chunks",
    "TokenizerReport",
    "coverage",
    "TOKENIZERS",
    "TokenizerConfig",
    "TokenizerEntry",
    "register_tokenizer",
    "load_pretrained",
]

if TYPE_CHECKING:
    from textcnn.data.corpus import load_corpus, load_registered
    from textcnn.data.files import load_files, read_labeled_file
    from textcnn.data.folds import make_folds
    from textcnn.data.hub import corpus_from_hf, load_hub, load_local
    from textcnn.data.registry import DATA_DIR_ENV, REGISTRY, DatasetSpec, dataset_status, resolve_data_dir
    from textcnn.data.splits import Corpus, Fold, LabeledTexts
    from textcnn.data.text import (
        PAD_ID,
        UNK_ID,
        Batch,
        TextEncoder,
        TokenizerReport,
        Vocabulary,
        coverage,
        similar_length_chunks,
    )
    from textcnn.data.tokenizers import TOKENIZERS, TokenizerConfig, TokenizerEntry
    from textcnn.data.tokenizers import register as register_tokenizer
    from textcnn.data.vectors import load_pretrained


__getattr__ = lazy_getattr(__name__, _EXPORTS, {"register_tokenizer": "register"})
