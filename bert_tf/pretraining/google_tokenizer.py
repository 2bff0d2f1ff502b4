"""Google BERT's FullTokenizer (BasicTokenizer + WordpieceTokenizer of github:google-research/bert
tokenization.py), to the token: the data writer must give the tokens Google's create_pretraining_data.py gives.

It differs from the Rust tokenizer of bert_tf.tokenization on a few inputs (Python's `str.lower` applies the Greek
final-sigma rule, Rust's per-character lowercasing does not; Google's word limit is 200 characters, Hugging Face's
100; Unicode tables of different versions), so the writer uses this one. Lines are read as Google reads them
(`tf.gfile.GFile(path, "r").readline()`): split at b"\\n" only, every b"\\r" dropped, strict UTF-8, a byte order
mark kept as a character (its category is Cf, so cleaning removes it).

Each distinct whitespace-separated word is tokenized once (a per-tokenizer table), since a word's pieces depend on
the word alone.
"""

from __future__ import annotations

import unicodedata
from typing import Dict, Iterator, List, Tuple

from bert_tf.errors import InputError

UNK = "[UNK]"
MAX_INPUT_CHARS_PER_WORD = 200  # Google's WordpieceTokenizer default
MAX_CACHED_WORDS = 1_000_000  # the word table starts afresh past this many words
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
              (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
ASCII_PUNCTUATION = set(range(33, 48)) | set(range(58, 65)) | set(range(91, 97)) | set(range(123, 127))


def google_lines(path: str) -> Iterator[Tuple[int, str]]:
    """(number, text) of each line of `path` as GFile.readline gives it (b"\\r" dropped, the b"\\n" cut off),
    streamed; InputError naming the file and line for bytes that are not UTF-8."""
    try:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                raw = raw.replace(b"\r", b"")
                try:
                    yield number, raw.decode("utf-8").rstrip("\n")
                except UnicodeDecodeError as error:
                    raise InputError(f"not valid UTF-8 (byte 0x{raw[error.start]:02x})", path, number) from None
    except OSError as error:
        raise InputError(f"cannot read the file: {error.strerror or error}", path) from None


def load_vocab(path: str) -> Dict[str, int]:
    """Google's load_vocab: token (the stripped line) -> index of its last line, in the order tokens first occur
    (an empty line is the token "")."""
    vocab: Dict[str, int] = {}
    index = -1
    for index, (_, line) in enumerate(google_lines(path)):
        vocab[line.strip()] = index
    if index < 0:
        raise InputError("vocabulary is empty", path)
    return vocab


def is_cjk(code: int) -> bool:
    """Whether a code point is a CJK ideograph (Google's _is_chinese_char)."""
    return any(low <= code <= high for low, high in CJK_RANGES)


def is_punctuation(char: str) -> bool:
    """Google's _is_punctuation: ASCII non-alphanumerics and Unicode P* categories."""
    return ord(char) in ASCII_PUNCTUATION or unicodedata.category(char).startswith("P")


class _CleanTable(dict):
    """str.translate table of Google's _clean_text then _tokenize_chinese_chars, filled per character on demand."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        category = unicodedata.category(char)
        if code in (0, 0xFFFD) or (char not in "\t\n\r" and category in ("Cc", "Cf")):
            value = ""
        elif char in " \t\n\r" or category == "Zs":
            value = " "
        elif is_cjk(code):
            value = f" {char} "
        else:
            value = char
        self[code] = value
        return value


def strip_accents(text: str) -> str:
    """Google's _run_strip_accents: NFD, combining marks (Mn) removed."""
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def split_on_punctuation(text: str) -> List[str]:
    """Google's _run_split_on_punc: each punctuation character a token of its own."""
    output: List[str] = []
    start_new = True
    for char in text:
        if is_punctuation(char):
            output.append(char)
            start_new = True
        else:
            if start_new:
                output.append("")
            start_new = False
            output[-1] += char
    return output


class FullTokenizer:
    """Google's FullTokenizer over a vocab.txt: `tokenize(text)` gives the WordPiece tokens, `ids` their ids."""

    def __init__(self, vocab_path: str, do_lower_case: bool):
        self.vocab = load_vocab(vocab_path)
        self.vocab_path = vocab_path
        self.do_lower_case = do_lower_case
        self._clean = _CleanTable()
        self._words: Dict[str, List[str]] = {}
        if UNK not in self.vocab:
            raise InputError(f"the vocabulary has no {UNK} token", vocab_path)

    def token_id(self, token: str) -> int:
        """The id of a token (InputError naming the vocabulary when it lacks it)."""
        if token not in self.vocab:
            raise InputError(f"the vocabulary has no {token} token", self.vocab_path)
        return self.vocab[token]

    def tokenize(self, text: str) -> List[str]:
        """The WordPiece tokens of a text, as Google's FullTokenizer.tokenize gives them."""
        if len(self._words) > MAX_CACHED_WORDS:
            self._words.clear()
        tokens: List[str] = []
        for word in text.translate(self._clean).split():
            pieces = self._words.get(word)
            if pieces is None:
                pieces = self._words[word] = self._word_pieces(word)
            tokens.extend(pieces)
        return tokens

    def ids(self, tokens: List[str]) -> List[int]:
        """The ids of tokens of the vocabulary."""
        return [self.vocab[t] for t in tokens]

    def _word_pieces(self, word: str) -> List[str]:
        """The pieces of one whitespace-free word: lower-cased and accents stripped (uncased), split at
        punctuation, each part WordPiece-tokenized."""
        if self.do_lower_case:
            word = strip_accents(word.lower())
        return [piece for part in " ".join(split_on_punctuation(word)).split() for piece in self._wordpiece(part)]

    def _wordpiece(self, word: str) -> List[str]:
        """Google's greedy longest-match-first WordPiece of one word ([UNK] when a part has no piece)."""
        if len(word) > MAX_INPUT_CHARS_PER_WORD:
            return [UNK]
        pieces: List[str] = []
        start = 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    pieces.append(piece)
                    break
                end -= 1
            if end == start:
                return [UNK]
            start = end
        return pieces
