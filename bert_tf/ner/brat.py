"""Brat standoff (`.txt` + `.ann`) in and out: entity annotations to IOB2-tagged sentences and back.

Offsets count characters (code points) of the `.txt` file read as UTF-8 with its line ends kept. IOB2 cannot
hold every annotation, so conversion keeps what it can and reports the rest (see `resolve_annotations`):
a discontinuous annotation is skipped; of overlapping (nested or crossing) annotations the longest is kept
(the earlier one when equally long) and the others are skipped; whitespace at an annotation's ends is trimmed.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
from typing import Iterable, List, Optional, Sequence, Tuple

from bert_tf.ner.data import DOC_ID_COLUMN, TAGS_COLUMN, TOKENS_COLUMN
from bert_tf.errors import InputError
from bert_tf.io_utils import atomic_path, iter_lines
from bert_tf.ner.sentences import Sentence, Token, split_at, split_sentences

MAX_EXAMPLES = 5
_TEXT_BOUND = re.compile(r"T\S*")
_ENTITY_TYPE = re.compile(r"[^\s;]+")
Span = Tuple[int, int]


@dataclasses.dataclass(frozen=True)
class Entity:
    """A text-bound annotation: id, type, character spans, the text brat recorded, its .ann line."""

    id: str
    type: str
    spans: Tuple[Span, ...]
    text: str = ""
    line: int = 0

    @property
    def start(self) -> int:
        """Offset of the first character."""
        return self.spans[0][0]

    @property
    def end(self) -> int:
        """Offset just past the last character."""
        return self.spans[-1][1]


@dataclasses.dataclass
class BratDocument:
    """A document: its id (the file name without extension), text, annotations and the .ann path."""

    doc_id: str
    text: str
    entities: List[Entity]
    ann_path: str
    ignored_lines: int = 0  # relations, events, attributes, notes: not entities


@dataclasses.dataclass
class ConversionReport:
    """What conversion could not keep as it was: one 'FILE:LINE: what' string per case, by kind."""

    skipped_discontinuous: List[str] = dataclasses.field(default_factory=list)
    skipped_overlapping: List[str] = dataclasses.field(default_factory=list)
    trimmed: List[str] = dataclasses.field(default_factory=list)
    ignored_lines: int = 0

    def lines(self) -> List[str]:
        """Human-readable summary lines (count and first examples of each kind); empty when all was kept."""
        out = []
        for title, cases in (("discontinuous annotations skipped", self.skipped_discontinuous),
                             ("overlapping annotations skipped (the longest kept)", self.skipped_overlapping),
                             ("annotations with whitespace at an end trimmed", self.trimmed)):
            if cases:
                out.append(f"{len(cases)} {title}; first: " + "; ".join(cases[:MAX_EXAMPLES]))
        if self.ignored_lines:
            out.append(f"{self.ignored_lines} non-entity lines (relations, events, attributes, notes) ignored")
        return out


# ----------------------------------------------------------------------------- reading


def read_text(path: str) -> str:
    """A .txt file as brat sees it: UTF-8, line ends kept as they are."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except UnicodeDecodeError as error:
        raise InputError(f"not valid UTF-8 (byte offset {error.start})", path) from None
    except OSError as error:
        raise InputError(f"cannot read the file: {error.strerror or error}", path) from None


def _parse_spans(field: str, path: str, line: int) -> Tuple[str, Tuple[Span, ...]]:
    """The type and the spans of an annotation's second field ('TYPE 0 5;7 9')."""
    parts = field.split(" ", 1)
    if len(parts) != 2 or not _ENTITY_TYPE.fullmatch(parts[0]):
        raise InputError(f"expected 'TYPE START END' in the second field, got {field[:40]!r}", path, line)
    spans = []
    for piece in parts[1].split(";"):
        numbers = piece.split()
        if len(numbers) != 2 or not all(n.isdigit() for n in numbers):
            raise InputError(f"bad offsets {piece!r}: expected two whole numbers", path, line)
        start, end = int(numbers[0]), int(numbers[1])
        if start >= end:
            raise InputError(f"empty or reversed span {start} {end}", path, line)
        spans.append((start, end))
    return parts[0], tuple(sorted(spans))


def _parse_entity(fields: List[str], text: str, path: str, line: int) -> Entity:
    """One text-bound annotation line, checked against the text."""
    if len(fields) < 2:
        raise InputError("a text-bound annotation needs tab-separated ID, 'TYPE START END' and text", path, line)
    entity_type, spans = _parse_spans(fields[1], path, line)
    if spans[-1][1] > len(text):
        raise InputError(f"offset {spans[-1][1]} is past the end of the text ({len(text)} characters)", path, line)
    covered = " ".join(text[a:b] for a, b in spans)
    recorded = fields[2] if len(fields) > 2 else covered
    if recorded != covered and " ".join(recorded.split()) != " ".join(covered.split()):
        raise InputError(f"the annotation's text {recorded[:40]!r} differs from the text at its offsets "
                         f"{covered[:40]!r}", path, line)
    return Entity(fields[0], entity_type, spans, covered, line)


def read_ann(path: str, text: str) -> Tuple[List[Entity], int]:
    """The text-bound annotations of an .ann file and the number of other annotation lines."""
    entities, ignored = [], 0
    for number, raw in iter_lines(path, skip_blank=True):
        fields = raw.split("\t")
        if _TEXT_BOUND.fullmatch(fields[0]):
            entities.append(_parse_entity(fields, text, path, number))
        elif fields[0][:1] in "REAMN#*":
            ignored += 1
        else:
            raise InputError(f"unknown annotation id {fields[0][:20]!r}", path, number)
    return entities, ignored


