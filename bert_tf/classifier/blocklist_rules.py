"""The published blocklist rules (make_local_blacklist.py, global_blacklist_candidates.py,
make_local_bw_lists.py, `sort -rn`), reproduced byte for byte, with the readers of their inputs: prediction
files, local lists and the non-type table. The specification: docs/blocklists.md."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, Dict, FrozenSet, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from bert_tf.cli import notice
from bert_tf.errors import InputError
from bert_tf.io_utils import iter_lines
from bert_tf.classifier.prediction_files import (FIXED_COLUMNS, PROBABILITIES_NAME, PUBLISHED_WIDTH, is_published_row,
                                                 parse_published_dict)

LOG10_ZERO = -1000  # the published log10 of a probability that underflowed to 0
MIN_PROBABILITY = 1e-300  # a probability of exactly 0 is read as this (the published script fails on it)
PROBABILITY_SLACK = 1e-6  # a probability written as text may exceed 1 by rounding
DEFAULT_NEVER_BLOCK: FrozenSet[Tuple[str, str]] = frozenset({("insulin", "ggp"), ("INSULIN", "ggp")})
PREDICTIONS_GLOB = PROBABILITIES_NAME + "_*"
DEFAULT_TYPES = ("ggp", "che", "org", "dis")
PUBLISHED_LOCAL_LIST_TYPES = ("ggp", "che")  # types with a non-type table and local block/allow lists
PUBLISHED_ALLOWLIST_TYPES = ("ggp",)
AUTO_GLOBAL_ORDER = ("che", "ggp", "dis", "org")  # the published `cat` order (sorted anyway)
GLOBAL_MIN_DOCS = 2  # global and non-type lists: -m 2
GLOBAL_THRESHOLD = 0.5  # global list: -t 0.5
NONTYPE_THRESHOLD = 0.0  # non-type table: -t 0.0 (every name)
BLOCK_RATIO = 1000.0  # local blocklists: --ratio 1000
ALLOW_RATIO = 1e15  # local allowlists: --ratio 1000000000000000
# The published scripts' own defaults (what each step command defaults to; the pipeline passes its values above):
SCRIPT_LOCAL_THRESHOLD = 0.5  # make_local_blacklist.py -t
SCRIPT_LOCAL_MIN_COUNT = 2  # make_local_blacklist.py -m
SCRIPT_LOCAL_TYPE = "ggp"  # make_local_blacklist.py -s and -T
SCRIPT_GLOBAL_MIN_DOCS = 10  # global_blacklist_candidates.py -m
Key = Tuple[str, str]  # (name, type)


# ----------------------------------------------------------------------------- arithmetic


class FloatSum:
    """A running float sum: left to right (Python <= 3.11 ``sum``) or Neumaier-compensated (Python >= 3.12)."""

    __slots__ = ("hi", "lo", "compensated")

    def __init__(self, compensated: bool = False) -> None:
        self.hi, self.lo, self.compensated = 0.0, 0.0, compensated

    def add(self, x: float) -> None:
        """Add one value."""
        t = self.hi + x
        if self.compensated:
            self.lo += (self.hi - t) + x if abs(self.hi) >= abs(x) else (x - t) + self.hi
        self.hi = t

    @property
    def value(self) -> float:
        """The sum so far."""
        return self.hi + self.lo if self.lo and math.isfinite(self.lo) else self.hi


def float_sum(values: Iterable[float], compensated: bool = False) -> float:
    """The sum of floats, as Python 3.11's (or, compensated, 3.12's) ``sum()`` computes it."""
    total = FloatSum(compensated)
    for value in values:
        total.add(value)
    return total.value


def normalised_probability(log_sums: Sequence[float], index: int, compensated: bool = False) -> float:
    """The probability of label `index` after normalising summed log10 probabilities over the labels."""
    top = max(log_sums)
    scaled = [10 ** (value - top) for value in log_sums]
    return scaled[index] / float_sum(scaled, compensated)


def type_ratio(type_probability: float, local_probability: float, invert: bool = False) -> float:
    """Local odds times global odds of the type (of not the type when inverted); inf when a factor is 0."""
    if invert:
        type_probability, local_probability = 1 - type_probability, 1 - local_probability
    global_other, local_other = 1 - type_probability, 1 - local_probability
    if local_other * global_other == 0:
        return math.inf
    return (local_probability * type_probability) / (local_other * global_other)


# ----------------------------------------------------------------------------- GNU sort


_GNU_NUMBER = re.compile(r"[ \t]*(-?)([0-9]*)(?:\.([0-9]*))?")


def gnu_numeric_value(line: str) -> Decimal:
    """The number GNU ``sort -n`` reads at the start of a line (no exponent; none at all reads as 0)."""
    match = _GNU_NUMBER.match(line)
    assert match is not None  # the pattern matches the empty string
    sign, whole, fraction = match.group(1), match.group(2), match.group(3) or ""
    value = Decimal(f"{whole or '0'}.{fraction or '0'}")
    return -value if sign else value


def sort_numeric_reverse(lines: Iterable[str]) -> List[str]:
    """Lines in the order of GNU ``sort -rn`` in the C/C.UTF-8 locale (ties: whole line, reversed)."""
    return sorted(lines, key=lambda line: (gnu_numeric_value(line), line), reverse=True)


# ----------------------------------------------------------------------------- reading


def check_probability(value: float, label: str, path: str, line: int) -> float:
    """A probability read from a file, unchanged; InputError when it is not in [0, 1]."""
    if not (0.0 <= value <= 1.0 + PROBABILITY_SLACK):  # also rejects NaN
        raise InputError(f"probability of {label!r} is not in [0, 1]: {value!r}", path, line)
    return value


def probability_log10(value: float) -> float:
    """log10 of a probability; 0 counts as 1e-300."""
    return math.log10(value if value > 0.0 else MIN_PROBABILITY)


@dataclass
class Prediction:
    """One prediction row reduced to what the blocklists need."""

    doc_id: str
    source_type: str
    mention: str
    log_probabilities: List[float]


def header_labels(cells: List[str], path: str) -> List[str]:
    """The label names of the probability columns of our header (a ``p_`` prefix is removed)."""
    labels = [name[2:] if name.startswith("p_") else name for name in cells[len(FIXED_COLUMNS):]]
    if not labels or "" in labels or len(set(labels)) != len(labels):
        raise InputError("the header needs one column per label after predicted_label, each named once", path, 1)
    return labels


def _headed_probabilities(cells: List[str], labels: List[str], path: str, number: int) -> List[float]:
    """The log10 probabilities of one row of our format."""
    if len(cells) != len(FIXED_COLUMNS) + len(labels):
        raise InputError(f"expected {len(FIXED_COLUMNS) + len(labels)} tab-separated columns, found {len(cells)}",
                         path, number)
    logs = []
    for label, text in zip(labels, cells[len(FIXED_COLUMNS):]):
        try:
            value = float(text)
        except ValueError:
            raise InputError(f"probability of {label!r} is not a number: {text!r}", path, number) from None
        logs.append(probability_log10(check_probability(value, label, path, number)))
    return logs


def published_probabilities(cells: List[str], path: str, number: int) -> Dict[str, float]:
    """The label -> probability dict of one published 8-column row."""
    if len(cells) != PUBLISHED_WIDTH:
        raise InputError(f"expected {PUBLISHED_WIDTH} tab-separated columns, found {len(cells)}", path, number)
    try:
        values = parse_published_dict(cells[-1])
    except ValueError as err:
        raise InputError(str(err), path, number) from None
    return {label: check_probability(p, label, path, number) for label, p in values.items()}


def _published_log_probabilities(cells: List[str], labels: List[str], path: str, number: int) -> List[float]:
    """The log10 probabilities of one published row, whose labels must be those of the first row."""
    values = published_probabilities(cells, path, number)
    if list(values) != labels:
        raise InputError(f"probability labels {list(values)} differ from the first row's {labels}", path, number)
    return [probability_log10(p) for p in values.values()]


def read_predictions(path: str) -> Tuple[List[str], Iterator[Tuple[int, Prediction]]]:
    """The labels of a prediction file (either format) and an iterator over its (line number, row)."""
    lines = iter_lines(path, skip_blank=True)
    first = next(lines, None)
    cells = first[1].split("\t") if first else []
    if first and tuple(cells[: len(FIXED_COLUMNS)]) == FIXED_COLUMNS:
        labels = header_labels(cells, path)
        return labels, _rows(lines, labels, _headed_probabilities, path)
    if first and is_published_row(cells):
        labels = list(published_probabilities(cells, path, first[0]))
        return labels, _rows(_chain(first, lines), labels, _published_log_probabilities, path)
    raise InputError("neither our header (" + " ".join(FIXED_COLUMNS) + " <labels>) nor a published "
                     "8-column row ending in a probability dict", path, 1)


def _chain(first: Tuple[int, str], rest: Iterator[Tuple[int, str]]) -> Iterator[Tuple[int, str]]:
    """The first line again, then the rest."""
    yield first
    yield from rest


def _rows(lines: Iterable[Tuple[int, str]], labels: List[str],
          parse: Callable[[List[str], List[str], str, int], List[float]], path: str) -> Iterator[Tuple[int, Prediction]]:
    """Parse the (non-blank) data lines of a prediction file."""
    for number, line in lines:
        cells = line.split("\t")
        logs = parse(cells, labels, path, number)
        yield number, Prediction(cells[0], cells[2], cells[4], logs)


def read_name_types(path: str, lowercase: bool = False) -> Dict[str, Set[str]]:
    """Map each name of a 'name <tab> type' file to its set of types."""
    types: Dict[str, Set[str]] = {}
    for number, line in iter_lines(path, skip_blank=True):
        cells = line.split("\t")
        if len(cells) != 2 or not cells[0] or not cells[1]:
            raise InputError("expected two tab-separated columns: name, type", path, number)
        types.setdefault(cells[0].lower() if lowercase else cells[0], set()).add(cells[1])
    return types


def read_never_block(path: Optional[str]) -> FrozenSet[Key]:
    """The (name, type) pairs never to block: from a 'name <tab> type' file, or the published two."""
    if path is None:
        return DEFAULT_NEVER_BLOCK
    return frozenset((name, type_) for name, types in read_name_types(path).items() for type_ in types)


# ----------------------------------------------------------------------------- local lists


@dataclass
class LocalOptions:
    """Settings of the local step (the published script's defaults are -t 0.5 -m 2; the pipeline's these)."""

    source_type: str
    target_type: str
    threshold: float = 1.01
    min_count: int = 1
    probability_output: bool = False
    all_rows: bool = False  # count every row, whatever its column 3 says
    source_types: Optional[Dict[str, Set[str]]] = None  # name -> types, replaces column 3
    lowercase_names: bool = False
    compensated_sum: bool = False


@dataclass
class NameTotals:
    """Per-label sums of log10 probabilities of one name's rows in one document."""

    sums: List[FloatSum]
    count: int = 0

    def add(self, logs: Sequence[float]) -> None:
        """Add one row."""
        for total, value in zip(self.sums, logs):
            total.add(value)
        self.count += 1


