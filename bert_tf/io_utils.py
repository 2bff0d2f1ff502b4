"""File input and output: atomic writes (every file is written to a temporary name and renamed into place),
the one line reader of every line-based format, readable-file checks and excerpts for error messages.

Lines, decided once for every reader (NER CoNLL / text / labels files, consensus TSV, blocklists): a
file is UTF-8; ``\\n``, ``\\r\\n`` and a bare ``\\r`` each end a line (Python's universal newlines, as the
published scripts read their files, and as the csv module splits records); lines are numbered from 1
in that count and given without their terminator; a UTF-8 byte order mark at the start of the file is
dropped; a line that is empty or only whitespace is blank: formats of one record a line skip it,
CoNLL uses it to end a sentence. A byte that is not UTF-8 is an InputError naming its line."""

from __future__ import annotations

import codecs
import contextlib
import errno
import glob
import itertools
import json
import os
import re
import shutil
import stat
import tempfile
from typing import Any, Callable, Iterable, Iterator, List, Optional, Tuple

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


def remove_atomic_leftovers(paths: Iterable[str]) -> None:
    """Remove the temporaries that a killed run left beside these paths (atomic_path's names for them)."""
    for path in paths:
        directory, name = os.path.split(path)
        for leftover in glob.glob(os.path.join(glob.escape(directory), "." + glob.escape(name) + ".*.tmp")):
            with contextlib.suppress(FileNotFoundError):
                os.remove(leftover)


def write_text_atomic(path: str, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def load_json(path: str) -> Any:
    """A JSON object read from `path`; InputError when it is not valid JSON or not an object."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise InputError(f"not valid JSON ({e})", path) from None
    if not isinstance(value, dict):
        raise InputError("expected a JSON object", path)
    return value


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
READ_BUFFER_BYTES = 1 << 20
BYTE_ORDER_MARK = codecs.BOM_UTF8
RawLine = Tuple[int, bytes]  # (1-based line number, the line's bytes without terminator)
LineChunk = Tuple[int, List[bytes]]  # (number of the first line, consecutive raw lines)


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


# ----------------------------------------------------------------------------- naming input files

LIST_PREFIX = "@"
GLOB_CHARACTERS = "*?["


def read_list_file(path: str) -> List[str]:
    """The files an @LIST file names, one a line (blank lines and # comments skipped; a relative path is relative
    to the list file's folder); InputError naming the list and line of an entry that is not a file."""
    check_readable_file(path)
    base = os.path.dirname(os.path.abspath(path))
    paths = []
    for number, line in iter_lines(path, skip_blank=True):
        entry = line.strip()
        if entry.startswith("#"):
            continue
        full = entry if os.path.isabs(entry) else os.path.join(base, entry)
        if not os.path.isfile(full):
            raise InputError(f"listed input {entry!r} is not a file", path, number)
        paths.append(full)
    if not paths:
        raise InputError("the list file names no inputs", path)
    return paths


def expand_input(spec: str, folder_pattern: str = "*") -> Tuple[List[str], bool]:
    """The files one input argument names, and whether it names a collection rather than one plain file: a file,
    a folder (its files matching `folder_pattern`, sorted; hidden files left out), a glob pattern (sorted) or
    @LIST. InputError when it names nothing."""
    if spec.startswith(LIST_PREFIX):
        return read_list_file(spec[len(LIST_PREFIX):]), True
    if os.path.isdir(spec):
        found = sorted(p for p in glob.glob(os.path.join(glob.escape(spec), folder_pattern)) if os.path.isfile(p))
        if not found:
            raise InputError(f"the folder holds no {folder_pattern} files", spec)
        return found, True
    if os.path.isfile(spec):
        return [spec], False
    if any(c in spec for c in GLOB_CHARACTERS):
        found = sorted(p for p in glob.glob(spec) if os.path.isfile(p))
        if not found:
            raise InputError("no file matches this pattern", spec)
        return found, True
    check_readable_file(spec)  # names why: not found, or cannot be accessed
    return [spec], False


# ----------------------------------------------------------------------------- reading lines


def split_line_ends(raw: bytes) -> List[bytes]:
    """The lines of one binary line (as a binary file iterates: up to and including b'\\n', or the
    file's end) without terminators: a CR LF or LF ends it, a bare CR inside ends a line too."""
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw.split(b"\r") if b"\r" in raw else [raw]


def iter_raw_lines(path: str) -> Iterator[RawLine]:
    """(number, bytes) of every line of `path` (see the module's note), streamed and not yet decoded."""
    check_readable_file(path)
    number = 0
    try:
        with open(path, "rb", buffering=READ_BUFFER_BYTES) as f:
            for raw in f:
                if number == 0 and raw.startswith(BYTE_ORDER_MARK):
                    raw = raw[len(BYTE_ORDER_MARK):]
                    if not raw:  # the file is only the mark
                        return
                for line in split_line_ends(raw):
                    number += 1
                    yield number, line
    except OSError as error:
        raise InputError(f"cannot read the file: {error.strerror or error}", path) from None


def decode_line(raw: bytes, path: str, number: int) -> str:
    """One line decoded as UTF-8; InputError naming the file and line when it is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"not valid UTF-8 (byte 0x{raw[error.start]:02x})", path, number) from None


def is_blank(text: str) -> bool:
    """Whether a line is blank: empty or only whitespace."""
    return not text or text.isspace()


def iter_lines(path: str, skip_blank: bool = False) -> Iterator[Tuple[int, str]]:
    """(number, text) of every line of `path` (see the module's note), blank ones left out when
    `skip_blank`, streamed."""
    for number, raw in iter_raw_lines(path):
        text = decode_line(raw, path, number)
        if not (skip_blank and is_blank(text)):
            yield number, text


def raw_line_chunks(path: str, size: int) -> Iterator[LineChunk]:
    """The lines of `path` (as iter_raw_lines gives them) in runs of `size`, each as (number of its
    first line, the raw lines), streamed."""
    lines = iter_raw_lines(path)
    while True:
        chunk = list(itertools.islice(lines, size))
        if not chunk:
            return
        yield chunk[0][0], [raw for _, raw in chunk]


def read_text(path: str) -> str:
    """The whole of `path` decoded as UTF-8 (a leading byte order mark dropped); InputError when it is
    missing or unreadable, or naming the line (counted as iter_lines counts) of the first byte that
    is not UTF-8."""
    check_readable_file(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise InputError(f"cannot read the file: {error.strerror or error}", path) from None
    if data.startswith(BYTE_ORDER_MARK):
        data = data[len(BYTE_ORDER_MARK):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        before = data[:error.start]
        line = before.count(b"\n") + before.count(b"\r") - before.count(b"\r\n") + 1
        raise InputError(f"not valid UTF-8 (byte 0x{data[error.start]:02x})", path, line) from None
