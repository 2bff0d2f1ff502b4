"""Blocklists of dictionary names that the consensus classifier says are usually not of their type.

Two steps, run from the command line::

    python -m bert_tf.blocklists local  --predictions output_with_probabilities.tsv \
        --source_type ggp --threshold 0.5 --min_count 2 --output local.tsv
    python -m bert_tf.blocklists global --local local.tsv [--local more.tsv ...] \
        --threshold 0.5 --min_docs 2 [--allowlist names.txt] --output global.tsv

local
    Reads the predictions written by ``run_classifier.py --do_predict``: a header line
    ``doc_id annotation_id label left_context mention right_context predicted_label <label>...``
    (tab-separated, no quoting; the probability columns are named by the bare label, a ``p_``
    prefix is accepted too), then one row per dictionary match. Rows must be grouped by document
    (as run_classifier.py writes them); the file is streamed, so only one document is held.

    The rows carry no column for the type the dictionary tagger assigned. With
    ``--source_types_file`` (TSV: name <tab> type, one pair a line, a name may have several
    lines) only rows whose mention has the source type are used; without it every row is taken
    to be of the source type (use it on a prediction file made from that type's matches only).

    Per document, the occurrences of a name (exact string, or lowercased with
    ``--lowercase_names``; the name written out is then the lowercased one) are combined by
    adding log10 probabilities label by label and normalising over the labels (log-sum-exp in
    base 10). Probabilities are clamped to at least 1e-300 before the logarithm, so a
    probability of exactly 0 (float underflow) gives a very negative but finite log, never
    -inf or NaN. Names whose combined probability of the target type is below ``--threshold``
    and that occur at least ``--min_count`` times in the document are written, with the columns
    ``log10_probability count doc_id name type`` sorted by document, then log probability.

global
    Reads one or more local lists. For each (name, type) it averages the error probability
    1 - 10**log10_probability over the documents whose local list holds it, and keeps those
    seen in at least ``--min_docs`` documents with an average of at least ``--threshold`` that
    are not in ``--allowlist`` (one name a line; blank lines and lines starting with '#' are
    skipped). Columns: ``name type documents mean_error_probability expected_errors``
    (expected_errors = average x documents), sorted by expected_errors, largest first, then name.

Comparisons with a threshold treat values within a relative 1e-9 of it as equal to it, so that
rounding in the log arithmetic does not move a value that is exactly on the boundary.
Bad input raises InputError naming the file and line; the command line prints
``error: <message>`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from bert_tf.errors import InputError
from bert_tf.io_utils import atomic_path
from bert_tf.prediction_files import FIXED_COLUMNS

LOCAL_COLUMNS = ("log10_probability", "count", "doc_id", "name", "type")
GLOBAL_COLUMNS = ("name", "type", "documents", "mean_error_probability", "expected_errors")
MIN_PROBABILITY = 1e-300
PROBABILITY_SLACK = 1e-6  # softmax outputs written as text may exceed 1 by rounding
REL_TOLERANCE = 1e-9


# ----------------------------------------------------------------------------- arithmetic


def clamped_log10(probability: float) -> float:
    """log10 of a probability, clamped below at 1e-300 so that 0 gives -300, never -inf."""
    return math.log10(max(probability, MIN_PROBABILITY))


def log10_sum(log_values: Sequence[float]) -> float:
    """log10(sum(10**v for v in log_values)), computed without overflow or underflow."""
    top = max(log_values)
    return top + math.log10(sum(10.0 ** (v - top) for v in log_values))


def normalised_log10(log_sums: Sequence[float], index: int) -> float:
    """The log10 probability of label `index` after normalising the summed logs over labels."""
    return min(0.0, log_sums[index] - log10_sum(log_sums))


def is_below(value: float, threshold: float) -> bool:
    """True when value < threshold and not within a relative 1e-9 of it."""
    return value < threshold and not math.isclose(value, threshold, rel_tol=REL_TOLERANCE)


def is_at_least(value: float, threshold: float) -> bool:
    """True when value >= threshold or within a relative 1e-9 of it."""
    return not is_below(value, threshold)


# ----------------------------------------------------------------------------- reading


def read_lines(path: str) -> Iterator[Tuple[int, str]]:
    """Yield (line number, line without its end-of-line) for each line of a UTF-8 text file."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise InputError("no such file", path) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a file", path) from None
    except OSError as err:
        raise InputError(f"cannot read: {err.strerror}", path) from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.rstrip(b"\r\n").decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(f"not valid UTF-8 ({err.reason})", path, number) from None
            yield number, line


