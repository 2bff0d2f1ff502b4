"""The dictionary tagger's side of the prediction inputs, read as the published chain reads it.

The published `create_documents.pl` and `create_matches.pl` (generate_prediction_inputs/scripts/ of
BioBERT-based-entity-type-classifier) turn the tagger's inputs and output into `database_documents.tsv` and
`database_matches.tsv`; the Python scripts after them read those files as UTF-8 text with universal newlines.
This module yields the lines of those two files, each as the Python scripts see it, without writing them:

- documents: every line of the files the tagger read (concatenated as `gzip -cd A B ...` concatenates them),
  `\\r?\\n` cut, every backslash doubled, split on TABs as Perl splits (trailing empty fields dropped); a line whose
  first field starts `PMID:<digits>` gives the document <digits>; one in the excluded list, or seen before, is
  skipped; one without authors, journal and year fields is skipped (but counts as seen); the line is
  `doc<TAB>keys<TAB>authors<TAB>journal<TAB>year<TAB>text fields joined by a literal \\t`.
- matches: every line of the tagger's --out-matches file (document, paragraph, sentence, start, stop, text, type,
  serial) whose serial is in the dictionary's entities file gives `doc<TAB>start<TAB>stop<TAB>type<TAB>identifier`.

Bad input stops with InputError naming the file and line; where the published chain would have failed later
(a line that is not UTF-8, a carriage return inside a line, which the Python scripts read as a line break, a
document or offset that is not a number) or silently skipped a broken line (a tagger line of fewer than 8
columns, an entities line of fewer than 3), this refuses it up front.
"""

from __future__ import annotations

import dataclasses
import gzip
import re
from typing import BinaryIO, Dict, FrozenSet, Iterator, List, Optional, Sequence, Set, Tuple

from bert_tf.errors import InputError
from bert_tf.io_utils import READ_BUFFER_BYTES, check_readable_file, decode_line, excerpt, iter_lines

DOCUMENT_KEY = re.compile(rb"PMID:([0-9]+)")
DIGITS = re.compile(rb"[0-9]+\Z")
ENTITY_TYPE = re.compile(rb"-?[0-9]+\Z")
MATCH_COLUMNS = 8  # document, paragraph, sentence, start, stop, text, type, serial
SPECIES_RANK = "species"


@dataclasses.dataclass(frozen=True)
class Where:
    """A line of an input file, for error messages."""

    path: str
    line: int


@dataclasses.dataclass(frozen=True)
class DocumentLine:
    """One PMID-keyed line of the tagger's documents: its document number (as written) and, when it has the
    authors, journal and year fields, its database_documents.tsv line (None otherwise)."""

    document: str
    line: Optional[str]
    where: Where


# ----------------------------------------------------------------------------- Perl's view of a line


def perl_chomp(raw: bytes) -> bytes:
    """A line without its `\\r?\\n` end (Perl's s/\\r?\\n//)."""
    if raw.endswith(b"\r\n"):
        return raw[:-2]
    return raw[:-1] if raw.endswith(b"\n") else raw


def perl_split(raw: bytes) -> List[bytes]:
    """The TAB-separated fields of a line as Perl's split /\\t/ gives them: trailing empty fields dropped."""
    fields = raw.split(b"\t")
    while fields and not fields[-1]:
        fields.pop()
    return fields


def python_line(raw: bytes, where: Where) -> str:
    """A line written by the Perl scripts as the Python scripts read it back (UTF-8, universal newlines: a final
    carriage return belongs to the line end); InputError for bytes that are not UTF-8 or a carriage return
    inside (read as a line break, which the published scripts fail on)."""
    text = decode_line(raw, where.path, where.line)
    if text.endswith("\r"):
        text = text[:-1]
    if "\r" in text:
        raise InputError("a carriage return inside the line (the published scripts read it as a line break)",
                         where.path, where.line)
    return text


def open_binary(path: str) -> BinaryIO:
    """A file for reading bytes, decompressed when its name ends in .gz."""
    check_readable_file(path)
    if path.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb", buffering=READ_BUFFER_BYTES)


def iter_perl_lines(paths: Sequence[str]) -> Iterator[Tuple[bytes, Where]]:
    """The `\\n`-ended lines of the files' concatenation (a file without a final newline runs into the next one's
    first line, as `cat` or `gzip -cd` join them), each with the file and line where it starts."""
    carry, carry_where = b"", None
    for path in paths:
        try:
            with open_binary(path) as f:
                for number, raw in enumerate(f, start=1):
                    where = carry_where or Where(path, number)
                    if carry:
                        raw, carry, carry_where = carry + raw, b"", None
                    if not raw.endswith(b"\n"):
                        carry, carry_where = raw, where
                        continue
                    yield raw, where
        except (OSError, EOFError) as error:
            raise InputError(f"cannot read the file: {error}", path) from None
    if carry and carry_where is not None:
        yield carry, carry_where


