"""The consensus entity-type TSV: six tab-separated columns a line, no header, no quoting,
`doc_id annotation_id label left_context mention right_context`, read as a stream."""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from typing import Collection, Dict, FrozenSet, Iterable, Iterator, List, Optional, Sequence, Tuple

from bert_tf.io_utils import check_readable_file, excerpt
from bert_tf.errors import InputError
from bert_tf.io_utils import atomic_path

COLUMN_NAMES = ("doc_id", "annotation_id", "label", "left_context", "mention", "right_context")
COLUMN_COUNT = len(COLUMN_NAMES)
READ_BUFFER_BYTES = 1 << 20
COUNT_CHUNK_BYTES = 1 << 24
BYTE_ORDER_MARK = b"\xef\xbb\xbf"

# A '\n' ending an empty line: right after another '\n', or after '\n\r' (an empty CR LF line).
_EMPTY_LINE_END = re.compile(rb"(?:(?<=\n)|(?<=\n\r))\n")


@dataclass(frozen=True)
class ConsensusExample:
    """One mention with its contexts and consensus label, and the 1-based line it came from."""

    doc_id: str
    annotation_id: str
    label: str
    left: str
    mention: str
    right: str
    line: int = 0


# ----------------------------------------------------------------------------- helpers


def _line_text(raw: bytes, path: str, number: int) -> str:
    """Line `number` decoded as UTF-8 without its LF or CR LF terminator (other whitespace kept)."""
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"not valid UTF-8 (byte 0x{raw[error.start]:02x})", path, number) from None
    if number == 1 and text.startswith("\ufeff"):
        text = text[1:]
    return text


def _iter_lines(path: str) -> Iterator[Tuple[int, str]]:
    """(1-based line number, text) for each non-empty line of `path`, streamed."""
    try:
        with open(path, "rb", buffering=READ_BUFFER_BYTES) as f:
            for number, raw in enumerate(f, start=1):
                text = _line_text(raw, path, number)
                if text:
                    yield number, text
    except OSError as error:
        raise InputError(f"cannot read the file: {error.strerror or error}", path) from None


def _unknown_label(label: str, allowed: FrozenSet[str], labels_source: Optional[str]) -> str:
    """The message for a label outside the label set."""
    where = labels_source if labels_source else "the label set"
    return f"label {excerpt(label)} is not in {where} ({', '.join(sorted(allowed))})"


def _parse_line(
    text: str, number: int, path: str, allowed: Optional[FrozenSet[str]], labels_source: Optional[str]
) -> ConsensusExample:
    """The example on one line; InputError for a malformed one."""
    return ConsensusExample(*_checked_fields(text, number, path, allowed, labels_source), number)


def _checked_fields(
    text: str, number: int, path: str, allowed: Optional[FrozenSet[str]], labels_source: Optional[str]
) -> List[str]:
    """The six fields of one line; InputError for a malformed one."""
    fields = text.split("\t")
    if len(fields) != COLUMN_COUNT:
        expected = " ".join(COLUMN_NAMES)
        problem = f"expected {COLUMN_COUNT} tab-separated columns ({expected}), found {len(fields)}"
        raise InputError(problem, path, number)
    doc_id, annotation_id, label, left, mention, right = fields
    if not label or label != label.strip():
        raise InputError(f"invalid label {excerpt(label)}: empty or with surrounding whitespace", path, number)
    if allowed is not None and label not in allowed:
        raise InputError(_unknown_label(label, allowed, labels_source), path, number)
    if not mention.strip():
        raise InputError("empty mention (column 5)", path, number)
    return fields


# ----------------------------------------------------------------------------- public API


def iter_consensus_tsv(
    path: str,
    labels: Optional[Collection[str]] = None,
    labels_source: Optional[str] = None,
    check_labels: bool = True,
) -> Iterator[ConsensusExample]:
    """Stream the examples of a consensus TSV, checking each line (and its label when `labels` is given)."""
    check_readable_file(path)
    allowed = frozenset(labels) if labels is not None and check_labels else None
    return (_parse_line(text, number, path, allowed, labels_source) for number, text in _iter_lines(path))


LineChunk = Tuple[int, List[bytes]]  # (1-based number of the first line, the raw lines)


