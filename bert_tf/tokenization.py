"""WordPiece tokenization with the Rust `tokenizers` library, built from a checkpoint's vocabulary, with a
per-tokenizer table that encodes each distinct word once."""

from __future__ import annotations

import itertools
import json
import os
import shutil
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

from bert_tf.errors import InputError, first_line

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
TOKENIZER_CONFIG = "tokenizer_config.json"
MAX_CACHED_WORDS = 1_000_000  # a word table holding more words than this starts afresh
JOINED_WORDS = 4096  # new words encoded per joined text (see WordPieceTokenizer._encode_new_words)
WORD_SEPARATOR = "\x00"  # id 0 of every word table: a word with no pieces (BERT deletes NUL from texts)


def _read_vocab(vocab_path: str) -> Dict[str, int]:
    """Read a BERT vocab.txt (one token a line, id = line index)."""
    vocab: Dict[str, int] = {}
    try:
        with open(vocab_path, encoding="utf-8") as f:
            for index, line in enumerate(f):
                token = line.rstrip("\r\n")
                if token and token not in vocab:
                    vocab[token] = index
    except UnicodeDecodeError as e:
        raise InputError(f"vocabulary is not UTF-8 ({e.reason})", vocab_path) from None
    if not vocab:
        raise InputError("vocabulary is empty", vocab_path)
    return vocab


def _vocab_looks_cased(vocab: Iterable[str]) -> bool:
    """Guess casing from a vocabulary: cased vocabularies hold many tokens with capitals."""
    tokens = [t for t in vocab if not (t.startswith("[") and t.endswith("]"))]
    upper = sum(1 for t in tokens if any(c.isupper() for c in t))
    return upper > 0.01 * max(len(tokens), 1)


def detect_lowercase(model_dir: str) -> Tuple[Optional[bool], str]:
    """Return (do_lower_case, where it came from) from a checkpoint's tokenizer files, or (None, why)."""
    config_path = os.path.join(model_dir, TOKENIZER_CONFIG)
    if os.path.isfile(config_path):
        try:
            with open(config_path, encoding="utf-8") as f:
                config = json.load(f)
        except (ValueError, UnicodeDecodeError) as e:
            raise InputError(f"not valid JSON ({e})", config_path) from None
        if isinstance(config, dict) and isinstance(config.get("do_lower_case"), bool):
            return config["do_lower_case"], f"{TOKENIZER_CONFIG} (do_lower_case)"
    json_path = os.path.join(model_dir, "tokenizer.json")
    if os.path.isfile(json_path):
        try:
            with open(json_path, encoding="utf-8") as f:
                normalizer = json.load(f).get("normalizer") or {}
        except (ValueError, UnicodeDecodeError, AttributeError):
            normalizer = {}
        if isinstance(normalizer, dict) and isinstance(normalizer.get("lowercase"), bool):
            return normalizer["lowercase"], "tokenizer.json (normalizer)"
    vocab_path = os.path.join(model_dir, "vocab.txt")
    if os.path.isfile(vocab_path):
        cased = _vocab_looks_cased(_read_vocab(vocab_path))
        return (not cased), "vocab.txt (guessed from capitals in the vocabulary)"
    return None, "no tokenizer files"


def _bert_normalizer(lowercase: bool) -> normalizers.Normalizer:
    # strip_accents=None follows `lowercase`, as in the original BERT tokenizer.
    return normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )


