"""NER data: the CSV layout (columns `tokens` and `tags` holding Python list literals, optional
`doc_id`), CoNLL-like token-per-line files (documents start at `-DOCSTART-` lines, or carry their
id in column 2 in the BC5CDR layout) and plain text, with errors that name file and line."""

from __future__ import annotations

import ast
import csv
import dataclasses
import io
import os
import re
import warnings
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from bert_tf.errors import InputError
from bert_tf.io_utils import atomic_path, excerpt, is_blank, iter_lines, read_text

TOKENS_COLUMN = "tokens"
TAGS_COLUMN = "tags"
DOC_ID_COLUMN = "doc_id"
OUTSIDE_TAG = "O"
DOCSTART = "-DOCSTART-"
CONLL_EXTENSIONS = (".conll", ".tsv", ".bio", ".iob", ".conllu")
VAL_FILE_NAMES = ("val.csv", "dev.csv", "valid.csv")
MAX_LISTED = 20

_ENTITY_TAG = re.compile(r"([BI])-(\S+)")
_LARGEST_CSV_FIELD = 2**31 - 1


@dataclass(frozen=True)
class NerExample:
    """One sentence or document: its tokens, their tags (None when unlabelled) and where it came from."""

    tokens: Tuple[str, ...]
    tags: Optional[Tuple[str, ...]]
    line: int = 0  # 1-based line where the example starts in `source`; 0 when generated
    source: str = ""
    doc_id: Optional[str] = None  # consecutive examples with one doc_id form a document


# ----------------------------------------------------------------------------- tags


def validate_tag(tag: str) -> bool:
    """True for 'O', 'B-X' and 'I-X' where X is a non-empty type without whitespace."""
    return isinstance(tag, str) and (tag == OUTSIDE_TAG or _ENTITY_TAG.fullmatch(tag) is not None)


def label_list_from_examples(examples: Iterable[NerExample]) -> List[str]:
    """The label list for a model: 'O' first, then every other tag found in `examples`, sorted."""
    tags = {tag for example in examples for tag in (example.tags or ())}
    tags.discard(OUTSIDE_TAG)
    return [OUTSIDE_TAG] + sorted(tags)


def check_known_tags(examples: Iterable[NerExample], labels: Iterable[str], path: str,
                     labels_file: Optional[str] = None) -> None:
    """Raise one InputError listing every tag of `examples` missing from `labels` (the training tags, or
    those of `labels_file`), naming the file and line of each and how to declare them."""
    known = set(labels)
    first_line: Dict[str, int] = {}
    for example in examples:
        for tag in example.tags or ():
            if tag not in known and tag not in first_line:
                first_line[tag] = example.line
    if not first_line:
        return
    unknown = sorted(first_line)
    listed = ", ".join(f"{excerpt(tag)} (line {first_line[tag]})" for tag in unknown[:MAX_LISTED])
    more = f" and {len(unknown) - MAX_LISTED} more" if len(unknown) > MAX_LISTED else ""
    if labels_file:
        problem = f"tags not in --labels_file {labels_file}: {listed}{more}; add them there"
    else:
        problem = f"tags not seen in the training data: {listed}{more}; list every tag with --labels_file"
    raise InputError(problem, path, min(first_line.values()))


def read_labels_file(path: str) -> List[str]:
    """The tags of a labels file: one a line ('O' first), blank lines ignored, in the file's order."""
    labels: List[str] = []
    seen: Dict[str, int] = {}
    for number, text in iter_lines(path, skip_blank=True):
        tag = text.strip()
        if not validate_tag(tag):
            raise InputError(f"invalid tag {excerpt(tag)}: expected 'O', 'B-TYPE' or 'I-TYPE'", path, number)
        if tag in seen:
            raise InputError(f"tag {tag!r} repeats line {seen[tag]}", path, number)
        if not labels and tag != OUTSIDE_TAG:
            raise InputError(f"the first tag must be 'O', got {excerpt(tag)}", path, number)
        seen[tag] = number
        labels.append(tag)
    if not labels:
        raise InputError("no tags: the labels file is empty", path)
    return labels


