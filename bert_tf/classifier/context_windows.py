"""The context lines of one shard, as the published chain writes them after `split_string.py`.

For one shard of database_documents.tsv / database_matches.tsv lines (see bert_tf.classifier.tagger_output):

- `sort -n` under LC_ALL=C: by the leading number, then by the whole line's bytes (sort_lines);
- organisms (organism_matches, organism_documents): of the shard's matches in file order, those of type -2; of
  those, the first of each (document, start, stop) (the first species a name maps to); of those, the ones whose
  identifier has rank 'species'; sorted; and the documents that such a match names;
- `get_contexts.py -t TYPE -w WORDS` (context_lines): the matches grouped by document; a document with a match
  whose text starts or ends with whitespace is skipped whole; each distinct (start, stop, type) gives one line
  `doc<TAB>annotation numbers<TAB>type<TAB>left<TAB>mention<TAB>right`, where the annotation numbers count every
  match of the document in order, the left context is the last WORDS words (tokens with a letter or digit) before
  the match with DOCSTART in front of the document and the right one the first WORDS after with DOCEND behind.
  Offsets index the document's text (literal \\t turned back into TABs, then TABs into spaces) by character.

A match whose document is not in the shard's documents is an InputError naming the tagger's matches file and line
(the published script stopped there, its output cut short).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from bert_tf.errors import InputError

DOC_START, DOC_END = "DOCSTART", "DOCEND"
ORGANISM_TYPE = "-2"
ESCAPED_TAB = re.compile(r"(^|[^\\]|\\\\)\\t")  # a literal \t, as get_contexts.py recognises one
WINDOW_CHARACTERS = 1024  # the first look either side of a match; doubled until enough words are seen


@dataclasses.dataclass(frozen=True)
class Match:
    """One database_matches.tsv line of a shard and the tagger's line it came from."""

    line: str
    source_line: int

    @property
    def fields(self) -> List[str]:
        """document, start, stop, type, identifier."""
        return self.line.split("\t")


def consensus_type(entity_type: int) -> Optional[str]:
    """The consensus label of a tagger type among che, dis, ggp, org (None for every other type)."""
    if entity_type > 0:
        return "ggp"
    return {-1: "che", -2: "org", -3: "org", -26: "dis"}.get(entity_type)


# ----------------------------------------------------------------------------- ordering and the organism filter


def leading_number(line: str) -> int:
    """The number a line starts with (its first field, digits)."""
    return int(line.split("\t", 1)[0])


def sort_lines(lines: Iterable[str]) -> List[str]:
    """Lines in `LC_ALL=C sort -n` order: by leading number, ties by the line's bytes (code points order UTF-8
    bytes alike)."""
    return sorted(lines, key=lambda line: (leading_number(line), line))


def sort_matches(matches: Iterable[Match]) -> List[Match]:
    """Matches in `LC_ALL=C sort -n` order of their lines."""
    return sorted(matches, key=lambda match: (leading_number(match.line), match.line))


def organism_matches(matches: Iterable[Match], species: Set[str]) -> List[Match]:
    """The shard's organism matches the published org path keeps (file order in, sorted out)."""
    seen: Set[Tuple[str, ...]] = set()
    kept: List[Match] = []
    for match in matches:
        fields = match.fields
        if fields[3] != ORGANISM_TYPE or tuple(fields[:4]) in seen:
            continue
        seen.add(tuple(fields[:4]))
        if fields[4] in species:
            kept.append(match)
    return sort_matches(kept)


def organism_documents(documents: Sequence[str], matches: Sequence[Match]) -> List[str]:
    """The (sorted) documents whose first field is the document field of one of `matches`."""
    named = {match.fields[0] for match in matches}
    return [line for line in documents if line.split("\t", 1)[0] in named]


# ----------------------------------------------------------------------------- words around a match


def is_word(token: str) -> bool:
    """A token with a letter or digit in it."""
    return any(c.isalnum() for c in token)


def take_words(tokens: Iterable[str], count: int) -> Tuple[List[str], bool]:
    """Tokens from the front of `tokens` up to and including the `count`-th word; whether that many were found."""
    taken: List[str] = []
    words = 0
    for token in tokens:
        if words >= count:
            break
        taken.append(token)
        words += is_word(token)
    return taken, words >= count


