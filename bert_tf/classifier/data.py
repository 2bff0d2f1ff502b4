"""The consensus entity-type TSV: six tab-separated columns a line, no header, no quoting,
`doc_id annotation_id label left_context mention right_context`, read as a stream (lines as
bert_tf.io_utils reads them; blank lines skipped).

Rows are read as the published reader (run_ner_consensus.py's ConsensusProcessor) read them: the last four fields
are label, left context, mention, right context (by negative index), so a row of 4 or more fields is an example;
doc_id and annotation_id are the first and second of the fields before those four (empty when absent). What it
tolerates beyond the six-column layout (more columns, fewer, an empty mention) is counted (`TOLERATED`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Dict, FrozenSet, Iterable, Iterator, List, Optional, Sequence, Tuple

from bert_tf.errors import InputError
from bert_tf.io_utils import (READ_BUFFER_BYTES, LineChunk, atomic_path, check_readable_file, decode_line, excerpt,
                              is_blank, iter_lines, raw_line_chunks)

COLUMN_NAMES = ("doc_id", "annotation_id", "label", "left_context", "mention", "right_context")
COLUMN_COUNT = len(COLUMN_NAMES)
READ_COLUMNS = 4  # label, left_context, mention, right_context: the last four fields of a row, as published
# What the published reader's rule accepts beyond the six-column layout, counted per file (key: what it means).
TOLERATED = {"rows_extra_columns": "rows with more than 6 columns (the last 4 read)",
             "rows_without_ids": "rows of 4 or 5 columns (no doc_id or annotation_id)",
             "empty_mentions": "empty mentions"}


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
    """The six fields of one line (the last four by negative index; doc_id and annotation_id the first two before
    them, "" when absent); InputError for a malformed one."""
    fields = text.split("\t")
    if len(fields) < READ_COLUMNS:
        problem = (f"expected at least {READ_COLUMNS} tab-separated columns, the last four label left_context "
                   f"mention right_context ({' '.join(COLUMN_NAMES)}), found {len(fields)}")
        raise InputError(problem, path, number)
    label = fields[-READ_COLUMNS]
    if not label or label != label.strip():
        raise InputError(f"invalid label {excerpt(label)}: empty or with surrounding whitespace", path, number)
    if allowed is not None and label not in allowed:
        raise InputError(_unknown_label(label, allowed, labels_source), path, number)
    ids = (fields[:-READ_COLUMNS] + ["", ""])[:2]
    return [*ids, *fields[-READ_COLUMNS:]]


def tolerated_in_row(column_count: int, mention: str) -> List[str]:
    """The TOLERATED kinds a row of `column_count` fields with this mention falls under."""
    kinds = []
    if column_count > COLUMN_COUNT:
        kinds.append("rows_extra_columns")
    elif column_count < COLUMN_COUNT:
        kinds.append("rows_without_ids")
    if not mention.strip():
        kinds.append("empty_mentions")
    return kinds


def describe_tolerated(counts: Dict[str, int]) -> str:
    """The nonzero counts in words, e.g. 'rows with more than 6 columns (the last 4 read): 3, empty mentions: 1'."""
    return ", ".join(f"{text}: {counts[kind]}" for kind, text in TOLERATED.items() if counts.get(kind))


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
        return self.parse(chunk)[0]

    def parse(self, chunk: LineChunk) -> Tuple[Tuple[Sequence[str], ...], Dict[str, int]]:
        """The chunk's columns (see `columns`) and how many of its rows each TOLERATED kind counts."""
        first, lines = chunk
        rows, counts = [], dict.fromkeys(TOLERATED, 0)
        for number, raw in enumerate(lines, start=first):
            text = decode_line(raw, self.path, number)
            if not is_blank(text):
                fields = _checked_fields(text, number, self.path, self.allowed, self.labels_source)
                rows.append(tuple(fields[2:]))
                for kind in tolerated_in_row(text.count("\t") + 1, fields[4]):
                    counts[kind] += 1
        if not rows:
            return ((), (), (), ()), counts
        return tuple(zip(*rows)), counts


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