# ----------------------------------------------------------------------------- CSV reading


def _allow_csv_fields_up_to(size: int) -> None:
    """Raise the csv module's field size limit so that a field of `size` characters is accepted."""
    wanted = min(max(size, 1), _LARGEST_CSV_FIELD)
    if csv.field_size_limit() < wanted:
        csv.field_size_limit(wanted)


def _is_blank_row(row: List[str]) -> bool:
    """True for an empty or whitespace-only line between records."""
    return not row or (len(row) == 1 and is_blank(row[0]))


def _iter_csv_records(text: str, path: str) -> Iterator[Tuple[int, List[str]]]:
    """(starting line, cells) for each non-blank CSV record of `text`."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    next_line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise InputError(f"CSV syntax error: {error}", path, next_line) from None
        start, next_line = next_line, reader.line_num + 1
        if not _is_blank_row(row):
            yield start, row


def _short_listing(names: Sequence[str]) -> str:
    """A short quoted listing of `names` (columns, files) for error messages."""
    shown = ", ".join(excerpt(name) for name in names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def _column_positions(header: List[str], path: str, line: int,
                      require_tags: bool) -> Tuple[int, Optional[int], Optional[int]]:
    """Indexes of the tokens, tags and doc_id columns in `header` (None when absent and not required)."""
    names = [name.strip() for name in header]
    required = [TOKENS_COLUMN, TAGS_COLUMN] if require_tags else [TOKENS_COLUMN]
    missing = [name for name in required if name not in names]
    if missing:
        wanted = " and ".join(repr(name) for name in missing)
        raise InputError(f"missing column {wanted}; the header has {_short_listing(names)}", path, line)
    for name in (TOKENS_COLUMN, TAGS_COLUMN, DOC_ID_COLUMN):
        if names.count(name) > 1:
            raise InputError(f"column {name!r} appears {names.count(name)} times in the header", path, line)
    tags_position = names.index(TAGS_COLUMN) if TAGS_COLUMN in names else None
    doc_position = names.index(DOC_ID_COLUMN) if DOC_ID_COLUMN in names else None
    return names.index(TOKENS_COLUMN), tags_position, doc_position


def _literal(text: str) -> object:
    """`text` evaluated as a Python literal; ValueError when it is not one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. invalid escape sequences inside string literals
        try:
            return ast.literal_eval(text)
        except Exception as error:  # literal_eval raises many types (SyntaxError, MemoryError, RecursionError...)
            raise ValueError(str(error)) from None


def _parse_string_list(cell: str, column: str, path: str, line: int) -> Tuple[str, ...]:
    """The strings of a cell holding a Python list (or tuple) literal of strings."""
    stripped = cell.strip()
    if not stripped:
        raise InputError(f"empty cell in column {column!r}", path, line)
    not_a_list = InputError(f"column {column!r} is not a Python list of strings: {excerpt(stripped)}", path, line)
    if stripped[0] not in "[(":
        raise not_a_list
    try:
        value = _literal(stripped)
    except ValueError:
        raise not_a_list from None
    if not isinstance(value, (list, tuple)):
        raise not_a_list
    for position, element in enumerate(value, start=1):
        if not isinstance(element, str):
            kind = type(element).__name__
            problem = f"column {column!r}: element {position} is a {kind}, not a string: {excerpt(repr(element))}"
            raise InputError(problem, path, line)
    return tuple(value)


def _check_tags(tokens: Sequence[str], tags: Sequence[str], path: str, line: int) -> None:
    """InputError unless `tags` has one valid tag per token."""
    if len(tags) != len(tokens):
        raise InputError(f"{len(tokens)} tokens but {len(tags)} tags", path, line)
    for tag in tags:
        if not validate_tag(tag):
            raise InputError(f"invalid tag {excerpt(tag)}: expected 'O', 'B-TYPE' or 'I-TYPE'", path, line)


