"""The consensus entity-type TSV: six tab-separated columns a line, no header, no quoting,
`doc_id annotation_id label left_context mention right_context`, read as a stream (lines as
bert_tf.io_utils reads them; blank lines skipped)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Dict, FrozenSet, Iterable, Iterator, List, Optional, Sequence, Tuple

from bert_tf.errors import InputError
from bert_tf.io_utils import (READ_BUFFER_BYTES, LineChunk, atomic_path, check_readable_file, decode_line, excerpt,
                              is_blank, iter_lines, raw_line_chunks)

COLUMN_NAMES = ("doc_id", "annotation_id", "label", "left_context", "mention", "right_context")
COLUMN_COUNT = len(COLUMN_NAMES)


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
    lines = iter_lines(path, skip_blank=True)
    return (_parse_line(text, number, path, allowed, labels_source) for number, text in lines)




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
        """Consecutive runs of `size` raw lines (blank ones included), streamed."""
        return raw_line_chunks(self.path, size)

    def columns(self, chunk: LineChunk) -> Tuple[Sequence[str], Sequence[str], Sequence[str], Sequence[str]]:
        """(labels, left contexts, mentions, right contexts) of a chunk's non-blank lines."""
        first, lines = chunk
        rows = []
        for number, raw in enumerate(lines, start=first):
            text = decode_line(raw, self.path, number)
            if not is_blank(text):
                fields = _checked_fields(text, number, self.path, self.allowed, self.labels_source)
                rows.append((fields[2], fields[3], fields[4], fields[5]))
        if not rows:
            return (), (), (), ()
        return tuple(zip(*rows))


def read_labels_file(path: str) -> List[str]:
    """The labels of a labels file, one a line, in file order."""
    check_readable_file(path)
    first_line: Dict[str, int] = {}
    for number, text in iter_lines(path, skip_blank=True):
        label = text.strip()
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


def _fields(example: ConsensusExample) -> Tuple[str, ...]:
    """The six column values of `example`, in file order."""
    return (example.doc_id, example.annotation_id, example.label, example.left, example.mention, example.right)


def _check_writable(example: ConsensusExample) -> None:
    """ValueError when a field would break the TSV layout (a tab, LF or CR inside)."""
    for name, value in zip(COLUMN_NAMES, _fields(example)):
        if "\t" in value or "\n" in value or "\r" in value:
            raise ValueError(f"write_consensus_tsv: {name} of line {example.line} contains a tab or line break")


def write_consensus_tsv(path: str, examples: Iterable[ConsensusExample]) -> None:
    """Write `examples` atomically in the consensus TSV layout, one a line (LF endings), streamed."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n", buffering=READ_BUFFER_BYTES) as f:
            for example in examples:
                _check_writable(example)
                f.write("\t".join(_fields(example)) + "\n")
