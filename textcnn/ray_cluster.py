"""Joining a Ray cluster for a command's `--ray [ADDRESS]` (`textcnn compare`, `textcnn tune`,
`textcnn predict`). At the root, beside `runtime.py`, so that every layer that runs on Ray
(`inference`'s file scoring as well as `study` and `tune`) may import it.

Ray is an optional extra; this module is imported only for `--ray`, and imports ray at once so that
a missing extra is one readable error before any work.

Token authentication (Ray 2.60 here; docs/ray.md). `ray start --head` turns it on when it finds a
token on the head: `RAY_AUTH_TOKEN`, the file `RAY_AUTH_TOKEN_PATH` names, or `~/.ray/auth_token`,
which any local `ray.init()` and `ray get-auth-token --generate` write. A driver sends a token only
when `RAY_AUTH_MODE=token` is set in its environment, except that for no address or `auto` Ray sets
it by itself where it finds a token. For an address given by hand it never does, on purpose: the
token would go to whatever host was typed. So `--ray HOST:PORT` to such a cluster without the
variable fails, after Ray's 20 s of retries, with a ConnectionError whose cause holds only the text
of the AuthenticationError ("InvalidAuthToken: Authentication token is missing or incorrect").
`connect` says that in one line, with the fix, and changes no setting: it does not set
`RAY_AUTH_MODE` itself, for Ray's own reason above.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from textcnn.errors import TextCNNError

try:
    import ray
except ImportError as exc:  # the extra is missing (or ray itself fails to import)
    cause = "" if exc.name == "ray" else f" (importing ray failed: {exc})"
    raise TextCNNError(f"--ray needs the ray extra: pip install 'textcnn[ray]'{cause}") from exc

# Ray without token authentication (before it came) has no AuthenticationError: nothing to catch.
AuthenticationError: type[Exception] | None = getattr(ray.exceptions, "AuthenticationError", None)
# How the refusal reads once Ray has turned the AuthenticationError into text (node.py keeps the
# last connection attempt's traceback as a string in a RuntimeError, the ConnectionError's cause).
REFUSED_MARKERS = ("InvalidAuthToken", "AuthenticationError:")
WHERE_TOKENS_ARE = "in ~/.ray/auth_token, in a file named by RAY_AUTH_TOKEN_PATH, or in RAY_AUTH_TOKEN"


class _NoTokenNotice(logging.Filter):
    """Drops Ray's notice, at every local start where a token exists, that token authentication is
    on (the secure default, which docs/ray.md explains): a line of noise per command here. Ray's
    warning that a cluster runs *without* authentication still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled")


def quiet_token_notice() -> None:
    """Install `_NoTokenNotice` on the logger Ray writes the notice with (once)."""
    notices = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _NoTokenNotice) for f in notices.filters):
        notices.addFilter(_NoTokenNotice())


def connect(address: str | None = None, flag: str = "--ray") -> None:
    """Join the cluster at `address` (`auto`: the one running on this machine); None: start or join
    a local one. A process that is connected already (a test, a notebook) keeps its connection.

    A failure is a TextCNNError of one line naming `flag` and the address: a cluster that asks for
    an authentication token this process does not send says so, and how to give it (see the module's
    docstring); anything else is "cannot reach the Ray cluster (the cause's first line)"."""
    if ray.is_initialized():
        return
    where = f"{flag} {address}" if address else flag
    caught = (ConnectionError,) if AuthenticationError is None else (ConnectionError, AuthenticationError)
    quiet_token_notice()
    try:
        ray.init(address=address or None)
    except caught as exc:
        auth = _auth_failure(exc)
        if auth is not None:
            raise TextCNNError(f"{where}: {_token_advice(address, flag, refused=auth == 'refused')}") from exc
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TextCNNError(f"{where}: cannot reach the Ray cluster ({first_line})") from exc


def _auth_failure(exc: BaseException) -> str | None:
    """What went wrong with authentication, if anything: "refused", the cluster refused this process
    for want of the right token (anywhere in the exception's chain, as an exception or as text);
    "missing", `RAY_AUTH_MODE=token` but no token here (Ray raises it before any contact); None."""
    seen: BaseException | None = exc
    while seen is not None:
        if AuthenticationError is not None and isinstance(seen, AuthenticationError):
            return "missing" if "no authentication token was found" in str(seen) else "refused"
        if any(marker in str(seen) for marker in REFUSED_MARKERS):
            return "refused"
        seen = seen.__cause__ or seen.__context__
    return None


def local_token() -> str | None:
    """Where Ray would take this machine's token from, in its order; None where there is none."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return "RAY_AUTH_TOKEN"
    named = os.environ.get("RAY_AUTH_TOKEN_PATH")
    files = [(Path(named), f"{named} (RAY_AUTH_TOKEN_PATH)")] if named else []
    files.append((Path.home() / ".ray" / "auth_token", "~/.ray/auth_token"))
    for file, said in files:
        try:
            if file.read_text().strip():
                return said
        except OSError:
            continue
    return None


def _token_advice(address: str | None, flag: str, refused: bool) -> str:
    """The cause and the fix, for a cluster that asks for a token (refused) or a process set to send
    one that has none (`RAY_AUTH_MODE=token` and no token found: Ray stops before any contact)."""
    mode = os.environ.get("RAY_AUTH_MODE")
    sends = (mode or "").strip().lower() == "token"  # as Ray reads it
    token = local_token()
    head = "the head's token (`ray get-auth-token` on the head prints it)"
    if sends and not refused:
        return (
            "RAY_AUTH_MODE=token, but Ray found no authentication token here: "
            f"give this machine {head} {WHERE_TOKENS_ARE}"
        )
    if sends:
        sent = f"the token from {token}" if token else "its token"
        return f"the Ray cluster refused {sent}: give this machine {head} {WHERE_TOKENS_ARE}"
    state = f"RAY_AUTH_MODE={mode}" if mode else "RAY_AUTH_MODE is not set"
    fix = "set RAY_AUTH_MODE=token in this shell"
    fix += (
        f", and Ray sends the token from {token}, which must be the head's"
        if token
        else f" and give this machine {head} {WHERE_TOKENS_ARE}"
    )
    if address and address != "auto":
        fix += f"; or, on the head's machine, pass {flag} auto"
    return f"the Ray cluster asks for an authentication token and {state}, so Ray sends none: {fix}"
