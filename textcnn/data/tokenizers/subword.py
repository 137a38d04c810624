"""`subword`: a Unigram or BPE model (Hugging Face `tokenizers`) learned from the training split.

Words are first cut and normalized exactly as `unicode` cuts them, except that runs of a script
written without spaces stay whole (`characters=false`), so the model can learn pieces that span
several Chinese or Japanese characters. Each word is then split into pieces, SentencePiece-style
(a piece starting a word carries `▁`): a rare or unseen inflection still shares its stem's pieces
with the training texts, where a whole-word vocabulary maps it to `<unk>`. The model is trained
once per training split (`fit`), on those words only (never on dev or test), and its
`tokenizer.json` travels in the bundle, its sha256 checked when the bundle loads.

A piece's span is its share of its word's span where normalizing the word changed it character by
character (nearly always: casefolding, full-width forms), else the whole word's span (NFKC composed
"o" + U+0308 into "ö", expanded "ß", or reordered combining marks: no offset maps back then).
"""

from __future__ import annotations

from collections.abc import Iterable

from textcnn.data.tokenizers.base import Token, Tokenizer
from textcnn.data.tokenizers.unicode import UnicodeTokenizer, normalize
from textcnn.errors import BundleError, ConfigError

TOKENIZER_FILE = "tokenizer.json"
UNK_PIECE = "<unk>"  # the vocabulary's own <unk>: a piece the model never saw is unknown to both


class SubwordTokenizer(Tokenizer):
    name = "subword"

    def __init__(self, options):
        super().__init__(options)
        self.words = UnicodeTokenizer({"lowercase": options["lowercase"], "characters": False})
        self.model_kind = options["model"]
        self.vocab_size = int(options["vocab"])
        self._model = None  # a tokenizers.Tokenizer once fitted or restored

    @property
    def fitted(self) -> bool:
        return self._model is not None

    def fit(self, texts: Iterable[str]) -> None:
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import models, pre_tokenizers, trainers

        if self.model_kind == "bpe":
            model = HFTokenizer(models.BPE(unk_token=UNK_PIECE))
            trainer = trainers.BpeTrainer(
                vocab_size=self.vocab_size, special_tokens=[UNK_PIECE], show_progress=False
            )
        else:
            model = HFTokenizer(models.Unigram())
            trainer = trainers.UnigramTrainer(
                vocab_size=self.vocab_size,
                special_tokens=[UNK_PIECE],
                unk_token=UNK_PIECE,
                show_progress=False,
            )
        model.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always", split=True)
        lines = (" ".join(self.words.split(text)) for text in texts)
        try:
            model.train_from_iterator((line for line in lines if line), trainer=trainer)
        except (
            Exception
        ) as exc:  # tokenizers raises a bare Exception ("not large enough to contain all chars")
            raise ConfigError(
                f"--tokenizer subword:model={self.model_kind},vocab={self.vocab_size}: the tokenizers library "
                f"could not learn it ({exc}); ask for more pieces (vocab=N) or model=bpe"
            ) from None
        if model.get_vocab_size() <= 1:
            raise ConfigError("--tokenizer subword: the training texts gave no pieces to learn")
        self._model = model

    def files(self) -> dict[str, bytes]:
        if self._model is None:
            raise ConfigError("the subword tokenizer is not fitted: nothing to save")
        return {TOKENIZER_FILE: self._model.to_str().encode("utf-8")}

    def restore(self, files: dict[str, bytes]) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        if TOKENIZER_FILE not in files:
            raise BundleError(f"the subword tokenizer needs {TOKENIZER_FILE}")
        try:
            self._model = HFTokenizer.from_str(files[TOKENIZER_FILE].decode("utf-8"))
        except Exception as exc:  # tokenizers raises its own Exception subclass for a bad file
            raise BundleError(f"{TOKENIZER_FILE}: not a readable tokenizers file ({exc})") from None

    def _model_or_raise(self):
        if self._model is None:
            raise ConfigError("the subword tokenizer is not fitted: fit it on the training texts first")
        return self._model

    def split(self, text: str) -> list[str]:
        words = self.words.split(text)
        if not words:
            return []
        return self._model_or_raise().encode(words, is_pretokenized=True, add_special_tokens=False).tokens

    def tokenize(self, text: str) -> list[Token]:
        words = self.words.tokenize(text)
        if not words:
            return []
        encoding = self._model_or_raise().encode(
            [w.text for w in words], is_pretokenized=True, add_special_tokens=False
        )
        aligned = [self._aligned(text[w.start : w.end], w.text) for w in words]
        out = []
        for piece, word_id, (start, end) in zip(
            encoding.tokens, encoding.word_ids, encoding.offsets, strict=True
        ):
            word = words[word_id]
            if aligned[word_id]:  # offsets into the normalized word are the original's
                out.append(Token(piece, word.start + start, word.start + end))
            else:
                out.append(Token(piece, word.start, word.end))
        return out

    def _aligned(self, original: str, normalized: str) -> bool:
        """Whether the word was normalized character by character, so that offsets carry over."""
        if original == normalized:
            return True
        if len(original) != len(normalized):
            return False
        lowercase = self.words.lowercase
        return all(normalize(c, lowercase) == n for c, n in zip(original, normalized, strict=True))
