"""Features for the consensus entity-type classifier, and a sharded on-disk cache of them.

Each example is a dictionary-tagger match with its left and right context. The published
layout (L = max_seq_length, H = L // 2) is::

    [CLS] [PAD].. <last H-1 left tokens> | <mention> <first right tokens> [SEP] [PAD]..
    0     1 ..                        H-1 | H

so the mention always starts at position H. Featurization is vectorised with numpy: the
texts of a chunk are split into whitespace words, every distinct word is encoded once by the
WordPiece tokenizer and remembered, and the token rows are filled by array indexing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import re
import shutil
import sys
import time
import weakref
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from tokenizers import normalizers, pre_tokenizers

from bert_tf.errors import InputError
from bert_tf.io_utils import atomic_directory, write_json_atomic
from bert_tf.tokenization import WordPieceTokenizer

FORMAT_VERSION = 1
MIN_SEQ_LENGTH = 8
META_FILE = "meta.json"
SHARD_PATTERN = "shard-{:05d}.tfrecord"
HASH_CHUNK_BYTES = 8 * 1024 * 1024
STALE_TMP_SECONDS = 24 * 3600
MAX_CACHED_WORDS = 1_000_000
# Contexts longer than this many characters per token of room are cut (at whole words) before
# tokenization; a context that then yields too few tokens is tokenized again whole.
CHARS_PER_TOKEN_CUT = 8

# Characters Python's str.split() splits on but BERT's text cleaning deletes (they are control
# characters), so "a\x1cb" is one word to BERT. They are deleted before splitting.
_DELETED_BY_BERT = "\x00\x0b\x0c\x1c\x1d\x1e\x1f\x85"
_DELETE_TABLE = str.maketrans("", "", _DELETED_BY_BERT)
_DELETED_RE = re.compile("[" + re.escape(_DELETED_BY_BERT) + "]")
# Separator between the texts of a chunk when they are split in one go: a word of its own
# that no text can contain (NUL is deleted from texts above).
_SENTINEL = "\x00"
_JOINER = " \x00 "


# ----------------------------------------------------------------------------- featurization


@dataclasses.dataclass
class MentionFeatures:
    """Token id rows [N, L] for N mentions, and how many rows lost tokens to truncation."""

    token_ids: np.ndarray
    mentions_truncated: int = 0
    left_truncated: int = 0
    right_truncated: int = 0

    def padding_mask(self, pad_id: int) -> np.ndarray:
        """int32 [N, L]: 1 where the token is not [PAD] (left pads included), else 0."""
        return (self.token_ids != pad_id).astype(np.int32)

    def segment_ids(self) -> np.ndarray:
        """int32 [N, L] zeros: the classifier uses a single segment."""
        return np.zeros(self.token_ids.shape, np.int32)


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every token id fits (vocab_size <= 65535), else int32."""
    return np.dtype(np.uint16) if vocab_size <= 65535 else np.dtype(np.int32)


def check_seq_length(max_seq_length: int) -> None:
    """InputError unless max_seq_length is an integer >= MIN_SEQ_LENGTH."""
    if not isinstance(max_seq_length, (int, np.integer)) or max_seq_length < MIN_SEQ_LENGTH:
        raise InputError(f"max_seq_length must be an integer >= {MIN_SEQ_LENGTH}, got {max_seq_length!r}")


class _WordPieces:
    """Remembers the WordPiece ids of every word seen, as a ragged numpy table."""

    def __init__(self, tokenizer: WordPieceTokenizer):
        self.tokenizer = tokenizer
        self.clear()

    def clear(self) -> None:
        """Forget all words (the sentinel keeps id 0, with no pieces)."""
        self.index: Dict[str, int] = {_SENTINEL: 0}
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
        encoded = self.tokenizer.encode_texts(words)
        counts = np.fromiter(map(len, encoded), np.int32, count=len(encoded))
        first = len(self.index)
        self.starts = _grown(self.starts, first + len(words))
        self.counts = _grown(self.counts, first + len(words))
        self.pieces = _grown(self.pieces, self.num_pieces + int(counts.sum()))
        self.counts[first : first + len(words)] = counts
        self.starts[first : first + len(words)] = self.num_pieces + np.cumsum(counts) - counts
        flat = np.fromiter(itertools.chain.from_iterable(encoded), np.int32, count=int(counts.sum()))
        self.pieces[self.num_pieces : self.num_pieces + flat.size] = flat
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