class WordPieceTokenizer:
    """A BERT WordPiece tokenizer that encodes words and texts without special tokens."""

    def __init__(self, tokenizer: Tokenizer, lowercase: bool, source: str):
        self.tokenizer = tokenizer
        self.lowercase = lowercase
        self.source = source
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        for token in SPECIAL_TOKENS:
            if tokenizer.token_to_id(token) is None:
                raise InputError(f"the vocabulary has no {token} token", source)
        self.pad_id = tokenizer.token_to_id("[PAD]")
        self.unk_id = tokenizer.token_to_id("[UNK]")
        self.cls_id = tokenizer.token_to_id("[CLS]")
        self.sep_id = tokenizer.token_to_id("[SEP]")
        self._word_table: Optional[WordTable] = None
        self._id_span: Optional[int] = None

    @classmethod
    def from_vocab(cls, vocab_path: str, lowercase: bool) -> "WordPieceTokenizer":
        """Build the tokenizer from a BERT vocab.txt."""
        vocab = _read_vocab(vocab_path)
        tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
        tokenizer.normalizer = _bert_normalizer(lowercase)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece(prefix="##")
        return cls(tokenizer, lowercase, vocab_path)

    @classmethod
    def from_tokenizer_json(cls, json_path: str, lowercase: Optional[bool]) -> "WordPieceTokenizer":
        """Load a Hugging Face tokenizer.json; `lowercase` (if given) replaces its normalizer's casing."""
        try:
            tokenizer = Tokenizer.from_file(json_path)
        except Exception as e:  # the Rust library raises a plain Exception
            raise InputError(f"cannot read tokenizer ({first_line(e)})", json_path) from None
        if lowercase is not None:
            tokenizer.normalizer = _bert_normalizer(lowercase)
        tokenizer.post_processor = None
        return cls(tokenizer, bool(lowercase), json_path)

    @classmethod
    def from_model_dir(cls, model_dir: str, do_lower_case: Optional[bool] = None) -> "WordPieceTokenizer":
        """Load the tokenizer of a checkpoint directory (vocab.txt preferred, else tokenizer.json)."""
        detected, _ = detect_lowercase(model_dir)
        lowercase = detected if do_lower_case is None else do_lower_case
        vocab_path = os.path.join(model_dir, "vocab.txt")
        json_path = os.path.join(model_dir, "tokenizer.json")
        if os.path.isfile(vocab_path):
            return cls.from_vocab(vocab_path, bool(lowercase))
        if os.path.isfile(json_path):
            return cls.from_tokenizer_json(json_path, lowercase)
        raise InputError("no vocabulary: expected vocab.txt or tokenizer.json", model_dir)

    @property
    def vocab_size(self) -> int:
        """The ids the vocabulary spans: a vocab.txt's line count (a repeated token's later line keeps its id, as
        Google's tokenizer reads it), else the largest id + 1."""
        if self._id_span is None:
            self._id_span = max(self.tokenizer.get_vocab(with_added_tokens=True).values()) + 1
            if self.source.endswith(".txt"):
                with open(self.source, encoding="utf-8") as f:
                    self._id_span = max(self._id_span, sum(1 for _ in f))
        return self._id_span

    def token_to_id(self, token: str) -> int:
        """The id of a vocabulary token; InputError if the vocabulary lacks it."""
        token_id = self.tokenizer.token_to_id(token)
        if token_id is None:
            raise InputError(f"token {token!r} is not in the vocabulary", self.source)
        return token_id

    def encode_texts(self, texts: Sequence[str]) -> List[List[int]]:
        """Encode free texts (batched, in parallel) to WordPiece ids, no special tokens."""
        encodings = self.tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        return [e.ids for e in encodings]

    @property
    def splits_on_whitespace(self) -> bool:
        """True for a BERT-style tokenizer: its pieces never cross whitespace, so texts can be encoded word by
        word (BertNormalizer with clean_text and BertPreTokenizer)."""
        normalizer = self.tokenizer.normalizer
        return (isinstance(normalizer, normalizers.BertNormalizer) and bool(getattr(normalizer, "clean_text", False))
                and isinstance(self.tokenizer.pre_tokenizer, pre_tokenizers.BertPreTokenizer))

    @property
    def word_table(self) -> "WordTable":
        """This tokenizer's table of the words it has encoded (each distinct word is encoded once)."""
        if self._word_table is None:
            self._word_table = WordTable(self._encode_new_words)
        return self._word_table

    def _encode_new_words(self, words: List[str]) -> Tuple[np.ndarray, np.ndarray]:
        """WordPiece ids of words: (all ids concatenated as int32, count per word).

        A BERT-style tokenizer encodes them JOINED_WORDS at a time as one space-joined text, which gives the
        same pieces as one text per word (its pre-tokenizer never crosses whitespace) at about half the cost
        of the per-text overhead; token offsets assign the pieces to their words. Others encode each word as
        a text of its own.
        """
        if not self.splits_on_whitespace:
            encoded = self.encode_texts(words)
            counts = np.fromiter(map(len, encoded), np.int32, count=len(encoded))
            return np.fromiter(itertools.chain.from_iterable(encoded), np.int32, count=int(counts.sum())), counts
        groups = [words[i: i + JOINED_WORDS] for i in range(0, len(words), JOINED_WORDS)]
        encodings = self.tokenizer.encode_batch([" ".join(g) for g in groups], add_special_tokens=False)
        counts = np.zeros(len(words), np.int32)
        parts, first = [np.zeros(0, np.int32)], 0
        for group, encoding in zip(groups, encodings):
            ids = np.asarray(encoding.ids, np.int32)
            if ids.size:
                lengths = np.fromiter(map(len, group), np.int64, count=len(group))
                word_starts = np.cumsum(lengths + 1) - lengths - 1
                token_starts = np.asarray(encoding.offsets, np.int64)[:, 0]
                owner = np.searchsorted(word_starts, token_starts, side="right") - 1
                counts[first: first + len(group)] = np.bincount(owner, minlength=len(group))
            parts.append(ids)
            first += len(group)
        return np.concatenate(parts), counts

    def encode_words(self, words: Sequence[str]) -> List[List[int]]:
        """Encode each word to its WordPiece ids; a word that yields no piece becomes [UNK]."""
        table = self.word_table
        pieces, counts = table.expand(table.word_ids(list(words)))
        out = np.split(pieces, np.cumsum(counts)[:-1]) if len(counts) else []
        return [p.tolist() if p.size else [self.unk_id] for p in out]

    def save(self, directory: str) -> None:
        """Write vocab.txt (or tokenizer.json) and a tokenizer_config.json into `directory`."""
        os.makedirs(directory, exist_ok=True)
        if self.source.endswith(".txt"):
            shutil.copyfile(self.source, os.path.join(directory, "vocab.txt"))
        else:
            self.tokenizer.save(os.path.join(directory, "tokenizer.json"))
        with open(os.path.join(directory, TOKENIZER_CONFIG), "w", encoding="utf-8") as f:
            json.dump({"do_lower_case": self.lowercase, "tokenizer_class": "BertTokenizer"}, f, indent=2)


