"""Errors meant for people: one line naming the file and the problem."""

from __future__ import annotations

from pathlib import Path


class WbcError(Exception):
    """A user-facing error. The CLIs print `prog: message` and exit 2, without a traceback.

    The message and the path are kept apart (`.message`, `.path`); `str()` joins them as
    `path: message`. Code that names the file itself reads `.message`, never strips a prefix.
    """

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        self.message = message
        self.path = path
        super().__init__(message, path)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path is not None else self.message


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an exception's text (its type name if it has none)."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:limit]


class BundleError(WbcError):
    """A model bundle is missing, malformed, or does not match its artifacts."""


class ImageError(WbcError):
    """An image file cannot be read or decoded."""


class NoCellFound(WbcError):
    """No stained white-cell nucleus in the image: reported, never guessed."""


class DataError(WbcError):
    """A data folder, split manifest or groups file is unusable."""