def selected_name(row: Prediction, options: LocalOptions) -> Optional[str]:
    """The name a row is counted under, or None when the row is not of the source type."""
    name = row.mention.lower() if options.lowercase_names else row.mention
    if options.all_rows:
        return name
    if options.source_types is not None:
        return name if options.source_type in options.source_types.get(name, ()) else None
    return name if row.source_type == options.source_type else None


def format_local_value(target_probability: float, probability_output: bool) -> str:
    """The first column of a local line: log10 probability (or probability), as the published script prints it."""
    log_prob = math.log10(target_probability) if target_probability > 0 else LOG10_ZERO
    return "{:.5f}".format(10 ** log_prob) if probability_output else "{}".format(log_prob)


def document_lines(doc_id: str, totals: Dict[str, NameTotals], target: int, options: LocalOptions) -> Iterator[str]:
    """The local-list lines of one document, names in the order first seen."""
    for name, total in totals.items():
        probability = normalised_probability([s.value for s in total.sums], target, options.compensated_sum)
        if probability < options.threshold and total.count >= options.min_count:
            value = format_local_value(probability, options.probability_output)
            yield f"{value}\t{total.count}\t{doc_id}\t{name}\t{options.target_type}"


def local_file_lines(path: str, options: LocalOptions) -> Iterator[str]:
    """Stream one prediction file into local-list lines; one document is held at a time."""
    labels, rows = read_predictions(path)
    if options.target_type not in labels:
        raise InputError(f"target type {options.target_type!r} is not one of the labels {labels}", path, 1)
    target = labels.index(options.target_type)
    doc_id: Optional[str] = None
    totals: Dict[str, NameTotals] = {}
    for _, row in rows:
        if row.doc_id != doc_id:
            if doc_id is not None:
                yield from document_lines(doc_id, totals, target, options)
            doc_id, totals = row.doc_id, {}
        name = selected_name(row, options)
        if name is not None:
            if name not in totals:
                totals[name] = NameTotals([FloatSum(options.compensated_sum) for _ in labels])
            totals[name].add(row.log_probabilities)
    if doc_id is not None:
        yield from document_lines(doc_id, totals, target, options)