def read_document(txt_path: str) -> BratDocument:
    """A .txt file and its .ann beside it (no .ann: no annotations)."""
    text = read_text(txt_path)
    ann_path = os.path.splitext(txt_path)[0] + ".ann"
    entities, ignored = read_ann(ann_path, text) if os.path.exists(ann_path) else ([], 0)
    doc_id = os.path.splitext(os.path.basename(txt_path))[0]
    return BratDocument(doc_id, text, entities, ann_path, ignored)


def read_folder(folder: str) -> List[BratDocument]:
    """Every .txt (with its .ann) in `folder`, sorted by name."""
    if not os.path.isdir(folder):
        raise InputError("not a directory: expected a folder of .txt and .ann files", folder)
    names = sorted(n for n in os.listdir(folder) if n.endswith(".txt"))
    if not names:
        raise InputError("no .txt files found", folder)
    return [read_document(os.path.join(folder, name)) for name in names]


# ----------------------------------------------------------------------------- brat -> IOB2


def _where(doc: BratDocument, entity: Entity) -> str:
    """'FILE:LINE: T1 TYPE 'text'' for a report."""
    return f"{doc.ann_path}:{entity.line}: {entity.id} {entity.type} {entity.text[:30]!r}"


def _trimmed(doc: BratDocument, entity: Entity) -> Optional[Entity]:
    """The entity without whitespace at its ends (None when only whitespace)."""
    start, end = entity.start, entity.end
    while start < end and doc.text[start].isspace():
        start += 1
    while end > start and doc.text[end - 1].isspace():
        end -= 1
    if start == end:
        return None
    return dataclasses.replace(entity, spans=((start, end),), text=doc.text[start:end])


def resolve_annotations(doc: BratDocument, report: ConversionReport) -> List[Entity]:
    """The entities IOB2 can hold (contiguous, not overlapping), sorted; the rest goes to `report`."""
    candidates = []
    for entity in doc.entities:
        if len(entity.spans) > 1:
            report.skipped_discontinuous.append(_where(doc, entity))
            continue
        trimmed = _trimmed(doc, entity)
        if trimmed is None or trimmed.spans != entity.spans:
            report.trimmed.append(_where(doc, entity))
        if trimmed is not None:
            candidates.append(trimmed)
    by_length = sorted(candidates, key=lambda e: (-(e.end - e.start), e.start, e.line))
    kept: List[Entity] = []
    for entity in by_length:
        if any(entity.start < k.end and k.start < entity.end for k in kept):
            report.skipped_overlapping.append(_where(doc, entity))
        else:
            kept.append(entity)
    report.ignored_lines += doc.ignored_lines
    return sorted(kept, key=lambda e: e.start)


def _merge_across(sentences: List[Sentence], entities: Sequence[Entity]) -> List[Sentence]:
    """Sentences joined where an entity runs across their boundary."""
    merged: List[Sentence] = []
    for sentence in sentences:
        if merged and any(e.start < merged[-1].end and e.end > sentence.start for e in entities):
            merged[-1] = Sentence(merged[-1].tokens + sentence.tokens)
        else:
            merged.append(sentence)
    return merged


def tag_tokens(tokens: Sequence[Token], entities: Sequence[Entity]) -> List[str]:
    """IOB2 tags of tokens cut at the entities' boundaries."""
    tags, e = [], 0
    for token in tokens:
        while e < len(entities) and entities[e].end <= token.start:
            e += 1
        if e < len(entities) and entities[e].start <= token.start:
            tags.append(("B-" if token.start == entities[e].start else "I-") + entities[e].type)
        else:
            tags.append("O")
    return tags


def document_sentences(doc: BratDocument, report: ConversionReport) -> List[Tuple[List[Token], List[str]]]:
    """(tokens, IOB2 tags) of each sentence of a document, tokens cut at annotation boundaries."""
    entities = resolve_annotations(doc, report)
    sentences = _merge_across(split_sentences(doc.text), entities)
    cuts = [offset for e in entities for offset in (e.start, e.end)]
    out = []
    for sentence in sentences:
        tokens = split_at(sentence.tokens, cuts)
        out.append((tokens, tag_tokens(tokens, entities)))
    return out


def write_csv(path: str, rows: Iterable[Tuple[str, Sequence[str], Sequence[str]]]) -> int:
    """Write (doc_id, tokens, tags) rows in the NER CSV layout with a doc_id column; the number of rows."""
    count = 0
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow([DOC_ID_COLUMN, TOKENS_COLUMN, TAGS_COLUMN])
            for doc_id, tokens, tags in rows:
                writer.writerow([doc_id, repr(list(tokens)), repr(list(tags))])
                count += 1
    return count


def folder_to_csv(folder: str, csv_path: str) -> Tuple[int, int, ConversionReport]:
    """Convert a brat folder to one training CSV; (documents, sentences, report)."""
    report = ConversionReport()
    rows = []
    docs = read_folder(folder)
    for doc in docs:
        for tokens, tags in document_sentences(doc, report):
            rows.append((doc.doc_id, [t.text for t in tokens], tags))
    return len(docs), write_csv(csv_path, rows), report


# ----------------------------------------------------------------------------- IOB2 -> brat


def format_ann(text: str, spans: Sequence[Tuple[str, int, int]]) -> str:
    """The .ann text for entity spans over `text` (T1, T2, ... in order of position)."""
    lines = []
    for number, (entity_type, start, end) in enumerate(sorted(spans, key=lambda s: (s[1], s[2])), start=1):
        covered = re.sub(r"[\t\n\r]", " ", text[start:end])  # the text field stays one tab-free line
        lines.append(f"T{number}\t{entity_type} {start} {end}\t{covered}")
    return "".join(line + "\n" for line in lines)