def label_columns(header: List[str], path: str) -> List[str]:
    """The label names of the probability columns of a predictions header (``p_`` removed)."""
    if tuple(header[: len(FIXED_COLUMNS)]) != FIXED_COLUMNS or len(header) <= len(FIXED_COLUMNS):
        raise InputError(
            "header must be " + " ".join(FIXED_COLUMNS) + " followed by one column per label",
            path,
            1,
        )
    labels = [name[2:] if name.startswith("p_") else name for name in header[len(FIXED_COLUMNS):]]
    if "" in labels or len(set(labels)) != len(labels):
        raise InputError("empty or repeated label column in the header", path, 1)
    return labels


def parse_probability(text: str, label: str, path: str, line: int) -> float:
    """A probability cell as a float in [0, 1]; InputError when it is not one."""
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"probability of {label!r} is not a number: {text!r}", path, line) from None
    if not (-PROBABILITY_SLACK <= value <= 1.0 + PROBABILITY_SLACK):  # also rejects NaN
        raise InputError(f"probability of {label!r} is not in [0, 1]: {text!r}", path, line)
    return min(1.0, max(0.0, value))


@dataclass
class Prediction:
    """One prediction row reduced to what the blocklists need."""

    doc_id: str
    mention: str
    log_probabilities: List[float]


def read_predictions(path: str) -> Tuple[List[str], Iterator[Tuple[int, Prediction]]]:
    """The labels of a predictions file and an iterator over its (line number, row) pairs."""
    lines = read_lines(path)
    first = next(lines, None)
    if first is None:
        raise InputError("empty file, expected a header line", path, 1)
    labels = label_columns(first[1].split("\t"), path)
    return labels, _prediction_rows(lines, len(FIXED_COLUMNS) + len(labels), labels, path)


def _prediction_rows(
    lines: Iterable[Tuple[int, str]], width: int, labels: List[str], path: str
) -> Iterator[Tuple[int, Prediction]]:
    """Parse the data lines of a predictions file (blank lines are skipped)."""
    start = len(FIXED_COLUMNS)
    for number, line in lines:
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != width:
            raise InputError(f"expected {width} tab-separated columns, found {len(cells)}", path, number)
        logs = [
            clamped_log10(parse_probability(cells[start + i], label, path, number))
            for i, label in enumerate(labels)
        ]
        yield number, Prediction(cells[0], cells[4], logs)


def read_source_types(path: str, lowercase: bool) -> Dict[str, Set[str]]:
    """Map each name of a 'name <tab> type' file to its set of types."""
    types: Dict[str, Set[str]] = {}
    for number, line in read_lines(path):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != 2 or not cells[0] or not cells[1]:
            raise InputError("expected two tab-separated columns: name, type", path, number)
        name = cells[0].lower() if lowercase else cells[0]
        types.setdefault(name, set()).add(cells[1])
    return types


# ----------------------------------------------------------------------------- local lists


@dataclass
class NameTotals:
    """Summed log10 probabilities per label of one name's occurrences in one document."""

    count: int = 0
    log_sums: List[float] = field(default_factory=list)

    def add(self, logs: Sequence[float]) -> None:
        """Add one occurrence."""
        if not self.log_sums:
            self.log_sums = [0.0] * len(logs)
        self.log_sums = [total + value for total, value in zip(self.log_sums, logs)]
        self.count += 1


@dataclass
class LocalOptions:
    """Settings of the local step."""

    source_type: str
    target_type: str
    threshold: float = 0.5
    min_count: int = 2
    lowercase_names: bool = False
    source_types: Optional[Dict[str, Set[str]]] = None


@dataclass
class LocalEntry:
    """One line of a local list."""

    log10_probability: float
    count: int
    doc_id: str
    name: str
    type: str


def document_entries(
    doc_id: str, totals: Dict[str, NameTotals], target: int, options: LocalOptions
) -> List[LocalEntry]:
    """The blocklist entries of one document's combined names."""
    entries = []
    for name, total in totals.items():
        log_p = normalised_log10(total.log_sums, target)
        if total.count >= options.min_count and is_below(10.0**log_p, options.threshold):
            entries.append(LocalEntry(log_p, total.count, doc_id, name, options.target_type))
    return entries


def _selected_name(row: Prediction, options: LocalOptions) -> Optional[str]:
    """The grouping name of a row, or None when the row is not of the source type."""
    name = row.mention.lower() if options.lowercase_names else row.mention
    if options.source_types is not None and options.source_type not in options.source_types.get(name, ()):
        return None
    return name


def by_document(rows: Iterable[Tuple[int, Prediction]], path: str) -> Iterator[List[Prediction]]:
    """Group consecutive rows of the same document; InputError when a document comes back."""
    finished: Set[str] = set()
    group: List[Prediction] = []
    for number, row in rows:
        if group and row.doc_id != group[0].doc_id:
            finished.add(group[0].doc_id)
            yield group
            group = []
        if not group and row.doc_id in finished:
            raise InputError(f"rows of document {row.doc_id!r} are not together; sort by doc_id",
                             path, number)
        group.append(row)
    if group:
        yield group


