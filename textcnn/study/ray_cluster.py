"""Joining a Ray cluster: moved down to `textcnn.ray_cluster` so that `inference` (which may not
import `study`) can join one too; kept here, re-exported, for the study's and tune's imports.
Importing it without the ray extra is the same one-line TextCNNError as before."""

from textcnn.ray_cluster import (
    REFUSED_MARKERS,
    WHERE_TOKENS_ARE,
    AuthenticationError,
    connect,
    local_token,
    quiet_token_notice,
    ray,
)

__all__ = [
    "REFUSED_MARKERS",
    "WHERE_TOKENS_ARE",
    "AuthenticationError",
    "connect",
    "local_token",
    "quiet_token_notice",
    "ray",
]