def local_lines(paths: Sequence[str], options: LocalOptions) -> Iterator[str]:
    """The local list of prediction files, one file after another."""
    for path in paths:
        yield from local_file_lines(path, options)


@dataclass
class LocalEntry:
    """One line of a local list."""

    log10_probability: float
    count: int
    doc_id: str
    name: str
    type: str


def parse_local_line(line: str, path: str, number: int) -> LocalEntry:
    """One line of a local list (columns after the fifth are ignored, as published)."""
    cells = line.split("\t")
    if len(cells) < 5:
        raise InputError("expected 5 tab-separated columns (log10 probability, count, doc_id, name, type), "
                         f"found {len(cells)}", path, number)
    try:
        log_prob, count = float(cells[0]), int(cells[1])
    except ValueError:
        raise InputError("the log10 probability must be a number and the count an integer", path, number) from None
    if not log_prob <= 0.0:  # also rejects NaN
        raise InputError(f"log10 probability must be <= 0, found {cells[0]!r}", path, number)
    return LocalEntry(log_prob, count, cells[2], cells[3], cells[4])


def read_local_list(path: str) -> Iterator[LocalEntry]:
    """The entries of a local list, streamed."""
    for number, line in iter_lines(path, skip_blank=True):
        yield parse_local_line(line, path, number)