class TsvLineChunks:
    """A consensus TSV as chunks of raw lines, decoded and checked by `columns` (in the process that
    featurizes them: the reading process only splits the file into lines). Same checks and messages
    as iter_consensus_tsv."""

    def __init__(self, path: str, labels: Optional[Collection[str]] = None, labels_source: Optional[str] = None,
                 check_labels: bool = True):
        check_readable_file(path)
        self.path = path
        self.allowed = frozenset(labels) if labels is not None and check_labels else None
        self.labels_source = labels_source

    def chunks(self, size: int) -> Iterator[LineChunk]:
        """Consecutive runs of `size` raw lines (empty ones included), streamed."""
        try:
            with open(self.path, "rb", buffering=READ_BUFFER_BYTES) as f:
                first = 1
                while True:
                    lines = list(itertools.islice(f, size))
                    if not lines:
                        return
                    yield first, lines
                    first += len(lines)
        except OSError as error:
            raise InputError(f"cannot read the file: {error.strerror or error}", self.path) from None

    def columns(self, chunk: LineChunk) -> Tuple[Sequence[str], Sequence[str], Sequence[str], Sequence[str]]:
        """(labels, left contexts, mentions, right contexts) of a chunk's non-empty lines."""
        first, lines = chunk
        rows = []
        for number, raw in enumerate(lines, start=first):
            text = _line_text(raw, self.path, number)
            if text:
                fields = _checked_fields(text, number, self.path, self.allowed, self.labels_source)
                rows.append((fields[2], fields[3], fields[4], fields[5]))
        if not rows:
            return (), (), (), ()
        return tuple(zip(*rows))


def read_labels_file(path: str) -> List[str]:
    """The labels of a labels file, one a line, in file order."""
    check_readable_file(path)
    first_line: Dict[str, int] = {}
    for number, text in _iter_lines(path):
        label = text.strip()
        if not label:
            continue
        if any(character.isspace() for character in label):
            raise InputError(f"label {excerpt(label)} contains whitespace", path, number)
        if label in first_line:
            raise InputError(f"duplicate label {excerpt(label)} (first on line {first_line[label]})", path, number)
        first_line[label] = number
    if not first_line:
        raise InputError("no labels: the file is empty", path)
    return list(first_line)


def collect_labels(path: str) -> List[str]:
    """The sorted set of labels used in a consensus TSV, streamed."""
    return sorted({example.label for example in iter_consensus_tsv(path, check_labels=False)})


def count_examples(path: str) -> int:
    """The number of non-empty lines of `path` (LF or CR LF endings), read in binary chunks."""
    check_readable_file(path)
    line_ends = empty_lines = 0
    tail = b"\n"  # as if a line ended just before the file, so that an empty first line counts as empty
    try:
        with open(path, "rb") as f:
            chunk = f.read(COUNT_CHUNK_BYTES)
            if chunk.startswith(BYTE_ORDER_MARK):
                chunk = chunk[len(BYTE_ORDER_MARK):]
            while chunk:
                window = tail + chunk
                line_ends += chunk.count(b"\n")
                empty_lines += len(_EMPTY_LINE_END.findall(window, len(tail)))
                tail = window[-2:]
                chunk = f.read(COUNT_CHUNK_BYTES)
    except OSError as error:
        raise InputError(f"cannot read the file: {error.strerror or error}", path) from None
    unterminated_last_line = tail[-1:] != b"\n" and tail != b"\n\r"
    return line_ends - empty_lines + int(unterminated_last_line)


def _fields(example: ConsensusExample) -> Tuple[str, ...]:
    """The six column values of `example`, in file order."""
    return (example.doc_id, example.annotation_id, example.label, example.left, example.mention, example.right)


def _check_writable(example: ConsensusExample) -> None:
    """ValueError when a field would break the TSV layout (tab or newline inside, CR at the line's end)."""
    for name, value in zip(COLUMN_NAMES, _fields(example)):
        if "\t" in value or "\n" in value:
            raise ValueError(f"write_consensus_tsv: {name} of line {example.line} contains a tab or newline")
    if example.right.endswith("\r"):
        raise ValueError(f"write_consensus_tsv: right_context of line {example.line} ends with a carriage return")


def write_consensus_tsv(path: str, examples: Iterable[ConsensusExample]) -> None:
    """Write `examples` atomically in the consensus TSV layout, one a line (LF endings), streamed."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n", buffering=READ_BUFFER_BYTES) as f:
            for example in examples:
                _check_writable(example)
                f.write("\t".join(_fields(example)) + "\n")
