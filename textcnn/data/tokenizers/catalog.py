"""The tokenizers shipped, one `register(...)` each; what each is for is its entry's `use`."""

from __future__ import annotations

from textcnn.data.tokenizers.registry import Option, TokenizerEntry, register


def _kim(options):
    from textcnn.data.tokenizers.kim import KimTokenizer

    return KimTokenizer(options)


def _unicode(options):
    from textcnn.data.tokenizers.unicode import UnicodeTokenizer

    return UnicodeTokenizer(options)


def _subword(options):
    from textcnn.data.tokenizers.subword import SubwordTokenizer

    return SubwordTokenizer(options)


LOWERCASE = Option("lowercase", True, "lowercase (casefold) before reading")

register(
    TokenizerEntry(
        name="kim",
        summary="Kim (2014)'s clean_str: ASCII letters, digits and a little punctuation; everything else dropped",
        use="the English benchmarks, so every published figure stays reproducible; reads ASCII English only",
        make=_kim,
        options=(LOWERCASE,),
    )
)
register(
    TokenizerEntry(
        name="unicode",
        summary="words of letters, marks and digits in any script, punctuation runs, whole emoji; "
        "Chinese, Japanese, Thai, Lao, Khmer and Myanmar one token per character; NFKC, URLs and @handles normalized",
        use="any language, no training: the default for your own data",
        make=_unicode,
        options=(
            LOWERCASE,
            Option(
                "characters",
                True,
                "one token per character in scripts written without spaces (false: such runs whole)",
            ),
        ),
    )
)
register(
    TokenizerEntry(
        name="subword",
        summary="a Unigram or BPE model (Hugging Face tokenizers) learned from the training split, "
        "over the unicode tokenizer's words",
        use="morphologically rich languages and noisy text, where many words are rare: unseen forms share pieces",
        make=_subword,
        options=(
            LOWERCASE,
            # BPE by default: its trainer gives the same pieces at every run, Unigram's (tokenizers 0.23)
            # not (three fits of one training split, three vocabularies), so a seed would not repeat a run.
            Option(
                "model",
                "bpe",
                "the subword model (unigram: not repeatable run to run)",
                choices=("bpe", "unigram"),
            ),
            Option("vocab", 8000, "most pieces to learn", minimum=50),
        ),
        learned=True,
    )
)