class WordTable:
    """The WordPiece ids of every word seen, as a ragged numpy table; id 0 is WORD_SEPARATOR, with no pieces.

    `encode(words)` gives new words' pieces as (all ids concatenated, count per word). The table starts
    afresh when it holds more than MAX_CACHED_WORDS words.
    """

    def __init__(self, encode: Callable[[List[str]], Tuple[np.ndarray, np.ndarray]]) -> None:
        self.encode = encode
        self.clear()

    def clear(self) -> None:
        """Forget all words (the separator keeps id 0, with no pieces)."""
        self.index: Dict[str, int] = {WORD_SEPARATOR: 0}
        self.starts = np.zeros(1024, np.int64)
        self.counts = np.zeros(1024, np.int32)
        self.pieces = np.zeros(16384, np.int32)
        self.num_pieces = 0

    def word_ids(self, words: List[str]) -> np.ndarray:
        """Ids of `words` (encoding the unseen ones in one batched call)."""
        if len(self.index) > MAX_CACHED_WORDS:
            self.clear()
        ids = np.fromiter(map(self.index.get, words, itertools.repeat(-1)), np.int64, count=len(words))
        missing = np.flatnonzero(ids < 0)
        if missing.size:
            self._add(list(dict.fromkeys(words[i] for i in missing)))
            ids[missing] = [self.index[words[i]] for i in missing]
        return ids

    def _add(self, words: List[str]) -> None:
        """Encode new words and append them to the table."""
        flat, counts = self.encode(words)
        first = len(self.index)
        self.starts = _grown(self.starts, first + len(words))
        self.counts = _grown(self.counts, first + len(words))
        self.pieces = _grown(self.pieces, self.num_pieces + int(counts.sum()))
        self.counts[first: first + len(words)] = counts
        self.starts[first: first + len(words)] = self.num_pieces + np.cumsum(counts) - counts
        self.pieces[self.num_pieces: self.num_pieces + flat.size] = flat
        self.num_pieces += flat.size
        self.index.update(zip(words, range(first, first + len(words))))

    def expand(self, word_ids: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(all pieces of the words, concatenated; number of pieces of each word)."""
        counts = self.counts[word_ids]
        ends = np.cumsum(counts)
        total = int(ends[-1]) if ends.size else 0
        shift = np.repeat(self.starts[word_ids] - (ends - counts), counts)
        shift += np.arange(total, dtype=shift.dtype)
        return self.pieces[shift], counts


def _grown(array: np.ndarray, size: int) -> np.ndarray:
    """`array`, or a copy at least twice as long when it is shorter than `size`."""
    if size <= array.size:
        return array
    bigger = np.zeros(max(size, 2 * array.size), array.dtype)
    bigger[: array.size] = array
    return bigger
