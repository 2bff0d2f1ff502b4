"""Pretraining text: which files `--input_files` names, and the documents in them (lists of sentences).

Formats, by content: raw text (.txt and anything unrecognised) in Google's pretraining format (one sentence a line,
a blank line between documents; a file without blank lines is one document; a document is read in parts of
DOCUMENT_PART_LINES lines, so memory stays bounded and no block spans two parts), NER CSV (a `tokens`
column of Python list literals, optional `doc_id`: a row is a sentence, rows of one doc_id a document), CoNLL (first
column the word, a blank line ends a sentence, `-DOCSTART-` or a new BC5CDR document id starts a document) and
consensus TSV (six columns: the left context, mention and right context of a row form one document). Only the words
are read, never the tags. Raw text and consensus TSV are streamed line by line (memory does not grow with the
file); an NER CSV or CoNLL file is read whole.
"""

from __future__ import annotations

import ast
import csv
from typing import Iterator, List, Optional

from bert_tf.errors import InputError
from bert_tf import io_utils

Document = List[str]  # its sentences (or lines), in order
CONSENSUS_COLUMNS = 6
DOCUMENT_PART_LINES = 10_000  # a longer raw-text document is read (and packed) in parts of this many lines


def expand_input_files(spec: str) -> List[str]:
    """The files of `spec`: comma-separated items, each a file, a folder (its files, sorted), a glob, or @LIST (a
    file naming one input file a line), as io_utils.expand_input reads them. InputError when an item names nothing."""
    files = [path for item in spec.split(",") if item.strip() for path in io_utils.expand_input(item.strip())[0]]
    if not files:
        raise InputError(f"--input_files={spec!r} names no file")
    return files


def read_text(path: str) -> str:
    """The file's text with \\n line ends (io_utils.read_text: UTF-8, line of the first bad byte); InputError also for
    a binary file (NUL bytes) and for one without text."""
    text = io_utils.read_text(path)
    if "\x00" in text:
        raise InputError("binary file (NUL bytes), expected text", path, text[:text.index("\x00")].count("\n") + 1)
    if not text.strip():
        raise InputError("empty file: no text to pretrain on", path)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def text_lines(path: str) -> Iterator[str]:
    """The lines of a text file, streamed (UTF-8 checked line by line); InputError naming the line of a NUL byte."""
    for number, line in io_utils.iter_lines(path):
        if "\x00" in line:
            raise InputError("binary file (NUL bytes), expected text", path, number)
        yield line


def file_format(path: str) -> str:
    """"csv", "conll", "consensus" or "text" (Google's sentence-per-line format), from the extension and the first
    line of text. InputError for a file without text."""
    first = next((line.strip("\r\n") for line in text_lines(path) if line.strip()), None)
    if first is None:
        raise InputError("empty file: no text to pretrain on", path)
    columns = first.split("\t")
    if path.endswith(".csv") and "tokens" in next(csv.reader([first])):
        return "csv"
    if len(columns) == CONSENSUS_COLUMNS:
        return "consensus"
    if path.endswith((".conll", ".tsv", ".bio", ".iob")) and 2 <= len(columns) <= 5:
        return "conll"
    return "text"


def iter_file_documents(path: str, kind: Optional[str] = None) -> Iterator[Document]:
    """The documents of one input file (see the module's docstring), `kind` as file_format() gives it. Raw text and
    consensus TSV are streamed line by line; a CSV or CoNLL file (NER data) is read whole."""
    kind = kind or file_format(path)
    if kind in ("csv", "conll"):
        documents = (_csv_documents if kind == "csv" else _conll_documents)(read_text(path), path)
    else:
        documents = {"text": _sentence_documents, "consensus": _consensus_documents}[kind](path)
    empty = True
    for document in documents:
        if document:
            empty = False
            yield document
    if empty:
        raise InputError("no text to pretrain on", path)


def read_documents(path: str) -> List[Document]:
    """The documents of one input file, in a list."""
    return list(iter_file_documents(path))


def _sentence_documents(path: str) -> Iterator[Document]:
    """Google's format: the non-blank lines between blank lines (a document of more than DOCUMENT_PART_LINES lines
    in parts of that many)."""
    document: Document = []
    for line in text_lines(path):
        if line.strip():
            document.append(line.strip())
        if document and (not line.strip() or len(document) == DOCUMENT_PART_LINES):
            yield document
            document = []
    if document:
        yield document


def _csv_documents(text: str, path: str) -> List[Document]:
    rows = csv.reader(text.split("\n"))
    header = next(rows)
    tokens_at, doc_at = header.index("tokens"), (header.index("doc_id") if "doc_id" in header else None)
    documents: List[Document] = []
    previous = object()
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            words = ast.literal_eval(row[tokens_at])
        except (ValueError, SyntaxError, IndexError):
            raise InputError("the tokens cell is not a Python list literal", path, line) from None
        if not isinstance(words, (list, tuple)):
            raise InputError("the tokens cell is not a list", path, line)
        doc = row[doc_at] if doc_at is not None and doc_at < len(row) else object()
        if doc != previous or not documents:
            documents.append([])
        previous = doc
        documents[-1].append(" ".join(str(w) for w in words))
    return documents


def _conll_documents(text: str, path: str) -> List[Document]:
    documents: List[Document] = [[]]
    words: List[str] = []
    doc_id = None
    for line in text.split("\n") + [""]:
        columns = line.split("\t") if "\t" in line else line.split()
        if not line.strip() or columns[0] == "-DOCSTART-":
            if words:
                documents[-1].append(" ".join(words))
            words = []
            if line.strip():
                documents.append([])
        else:
            if not words and len(columns) == 4 and columns[1] not in ("-", doc_id):
                doc_id = columns[1]  # BC5CDR layout: the document id on each sentence's first word
                if documents[-1]:
                    documents.append([])
            words.append(columns[0])
    return documents


def _consensus_documents(path: str) -> Iterator[Document]:
    for line, row in enumerate(text_lines(path), start=1):
        row = row.rstrip("\r\n")
        if not row.strip():
            continue
        columns = row.split("\t")
        if len(columns) != CONSENSUS_COLUMNS:
            raise InputError(f"expected {CONSENSUS_COLUMNS} tab-separated columns, found {len(columns)}", path, line)
        context = (columns[3] + columns[4] + columns[5]).replace("DOCSTART", " ").replace("DOCEND", " ")
        yield [" ".join(context.split())]
