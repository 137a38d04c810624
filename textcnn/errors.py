"""Errors a user can act on.

Library code raises these with a message meant for a person (naming the file, line or flag at
fault); the CLI prints the message on one line and exits non-zero, the service maps it to a 4xx.
Anything else escaping the library is a bug, and is allowed to show its traceback.
"""


class TextCNNError(Exception):
    """Base class: the message alone tells the user what is wrong and where."""


class ConfigError(TextCNNError, ValueError):
    """A configuration value is out of range or inconsistent with another."""


class DataError(TextCNNError):
    """A data file or dataset cannot be read as labelled sentences."""


class DataWarning(UserWarning):
    """Data was read, but not all of it: rows were left out (which, and where, in the message).

    A warning, not an error, because the rest of the data is usable and refusing it helps no one
    (real benchmark files hold a few empty rows); `--strict-rows` turns the case into a DataError.
    The CLI prints it as one `textcnn: warning: ...` line.
    """


class VectorsError(TextCNNError):
    """A pretrained-vectors file or named source cannot be read."""


class BundleError(TextCNNError):
    """A model bundle is missing, incomplete, corrupted or from an incompatible version."""
