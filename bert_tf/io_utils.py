"""File input and output: atomic writes (every file is written to a temporary name and renamed into place),
readable-file checks and excerpts for error messages."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import stat
import tempfile
from typing import Any, Callable, Iterator, List, Optional

from bert_tf.errors import InputError


# Writes that fail for these reasons stop a run with one line naming the path (cli.error_exit_status).
STORAGE_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                  errno.EROFS: "the file system is read-only"}
# Called with every path about to be written (atomic files and folders, training checkpoints): a seam for the
# tests that fail a write as a full disk would.
WRITE_HOOKS: List[Callable[[str], None]] = []


def before_write(path: str) -> None:
    """Tell the write hooks that `path` is about to be written."""
    for hook in WRITE_HOOKS:
        hook(path)


def storage_errno(error: BaseException) -> Optional[int]:
    """ENOSPC, EDQUOT or EROFS when `error` is a write that failed for lack of space or on a read-only file
    system (an OSError, or a TensorFlow or HDF5 error whose text says so); None otherwise."""
    if isinstance(error, OSError) and error.errno in STORAGE_ERRORS:
        return error.errno
    text = str(error)
    return next((number for number in STORAGE_ERRORS if os.strerror(number) in text), None)


@contextlib.contextmanager
def naming_storage_errors(path: str) -> Iterator[None]:
    """Re-raise a write that failed for lack of space or on a read-only file system as OSError naming `path`."""
    try:
        yield
    except Exception as error:
        number = storage_errno(error)
        if number is None or (isinstance(error, OSError) and error.filename):
            raise
        raise OSError(number, os.strerror(number), path) from error


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path beside `path`; on success it is renamed to `path`, on error removed."""
    directory = os.path.dirname(os.path.abspath(path))
    with naming_storage_errors(path):
        before_write(path)
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
        os.close(fd)
        try:
            yield tmp
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            raise


def write_text_atomic(path: str, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_json_atomic(path: str, obj: Any) -> None:
    """Write `obj` as indented JSON to `path` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str) -> Iterator[str]:
    """Yield a temporary directory beside `path`; on success it replaces `path` (old one removed)."""
    parent = os.path.dirname(os.path.abspath(path))
    with naming_storage_errors(path):
        before_write(path)
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=parent)
        try:
            yield tmp
            _replace_directory(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _replace_directory(tmp: str, path: str) -> None:
    """Put the finished directory `tmp` in the place of `path` (the old one, if any, removed)."""
    if os.path.isdir(path):
        old = tmp + ".old"
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)

_TEMPORARY = re.compile(r"\.(?P<target>.+)\.[A-Za-z0-9_]{8}\.tmp(?P<old>\.old)?")


def clean_interrupted_writes(directory: str) -> None:
    """After a killed run, under `directory`: put back a folder that atomic_directory had moved aside but not
    yet replaced, and remove the half-written temporaries of atomic_path and atomic_directory."""
    for root, dirs, files in os.walk(directory):
        for name in sorted(dirs + files):
            match = _TEMPORARY.fullmatch(name)
            if match is None:
                continue
            path, target = os.path.join(root, name), os.path.join(root, match.group("target"))
            if match.group("old") and not os.path.lexists(target):
                os.replace(path, target)
            elif os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)
        dirs[:] = [d for d in dirs if os.path.isdir(os.path.join(root, d))]


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
