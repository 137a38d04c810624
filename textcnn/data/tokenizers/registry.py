"""The tokenizer registry: one entry per tokenizer, and nothing else keeps a list of tokenizers.

An entry (`TokenizerEntry`) is all the rest of the project needs to know of a tokenizer: its name
and one-line summary (`--help`, the card, /info), what it is for (the README's advice), its
options with their defaults and checks, whether it is learned from the training texts, and how to
build it. The CLI's `--tokenizer` choices, tune, the study and the bundle loader all read the
registry, so a new tokenizer is one `register(TokenizerEntry(...))` (see `catalog.py`) plus its tests.

A choice of tokenizer is a `TokenizerConfig`: the entry's name and every option's value, written
`NAME` or `NAME:OPTION=VALUE,...` on the command line (`subword:model=bpe,vocab=8000`). It is
hashable and JSON-able, so `RunSettings`, study plans and bundles can hold it.

Importing this module imports no tokenizer library (`regex`, `tokenizers`): `textcnn --help`
reads the registry and answers at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textcnn.errors import ConfigError

if TYPE_CHECKING:
    from textcnn.data.tokenizers.base import Tokenizer


@dataclass(frozen=True)
class Option:
    """One option of a tokenizer: its name, its type (bool, int or str), default, help, and checks."""

    name: str
    default: bool | int | str
    help: str
    choices: tuple[str, ...] | None = None
    minimum: int | None = None

    def parse(self, value: Any, tokenizer: str) -> bool | int | str:
        """`value` (a string from the command line, or a JSON value) as this option's type, checked."""
        kind = type(self.default)
        where = f"tokenizer {tokenizer!r}: option {self.name}"
        if kind is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered not in _BOOLEANS:
                    raise ConfigError(f"{where} is on or off (true/false), got {value!r}")
                value = _BOOLEANS[lowered]
            if not isinstance(value, bool):
                raise ConfigError(f"{where} is true or false, got {value!r}")
        elif kind is int:
            if isinstance(value, str):
                try:
                    value = int(value.strip())
                except ValueError:
                    raise ConfigError(f"{where} must be an integer, got {value!r}") from None
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{where} must be an integer, got {value!r}")
            if self.minimum is not None and value < self.minimum:
                raise ConfigError(f"{where} must be >= {self.minimum}, got {value}")
        elif not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{where} is one of {', '.join(self.choices)}, got {value!r}")
        return value


_BOOLEANS = {
    "true": True,
    "on": True,
    "yes": True,
    "1": True,
    "false": False,
    "off": False,
    "no": False,
    "0": False,
}


@dataclass(frozen=True)
class TokenizerEntry:
    """One tokenizer. `make(options)` builds it from every option's value (a learned one unfitted:
    `Tokenizer.fit` learns it from the training texts, `Tokenizer.restore` from its bundle files)."""

    name: str
    summary: str  # one line: --help, the card, /info
    use: str  # what it is for, in a sentence (README, --help)
    make: Callable[[dict[str, Any]], Tokenizer]
    options: tuple[Option, ...] = ()
    learned: bool = False  # fitted on the training split (its state then travels in the bundle)

    def option(self, name: str) -> Option:
        for option in self.options:
            if option.name == name:
                return option
        known = ", ".join(o.name for o in self.options) or "none"
        raise ConfigError(f"tokenizer {self.name!r} has no option {name!r} (its options: {known})")


_REGISTRY: dict[str, TokenizerEntry] = {}


def register(entry: TokenizerEntry) -> TokenizerEntry:
    """Add a tokenizer; `--tokenizer`, tune, the study and bundles take it from then on."""
    if entry.name in _REGISTRY:
        raise ValueError(f"a tokenizer named {entry.name!r} is already registered")
    if ":" in entry.name or "," in entry.name or not entry.name:
        raise ValueError(f"a tokenizer's name has no ':' or ',': {entry.name!r}")
    _REGISTRY[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove a tokenizer (tests register throw-away ones); bundles that use it no longer load."""
    del _REGISTRY[name]


def get_tokenizer_entry(name: str) -> TokenizerEntry:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown tokenizer {name!r}; choose one of {', '.join(_REGISTRY)}") from None


class _Names(Sequence[str]):
    """The registered names, read at each use, in registration order."""

    def _names(self) -> tuple[str, ...]:
        return tuple(_REGISTRY)

    def __getitem__(self, index):
        return self._names()[index]

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name: object) -> bool:
        return name in _REGISTRY

    def __repr__(self) -> str:
        return repr(self._names())


TOKENIZERS: Sequence[str] = _Names()


def describe() -> str:
    """Every tokenizer with its summary and options, for `--help`."""
    parts = []
    for name, entry in _REGISTRY.items():
        options = ", ".join(f"{o.name}={_shown(o.default)}" for o in entry.options)
        parts.append(f"{name}: {entry.summary}" + (f" (options {options})" if options else ""))
    return "; ".join(parts)


def _shown(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class TokenizerConfig:
    """A tokenizer chosen: its registered name and the value of every option (defaults filled in)."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        entry = get_tokenizer_entry(self.name)
        given = dict(self.options)
        if len(given) != len(self.options):
            raise ConfigError(f"tokenizer {self.name!r}: an option is given twice")
        values = {
            o.name: o.parse(given.pop(o.name), self.name) if o.name in given else o.default
            for o in entry.options
        }
        if given:
            entry.option(sorted(given)[0])  # raises, naming the options it has
        object.__setattr__(self, "options", tuple(values.items()))

    @classmethod
    def of(cls, name: str, **options: Any) -> TokenizerConfig:
        return cls(name, tuple(options.items()))

    @classmethod
    def parse(cls, text: str) -> TokenizerConfig:
        """`NAME` or `NAME:OPTION=VALUE,OPTION=VALUE` (the command line's `--tokenizer`)."""
        name, _, rest = text.strip().partition(":")
        options = []
        for part in (p.strip() for p in rest.split(",")):
            if not part:
                continue
            key, equals, value = part.partition("=")
            if not equals or not key.strip():
                raise ConfigError(f"tokenizer {text!r}: options are OPTION=VALUE, got {part!r}")
            options.append((key.strip(), value.strip()))
        return cls(name.strip(), tuple(options))

    def get(self, option: str) -> Any:
        return dict(self.options)[option]

    def replace(self, **options: Any) -> TokenizerConfig:
        """The same tokenizer with some options changed (only those it has)."""
        entry = get_tokenizer_entry(self.name)
        for name in options:
            entry.option(name)
        return TokenizerConfig(self.name, tuple((dict(self.options) | options).items()))

    def has(self, option: str) -> bool:
        return option in dict(self.options)

    @property
    def entry(self) -> TokenizerEntry:
        return get_tokenizer_entry(self.name)

    @property
    def learned(self) -> bool:
        return self.entry.learned

    def build(self) -> Tokenizer:
        """A new tokenizer of this choice (unfitted, if it is a learned one)."""
        return self.entry.make(dict(self.options))

    def to_json(self) -> dict:
        return {"name": self.name, **dict(self.options)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TokenizerConfig:
        if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
            raise ConfigError(f"a tokenizer is a JSON object with a name, got {data!r}")
        return cls(data["name"], tuple((k, v) for k, v in data.items() if k not in ("name", "files")))

    def __str__(self) -> str:
        entry = get_tokenizer_entry(self.name)
        changed = [f"{k}={_shown(v)}" for k, v in self.options if v != entry.option(k).default]
        return self.name + (":" + ",".join(changed) if changed else "")
