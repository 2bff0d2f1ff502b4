"""Helpers shared by the data readers: file checks and short excerpts for error messages."""

from __future__ import annotations

import os
import stat

from bert_tf.errors import InputError

EXCERPT_CHARS = 40


def excerpt(text: str) -> str:
    """A short quoted excerpt of `text` for error messages."""
    if len(text) <= EXCERPT_CHARS:
        return repr(text)
    return repr(text[:EXCERPT_CHARS]) + "..."


def check_readable_file(path: str) -> None:
    """Raise InputError unless `path` names an existing file that is not a directory."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except (OSError, ValueError) as error:
        raise InputError(f"cannot access the file: {getattr(error, 'strerror', None) or error}", path) from None
    if stat.S_ISDIR(mode):
        raise InputError("is a directory, expected a file", path)
