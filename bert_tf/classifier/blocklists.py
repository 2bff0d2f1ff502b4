"""Blocklists of dictionary names from the classifier's predictions, exactly as the published scripts make them.

The published pipeline (BioBERT-based-entity-type-classifier, ``blocklist_generation/``:
``generate-blocklists.sh`` calling ``make_local_blacklist.py``, ``global_blacklist_candidates.py`` and
``make_local_bw_lists.py``, each piped through ``sort -rn``) is reproduced byte for byte::

    python -m bert_tf.classifier.blocklists pipeline --run_dir RUN_DIR [--output_dir OUT] [--types ggp,che,org,dis]

reads ``RUN_DIR/TYPE-predictions/output_with_probabilities_*`` and writes every file the published
script writes, under the same names (``auto_local.tsv`` and ``auto_global.tsv`` are the lists the
dictionary tagger uses). Each step is also a command of its own::

    python -m bert_tf.classifier.blocklists local -s ggp -T ggp PREDICTIONS... --output local.tsv
    python -m bert_tf.classifier.blocklists global LOCAL... --output global.tsv            # -m 2 -t 0.5
    python -m bert_tf.classifier.blocklists nontype LOCAL... --output nontype.tsv          # -m 2 -t 0.0
    python -m bert_tf.classifier.blocklists local-ratio --nontype nontype.tsv LOCAL... --output blocked.tsv
    python -m bert_tf.classifier.blocklists allowlist --nontype nontype.tsv LOCAL... --output allowed.tsv

Prediction files may be ours (a header line ``doc_id annotation_id label left_context mention
right_context predicted_label <label>...``) or the published 8-column ones (no header; the six input
columns, the predicted label, a dict ``{'che': p, ...}``); the format is recognised per file from its
first line. Column 3 (``label``) holds the type the dictionary tagger gave the match.

local (make_local_blacklist.py)
    Per document (a run of consecutive rows with one doc_id), the rows whose column 3 is the
    source type are grouped by name; each label's log10 probabilities are summed and normalised
    over the labels. A name is listed when its target-type probability p is below
    ``--threshold`` (1.01, the pipeline's value, lists every name) and it occurs at least
    ``--min_count`` times: ``log10(p) count doc_id name target_type`` (``log10(p)`` as Python's
    ``str(float)``; -1000 when p underflows to 0). Documents in file order, names in the order
    first seen. A probability of exactly 0 (which makes the published script fail) counts as 1e-300.
global (global_blacklist_candidates.py | sort -rn)
    The error probability of a local line is 1 - 10**log10(p). Per (name, type) over all local
    lines: kept when seen in at least ``--min_docs`` lines with a mean of at least
    ``--threshold``, and not a never-block pair: ``expected_errors documents mean name type``.
nontype: ``global`` with -t 0.0: every name's mean probability of not being the type.
local-ratio / allowlist (make_local_bw_lists.py --blacklist --ratio 1000 / --ratio 1e15 --global-ggp-prob 0.3)
    For each local line whose (name, type) is in the nontype table: with g the global and l the
    local probability of the type, a name is "globally blocked" when seen in at least
    ``--global_min_docs`` (10) documents with a global non-type probability of at least
    ``--global_threshold`` (0.5). ``local-ratio`` lists names not globally blocked whose
    local odds of not being the type beat the global odds of being it by more than ``--ratio``:
    (1-l)(1-g) / (l*g) > ratio and 1-l > g. ``allowlist`` lists globally blocked names whose local
    odds of being the type beat the global odds of not being it: l*g / ((1-l)(1-g)) > ratio,
    l > 1-g and g > ``--global_type_probability``.
    Columns: ``ratio name doc_id count g l`` (ratio as ``str(float)``, ``inf`` when a factor is 0).
    The "globally blocked" test is the bw-list script's own; it does not look at the global list.
pipeline (generate-blocklists.sh)
    Per type: ``local`` at threshold 1.01 and min count 1 (every name of every document, so the
    global mean covers all documents: a local step at 0.5 would leave only documents where p < 0.5
    and a global threshold of 0.5 would then remove nothing) into ``local_blacklists-01-TYPE/``,
    ``global`` -m 2 (threshold 0.5, dis 0.85) into ``TYPE_global_min_mentions_1_min_docs_2_threshold_T.tsv``
    and its names into ``global_blacklist_TYPE_2col.tsv``; for ggp and che the ``nontype`` table
    ``global-non-TYPE-probabilities-min-mentions-1-min-docs-2.tsv`` and ``local-ratio`` lists per
    file (``local-blacklists-ratio-1000-TYPE/``, joined, and ``local_blacklist_TYPE_3col.tsv``:
    name, doc_id, t); for ggp the ``allowlist`` the same way (``local-whitelists-ratio-1e15-global-ggp-prob-0.3/``,
    ``local_whitelist_ggp_3col.tsv``: name, doc_id, f). ``auto_local.tsv`` is the sorted 3-column lists,
    ``auto_global.tsv`` the sorted unique 2-column lists. As published, the non-type and ratio steps
    read only the local lists whose name ends in ``.tsv``. Where the published script would go on
    after a missing file (and write empty lists), this raises InputError. Every value is a flag;
    the default output directory is RUN_DIR itself, as published, and outputs that exist already
    are replaced only with ``--overwrite``. All is written into a staging directory first and moved
    into place at the end. Memory: one document of one prediction file, plus a running total per
    (name, type) of a type; the per-file ratio lists and auto_local are sorted in memory.

Exactness. Floats are added left to right, as Python 3.11's ``sum()`` does (our CI's Python);
Python >= 3.12's ``sum()`` compensates (Neumaier), so outputs the published scripts made with such
a Python differ in the last digits: ``--compensated_sum`` adds that way instead. ``sort -rn`` is
reproduced as GNU sort does it: the number is the leading ``-?digits.digits`` only (``1e-05`` sorts as
1, ``inf`` as 0), ties are broken by the whole line, in reverse. Plain ``sort`` / ``sort -u`` and the
shell's file-name globs order by code point: what GNU sort and bash do in the C, POSIX and C.UTF-8
locales (other locales collate differently; run the published script with LC_ALL=C.UTF-8 to compare).
The published ``make_local_bw_lists.py`` caches its "globally blocked" decision under the key
``(name, type)`` where ``type`` is Python's builtin, so the cache never hits and nothing is cached
between names: every line is decided on its own, as here. The published scripts read files with
Python's universal newlines (``\\r``, ``\\r\\n`` and ``\\n`` end a line), as bert_tf.io_utils reads every
line-based file. Two differences, on input the published scripts fail on or misread: a blank line
of a prediction file or list is skipped (the published scripts stop with an error), and a byte
order mark at the start of a file is dropped (the published scripts keep it in the first doc_id).

Bad input raises InputError naming the file and line; the command line prints ``error: <message>``
and exits with status 2, leaving no output file behind.
"""