def combine_names(rows: Iterable[Prediction], options: LocalOptions) -> Dict[str, NameTotals]:
    """Sum the log probabilities of one document's rows of the source type, name by name."""
    totals: Dict[str, NameTotals] = {}
    for row in rows:
        name = _selected_name(row, options)
        if name is not None:
            totals.setdefault(name, NameTotals()).add(row.log_probabilities)
    return totals


def local_entries(path: str, options: LocalOptions) -> List[LocalEntry]:
    """Stream a predictions file and return its local blocklist entries, sorted (see sort_local)."""
    labels, rows = read_predictions(path)
    if options.target_type not in labels:
        raise InputError(f"target type {options.target_type!r} is not a label column {labels}",
                         path, 1)
    target = labels.index(options.target_type)
    entries: List[LocalEntry] = []
    for document in by_document(rows, path):
        totals = combine_names(document, options)
        entries += document_entries(document[0].doc_id, totals, target, options)
    return sort_local(entries)


def doc_sort_key(doc_id: str) -> Tuple[int, int, str]:
    """Sort numeric document ids (PubMed ids) numerically, before any other ids."""
    return (0, int(doc_id), "") if doc_id.isdigit() else (1, 0, doc_id)


def sort_local(entries: Iterable[LocalEntry]) -> List[LocalEntry]:
    """Entries sorted by document, then log probability (lowest first), then name."""
    return sorted(entries, key=lambda e: (doc_sort_key(e.doc_id), e.log10_probability, e.name))


def format_local(entries: Iterable[LocalEntry]) -> str:
    """The TSV text of a local list, header included, in the order given."""
    lines = ["\t".join(LOCAL_COLUMNS)]
    lines += [f"{e.log10_probability:.10g}\t{e.count}\t{e.doc_id}\t{e.name}\t{e.type}" for e in entries]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- global list


def parse_local_line(cells: List[str], path: str, number: int) -> LocalEntry:
    """One data line of a local list."""
    if len(cells) != len(LOCAL_COLUMNS):
        raise InputError(f"expected {len(LOCAL_COLUMNS)} tab-separated columns, found {len(cells)}",
                         path, number)
    try:
        log_p, count = float(cells[0]), int(cells[1])
    except ValueError:
        raise InputError("log10_probability must be a number and count an integer", path, number) from None
    if not (log_p <= PROBABILITY_SLACK) or count < 1:  # also rejects NaN
        raise InputError("log10_probability must be <= 0 and count >= 1", path, number)
    return LocalEntry(min(log_p, 0.0), count, cells[2], cells[3], cells[4])


def read_local(path: str) -> Iterator[Tuple[int, LocalEntry]]:
    """Yield (line number, entry) for each line of a local list; the header line is optional."""
    for number, line in read_lines(path):
        cells = line.split("\t")
        if not line.strip() or (number == 1 and tuple(cells) == LOCAL_COLUMNS):
            continue
        yield number, parse_local_line(cells, path, number)


@dataclass
class GlobalEntry:
    """One line of the global list."""

    name: str
    type: str
    documents: int
    mean_error_probability: float

    @property
    def expected_errors(self) -> float:
        """Mean error probability times the number of documents."""
        return self.mean_error_probability * self.documents


def error_sums(paths: Sequence[str]) -> Dict[Tuple[str, str], List[float]]:
    """Map (name, type) to [documents, summed error probability] over the local lists."""
    sums: Dict[Tuple[str, str], List[float]] = {}
    seen: Dict[Tuple[str, str, str], str] = {}
    for path in paths:
        for number, entry in read_local(path):
            key = (entry.doc_id, entry.name, entry.type)
            if key in seen:
                problem = f"document {entry.doc_id!r} lists {entry.name!r} again (first at {seen[key]})"
                raise InputError(problem, path, number)
            seen[key] = f"{path}:{number}"
            total = sums.setdefault((entry.name, entry.type), [0, 0.0])
            total[0] += 1
            total[1] += 1.0 - 10.0**entry.log10_probability
    return sums


def read_allowlist(path: Optional[str]) -> Set[str]:
    """The names of an allowlist file (one a line; blank and '#' lines skipped); empty without one."""
    if path is None:
        return set()
    names = (line.strip() for _, line in read_lines(path))
    return {name for name in names if name and not name.startswith("#")}


def global_entries(
    paths: Sequence[str], threshold: float = 0.5, min_docs: int = 2, allowlist: Iterable[str] = ()
) -> List[GlobalEntry]:
    """The global blocklist from local lists, sorted by expected errors (largest first), then name."""
    allowed = set(allowlist)
    entries = []
    for (name, type_), (documents, total) in error_sums(paths).items():
        mean = total / documents
        if documents >= min_docs and is_at_least(mean, threshold) and name not in allowed:
            entries.append(GlobalEntry(name, type_, int(documents), mean))
    return sorted(entries, key=lambda e: (-e.expected_errors, e.name, e.type))


