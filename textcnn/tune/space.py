"""What `textcnn tune` searches: the space, read from the defaults or a `--space` file, and checked.

A space is a dict of dimensions. Each is a list of values to choose from, or a range
`{"low": a, "high": b}` (maps: whole numbers; lr: log-uniform; dropout: uniform):

    pooling:  arms of the pooling registry, as the study names them (max, avg, kmax:3, local-max:3,
              learned, ...: `textcnn.study.arms`)
    widths:   filter widths: a width (3), or a combination ("3,4,5" or [3, 4, 5])
    maps:     feature maps per width
    dropout:  dropout rate on the pooled vector, in [0, 1)
    lr:       the optimizer's rate (Adadelta: 1.0 is Kim's)
    variant:  rand | static | non-static | multichannel (anything but rand needs --vectors)
    combinations: true | false: after the single widths, Zhang & Wallace's combinations around the
              best one (the tune's second stage)
    tokenizer: tokenizers of the registry, as `--tokenizer` takes them (unicode, subword:vocab=4000,
              ...); left out: not searched, every trial reads with the command's tokenizer

Values are kept as strings or numbers, never lists: a searcher (Optuna) takes categorical values of
those kinds only, and a combination's name is what the report shows. This module imports neither
torch nor ray: `textcnn tune --help` and a bad space file answer at once.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from textcnn.errors import ConfigError
from textcnn.study.arms import arm_options

# Zhang & Wallace (2015), Section 5's advice: line-search single region sizes from 1 to 10, then
# combinations of sizes near the best one; the pooling registry's poolings, with their usual numbers.
DEFAULT_POOLINGS = (
    "max",
    "avg",
    "kmax:3",
    "kmax:5",
    "logsumexp",
    "max+avg",
    "chunk-max",
    "local-max:3",
    "learned",
)
SINGLE_WIDTHS = tuple(str(w) for w in range(1, 11))
DEFAULT_MAPS = (100, 200, 300, 400, 500, 600)  # Zhang & Wallace: 100 to 600
DEFAULT_DROPOUT = {"low": 0.0, "high": 0.5}  # Zhang & Wallace: 0 to 0.5
DEFAULT_LR = {"adadelta": {"low": 0.25, "high": 2.0}, "adam": {"low": 1e-4, "high": 3e-3}}
PRETRAINED_VARIANTS = ("non-static", "static", "multichannel")
KEYS = ("pooling", "widths", "maps", "dropout", "lr", "variant", "combinations", "tokenizer")


@dataclass(frozen=True)
class Space:
    """A checked space: each dimension a tuple of choices or a (low, high) range."""

    pooling: tuple[str, ...]
    widths: tuple[str, ...]
    maps: tuple[int, ...] | tuple[int, int, str]
    dropout: tuple[float, ...] | tuple[float, float, str]
    lr: tuple[float, ...] | tuple[float, float, str]
    variant: tuple[str, ...]
    combinations: bool = True
    tokenizer: tuple[str, ...] = ()  # () : the command's tokenizer for every trial (not searched)

    def to_json(self) -> dict:
        def shown(values):
            if len(values) == 3 and values[2] == "range":
                return {"low": values[0], "high": values[1]}
            return list(values)

        return {
            "pooling": list(self.pooling),
            "widths": list(self.widths),
            "maps": shown(self.maps),
            "dropout": shown(self.dropout),
            "lr": shown(self.lr),
            "variant": list(self.variant),
            "combinations": self.combinations,
        } | ({"tokenizer": list(self.tokenizer)} if self.tokenizer else {})

    @property
    def single_widths(self) -> bool:
        """Whether stage 1 searches single widths only, so that stage 2's combinations make sense."""
        return all("," not in w for w in self.widths)


def default_space(vectors: bool, optimizer: str = "adadelta") -> dict:
    """The default space as a `--space` file would write it."""
    return {
        "pooling": list(DEFAULT_POOLINGS),
        "widths": list(SINGLE_WIDTHS),
        "maps": list(DEFAULT_MAPS),
        "dropout": dict(DEFAULT_DROPOUT),
        "lr": dict(DEFAULT_LR[optimizer]),
        "variant": list(PRETRAINED_VARIANTS) if vectors else ["rand"],
        "combinations": True,
    }


def widths_name(widths) -> str:
    """A combination's name: "3,4,5" from 3,4,5 / [3, 4, 5] / "3, 4, 5"."""
    if isinstance(widths, bool):
        raise ValueError(widths)
    if isinstance(widths, int):
        parts = [widths]
    elif isinstance(widths, str):
        parts = [int(p) for p in widths.replace(" ", "").split(",")]
    elif isinstance(widths, list | tuple):
        parts = [int(p) if not isinstance(p, bool) else _bad(p) for p in widths]
    else:
        raise ValueError(widths)
    if not parts or min(parts) < 1:
        raise ValueError(widths)
    return ",".join(str(p) for p in parts)


def _bad(value):
    raise ValueError(value)


def parse_widths(name: str) -> tuple[int, ...]:
    return tuple(int(w) for w in name.split(","))