# ----------------------------------------------------------------------------- small tables


def read_excluded(path: str) -> FrozenSet[bytes]:
    """The excluded documents: every line of the file, `\\r?\\n` cut (as create_documents.pl keys them)."""
    return frozenset(perl_chomp(raw) for raw, _ in iter_perl_lines([path]))


def read_entities(path: str) -> Dict[bytes, bytes]:
    """serial -> `type<TAB>identifier` from the dictionary's entities file (serial, type, identifier a line; a
    later line for a serial wins); InputError naming a line with fewer fields or a type that is not a number."""
    entities: Dict[bytes, bytes] = {}
    for raw, where in iter_perl_lines([path]):
        fields = perl_split(perl_chomp(raw))
        if len(fields) < 3 or not fields[0]:
            raise InputError(f"expected serial, type and identifier separated by TABs, found {len(fields)} "
                             f"field(s): {excerpt(raw.decode('utf-8', 'replace'))}", where.path, where.line)
        if not ENTITY_TYPE.match(fields[1]):
            raise InputError(f"entity type {excerpt(fields[1].decode('utf-8', 'replace'))} is not a whole number",
                             where.path, where.line)
        entities[fields[0]] = fields[1] + b"\t" + fields[2]
    return entities


def read_species(path: str) -> Set[str]:
    """The taxonomy ids whose rank is 'species' in a table of id, scientific name, rank a line (the published
    scientific_names_and_ranks.tsv; a later line for an id wins); InputError naming a line without exactly three
    TAB-separated fields."""
    ranks: Dict[str, str] = {}
    for number, text in iter_lines(path):
        fields = text.split("\t")
        if len(fields) != 3:
            raise InputError(f"expected taxonomy id, name and rank separated by TABs, found {len(fields)} field(s)",
                             path, number)
        ranks[fields[0]] = fields[2]
    return {taxid for taxid, rank in ranks.items() if rank == SPECIES_RANK}


# ----------------------------------------------------------------------------- the two streams


def document_line(raw: bytes, where: Where, excluded: FrozenSet[bytes]) -> Optional[DocumentLine]:
    """The database_documents.tsv view of one line of the tagger's documents; None when create_documents.pl
    ignores it (no PMID key, or an excluded document)."""
    fields = perl_split(perl_chomp(raw).replace(b"\\", b"\\\\"))
    key = DOCUMENT_KEY.match(fields[0]) if fields else None
    if key is None or key.group(1) in excluded:
        return None
    document = key.group(1)
    if len(fields) < 4:
        return DocumentLine(document.decode("ascii"), None, where)
    line = b"\t".join([document, *fields[:4], b"\\t".join(fields[4:])])
    return DocumentLine(document.decode("ascii"), python_line(line, where), where)


def iter_documents(paths: Sequence[str], excluded: FrozenSet[bytes]) -> Iterator[DocumentLine]:
    """Every PMID-keyed, not excluded line of the tagger's documents, in order (duplicates included: the first
    of a document wins, which the caller decides)."""
    for raw, where in iter_perl_lines(paths):
        document = document_line(raw, where, excluded)
        if document is not None:
            yield document


def match_line(raw: bytes, where: Where, entities: Dict[bytes, bytes]) -> Optional[str]:
    """The database_matches.tsv line of one line of the tagger's matches; None when its serial is not in the
    entities file (create_matches.pl skips it)."""
    fields = perl_split(perl_chomp(raw))
    if len(fields) < MATCH_COLUMNS:
        raise InputError(f"expected {MATCH_COLUMNS} TAB-separated columns (document, paragraph, sentence, start, "
                         f"stop, text, type, serial), found {len(fields)}", where.path, where.line)
    entity = entities.get(fields[7])
    if entity is None:
        return None
    for name, value in (("document", fields[0]), ("start", fields[3]), ("stop", fields[4])):
        if not DIGITS.match(value):
            raise InputError(f"{name} {excerpt(value.decode('utf-8', 'replace'))} is not a whole number",
                             where.path, where.line)
    return python_line(b"\t".join([fields[0], fields[3], fields[4], entity]), where)


def iter_matches(path: str, entities: Dict[bytes, bytes]) -> Iterator[Tuple[str, int]]:
    """(database_matches.tsv line, line number in the tagger's file) of every match of a known entity, in order."""
    for raw, where in iter_perl_lines([path]):
        line = match_line(raw, where, entities)
        if line is not None:
            yield line, where.line