def _example_from_row(
    row: List[str], line: int, width: int, columns: Tuple[int, Optional[int], Optional[int]], path: str
) -> NerExample:
    """The NerExample of one CSV record."""
    if len(row) != width:
        raise InputError(f"the row has {len(row)} fields but the header has {width}", path, line)
    tokens_position, tags_position, doc_position = columns
    tokens = _parse_string_list(row[tokens_position], TOKENS_COLUMN, path, line)
    if not tokens:
        raise InputError("empty token list", path, line)
    tags = None
    if tags_position is not None:
        tags = _parse_string_list(row[tags_position], TAGS_COLUMN, path, line)
        _check_tags(tokens, tags, path, line)
    doc_id = (row[doc_position].strip() or None) if doc_position is not None else None
    return NerExample(tokens=tokens, tags=tags, line=line, source=path, doc_id=doc_id)


def check_documents_consecutive(examples: Sequence[NerExample]) -> None:
    """InputError when the examples of one doc_id are not consecutive (naming the line that resumes it)."""
    first_line: Dict[str, int] = {}
    previous: Optional[str] = None
    for example in examples:
        doc_id = example.doc_id
        if doc_id is not None and doc_id != previous:
            if doc_id in first_line:
                raise InputError(f"doc_id {excerpt(doc_id)} continues here, but its rows must be consecutive "
                                 f"(it started at line {first_line[doc_id]})", example.source, example.line)
            first_line[doc_id] = example.line
        previous = doc_id


def read_ner_csv(path: str, require_tags: bool = True) -> List[NerExample]:
    """The examples of an NER CSV file: column `tokens`, and `tags` (required when `require_tags`, else optional)."""
    text = read_text(path)
    _allow_csv_fields_up_to(len(text))
    records = _iter_csv_records(text, path)
    header_line, header = next(records, (0, None))
    if header is None:
        raise InputError("no examples: the file is empty", path)
    columns = _column_positions(header, path, header_line, require_tags)
    examples = [_example_from_row(row, line, len(header), columns, path) for line, row in records]
    if not examples:
        raise InputError("no examples: the file has only a header", path)
    check_documents_consecutive(examples)
    return examples


# ----------------------------------------------------------------------------- CSV writing


def _has_tags(examples: Sequence[NerExample]) -> bool:
    """Whether the examples carry tags; ValueError when only some do."""
    tagged = {example.tags is not None for example in examples}
    if len(tagged) > 1:
        raise ValueError("write_ner_csv: either every example has tags or none has")
    return tagged != {False}


def write_ner_csv(path: str, examples: Sequence[NerExample]) -> None:
    """Write `examples` atomically in the NER CSV layout (a `tags` column unless no example has tags,
    a `doc_id` column when any example has one)."""
    with_tags = _has_tags(examples)
    with_docs = any(example.doc_id is not None for example in examples)
    header = [TOKENS_COLUMN] + ([TAGS_COLUMN] if with_tags else []) + ([DOC_ID_COLUMN] if with_docs else [])
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            for example in examples:
                cells = [repr(list(example.tokens))]
                if with_tags:
                    cells.append(repr(list(example.tags or ())))
                if with_docs:
                    cells.append(example.doc_id or "")
                writer.writerow(cells)


# ----------------------------------------------------------------------------- splitting and finding


def split_train_val_test(
    examples: Sequence[NerExample], val_test_size: float, seed: int
) -> Tuple[List[NerExample], List[NerExample], List[NerExample]]:
    """Deterministic (train, val, test) split; val and test each get round(n * val_test_size) examples,
    or documents when the examples carry doc ids (a document stays whole)."""
    source = examples[0].source if examples and examples[0].source else None
    if not 0 < val_test_size < 0.5:
        raise InputError(f"val_test_size must be between 0 and 0.5 (both excluded), got {val_test_size}")
    units = document_groups(examples)
    count = len(units)
    held_out = max(1, round(count * val_test_size))
    if count < 2 * held_out + 1:
        what = "documents" if count < len(examples) else "examples"
        raise InputError(f"too few {what} to split: {count} (need at least {2 * held_out + 1})", source)
    order = np.random.default_rng(seed).permutation(count)
    parts = (order[2 * held_out:], order[:held_out], order[held_out:2 * held_out])
    train, val, test = ([examples[i] for u in sorted(part) for i in units[int(u)]] for part in parts)
    return train, val, test