def words_before(text: str, start: int, count: int) -> str:
    """The last `count` words of DOCSTART + text[:start], single-spaced."""
    start, size = min(start, len(text)), WINDOW_CHARACTERS
    while True:
        low = max(0, start - size)
        tokens = text[low:start].split()
        tokens = tokens[1:] if low > 0 else [DOC_START, *tokens]  # a token at the window's edge may be cut
        taken, enough = take_words(reversed(tokens), count)
        if enough or low == 0:
            return " ".join(reversed(taken))
        size *= 2


def words_after(text: str, end: int, count: int) -> str:
    """The first `count` words of text[end:] + DOCEND, single-spaced."""
    end, size = min(end, len(text)), WINDOW_CHARACTERS
    while True:
        high = min(len(text), end + size)
        tokens = text[end:high].split()
        tokens = tokens[:-1] if high < len(text) else [*tokens, DOC_END]
        taken, enough = take_words(tokens, count)
        if enough or high == len(text):
            return " ".join(taken)
        size *= 2


# ----------------------------------------------------------------------------- documents and their matches


def document_text(line: str) -> str:
    """The text of a database_documents.tsv line as get_contexts.py reads it (sixth field, literal \\t and \\\\
    unescaped, TABs made spaces)."""
    text = line.split("\t")[5]
    text = ESCAPED_TAB.sub(lambda m: m.group(1) + "\t", text).replace("\\\\", "\\")
    return text.replace("\t", " ")


def has_edge_space(span: str) -> bool:
    """Whether a match's text starts or ends with whitespace (its document is skipped)."""
    return span[:1].isspace() or span[-1:].isspace()


class DocumentFinder:
    """Finds the text of each document of sorted matches in sorted documents, in one forward pass."""

    def __init__(self, documents: Sequence[str], matches_path: str):
        self.documents, self.position, self.matches_path = documents, 0, matches_path

    def text(self, number: int, match: Match) -> str:
        """The text of document `number`; InputError naming `match`'s line when the shard has no such document."""
        while self.position < len(self.documents) and leading_number(self.documents[self.position]) < number:
            self.position += 1
        if self.position == len(self.documents) or leading_number(self.documents[self.position]) != number:
            raise InputError(f"a match in document {number}, which is not among the documents (excluded, without "
                             "a PMID key or without authors, journal and year fields)", self.matches_path,
                             match.source_line)
        return document_text(self.documents[self.position])


def document_groups(matches: Sequence[Match]) -> Iterator[Tuple[int, List[Match]]]:
    """(document number, its matches) of sorted matches."""
    group: List[Match] = []
    for match in matches:
        number = leading_number(match.line)
        if group and leading_number(group[0].line) != number:
            yield leading_number(group[0].line), group
            group = []
        group.append(match)
    if group:
        yield leading_number(group[0].line), group


def candidates(text: str, matches: Sequence[Match]) -> Optional[Dict[Tuple[int, int, Optional[str]], List[int]]]:
    """(start, end, consensus type) -> the 1-based numbers of its matches, in first-seen order; None when a
    match's text has whitespace at an edge (the document is skipped)."""
    spans: Dict[Tuple[int, int, Optional[str]], List[int]] = {}
    for number, match in enumerate(matches, start=1):
        _, start, stop, entity_type, _ = match.fields
        start, end = int(start), int(stop) + 1
        if has_edge_space(text[start:end]):
            return None
        spans.setdefault((start, end, consensus_type(int(entity_type))), []).append(number)
    return spans


def context_lines(documents: Sequence[str], matches: Sequence[Match], types: Sequence[str], words: int,
                  matches_path: str, skipped: Callable[[int], None] = lambda number: None
                  ) -> Iterator[Tuple[str, str]]:
    """(type, context line) for each candidate of `types` in sorted `matches` over sorted `documents`;
    `skipped(document)` is told of each document left out for a match with whitespace at an edge."""
    if not documents or not matches:  # get_contexts.py stops before writing anything
        if matches:
            DocumentFinder(documents, matches_path).text(leading_number(matches[0].line), matches[0])
        return
    finder = DocumentFinder(documents, matches_path)
    for number, group in document_groups(matches):
        text = finder.text(number, group[0])
        spans = candidates(text, group)
        if spans is None:
            skipped(number)
            continue
        for (start, end, label), numbers in spans.items():
            if label in types:
                yield label, "\t".join([str(number), ",".join(map(str, numbers)), label,
                                        words_before(text, start, words), text[start:end],
                                        words_after(text, end, words)]) + "\n"