def format_global(entries: Iterable[GlobalEntry]) -> str:
    """The TSV text of a global list, header included."""
    lines = ["\t".join(GLOBAL_COLUMNS)]
    lines += [
        f"{e.name}\t{e.type}\t{e.documents}\t{e.mean_error_probability:.6f}\t{e.expected_errors:.6f}"
        for e in entries
    ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- command line


def write_output(path: str, text: str) -> None:
    """Write text to path atomically, reporting an unwritable path as InputError."""
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
    except OSError as err:
        raise InputError(f"cannot write: {err.strerror}", path) from None


def run_local(args: argparse.Namespace) -> int:
    """The 'local' subcommand."""
    types = None
    if args.source_types_file:
        types = read_source_types(args.source_types_file, args.lowercase_names)
    options = LocalOptions(
        source_type=args.source_type,
        target_type=args.target_type or args.source_type,
        threshold=args.threshold,
        min_count=args.min_count,
        lowercase_names=args.lowercase_names,
        source_types=types,
    )
    entries = local_entries(args.predictions, options)
    write_output(args.output, format_local(entries))
    print(f"{len(entries)} names written to {args.output}", file=sys.stderr)
    return 0


def run_global(args: argparse.Namespace) -> int:
    """The 'global' subcommand."""
    allowlist = read_allowlist(args.allowlist)
    entries = global_entries(args.local, args.threshold, args.min_docs, allowlist)
    write_output(args.output, format_global(entries))
    print(f"{len(entries)} names written to {args.output}", file=sys.stderr)
    return 0


def probability(text: str) -> float:
    """argparse type: a float in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def add_local_parser(commands: Any) -> None:
    """Add the 'local' subcommand and its options."""
    local = commands.add_parser(
        "local",
        help="names unlikely to be of the target type, per document",
        description="Combine the occurrences of each name per document (summed log10 "
        "probabilities, renormalised over the labels) and list the names whose target-type "
        "probability is low.",
        epilog="Rows must be grouped by document (run_classifier.py writes them so). Probabilities "
        "are clamped to at least 1e-300 before taking log10, so an underflowed 0 stays finite. "
        "Values within a relative 1e-9 of --threshold count as equal to it (not below).",
    )
    add = local.add_argument
    add("--predictions", required=True, metavar="FILE",
        help="output_with_probabilities.tsv of run_classifier.py --do_predict")
    add("--source_type", required=True, metavar="TYPE",
        help="type the dictionary tagger gave the names (e.g. ggp)")
    add("--target_type", metavar="TYPE",
        help="label whose probability is tested (default: the source type)")
    add("--source_types_file", metavar="FILE",
        help="TSV name<tab>type; only rows whose mention has the source type are used. "
        "Without it every row is taken to be of the source type.")
    add("--threshold", type=probability, default=0.5,
        help="list names whose combined probability is below this (default 0.5)")
    add("--min_count", type=positive_int, default=2,
        help="least occurrences in a document (default 2)")
    add("--lowercase_names", action="store_true",
        help="group names case-insensitively (names are written lowercased)")
    add("--output", required=True, metavar="FILE", help="local list to write (TSV)")
    local.set_defaults(run=run_local)


def add_global_parser(commands: Any) -> None:
    """Add the 'global' subcommand and its options."""
    glob = commands.add_parser(
        "global",
        help="names usually wrong across documents",
        description="Average the error probability (1 - 10**log10_probability) of each "
        "(name, type) over the documents of the local lists and list the usual errors.",
        epilog="Output columns: name, type, documents, mean_error_probability, expected_errors "
        "(= mean x documents), largest expected_errors first.",
    )
    add = glob.add_argument
    add("--local", action="append", required=True, metavar="FILE",
        help="a local list (repeat for several)")
    add("--threshold", type=probability, default=0.5,
        help="least mean error probability (default 0.5)")
    add("--min_docs", type=positive_int, default=2, help="least number of documents (default 2)")
    add("--allowlist", metavar="FILE",
        help="names never blocked, one a line ('#' comment lines allowed)")
    add("--output", required=True, metavar="FILE", help="global list to write (TSV)")
    glob.set_defaults(run=run_global)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m bert_tf.blocklists``."""
    parser = argparse.ArgumentParser(
        prog="python -m bert_tf.blocklists",
        description="Build per-document (local) and corpus-wide (global) blocklists of "
        "dictionary names from consensus-classifier predictions.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{local,global}")
    add_local_parser(commands)
    add_global_parser(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: parse arguments, run the subcommand, print InputError and return 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except InputError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