# ----------------------------------------------------------------------------- global lists


@dataclass
class ErrorTotals:
    """The documents and summed error probability of one (name, type) over local lists."""

    sum: FloatSum
    documents: int = 0


def error_totals(paths: Sequence[str], compensated: bool = False) -> Dict[Key, ErrorTotals]:
    """Per (name, type), in the order first seen: lines and summed 1 - 10**log10p over the local lists."""
    totals: Dict[Key, ErrorTotals] = {}
    for path in paths:
        for entry in read_local_list(path):
            key = (entry.name, entry.type)
            if key not in totals:
                totals[key] = ErrorTotals(FloatSum(compensated))
            totals[key].sum.add(1 - 10 ** entry.log10_probability)
            totals[key].documents += 1
    return totals


def global_lines(paths: Sequence[str], min_docs: int = GLOBAL_MIN_DOCS, threshold: float = GLOBAL_THRESHOLD,
                 never_block: FrozenSet[Key] = DEFAULT_NEVER_BLOCK, compensated: bool = False) -> List[str]:
    """``expected_errors documents mean name type`` lines of the global list, in ``sort -rn`` order."""
    lines = []
    for (name, type_), total in error_totals(paths, compensated).items():
        if total.documents < min_docs:
            continue
        mean = total.sum.value / total.documents
        if mean < threshold:
            continue
        if (name, type_) in never_block:
            notice(f"not suggesting {name}/{type_} (never block)")
            continue
        lines.append("{}\t{}\t{}\t{}\t{}".format(mean * total.documents, total.documents, mean, name, type_))
    return sort_numeric_reverse(lines)


# ----------------------------------------------------------------------------- local block/allow lists


@dataclass
class GlobalProbability:
    """One line of the non-type table: documents and mean probability of not being the type."""

    documents: int
    non_type_probability: float