def document_groups(examples: Sequence[NerExample]) -> List[List[int]]:
    """Indexes of the examples of each document: consecutive runs of one doc_id, an example without one alone."""
    groups: List[List[int]] = []
    for i, example in enumerate(examples):
        if i and example.doc_id is not None and example.doc_id == examples[i - 1].doc_id:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def has_documents(examples: Sequence[NerExample]) -> bool:
    """Whether the examples carry document ids."""
    return any(example.doc_id is not None for example in examples)


def _csv_files_in(directory: str) -> str:
    """A short listing of the .csv files in `directory`."""
    names = sorted(name for name in os.listdir(directory) if name.lower().endswith(".csv"))
    return _short_listing(names) if names else "no .csv files"


def find_ner_files(data_path: str) -> Dict[str, str]:
    """{'train', 'val', 'test'} paths for a folder with all three splits, or {'data'} for one file to split."""
    if not os.path.isdir(data_path):
        expected = "expected a folder with train.csv, val.csv and test.csv, or data.csv"
        raise InputError(f"not a directory: {expected}", data_path)

    def present(name: str) -> bool:
        return os.path.isfile(os.path.join(data_path, name))

    val_names = [name for name in VAL_FILE_NAMES if present(name)]
    if len(val_names) > 1:
        raise InputError(f"ambiguous validation split: found {', '.join(val_names)}; keep only one", data_path)
    has_train, has_test, has_data = present("train.csv"), present("test.csv"), present("data.csv")
    if has_train and val_names and has_test and not has_data:
        names = {"train": "train.csv", "val": val_names[0], "test": "test.csv"}
        return {split: os.path.join(data_path, name) for split, name in names.items()}
    if has_data != has_train and not (val_names or has_test):
        return {"data": os.path.join(data_path, "data.csv" if has_data else "train.csv")}
    raise InputError(
        "expected train.csv, val.csv (or dev.csv or valid.csv) and test.csv, or only train.csv or data.csv "
        f"(split automatically); found {_csv_files_in(data_path)}",
        data_path,
    )


# ----------------------------------------------------------------------------- CoNLL and plain text


def _split_conll_line(text: str) -> List[str]:
    """The columns of a CoNLL line: tab-separated when it has a tab, else whitespace-separated."""
    if is_blank(text):
        return []
    text = text.rstrip()
    if "\t" in text:
        return [column.strip() for column in text.split("\t")]
    return text.split()


def _conll_tag(tag: str, bare_tag_type: str, path: str, line: int) -> str:
    """The full tag for a CoNLL tag column, bare 'B'/'I' getting `bare_tag_type`."""
    if tag in ("B", "I"):
        return f"{tag}-{bare_tag_type}"
    if not validate_tag(tag):
        raise InputError(f"invalid tag {excerpt(tag)}: expected O, B, I, B-TYPE or I-TYPE", path, line)
    return tag


def _tag_column_state(tagged: Optional[bool], columns: List[str], path: str, line: int) -> bool:
    """Whether the file's token lines have a tag column (set by the first one); InputError when a line differs."""
    has_tag = len(columns) >= 2
    if tagged is None or tagged == has_tag:
        return has_tag
    if tagged:
        raise InputError("the line has no tag column but earlier lines have one", path, line)
    raise InputError("the line has a tag column but earlier lines have none", path, line)


