"""A study's arms: what an arm name such as `kmax:5` or `avg:no-conv` means as model options.

An arm is a pooling of the registry (`textcnn.model.pooling`), optionally with the one number its
pooling takes, optionally without the convolution. The name is kept as typed: it is the `pooling`
of the arm's rows in results.jsonl and the report.
"""

from __future__ import annotations

import re

from textcnn.errors import ConfigError

REFERENCE = "max"  # every other pooling is compared with max-over-time
NO_CONV = ":no-conv"  # an arm "<arm>:no-conv" pools the word vectors themselves (no convolution)
PADDED = "padded-avg"  # beside avg, it says what averaging over padding costs


# An arm's number: kmax's k, a local pooling's region (`kmax` alone keeps k = 3, `local-max` r = 3).
ARM_NUMBERS = {
    "kmax": ("kmax_k", "k"),
    "local-max": ("region", "the region"),
    "local-avg": ("region", "the region"),
}
ARM_GRAMMAR = (
    "an arm is POOLING, kmax:K, local-max:R or local-avg:R (K, R >= 1), each optionally followed by :no-conv"
)


def arm_options(arm: str) -> dict:
    """Model options of a study arm: `POOLING`, or `POOLING:N` for the poolings of `ARM_NUMBERS`
    (`kmax:5`, `local-max:10`), either followed by `:no-conv` for the ablation (`local-max:3:no-conv`).
    The arm's name is kept as typed: it is the `pooling` of its rows in results.jsonl and the report."""
    from textcnn.model.variants import POOLINGS

    name, options = arm, {}
    if name.endswith(NO_CONV):
        name, options = name[: -len(NO_CONV)], {"convolution": False}
    pooling, colon, number = name.partition(":")
    if pooling not in POOLINGS:
        raise ConfigError(f"unknown pooling {pooling} in arm {arm!r}")
    if colon:
        if pooling not in ARM_NUMBERS:
            raise ConfigError(f"arm {arm!r}: {pooling} takes no number (only {', '.join(ARM_NUMBERS)} do)")
        field, meaning = ARM_NUMBERS[pooling]
        if re.fullmatch(r"[1-9][0-9]*", number) is None:
            raise ConfigError(f"arm {arm!r}: {meaning} must be a positive integer, got {number!r}")
        options[field] = int(number)
    return {"pooling": pooling, **options}
