"""Features for the consensus entity-type classifier: each dictionary-tagger match in its context as one row of
token ids.

The published layout (L = max_seq_length, H = L // 2) is::

    [CLS] [PAD].. <last H-1 left tokens> | <mention> <first right tokens> [SEP] [PAD]..
    0     1 ..                        H-1 | H

so the mention always starts at position H. Featurization is vectorised with numpy: the
texts of a chunk are split into whitespace words, every distinct word is encoded once by the
tokenizer's word table, and the token rows are filled by array indexing.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from bert_tf.errors import InputError
from bert_tf.tokenization import WORD_SEPARATOR, WordPieceTokenizer

MIN_SEQ_LENGTH = 8
# Contexts longer than this many characters per token of room are cut (at whole words) before
# tokenization; a context that then yields too few tokens is tokenized again whole.
CHARS_PER_TOKEN_CUT = 8
# Rows featurized at a time: small enough for the temporaries to stay in cache (measured
# ~20% faster than 8192).
BLOCK_ROWS = 1024

# Characters Python's str.split() splits on but BERT's text cleaning deletes (they are control
# characters), so "a\x1cb" is one word to BERT. They are deleted before texts are cut or split.
_DELETED_BY_BERT = "\x00\x0b\x0c\x1c\x1d\x1e\x1f\x85"
_DELETE_TABLE = str.maketrans("", "", _DELETED_BY_BERT)
# Separator between the texts of a chunk when they are split in one go: a word of its own
# that no text can contain (NUL is deleted from texts above); it has id 0 in every word table.
_JOINER = f" {WORD_SEPARATOR} "


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


def _without_deleted(texts: List[str]) -> List[str]:
    """texts without the characters BERT deletes but Python splits on (usually: texts as is)."""
    joined = "".join(texts)
    if any(c in joined for c in _DELETED_BY_BERT):
        return [t.translate(_DELETE_TABLE) for t in texts]
    return texts


def _encode_clean(texts: List[str], tokenizer: WordPieceTokenizer) -> Tuple[np.ndarray, np.ndarray]:
    """Encode texts free of _DELETED_BY_BERT characters without special tokens: (all token ids concatenated
    as int32, count per text). Equal to tokenizer.encode_texts, but a BERT-style tokenizer encodes each
    distinct whitespace word only once per process (its word table), several times faster on real text."""
    if not tokenizer.splits_on_whitespace:
        encoded = tokenizer.encode_texts(texts)
        counts = np.fromiter(map(len, encoded), np.int64, count=len(encoded))
        flat = np.fromiter(itertools.chain.from_iterable(encoded), np.int32, count=int(counts.sum()))
        return flat, counts
    table = tokenizer.word_table
    word_ids = table.word_ids(_JOINER.join(texts).split())
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
    blocks = [
        _featurize_block(list(lefts[i : i + BLOCK_ROWS]), list(mentions[i : i + BLOCK_ROWS]),
                         list(rights[i : i + BLOCK_ROWS]), tokenizer, length, replace_id)
        for i in range(0, len(lefts), BLOCK_ROWS)
    ]
    if not blocks:
        return MentionFeatures(np.zeros((0, length), token_dtype(tokenizer.vocab_size)))
    return MentionFeatures(
        token_ids=np.concatenate([b.token_ids for b in blocks]),
        mentions_truncated=sum(int(b.mention_cut.sum()) for b in blocks),
        left_truncated=sum(int(b.left_cut.sum()) for b in blocks),
        right_truncated=sum(int(b.right_cut.sum()) for b in blocks),
    )


def _featurize_block(
    lefts: List[str],
    mentions: List[str],
    rights: List[str],
    tokenizer: WordPieceTokenizer,
    length: int,
    replace_id: Optional[int],
) -> _Rows:
    """Featurize one block of rows: with cut contexts, then again whole where that came out short."""
    rows = _featurize(lefts, mentions, rights, tokenizer, length, replace_id, True)
    redo = np.flatnonzero(rows.redo)
    if redo.size:
        pick = lambda texts: [texts[i] for i in redo]  # noqa: E731
        again = _featurize(pick(lefts), pick(mentions), pick(rights), tokenizer, length, replace_id, False)
        for name in ("token_ids", "mention_cut", "left_cut", "right_cut"):
            getattr(rows, name)[redo] = getattr(again, name)
    return rows


def _cut(
    texts: List[str], max_chars: int, cutter: Callable[[str, int], Tuple[str, bool]]
) -> Tuple[List[str], np.ndarray]:
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
    lefts, rights = _without_deleted(lefts), _without_deleted(rights)
    left_dropped = right_dropped = np.zeros(n, bool)
    if cut_contexts:
        lefts, left_dropped = _cut(lefts, CHARS_PER_TOKEN_CUT * left_room, _tail)
        rights, right_dropped = _cut(rights, CHARS_PER_TOKEN_CUT * mention_room, _head)
    middle = [] if replace_id is not None else _without_deleted(mentions)
    pieces, counts = _encode_clean(lefts + middle + rights, tokenizer)
    left_len, right_len = counts[:n], counts[counts.size - n :]
    mention_len = counts[n : 2 * n] if replace_id is None else np.ones(n, np.int64)
    mention_keep = np.minimum(mention_len, mention_room)
    right_room = mention_room - mention_keep
    keep = (np.minimum(left_len, left_room), mention_keep, np.minimum(right_len, right_room))
    out = _fill_rows(pieces, counts, keep, tokenizer, length, replace_id)
    return _Rows(
        token_ids=out,
        mention_cut=mention_len > mention_keep,
        left_cut=left_dropped | (left_len > left_room),
        right_cut=right_dropped | (right_len > right_room),
        redo=(left_dropped & (left_len < left_room)) | (right_dropped & (right_len < right_room)),
    )


def _fill_rows(
    pieces: np.ndarray,
    counts: np.ndarray,
    keep: Tuple[np.ndarray, np.ndarray, np.ndarray],
    tokenizer: WordPieceTokenizer,
    length: int,
    replace_id: Optional[int],
) -> np.ndarray:
    """The token rows from the pieces of the texts (lefts, [mentions,] rights) and how many
    pieces of each part are kept: the last ones of a left context, the first ones otherwise."""
    left_keep, mention_keep, right_keep = keep
    n, half = left_keep.size, length // 2
    out = np.full((n, length), tokenizer.pad_id, token_dtype(tokenizer.vocab_size))
    flat_out, row_start = out.reshape(-1), np.arange(n, dtype=np.int64) * length
    out[:, 0] = tokenizer.cls_id
    text_start = np.cumsum(counts) - counts
    skip = np.zeros(text_start.size, np.int64)
    skip[:n] = counts[:n] - left_keep
    if replace_id is None:
        take = (left_keep, mention_keep, right_keep)
        dest = (row_start + half - left_keep, row_start + half, row_start + half + mention_keep)
    else:
        out[:, half] = replace_id
        take = (left_keep, right_keep)
        dest = (row_start + half - left_keep, row_start + half + 1)
    _copy_ranges(pieces, text_start + skip, np.concatenate(take), flat_out, np.concatenate(dest))
    flat_out[row_start + half + mention_keep + right_keep] = tokenizer.sep_id
    return out


def _copy_ranges(
    src: np.ndarray, src_start: np.ndarray, count: np.ndarray, dst: np.ndarray, dst_start: np.ndarray
) -> None:
    """dst[dst_start[i] + k] = src[src_start[i] + k] for k < count[i], for every i, vectorised."""
    total = int(count.sum())
    if total == 0:
        return
    before = np.cumsum(count) - count
    which = np.repeat(np.arange(count.size), count)
    offset = np.arange(total, dtype=np.int64) - before[which]
    dst[dst_start[which] + offset] = src[src_start[which] + offset]
