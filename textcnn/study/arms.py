"""A study's arms: what an arm name such as `kmax:5` or `avg:no-conv` means as model options.

An arm is a pooling of the registry (`textcnn.model.pooling`), optionally with the one number its
pooling takes, optionally without the convolution. The name is kept as typed: it is the `pooling`
of the arm's rows in results.jsonl and the report.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from textcnn.errors import ConfigError
from textcnn.model.pooling import NUMBERED_POOLINGS, PARAMETERS, POOLINGS, get_pooling

REFERENCE = "max"  # every other pooling is compared with max-over-time
NO_CONV = ":no-conv"  # an arm "<arm>:no-conv" pools the word vectors themselves (no convolution)
PADDED = "padded-avg"  # beside avg, it says what averaging over padding costs


def arm_grammar() -> str:
    """The arm names the registry allows, for error messages: a pooling with a number
    (`Pooling.number`: kmax's k, a local pooling's region) may take it after a colon."""
    numbered = [f"{name}:{PARAMETERS[get_pooling(name).number].letter}" for name in NUMBERED_POOLINGS]
    letters = ", ".join(dict.fromkeys(arm.rpartition(":")[2] for arm in numbered))
    forms = ", ".join(["POOLING", *numbered[:-1]]) + (
        f" or {numbered[-1]} ({letters} >= 1)" if numbered else ""
    )
    return f"an arm is {forms}, each optionally followed by :no-conv"


def arm_options(arm: str) -> dict:
    """Model options of a study arm: `POOLING`, or `POOLING:N` for a pooling that takes a number
    (`kmax:5`, `local-max:10`; plain `kmax` keeps k = 3, `local-max` r = 3), either followed by
    `:no-conv` for the ablation (`local-max:3:no-conv`). The arm's name is kept as typed: it is the
    `pooling` of its rows in results.jsonl and the report."""
    name, options = arm, {}
    if name.endswith(NO_CONV):
        name, options = name[: -len(NO_CONV)], {"convolution": False}
    pooling, colon, number = name.partition(":")
    if pooling not in POOLINGS:
        raise ConfigError(f"unknown pooling {pooling} in arm {arm!r}")
    if colon:
        field = get_pooling(pooling).number
        if field is None:
            raise ConfigError(
                f"arm {arm!r}: {pooling} takes no number (only {', '.join(NUMBERED_POOLINGS)} do)"
            )
        if re.fullmatch(r"[1-9][0-9]*", number) is None:
            meaning = PARAMETERS[field].meaning
            raise ConfigError(f"arm {arm!r}: {meaning} must be a positive integer, got {number!r}")
        options[field] = int(number)
    return {"pooling": pooling, **options}


def arms_legend(arms: Sequence[str]) -> list[str]:
    """One Markdown line per arm: its pooling's registered summary, with the arm's own number and
    whether it pools the word vectors without convolution, so a report says what each column is."""
    lines = []
    for arm in arms:
        options = arm_options(arm)
        pooling = get_pooling(options["pooling"])
        details = [
            f"{PARAMETERS[field].meaning.removeprefix('the ')} = {options[field]}"
            for field in pooling.reads
            if field in options
        ]
        if options.get("convolution") is False:
            details.append("no convolution: pooled over the word vectors")
        lines.append(f"- `{arm}`: {pooling.summary}" + (f" ({'; '.join(details)})" if details else ""))
    return lines