def read_nontype_table(path: str) -> Dict[Key, GlobalProbability]:
    """The (name, type) -> GlobalProbability map of a ``nontype`` (global) list."""
    table: Dict[Key, GlobalProbability] = {}
    for number, line in iter_lines(path, skip_blank=True):
        cells = line.split("\t")
        if len(cells) != 5:
            raise InputError(f"expected 5 tab-separated columns, found {len(cells)}", path, number)
        try:
            float(cells[0])
            documents, probability = int(cells[1]), float(cells[2])
        except ValueError:
            raise InputError("expected errors and mean must be numbers, documents an integer", path, number) from None
        key = (cells[3], cells[4])
        if key in table:
            raise InputError(f"{cells[3]}/{cells[4]} is listed twice", path, number)
        table[key] = GlobalProbability(documents, probability)
    return table


@dataclass
class RatioOptions:
    """Settings of the local block/allow lists (make_local_bw_lists.py)."""

    blocklist: bool  # True: names locally not of the type; False: names locally of it (the allowlist)
    ratio: Optional[float]  # None: no odds-ratio condition (the published script's default)
    global_type_probability: Optional[float] = None
    global_min_docs: int = 10
    global_threshold: float = 0.5
    function: str = "ratio"
    never_block: FrozenSet[Key] = DEFAULT_NEVER_BLOCK


def globally_blocked(key: Key, entry: GlobalProbability, options: RatioOptions) -> bool:
    """Whether the bw-list step takes a name as globally blocked (its own test, not the global list's)."""
    return (entry.documents >= options.global_min_docs
            and not entry.non_type_probability < options.global_threshold
            and key not in options.never_block)


def ranking_value(type_probability: float, local_probability: float, options: RatioOptions) -> str:
    """The first column of a bw-list line: the odds ratio (``str(float)``) or the difference (``%.5f``)."""
    invert = options.blocklist
    if options.function == "ratio":
        return "{}".format(type_ratio(type_probability, local_probability, invert))
    if invert:
        type_probability, local_probability = 1 - type_probability, 1 - local_probability
    return "{:.5f}".format(local_probability - (1 - type_probability))


def is_listed(type_probability: float, local_probability: float, blocked: bool, options: RatioOptions) -> bool:
    """Whether a local line goes into the local blocklist (or allowlist)."""
    if options.blocklist:
        return (not blocked and 1 - local_probability > type_probability
                and (options.ratio is None or type_ratio(type_probability, local_probability, True) > options.ratio))
    return (blocked and local_probability > 1 - type_probability
            and (options.ratio is None or type_ratio(type_probability, local_probability) > options.ratio)
            and (options.global_type_probability is None or type_probability > options.global_type_probability))


def ratio_line(entry: LocalEntry, table: Dict[Key, GlobalProbability], options: RatioOptions) -> Optional[str]:
    """The bw-list line of one local entry, or None (also when the table lacks its name)."""
    key = (entry.name, entry.type)
    if key not in table:
        return None
    local_probability = 10 ** entry.log10_probability
    type_probability = 1 - table[key].non_type_probability
    if not is_listed(type_probability, local_probability, globally_blocked(key, table[key], options), options):
        return None
    value = ranking_value(type_probability, local_probability, options)
    return "{}\t{}\t{}\t{}\t{:.5f}\t{:.5f}".format(value, entry.name, entry.doc_id, entry.count,
                                                    type_probability, local_probability)


def counted_ratio_lines(table: Dict[Key, GlobalProbability], local_paths: Sequence[str],
                        options: RatioOptions) -> Tuple[List[str], int]:
    """The bw-list lines of local lists in ``sort -rn`` order, and how many local lines the table lacks."""
    lines, missing = [], 0
    for path in local_paths:
        for entry in read_local_list(path):
            missing += (entry.name, entry.type) not in table
            line = ratio_line(entry, table, options)
            if line is not None:
                lines.append(line)
    return sort_numeric_reverse(lines), missing


def note_missing(missing: int) -> None:
    """Say how many local lines had no line in the non-type table (the published script warns for each)."""
    if missing:
        notice(f"{missing} local lines skipped: their name is not in the non-type table (too few documents)")


def ratio_lines(table: Dict[Key, GlobalProbability], local_paths: Sequence[str], options: RatioOptions) -> List[str]:
    """The bw-list lines of local lists, in ``sort -rn`` order."""
    lines, missing = counted_ratio_lines(table, local_paths, options)
    note_missing(missing)
    return lines