def combinations_around(best: int) -> tuple[str, ...]:
    """Zhang & Wallace's second step: combinations of region sizes near the best single one
    (their Table 6 for a best of 7: 7,7,7; 7,7,7,7; 5,6,7; 6,7,8; 7,8,9 ...), and the size alone."""
    near = [
        (best,),
        (best, best),
        (best, best, best),
        (best, best, best, best),
        (best - 1, best, best + 1),
        (best - 2, best - 1, best),
        (best, best + 1, best + 2),
        (best - 1, best, best + 1, best + 2),
    ]
    kept = [c for c in near if min(c) >= 1]
    return tuple(dict.fromkeys(",".join(map(str, c)) for c in kept))


def _choices(key: str, value, convert, valid, problem: str):
    """A list of choices, or a {low, high} range; every value converted and checked."""
    if isinstance(value, dict):
        if set(value) != {"low", "high"}:
            raise ConfigError(f"{key}: a range is {{low: A, high: B}}, got keys {sorted(value)}")
        low, high = (
            _value(key, value["low"], convert, valid, problem),
            _value(key, value["high"], convert, valid, problem),
        )
        if not low < high:
            raise ConfigError(f"{key}: a range needs low < high, got {low} and {high}")
        return (low, high, "range")
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(f"{key}: needs at least one value")
    return tuple(dict.fromkeys(_value(key, v, convert, valid, problem) for v in values))


def _value(key: str, value, convert, valid, problem: str):
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        converted = convert(value)
    except ConfigError as exc:  # the arm grammar's own words (`textcnn.study.arms`)
        raise ConfigError(f"{key}: {exc}") from None
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: {value!r} is not {problem}") from None
    if not valid(converted):
        raise ConfigError(f"{key}: {value!r} is not {problem}")
    return converted


def _arm(value) -> str:
    if not isinstance(value, str):
        raise ValueError(value)
    options = arm_options(value)  # a ConfigError names the arm
    if options.get("convolution") is False:
        raise ValueError(value)
    return value


def check_space(data: dict, vectors: bool, optimizer: str = "adadelta", source: str = "the space") -> Space:
    """A `Space` from a dict (a file's contents or the defaults); a bad one is one error naming the key.
    Keys left out keep their defaults."""
    from textcnn.model.variants import VARIANTS

    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a space is a mapping of {', '.join(KEYS)}, got {type(data).__name__}")
    unknown = [k for k in data if k not in KEYS]
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r}; a space has {', '.join(KEYS)}")
    merged = default_space(vectors, optimizer) | data
    try:
        pooling = _choices("pooling", merged["pooling"], _arm, lambda v: True, "a pooling arm")
        if isinstance(merged["widths"], dict):
            raise ConfigError("widths: a list of widths or combinations, not a range")
        widths = _choices(
            "widths", merged["widths"], widths_name, lambda v: True, "a width or a combination such as 3,4,5"
        )
        maps = _choices("maps", merged["maps"], _whole, lambda v: v >= 1, "a positive whole number")
        dropout = _choices("dropout", merged["dropout"], float, lambda v: 0.0 <= v < 1.0, "a rate in [0, 1)")
        lr = _choices("lr", merged["lr"], float, lambda v: v > 0 and math.isfinite(v), "a positive rate")
        if isinstance(merged["variant"], dict):
            raise ConfigError("variant: a list of variants, not a range")
        variant = _choices("variant", merged["variant"], str, lambda v: v in VARIANTS, f"one of {VARIANTS}")
        if not isinstance(merged["combinations"], bool):
            raise ConfigError(f"combinations: true or false, got {merged['combinations']!r}")
        tokenizer = ()
        if merged.get("tokenizer") is not None:
            if isinstance(merged["tokenizer"], dict):
                raise ConfigError("tokenizer: a list of tokenizers, not a range")
            tokenizer = _choices("tokenizer", merged["tokenizer"], _tokenizer, lambda v: True, "a tokenizer")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    pretrained = [v for v in variant if v != "rand"]
    if pretrained and not vectors:
        raise ConfigError(f"{source}: variant: {pretrained[0]} needs pretrained vectors (--vectors)")
    return Space(pooling, widths, maps, dropout, lr, variant, merged["combinations"], tokenizer)


def _tokenizer(value) -> str:
    """A tokenizer as `--tokenizer` spells it, checked against the registry (`textcnn.data.tokenizers`)."""
    from textcnn.data.tokenizers import TokenizerConfig

    if not isinstance(value, str):
        raise ValueError(value)
    return str(TokenizerConfig.parse(value))  # a ConfigError names the tokenizer or option


def _whole(value) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    return int(value)


def load_space(path: str | Path, vectors: bool, optimizer: str = "adadelta") -> Space:
    """A `--space` file (YAML or JSON), checked; every problem is one line naming the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--space {path}: cannot read it ({exc.strerror or exc})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--space {path}: not JSON (line {exc.lineno}: {exc.msg})") from None
    else:
        try:
            import yaml
        except ImportError:
            raise ConfigError(
                f"--space {path}: a YAML space needs PyYAML (pip install pyyaml), or use JSON"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise ConfigError(f"--space {path}: not YAML{where}") from None
    return check_space(data if data is not None else {}, vectors, optimizer, f"--space {path}")