@dataclass
class _ConllSentence:
    """A sentence of a CoNLL-like file with what its lines say about documents."""

    example: NerExample
    document: int  # how many -DOCSTART- lines came before it
    layout_doc_id: Optional[str]  # BC5CDR layout: column 2 of its first token
    bc5cdr_layout: bool  # every line has 4 columns, an offset in column 3 and '-' in column 2 after the first


def _bc5cdr_line(columns: List[str], first: bool) -> bool:
    """Whether a token line fits the BC5CDR layout (token, doc id on the first token else '-', offset, tag)."""
    return len(columns) == 4 and columns[2].isdigit() and (first or columns[1] == "-")


def _iter_conll_sentences(path: str, bare_tag_type: str) -> Iterator[_ConllSentence]:
    """The sentences of a CoNLL-like file, streamed."""
    tokens: List[str] = []
    tags: List[str] = []
    start = document = 0
    tagged: Optional[bool] = None
    layout_doc_id: Optional[str] = None
    layout = True
    for number, text in iter_lines(path):
        columns = _split_conll_line(text)
        if not columns or columns[0] == DOCSTART:
            if tokens:
                example = NerExample(tuple(tokens), tuple(tags) if tagged else None, start, path)
                yield _ConllSentence(example, document, layout_doc_id, layout)
            tokens, tags, layout = [], [], True
            document += int(bool(columns))
            continue
        if not columns[0]:
            raise InputError("empty token (the line starts with a tab)", path, number)
        tagged = _tag_column_state(tagged, columns, path, number)
        if not tokens:
            start = number
            layout_doc_id = columns[1] if len(columns) == 4 else None
        layout = layout and _bc5cdr_line(columns, not tokens)
        tokens.append(columns[0])
        if tagged:
            tags.append(_conll_tag(columns[-1], bare_tag_type, path, number))
    if tokens:
        example = NerExample(tuple(tokens), tuple(tags) if tagged else None, start, path)
        yield _ConllSentence(example, document, layout_doc_id, layout)


def _with_documents(sentences: List[_ConllSentence]) -> List[NerExample]:
    """The examples with doc ids: from -DOCSTART- lines when there are any, else from the BC5CDR layout."""
    if any(s.document for s in sentences):
        return [dataclasses.replace(s.example, doc_id=f"doc{s.document}") for s in sentences]
    if not all(s.bc5cdr_layout for s in sentences):
        return [s.example for s in sentences]
    examples, doc_id = [], None
    for s in sentences:
        doc_id = s.layout_doc_id if s.layout_doc_id not in (None, "-") else doc_id
        examples.append(dataclasses.replace(s.example, doc_id=doc_id))
    return examples


def read_conll(path: str, bare_tag_type: str = "ENT") -> List[NerExample]:
    """The sentences of a CoNLL-like file (token first column, tag last column; a blank line ends a sentence),
    with doc ids when `-DOCSTART-` lines or the BC5CDR layout (doc id in column 2) mark documents."""
    if not validate_tag(f"B-{bare_tag_type}"):
        raise InputError(f"invalid entity type for bare B/I tags: {excerpt(bare_tag_type)}")
    sentences = list(_iter_conll_sentences(path, bare_tag_type))
    if not sentences:
        raise InputError("no sentences found", path)
    return _with_documents(sentences)


def read_plain_text(path: str) -> List[NerExample]:
    """One untagged example a non-blank line, its tokens the whitespace-separated words."""
    examples = [
        NerExample(tuple(text.split()), None, number, path) for number, text in iter_lines(path, skip_blank=True)
    ]
    if not examples:
        raise InputError("no text found: the file is empty or blank", path)
    return examples


def read_words_file(path: str) -> List[NerExample]:
    """Prediction input by extension: .csv as NER CSV (tags optional), CoNLL extensions as CoNLL, else plain text."""
    extension = os.path.splitext(path)[1].lower()
    if extension == ".csv":
        return read_ner_csv(path, require_tags=False)
    if extension in CONLL_EXTENSIONS:
        return read_conll(path)
    return read_plain_text(path)