from __future__ import annotations

import argparse
import copy
import glob
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import (Any, Callable, Dict, FrozenSet, Iterable, Iterator, List, Optional, Sequence, Set, TextIO,
                    Tuple)

from bert_tf import lifecycle, ownership
from bert_tf.classifier import corpus
from bert_tf.cli import error_exit_status, notice
from bert_tf.errors import InputError
from bert_tf.io_utils import atomic_path, iter_lines
from bert_tf.classifier.prediction_files import (FIXED_COLUMNS, PROBABILITIES_NAME, PUBLISHED_SUBDIR, PUBLISHED_WIDTH,
                                                 is_published_row, parse_published_dict)

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
    ratio: float
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
                and type_ratio(type_probability, local_probability, True) > options.ratio)
    return (blocked and local_probability > 1 - type_probability
            and type_ratio(type_probability, local_probability) > options.ratio
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


# ----------------------------------------------------------------------------- output


def write_lines(handle: TextIO, lines: Iterable[str]) -> int:
    """Write lines with newlines; return how many."""
    count = 0
    for line in lines:
        handle.write(line + "\n")
        count += 1
    return count


def write_output(path: str, lines: Iterable[str], overwrite: bool = False) -> int:
    """Write lines to a new file atomically (an existing one only with overwrite); return how many."""
    if os.path.exists(path) and not overwrite:
        raise InputError("exists already; use --overwrite to replace it", path)
    try:
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            return write_lines(handle, lines)
    except OSError as err:
        raise InputError(f"cannot write: {err.strerror}", path) from None


def write_text_lines(path: str, lines: Iterable[str]) -> int:
    """Write lines to a file (inside the pipeline's staging directory); return how many."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        return write_lines(handle, lines)


def concatenate(paths: Sequence[str]) -> Iterator[str]:
    """The lines of files one after the other (``cat``)."""
    for path in paths:
        for _, line in iter_lines(path):
            yield line


def tab_columns(lines: Iterable[str], columns: Sequence[int], suffix: str) -> Iterator[str]:
    """awk -F'\\t' '{printf("%s\\t...%s\\n", $i...)}': the chosen 1-based columns, then a suffix column."""
    for line in lines:
        cells = line.split("\t")
        picked = [cells[i - 1] if i <= len(cells) else "" for i in columns]
        yield "\t".join(picked + [suffix])


# ----------------------------------------------------------------------------- pipeline


def number_text(value: float) -> str:
    """A number as it appears in the published file names (0.5, 1000, 1e15)."""
    if value.is_integer() and abs(value) < 1e6:
        return str(int(value))
    return ("%g" % value).replace("e+", "e")


@dataclass
class PipelineOptions:
    """Settings of generate-blocklists.sh; every default is the published value."""

    types: List[str] = field(default_factory=lambda: list(DEFAULT_TYPES))
    local_threshold: float = LocalOptions.threshold
    local_min_count: int = LocalOptions.min_count
    min_docs: int = GLOBAL_MIN_DOCS
    global_threshold: float = GLOBAL_THRESHOLD
    global_threshold_per_type: Dict[str, float] = field(default_factory=lambda: {"dis": 0.85})
    local_list_types: List[str] = field(default_factory=lambda: list(PUBLISHED_LOCAL_LIST_TYPES))
    allowlist_types: List[str] = field(default_factory=lambda: list(PUBLISHED_ALLOWLIST_TYPES))
    block_ratio: float = BLOCK_RATIO
    allow_ratio: float = ALLOW_RATIO
    allow_global_type_probability: float = 0.3
    ratio_global_min_docs: int = RatioOptions.global_min_docs
    ratio_global_threshold: float = RatioOptions.global_threshold
    never_block: FrozenSet[Key] = DEFAULT_NEVER_BLOCK
    compensated_sum: bool = False

    def threshold(self, type_: str) -> float:
        """The global threshold of a type."""
        return self.global_threshold_per_type.get(type_, self.global_threshold)


PUBLISHED = PipelineOptions()  # the published settings: every command's defaults


def output_names(options: PipelineOptions) -> Dict[str, str]:
    """The published names of the pipeline's outputs, by role ('local:ggp', 'global:ggp', ...)."""
    m, d = options.local_min_count, options.min_docs
    names = {"auto_local": "auto_local.tsv", "auto_global": "auto_global.tsv"}
    for t in options.types:
        names[f"local:{t}"] = f"local_blacklists-01-{t}"
        names[f"global:{t}"] = f"{t}_global_min_mentions_{m}_min_docs_{d}_threshold_{options.threshold(t)}.tsv"
        names[f"2col:{t}"] = f"global_blacklist_{t}_2col.tsv"
    for t in options.local_list_types:
        names[f"nontype:{t}"] = f"global-non-{t}-probabilities-min-mentions-{m}-min-docs-{d}.tsv"
        names[f"ratio_dir:{t}"] = f"local-blacklists-ratio-{number_text(options.block_ratio)}-{t}"
        names[f"ratio:{t}"] = names[f"ratio_dir:{t}"] + ".tsv"
        names[f"ratio3:{t}"] = f"local_blacklist_{t}_3col.tsv"
    allow = f"ratio-{number_text(options.allow_ratio)}-global-{{t}}-prob-{options.allow_global_type_probability}"
    for t in options.allowlist_types:
        names[f"allow_dir:{t}"] = "local-whitelists-" + allow.format(t=t)
        names[f"allow:{t}"] = f"local-whitelist-{t}-" + allow.format(t=t) + ".tsv"
        names[f"allow3:{t}"] = f"local_whitelist_{t}_3col.tsv"
    return names


def check_pipeline_options(options: PipelineOptions) -> None:
    """InputError when the type lists do not fit together."""
    if not options.types or len(set(options.types)) != len(options.types):
        raise InputError(f"--types must name each type once, got {options.types}")
    for flag, subset, superset in (("--local_list_types", options.local_list_types, options.types),
                                   ("--allowlist_types", options.allowlist_types, options.local_list_types)):
        if not set(subset) <= set(superset):
            raise InputError(f"{flag} {','.join(subset)} must be among {','.join(superset)}")


PREDICTION_INFO = "prediction_info.json"


def temperature_note(directory: str) -> str:
    """Which temperature the predictions in a folder carry, from run_classifier.py's prediction_info.json."""
    path = os.path.join(directory, PREDICTION_INFO)
    if not os.path.isfile(path):
        return f"no {PREDICTION_INFO}: the temperature of these predictions is unknown (published files carry none)"
    try:
        with open(path, encoding="utf-8") as f:
            temperature = json.load(f).get("temperature")
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read: {err}", path) from None
    if temperature is None or float(temperature) == 1.0:
        return "predictions at temperature 1 (not calibrated)"
    return f"predictions calibrated at temperature {float(temperature):.4g} (--calibrate)"


def note_temperatures(paths: Sequence[str]) -> None:
    """Refuse a folder whose shards two settings made (their shard_info_*.json records disagree); say, once per
    folder, which temperature the prediction files carry."""
    for directory in sorted({os.path.dirname(os.path.abspath(p)) for p in paths}):
        corpus.check_folder_consistent(directory)
        if os.path.basename(directory) == PUBLISHED_SUBDIR:  # seed-compatible files; the records are one up
            corpus.check_folder_consistent(os.path.dirname(directory))
        notice(temperature_note(directory), directory)


def prediction_files(run_dir: str, type_: str) -> List[str]:
    """``RUN_DIR/TYPE-predictions/output_with_probabilities_*`` in the order bash globs them (C locale)."""
    pattern = os.path.join(glob.escape(os.path.join(run_dir, f"{type_}-predictions")), PREDICTIONS_GLOB)
    paths = sorted(glob.glob(pattern), key=os.path.basename)
    if not paths:
        raise InputError(f"no prediction files {PREDICTIONS_GLOB} for type {type_}",
                         os.path.join(run_dir, f"{type_}-predictions"))
    return paths


def tsv_files(paths: Sequence[str], type_: str) -> List[str]:
    """The .tsv files among local lists (the published steps after the global list glob ``*.tsv``)."""
    chosen = [p for p in paths if p.endswith(".tsv")]
    if not chosen:
        raise InputError(f"no prediction file of type {type_} ends in .tsv; the published non-type and local "
                         "lists read only *.tsv files")
    if len(chosen) < len(paths):
        notice(f"{len(paths) - len(chosen)} {type_} files not ending in .tsv left out of the non-type and local "
               "lists, as the published script does")
    return chosen


class PipelineRun:
    """One run of the pipeline, writing into a staging directory."""

    def __init__(self, run_dir: str, stage: str, options: PipelineOptions) -> None:
        self.run_dir, self.stage, self.options = run_dir, stage, options
        self.names = output_names(options)

    def path(self, role: str, *more: str) -> str:
        """The staging path of an output."""
        return os.path.join(self.stage, self.names[role], *more)

    def run(self) -> None:
        """Write every output of generate-blocklists.sh."""
        for t in self.options.types:
            lifecycle.enter_phase(f"blocklists {t}")
            local_paths = self.local_lists(t)
            self.global_list(t, local_paths)
            if t in self.options.local_list_types:
                self.local_block_allow(t, tsv_files(local_paths, t))
        self.auto_lists()

    def local_lists(self, type_: str) -> List[str]:
        """Local lists of every name of the type, one per prediction file (same file names)."""
        options = LocalOptions(type_, type_, self.options.local_threshold, self.options.local_min_count,
                               compensated_sum=self.options.compensated_sum)
        os.makedirs(self.path(f"local:{type_}"), exist_ok=True)
        paths = []
        sources = prediction_files(self.run_dir, type_)
        note_temperatures(sources)
        for source in sources:
            paths.append(self.path(f"local:{type_}", os.path.basename(source)))
            write_text_lines(paths[-1], local_file_lines(source, options))
        return paths

    def global_list(self, type_: str, local_paths: List[str]) -> None:
        """The global list of the type and its two-column form."""
        lines = global_lines(local_paths, self.options.min_docs, self.options.threshold(type_),
                             self.options.never_block, self.options.compensated_sum)
        write_text_lines(self.path(f"global:{type_}"), lines)
        write_text_lines(self.path(f"2col:{type_}"), tab_columns(lines, [4], "t"))

    def local_block_allow(self, type_: str, local_paths: List[str]) -> None:
        """The non-type table, the local blocklists and (for allowlist types) the local allowlists."""
        o = self.options
        nontype = global_lines(local_paths, o.min_docs, NONTYPE_THRESHOLD, o.never_block, o.compensated_sum)
        write_text_lines(self.path(f"nontype:{type_}"), nontype)
        table = read_nontype_table(self.path(f"nontype:{type_}"))
        common = dict(global_min_docs=o.ratio_global_min_docs, global_threshold=o.ratio_global_threshold,
                      never_block=o.never_block)
        if type_ in o.allowlist_types:
            allow = RatioOptions(False, o.allow_ratio, o.allow_global_type_probability, **common)
            self.ratio_lists(type_, local_paths, table, allow, ("allow_dir", "allow", "allow3"), "f")
        block = RatioOptions(True, o.block_ratio, **common)
        self.ratio_lists(type_, local_paths, table, block, ("ratio_dir", "ratio", "ratio3"), "t")

    def ratio_lists(self, type_: str, local_paths: List[str], table: Dict[Key, GlobalProbability],
                    options: RatioOptions, roles: Tuple[str, str, str], flag: str) -> None:
        """Per-file bw lists, their concatenation and its three-column form (name, doc_id, flag)."""
        directory, joined, three = (f"{role}:{type_}" for role in roles)
        os.makedirs(self.path(directory), exist_ok=True)
        missing = 0
        for local in local_paths:
            lines, skipped = counted_ratio_lines(table, [local], options)
            write_text_lines(self.path(directory, os.path.basename(local)), lines)
            missing += skipped
        note_missing(missing)
        parts = [self.path(directory, name) for name in sorted(os.listdir(self.path(directory)))]
        write_text_lines(self.path(joined), concatenate(parts))
        write_text_lines(self.path(three), tab_columns(concatenate([self.path(joined)]), [2, 3], flag))

    def auto_lists(self) -> None:
        """auto_local.tsv (``sort``) and auto_global.tsv (``sort -u``)."""
        o = self.options
        parts = [self.path(f"allow3:{t}") for t in o.allowlist_types]
        parts += [self.path(f"ratio3:{t}") for t in o.local_list_types]
        write_text_lines(self.path("auto_local"), sorted(concatenate(parts)))
        order = [t for t in AUTO_GLOBAL_ORDER if t in o.types] + [t for t in o.types if t not in AUTO_GLOBAL_ORDER]
        write_text_lines(self.path("auto_global"), sorted(set(concatenate([self.path(f"2col:{t}") for t in order]))))


def existing_outputs(output_dir: str, options: PipelineOptions) -> List[str]:
    """The pipeline outputs that exist already in the output directory."""
    return [name for name in sorted(set(output_names(options).values()))
            if os.path.lexists(os.path.join(output_dir, name))]


def move_into_place(stage: str, output_dir: str) -> None:
    """Move every entry of the staging directory into the output directory, replacing old ones."""
    for name in sorted(os.listdir(stage)):
        target = os.path.join(output_dir, name)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        elif os.path.lexists(target):
            os.remove(target)
        os.replace(os.path.join(stage, name), target)


def run_pipeline(run_dir: str, output_dir: Optional[str], options: PipelineOptions, overwrite: bool = False) -> str:
    """Run generate-blocklists.sh on RUN_DIR, writing into output_dir (default RUN_DIR); return output_dir."""
    check_pipeline_options(options)
    if not os.path.isdir(run_dir):
        raise InputError("the run directory does not exist", run_dir)
    output_dir = output_dir or run_dir

    def check() -> None:
        clashes = existing_outputs(output_dir, options)
        if clashes and not overwrite:
            raise InputError(f"{clashes[0]} exists already ({len(clashes)} outputs do); use --overwrite", output_dir)

    identity = {"command": "blocklists pipeline", "run_dir": os.path.abspath(run_dir), "options": repr(options)}
    try:
        claim = ownership.claim_output_dir(output_dir, identity, overwrite, check)  # a killed run's own: continued
        stage = tempfile.mkdtemp(prefix=".blocklists.", suffix=".tmp", dir=output_dir)
    except OSError as err:
        raise InputError(f"cannot write there: {err.strerror}", output_dir) from None
    try:
        PipelineRun(run_dir, stage, options).run()
        lifecycle.enter_phase("blocklists into place")
        move_into_place(stage, output_dir)
    except InputError:
        claim.abandon()
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    claim.finish()
    return output_dir


# ----------------------------------------------------------------------------- command line


def type_list(text: str) -> List[str]:
    """argparse type: a comma-separated list of types."""
    return [t for t in (part.strip() for part in text.split(",")) if t]


def type_thresholds(text: str) -> Dict[str, float]:
    """argparse type: 'type:threshold,type:threshold'."""
    result = {}
    for part in type_list(text):
        name, sep, value = part.partition(":")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected type:threshold, got {part!r}")
        result[name] = float(value)
    return result


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    """--output, --overwrite and --compensated_sum."""
    parser.add_argument("--output", "-o", required=True, help="the list to write (a new file)")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.add_argument("--compensated_sum", action="store_true",
                        help="add floats as Python >= 3.12's sum() does (Neumaier), not left to right as 3.11")


def add_local_parser(commands: argparse._SubParsersAction) -> None:
    """The 'local' command (make_local_blacklist.py)."""
    p = commands.add_parser("local", help="per document: names and their combined target-type probability")
    p.add_argument("predictions", nargs="+", help="prediction files, ours or the published 8-column ones")
    p.add_argument("--source_type", "-s", required=True, help="count rows whose column 3 is this type")
    p.add_argument("--target_type", "-T", help="the type whose probability is listed (default: source type)")
    p.add_argument("--threshold", "-t", type=float, default=LocalOptions.threshold,
                   help="list names whose probability is below this (1.01 lists all; the published default is 0.5)")
    p.add_argument("--min_count", "-m", type=int, default=LocalOptions.min_count, help="list names seen at least this often in the document")
    p.add_argument("--probability", "-p", action="store_true", help="print the probability, not its log10")
    p.add_argument("--all_rows", action="store_true", help="count every row, whatever its column 3 says")
    p.add_argument("--source_types_file", help="'name<TAB>type' lines: a name's types, used instead of column 3")
    p.add_argument("--lowercase_names", action="store_true", help="group and write names lowercased")
    add_output_flags(p)
    p.set_defaults(run=run_local)


def add_global_parsers(commands: argparse._SubParsersAction) -> None:
    """The 'global' and 'nontype' commands (global_blacklist_candidates.py | sort -rn)."""
    for name, threshold, text in (("global", GLOBAL_THRESHOLD, "names usually not of their type"),
                                  ("nontype", NONTYPE_THRESHOLD, "every name's mean probability of not being its type")):
        p = commands.add_parser(name, help=text)
        p.add_argument("local", nargs="+", help="local lists (from 'local')")
        p.add_argument("--min_docs", "-m", type=int, default=GLOBAL_MIN_DOCS, help="keep names in at least this many lines")
        p.add_argument("--threshold", "-t", type=float, default=threshold, help="keep means at least this")
        p.add_argument("--never_block", help="'name<TAB>type' pairs never listed (default: insulin, INSULIN as ggp)")
        add_output_flags(p)
        p.set_defaults(run=run_global)


def add_ratio_parsers(commands: argparse._SubParsersAction) -> None:
    """The 'local-ratio' and 'allowlist' commands (make_local_bw_lists.py | sort -rn)."""
    for name, ratio, text in (("local-ratio", BLOCK_RATIO, "names locally unlikely to be of a type likely globally"),
                              ("allowlist", ALLOW_RATIO, "names locally of a type although globally blocked")):
        p = commands.add_parser(name, help=text)
        p.add_argument("local", nargs="+", help="local lists (from 'local')")
        p.add_argument("--nontype", required=True, help="the non-type table (from 'nontype')")
        p.add_argument("--ratio", "-r", type=float, default=ratio, help="the odds ratio to exceed")
        if name == "allowlist":
            p.add_argument("--global_type_probability", "-g", type=float, default=PUBLISHED.allow_global_type_probability,
                           help="the global type probability to exceed")
        p.add_argument("--global_min_docs", "-m", type=int, default=RatioOptions.global_min_docs,
                       help="globally blocked: documents at least")
        p.add_argument("--global_threshold", "-t", type=float, default=RatioOptions.global_threshold,
                       help="globally blocked: non-type probability at least")
        p.add_argument("--function", "-f", choices=("ratio", "diff"), default=RatioOptions.function,
                       help="the first column")
        p.add_argument("--never_block", help="'name<TAB>type' pairs never globally blocked (default: insulin)")
        add_output_flags(p)
        p.set_defaults(run=run_ratio)


PIPELINE_FLAGS: Tuple[Tuple[str, Callable[[str], Any], str], ...] = (  # (PipelineOptions field, type, help)
    ("types", type_list, "types, comma-separated"),
    ("local_threshold", float, "local step threshold (1.01: every name)"),
    ("local_min_count", int, "local step minimum count per document"),
    ("min_docs", int, "global and non-type lists: documents at least"),
    ("global_threshold", float, "global list threshold"),
    ("global_threshold_per_type", type_thresholds, "per-type global thresholds, e.g. dis:0.85"),
    ("block_ratio", float, "local blocklist odds ratio"),
    ("allow_ratio", float, "local allowlist odds ratio"),
    ("allow_global_type_probability", float, "local allowlist: global type probability to exceed"),
    ("ratio_global_min_docs", int, "bw lists: globally blocked from this many docs"),
    ("ratio_global_threshold", float, "bw lists: globally blocked threshold"),
)


def add_pipeline_parser(commands: argparse._SubParsersAction) -> None:
    """The 'pipeline' command (generate-blocklists.sh)."""
    p = commands.add_parser("pipeline", help="every list of generate-blocklists.sh, auto_local.tsv and auto_global.tsv")
    p.add_argument("--run_dir", required=True, help="holds TYPE-predictions/output_with_probabilities_*")
    p.add_argument("--output_dir", help="where the lists go (default: --run_dir, as published)")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that exist already")
    for name, kind, text in PIPELINE_FLAGS:
        p.add_argument("--" + name, type=kind, default=copy.copy(getattr(PUBLISHED, name)), help=text)
    p.add_argument("--local_list_types", type=type_list,
                   help="types with a non-type table and local blocklists (default: ggp,che among --types)")
    p.add_argument("--allowlist_types", type=type_list,
                   help="types with local allowlists (default: ggp if among --local_list_types)")
    p.add_argument("--never_block", help="'name<TAB>type' pairs never blocked (default: insulin, INSULIN as ggp)")
    p.add_argument("--compensated_sum", action="store_true", help="add floats as Python >= 3.12's sum() does")
    p.set_defaults(run=run_pipeline_command)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(prog="python -m bert_tf.classifier.blocklists", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    add_local_parser(commands)
    add_global_parsers(commands)
    add_ratio_parsers(commands)
    add_pipeline_parser(commands)
    return parser


def report(count: int, path: str) -> None:
    """Say how many lines were written where."""
    notice(f"{count} lines written", path)


def run_local(args: argparse.Namespace) -> None:
    """The 'local' command."""
    types = read_name_types(args.source_types_file, args.lowercase_names) if args.source_types_file else None
    options = LocalOptions(args.source_type, args.target_type or args.source_type, args.threshold, args.min_count,
                           args.probability, args.all_rows, types, args.lowercase_names, args.compensated_sum)
    note_temperatures(args.predictions)
    report(write_output(args.output, local_lines(args.predictions, options), args.overwrite), args.output)


def run_global(args: argparse.Namespace) -> None:
    """The 'global' and 'nontype' commands."""
    lines = global_lines(args.local, args.min_docs, args.threshold, read_never_block(args.never_block),
                         args.compensated_sum)
    report(write_output(args.output, lines, args.overwrite), args.output)


def run_ratio(args: argparse.Namespace) -> None:
    """The 'local-ratio' and 'allowlist' commands."""
    options = RatioOptions(args.command == "local-ratio", args.ratio, getattr(args, "global_type_probability", None),
                           args.global_min_docs, args.global_threshold, args.function,
                           read_never_block(args.never_block))
    lines = ratio_lines(read_nontype_table(args.nontype), args.local, options)
    report(write_output(args.output, lines, args.overwrite), args.output)


def pipeline_options(args: argparse.Namespace) -> PipelineOptions:
    """The PipelineOptions of the 'pipeline' command's flags (each flag named as its field)."""
    local_types = args.local_list_types
    if local_types is None:
        local_types = [t for t in PUBLISHED_LOCAL_LIST_TYPES if t in args.types]
    allow_types = args.allowlist_types
    if allow_types is None:
        allow_types = [t for t in PUBLISHED_ALLOWLIST_TYPES if t in local_types]
    named = {option.name for option in fields(PipelineOptions)} - {"local_list_types", "allowlist_types", "never_block"}
    return PipelineOptions(**{name: getattr(args, name) for name in named}, local_list_types=local_types,
                           allowlist_types=allow_types, never_block=read_never_block(args.never_block))


def run_pipeline_command(args: argparse.Namespace) -> None:
    """The 'pipeline' command."""
    options = pipeline_options(args)
    output_dir = run_pipeline(args.run_dir, args.output_dir, options, args.overwrite)
    notice("auto_local.tsv, auto_global.tsv and every intermediate list written", output_dir)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command; 0 on success, 2 on bad input (one line on stderr)."""
    args = build_parser().parse_args(argv)
    return error_exit_status(lambda: args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