_WORD_TABLES: "weakref.WeakKeyDictionary[WordPieceTokenizer, _WordPieces]" = weakref.WeakKeyDictionary()


def _word_table(tokenizer: WordPieceTokenizer) -> Optional[_WordPieces]:
    """The word table of a BERT-style tokenizer; None when words cannot be encoded one by one."""
    normalizer = tokenizer.tokenizer.normalizer
    bert_like = (
        isinstance(normalizer, normalizers.BertNormalizer)
        and bool(getattr(normalizer, "clean_text", False))
        and isinstance(tokenizer.tokenizer.pre_tokenizer, pre_tokenizers.BertPreTokenizer)
    )
    if not bert_like:
        return None
    table = _WORD_TABLES.get(tokenizer)
    if table is None:
        table = _WORD_TABLES[tokenizer] = _WordPieces(tokenizer)
    return table


def encode_segments(texts: Sequence[str], tokenizer: WordPieceTokenizer) -> Tuple[np.ndarray, np.ndarray]:
    """Encode texts without special tokens: (all token ids concatenated as int32, count per text).

    Equal to tokenizer.encode_texts, but a BERT-style tokenizer encodes each distinct
    whitespace word only once per process, which is several times faster on real text.
    """
    table = _word_table(tokenizer)
    if table is None:
        encoded = tokenizer.encode_texts(texts)
        counts = np.fromiter(map(len, encoded), np.int64, count=len(encoded))
        flat = np.fromiter(itertools.chain.from_iterable(encoded), np.int32, count=int(counts.sum()))
        return flat, counts
    joined = _JOINER.join(texts)
    if joined.count(_SENTINEL) != max(len(texts) - 1, 0) or any(c in joined for c in _DELETED_BY_BERT[1:]):
        joined = _JOINER.join(t.translate(_DELETE_TABLE) for t in texts)
    word_ids = table.word_ids(joined.split())
    pieces, piece_counts = table.expand(word_ids)
    # The sentinel (id 0, no pieces) ends every text but the last.
    ends = np.cumsum(piece_counts)[word_ids == 0]
    bounds = np.concatenate([[0], ends, [pieces.size]])
    return pieces, np.diff(bounds)


def _tail(text: str, max_chars: int) -> Tuple[str, bool]:
    """(the whole words among the last max_chars characters of text, whether any were dropped)."""
    if len(text) <= max_chars:
        return text, False
    rest = text[len(text) - max_chars :].split(None, 1)
    return (rest[1] if len(rest) == 2 else ""), True


def _head(text: str, max_chars: int) -> Tuple[str, bool]:
    """(the whole words among the first max_chars characters of text, whether any were dropped)."""
    if len(text) <= max_chars:
        return text, False
    rest = text[:max_chars].rsplit(None, 1)
    return (rest[0] if len(rest) == 2 else ""), True


@dataclasses.dataclass
class _Rows:
    """Featurized rows with per-row flags, before they are summed into MentionFeatures."""

    token_ids: np.ndarray
    mention_cut: np.ndarray
    left_cut: np.ndarray
    right_cut: np.ndarray
    redo: np.ndarray  # rows whose context cut may have dropped tokens that would have fitted


def featurize_mentions(
    lefts: Sequence[str],
    mentions: Sequence[str],
    rights: Sequence[str],
    tokenizer: WordPieceTokenizer,
    max_seq_length: int,
    replace_span: Optional[str] = None,
) -> MentionFeatures:
    """Token id rows for mentions in context, in the published layout (see the module doc).

    replace_span: a vocabulary token (e.g. "[unused1]") that stands for every mention
    (InputError if the vocabulary lacks it). An empty mention leaves the right context at H.
    """
    check_seq_length(max_seq_length)
    if not len(lefts) == len(mentions) == len(rights):
        raise ValueError(f"lefts, mentions and rights differ in length: {len(lefts)}, {len(mentions)}, {len(rights)}")
    replace_id = None if replace_span is None else tokenizer.token_to_id(replace_span)
    length = int(max_seq_length)
    rows = _featurize(list(lefts), list(mentions), list(rights), tokenizer, length, replace_id, True)
    redo = np.flatnonzero(rows.redo)
    if redo.size:  # the cut contexts came out short: these rows again, from the whole texts
        pick = lambda texts: [texts[i] for i in redo]  # noqa: E731
        again = _featurize(pick(lefts), pick(mentions), pick(rights), tokenizer, length, replace_id, False)
        for name in ("token_ids", "mention_cut", "left_cut", "right_cut"):
            getattr(rows, name)[redo] = getattr(again, name)
    return MentionFeatures(
        token_ids=rows.token_ids,
        mentions_truncated=int(rows.mention_cut.sum()),
        left_truncated=int(rows.left_cut.sum()),
        right_truncated=int(rows.right_cut.sum()),
    )


