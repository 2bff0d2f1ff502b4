"""A small rule-based sentence and word splitter for English and Finnish raw text, with character offsets.

Every non-whitespace character of the text belongs to exactly one token, and every token's `text` is
`original[start:end]`, so predictions can be mapped back to the original text exactly. Rules: numbers keep
their separators (3.5, 1.000,50, 12.3.2020, 12:30); known abbreviations (e.g., Dr., esim., ks., jne.) and
initials keep their period; a number followed by a period and a lower-case word is a Finnish ordinal
("5. toukokuuta"); hyphenated words, apostrophes and Finnish case endings after a colon (EU:n) stay in one
word; dashes, quotes, brackets and other punctuation are tokens of their own. A sentence ends after ., !, ?
or an ellipsis (and any closing quotes or brackets) unless a lower-case word follows, at a blank line, and
at a line break unless the next line starts with a lower-case letter.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Iterable, List, Optional, Sequence, Tuple

ABBREVIATIONS = frozenset("""
etc vs cf al fig figs eq vol pp ca approx dr mr mrs ms prof jr sr inc ltd corp dept univ
jan feb apr jun jul aug sep sept oct nov dec
esim ks n mm jne t ym yms ns vrt huom tms eaa jaa tri klo vt toim
""".split())
# Abbreviations that often end a sentence: a capitalised word after them starts a new one.
SENTENCE_FINAL_ABBREVIATIONS = frozenset(["etc.", "jne.", "ym.", "yms.", "tms.", "inc.", "ltd.", "corp."])

_TOKEN = re.compile(r"""
      (?P<number>\d+(?:[.,:/]\d+)+)                      # 3.5  1.000,50  12.3.2020  12:30  1/2
    | (?P<dotted>(?:[^\W\d_]\.){2,})                     # e.g.  i.e.  U.S.
    | (?P<word>\w+(?:['’&-]\w+)*(?::[^\W\d_]{1,4}(?!\w))?)  # words, aamu-unisille, don't, H&M:n, EU:n
    | (?P<dots>\.{2,}|…|[!?]+)                           # ellipsis, ?!
    | (?P<dash>-{2,}|[–—])                               # dashes
    | (?P<other>\S)                                      # any other single character
""", re.VERBOSE)
_TERMINAL = re.compile(r"^(?:[.!?]+|…|\.{2,})$")
_CLOSERS = set("\"'”’»)]}")
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")
_NON_SPACE = re.compile(r"\S")


@dataclasses.dataclass(frozen=True)
class Token:
    """A word: its text and character offsets [start, end) in the original text."""

    text: str
    start: int
    end: int


@dataclasses.dataclass(frozen=True)
class Sentence:
    """A sentence: its tokens (offsets into the original text) and its character span."""

    tokens: Tuple[Token, ...]

    @property
    def start(self) -> int:
        """Offset of the first character."""
        return self.tokens[0].start

    @property
    def end(self) -> int:
        """Offset just past the last character."""
        return self.tokens[-1].end


def _is_abbreviation(word: str, next_char: str) -> bool:
    """Whether `word` followed by a period is an abbreviation (known, or a single capital initial)."""
    if word.lower() in ABBREVIATIONS:
        return True
    return len(word) == 1 and word.isupper() and next_char != "."


def _next_word_start(text: str, position: int) -> str:
    """The first non-whitespace character at or after `position` ('' at the end)."""
    match = _NON_SPACE.search(text, position)
    return match.group() if match else ""


def _with_period(text: str, match: "re.Match[str]") -> bool:
    """Whether the period right after a word or number token belongs to it (abbreviation or ordinal)."""
    end = match.end()
    if text[end:end + 1] != "." or text[end + 1:end + 2] == ".":
        return False
    after = text[end + 1:end + 2]
    if after and not after.isspace() and after not in _CLOSERS:
        return False  # the period is inside a chunk like "a.b": let the next token take it
    kind, word = match.lastgroup, match.group()
    if kind == "word" and not word.isdigit():
        return _is_abbreviation(word, after)
    following = _next_word_start(text, end + 1)
    return kind in ("word", "number") and word[0].isdigit() and following[:1].islower()


def tokenize(text: str, start: int = 0, end: Optional[int] = None) -> List[Token]:
    """The tokens of `text[start:end]`, with offsets into `text`."""
    end = len(text) if end is None else end
    bounded = text if end == len(text) else text[:end]
    tokens: List[Token] = []
    position = start
    while position < end:
        match = _TOKEN.search(bounded, position)
        if match is None:
            break
        token_end = match.end() + (1 if _with_period(bounded, match) else 0)
        tokens.append(Token(text[match.start():token_end], match.start(), token_end))
        position = token_end
    return tokens


def _ends_sentence(text: str, tokens: Sequence[Token], i: int) -> bool:
    """Whether a sentence ends after token `i` (terminal punctuation, closers, then no lower-case word)."""
    if i + 1 >= len(tokens):
        return True
    gap = text[tokens[i].end:tokens[i + 1].start]
    following = tokens[i + 1].text
    if _BLANK_LINE.search(gap):
        return True
    if "\n" in gap and not following[:1].islower():
        return True
    if following in _CLOSERS and not gap:
        return False
    j = i
    while j > 0 and tokens[j].text in _CLOSERS and tokens[j].start == tokens[j - 1].end:
        j -= 1
    terminal = _TERMINAL.match(tokens[j].text) or tokens[j].text.lower() in SENTENCE_FINAL_ABBREVIATIONS
    return bool(terminal) and bool(gap) and not following[:1].islower()


def split_sentences(text: str, start: int = 0, end: Optional[int] = None) -> List[Sentence]:
    """The sentences of `text[start:end]` (offsets into `text`); whitespace-only text has none."""
    tokens = tokenize(text, start, end)
    sentences: List[Sentence] = []
    first = 0
    for i in range(len(tokens)):
        if _ends_sentence(text, tokens, i):
            sentences.append(Sentence(tuple(tokens[first:i + 1])))
            first = i + 1
    return sentences


def split_at(tokens: Iterable[Token], offsets: Iterable[int]) -> List[Token]:
    """The tokens, each cut at any of `offsets` falling strictly inside it (annotation boundaries)."""
    cuts = sorted(set(offsets))
    out: List[Token] = []
    for token in tokens:
        inside = [c for c in cuts if token.start < c < token.end]
        bounds = [token.start, *inside, token.end]
        for a, b in zip(bounds, bounds[1:]):
            out.append(Token(token.text[a - token.start:b - token.start], a, b))
    return out