def _cut(texts: List[str], max_chars: int, cutter: Callable[[str, int], Tuple[str, bool]]) -> Tuple[List[str], np.ndarray]:
    """Cut every text with `cutter`; (texts, which ones lost words)."""
    if max(map(len, texts), default=0) <= max_chars:
        return texts, np.zeros(len(texts), bool)
    pairs = [cutter(t, max_chars) for t in texts]
    return [p[0] for p in pairs], np.fromiter((p[1] for p in pairs), bool, count=len(pairs))


def _featurize(
    lefts: List[str],
    mentions: List[str],
    rights: List[str],
    tokenizer: WordPieceTokenizer,
    length: int,
    replace_id: Optional[int],
    cut_contexts: bool,
) -> _Rows:
    """Fill the rows; with cut_contexts, long contexts are first cut to the characters that
    can plausibly fit (rows where that came out short are flagged in `redo`)."""
    n, half = len(lefts), length // 2
    left_room, mention_room = half - 1, length - half - 1
    left_dropped = right_dropped = np.zeros(n, bool)
    if cut_contexts:
        lefts, left_dropped = _cut(lefts, CHARS_PER_TOKEN_CUT * left_room, _tail)
        rights, right_dropped = _cut(rights, CHARS_PER_TOKEN_CUT * mention_room, _head)
    texts = lefts + rights if replace_id is not None else lefts + mentions + rights
    pieces, counts = encode_segments(texts, tokenizer)
    left_len, right_len = counts[:n], counts[len(texts) - n :]
    if replace_id is None:
        mention_len = counts[n : 2 * n]
        mention_keep = np.minimum(mention_len, mention_room)
    else:
        mention_len = mention_keep = np.ones(n, np.int64)
    right_room = mention_room - mention_keep
    right_keep = np.minimum(right_len, right_room)
    left_keep = np.minimum(left_len, left_room)

    out = np.full((n, length), tokenizer.pad_id, token_dtype(tokenizer.vocab_size))
    row_start = np.arange(n, dtype=np.int64) * length
    out[:, 0] = tokenizer.cls_id
    if replace_id is None:
        parts = [(left_len - left_keep, left_keep, row_start + half - left_keep),
                 (np.zeros(n, np.int64), mention_keep, row_start + half),
                 (np.zeros(n, np.int64), right_keep, row_start + half + mention_keep)]
    else:
        out[:, half] = replace_id
        parts = [(left_len - left_keep, left_keep, row_start + half - left_keep),
                 (np.zeros(n, np.int64), right_keep, row_start + half + 1)]
    skip, take, dest = (np.concatenate(p) for p in zip(*parts))
    _copy_ranges(pieces, np.cumsum(counts) - counts + skip, take, out.reshape(-1), dest)
    out.reshape(-1)[row_start + half + mention_keep + right_keep] = tokenizer.sep_id
    return _Rows(
        token_ids=out,
        mention_cut=mention_len > mention_keep,
        left_cut=left_dropped | (left_len > left_room),
        right_cut=right_dropped | (right_len > right_room),
        redo=(left_dropped & (left_len < left_room)) | (right_dropped & (right_len < right_room)),
    )


def _copy_ranges(src: np.ndarray, src_start: np.ndarray, count: np.ndarray, dst: np.ndarray, dst_start: np.ndarray) -> None:
    """dst[dst_start[i] + k] = src[src_start[i] + k] for k < count[i], for every i, vectorised."""
    total = int(count.sum())
    if total == 0:
        return
    before = np.cumsum(count) - count
    which = np.repeat(np.arange(count.size), count)
    offset = np.arange(total, dtype=np.int64) - before[which]
    dst[dst_start[which] + offset] = src[src_start[which] + offset]
