"""Features for the consensus entity-type classifier, and a sharded on-disk cache of them.

Each example is a dictionary-tagger match with its left and right context. The published
layout (L = max_seq_length, H = L // 2) is::

    [CLS] [PAD].. <last H-1 left tokens> | <mention> <first right tokens> [SEP] [PAD]..
    0     1 ..                        H-1 | H

so the mention always starts at position H. Featurization is vectorised with numpy: the
texts of a chunk are split into whitespace words, every distinct word is encoded once by the
WordPiece tokenizer and remembered, and the token rows are filled by array indexing.

The cache stores the rows in shards of fixed-length binary records (token ids, then label + 1,
little-endian, in the token dtype), read back with tf.data.FixedLengthRecordDataset: writing
is about 15x faster than TFRecord (whose per-record write costs as much as a third of the
featurization) and reading about 1.5-2x faster, with nothing to parse.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import itertools
import json
import multiprocessing
import os
import shutil
import sys
import time
import weakref
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from tokenizers import normalizers, pre_tokenizers

from bert_tf.errors import InputError
from bert_tf.io_utils import atomic_directory
from bert_tf.tokenization import WordPieceTokenizer

FORMAT_VERSION = 1
MIN_SEQ_LENGTH = 8
META_FILE = "meta.json"
SHARD_PATTERN = "shard-{:05d}.bin"
SHUFFLE_BUFFER = 65536
AUTOTUNE = -1  # tf.data.AUTOTUNE, without importing TensorFlow for featurization alone
HASH_CHUNK_BYTES = 8 * 1024 * 1024
STALE_TMP_SECONDS = 24 * 3600
MAX_CACHED_WORDS = 1_000_000
# New words encoded per joined text (see _encode_words).
JOINED_WORDS = 4096
# Featurizing processes of a cache build (default: the usable cores, at most MAX_WORKERS); the
# environment variable overrides it, 1 featurizes in the calling process.
WORKERS_ENV = "BERT_TF_FEATURIZE_WORKERS"
MAX_WORKERS = 8
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
    """Remembers the WordPiece ids of every word seen, as a ragged numpy table (one table per
    tokenizer, which it must not reference: the tables are weakly keyed by tokenizer)."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget all words (the sentinel keeps id 0, with no pieces)."""
        self.index: Dict[str, int] = {_SENTINEL: 0}
        self.starts = np.zeros(1024, np.int64)
        self.counts = np.zeros(1024, np.int32)
        self.pieces = np.zeros(16384, np.int32)
        self.num_pieces = 0

    def word_ids(self, words: List[str], tokenizer: WordPieceTokenizer) -> np.ndarray:
        """Ids of `words` (encoding the unseen ones with `tokenizer` in one batched call)."""
        if len(self.index) > MAX_CACHED_WORDS:
            self.clear()
        ids = np.fromiter(map(self.index.get, words, itertools.repeat(-1)), np.int64, count=len(words))
        missing = np.flatnonzero(ids < 0)
        if missing.size:
            self._add(list(dict.fromkeys(words[i] for i in missing)), tokenizer)
            ids[missing] = [self.index[words[i]] for i in missing]
        return ids

    def _add(self, words: List[str], tokenizer: WordPieceTokenizer) -> None:
        """Encode new words and append them to the table."""
        flat, counts = _encode_words(words, tokenizer)
        first = len(self.index)
        self.starts = _grown(self.starts, first + len(words))
        self.counts = _grown(self.counts, first + len(words))
        self.pieces = _grown(self.pieces, self.num_pieces + int(counts.sum()))
        self.counts[first : first + len(words)] = counts
        self.starts[first : first + len(words)] = self.num_pieces + np.cumsum(counts) - counts
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


def _encode_words(words: List[str], tokenizer: WordPieceTokenizer) -> Tuple[np.ndarray, np.ndarray]:
    """WordPiece ids of whitespace-free words: (all ids concatenated as int32, count per word).

    The words are encoded JOINED_WORDS at a time as one space-joined text, which gives the
    same pieces as one text per word (BERT's pre-tokenizer never crosses whitespace) at about
    half the cost of the per-text overhead; token offsets assign the pieces to their words.
    """
    groups = [words[i : i + JOINED_WORDS] for i in range(0, len(words), JOINED_WORDS)]
    encodings = tokenizer.tokenizer.encode_batch([" ".join(g) for g in groups], add_special_tokens=False)
    counts = np.zeros(len(words), np.int32)
    parts, first = [np.zeros(0, np.int32)], 0
    for group, encoding in zip(groups, encodings):
        ids = np.asarray(encoding.ids, np.int32)
        if ids.size:
            lengths = np.fromiter(map(len, group), np.int64, count=len(group))
            word_starts = np.cumsum(lengths + 1) - lengths - 1
            token_starts = np.asarray(encoding.offsets, np.int64)[:, 0]
            owner = np.searchsorted(word_starts, token_starts, side="right") - 1
            counts[first : first + len(group)] = np.bincount(owner, minlength=len(group))
        parts.append(ids)
        first += len(group)
    return np.concatenate(parts), counts


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
        table = _WORD_TABLES[tokenizer] = _WordPieces()
    return table


def encode_segments(texts: Sequence[str], tokenizer: WordPieceTokenizer) -> Tuple[np.ndarray, np.ndarray]:
    """Encode texts without special tokens: (all token ids concatenated as int32, count per text).

    Equal to tokenizer.encode_texts, but a BERT-style tokenizer encodes each distinct
    whitespace word only once per process, which is several times faster on real text.
    """
    return _encode_clean(_without_deleted(list(texts)), tokenizer)


def _without_deleted(texts: List[str]) -> List[str]:
    """texts without the characters BERT deletes but Python splits on (usually: texts as is)."""
    joined = "".join(texts)
    if any(c in joined for c in _DELETED_BY_BERT):
        return [t.translate(_DELETE_TABLE) for t in texts]
    return texts


def _encode_clean(texts: List[str], tokenizer: WordPieceTokenizer) -> Tuple[np.ndarray, np.ndarray]:
    """encode_segments for texts free of _DELETED_BY_BERT characters."""
    table = _word_table(tokenizer)
    if table is None:
        encoded = tokenizer.encode_texts(texts)
        counts = np.fromiter(map(len, encoded), np.int64, count=len(encoded))
        flat = np.fromiter(itertools.chain.from_iterable(encoded), np.int32, count=int(counts.sum()))
        return flat, counts
    word_ids = table.word_ids(_JOINER.join(texts).split(), tokenizer)
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


# ----------------------------------------------------------------------------- cache key


def file_digest(path: str) -> str:
    """Hex sha256 of a file's bytes, read in 8 MB chunks."""
    digest = hashlib.sha256()
    buffer = bytearray(HASH_CHUNK_BYTES)
    view = memoryview(buffer)
    try:
        with open(path, "rb", buffering=0) as f:
            while True:
                n = f.readinto(buffer)
                if not n:
                    break
                digest.update(view[:n])
    except OSError as e:
        raise InputError(f"cannot read ({e.strerror or e})", path) from None
    return digest.hexdigest()


def cache_key(
    data_path: str,
    tokenizer: WordPieceTokenizer,
    max_seq_length: int,
    replace_span: Optional[str],
    labels: Sequence[str],
) -> str:
    """Hex sha256 naming the features of a data file: changes with anything they depend on."""
    parts = {
        "format_version": FORMAT_VERSION,
        "data_sha256": file_digest(data_path),
        "data_size": os.path.getsize(data_path),
        "vocab_sha256": file_digest(tokenizer.source),
        "lowercase": bool(tokenizer.lowercase),
        "max_seq_length": int(max_seq_length),
        "replace_span": replace_span,
        "labels": list(labels),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------- cache files


@dataclasses.dataclass(frozen=True)
class CacheInfo:
    """What meta.json of a feature cache says, with the directory it was read from."""

    cache_dir: str
    key: str
    num_examples: int
    shard_files: Tuple[str, ...]
    shard_examples: Tuple[int, ...]
    max_seq_length: int
    dtype: str
    labels: Tuple[str, ...]
    pad_id: int
    replace_span: Optional[str] = None
    mentions_truncated: int = 0
    left_truncated: int = 0
    right_truncated: int = 0
    created: str = ""
    format_version: int = FORMAT_VERSION

    @property
    def shard_paths(self) -> List[str]:
        """Full paths of the shard files, in example order."""
        return [os.path.join(self.cache_dir, name) for name in self.shard_files]

    @property
    def record_bytes(self) -> int:
        """Bytes per example: max_seq_length token ids and the label slot."""
        return (self.max_seq_length + 1) * np.dtype(self.dtype).itemsize

    def to_meta(self) -> Dict[str, Any]:
        """The meta.json contents (everything but cache_dir)."""
        meta = dataclasses.asdict(self)
        del meta["cache_dir"]
        meta["num_shards"] = len(self.shard_files)
        meta["record_layout"] = (
            f"little-endian {self.dtype}: {self.max_seq_length} token ids, then label id + 1 (0: none)"
        )
        return meta


def _info_from_meta(cache_dir: str, meta: Dict[str, Any]) -> CacheInfo:
    """CacheInfo from parsed meta.json; KeyError/TypeError/ValueError when it is malformed."""
    fields = {f.name for f in dataclasses.fields(CacheInfo)} - {"cache_dir"}
    values = {name: meta[name] for name in fields if name in meta}
    for name in ("shard_files", "shard_examples", "labels"):
        values[name] = tuple(meta[name])
    info = CacheInfo(cache_dir=cache_dir, **values)
    if info.format_version != FORMAT_VERSION or info.dtype not in ("uint16", "int32"):
        raise ValueError("unsupported cache format")
    if len(info.shard_files) != len(info.shard_examples) or sum(info.shard_examples) != info.num_examples:
        raise ValueError("shard counts do not add up")
    return info


def load_cache_info(cache_dir: str) -> Optional[CacheInfo]:
    """The CacheInfo of a finished cache directory; None when absent, malformed or incomplete."""
    try:
        with open(os.path.join(cache_dir, META_FILE), encoding="utf-8") as f:
            info = _info_from_meta(os.path.abspath(cache_dir), json.load(f))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for path, count in zip(info.shard_paths, info.shard_examples):
        try:
            if os.path.getsize(path) != count * info.record_bytes:
                return None
        except OSError:
            return None
    return info


class _ShardWriter:
    """Appends record rows to shard files of at most `shard_size` examples each."""

    def __init__(self, directory: str, shard_size: int):
        self.directory = directory
        self.shard_size = shard_size
        self.names: List[str] = []
        self.counts: List[int] = []
        self._file = None

    def write(self, rows: np.ndarray) -> None:
        """Append rows [n, L + 1], opening new shards as they fill."""
        while rows.shape[0]:
            if self._file is None or self.counts[-1] == self.shard_size:
                self._open_next()
            take = min(rows.shape[0], self.shard_size - self.counts[-1])
            self._file.write(rows[:take].tobytes())
            self.counts[-1] += take
            rows = rows[take:]

    def _open_next(self) -> None:
        """Close the current shard and start the next one."""
        self.close()
        self.names.append(SHARD_PATTERN.format(len(self.names)))
        self.counts.append(0)
        self._file = open(os.path.join(self.directory, self.names[-1]), "wb")

    def close(self) -> None:
        """Flush and close the open shard, if any."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None


Columns = Tuple[Sequence[str], Sequence[str], Sequence[str], Sequence[str]]  # labels, lefts, mentions, rights


class RecordChunks:
    """Records already in memory, as chunks: lists of (label, left, mention, right) tuples.

    The interface of every record source of build_feature_cache: `chunks(size)` yields chunks in
    order (in the reading process) and `columns(chunk)` turns one into columns (in the process
    that featurizes it, so that sources such as consensus.TsvLineChunks parse there, in parallel).
    """

    def __init__(self, records: Iterable[Tuple[str, str, str, str]]):
        self.records = records

    def chunks(self, size: int) -> Iterable[List[Tuple[str, str, str, str]]]:
        """Lists of up to `size` consecutive records."""
        iterator = iter(self.records)
        while True:
            chunk = list(itertools.islice(iterator, size))
            if not chunk:
                return
            yield chunk

    def columns(self, chunk: List[Tuple[str, str, str, str]]) -> Columns:
        """(labels, lefts, mentions, rights) of a chunk of records."""
        try:
            columns = tuple(zip(*chunk, strict=True))
        except ValueError:
            raise ValueError("records must all be (label, left, mention, right) tuples") from None
        if len(columns) != 4:
            raise ValueError(f"records must be (label, left, mention, right) tuples, got {len(columns)} fields")
        return columns


def build_feature_cache(
    records: Any,
    cache_dir: str,
    tokenizer: WordPieceTokenizer,
    max_seq_length: int,
    replace_span: Optional[str],
    labels: Sequence[str],
    chunk_size: int = 8192,
    shard_size: int = 262144,
    progress: Optional[Callable[[int], None]] = None,
    key: str = "",
    workers: Optional[int] = None,
) -> CacheInfo:
    """Featurize records into a new cache at `cache_dir`.

    records: an iterable of (label, left, mention, right) tuples, or a chunked source with the
    interface of RecordChunks (e.g. consensus.TsvLineChunks, whose lines are parsed and checked in
    the featurizing processes).

    Streams chunk by chunk; the directory appears (atomically, replacing an old one) only
    when complete. A label not in `labels` gets id -1 ("no gold label"). `progress` is
    called with the number of examples written after every chunk. With more than one chunk,
    chunks are parsed and featurized by `workers` forked processes (default: default_workers())
    while this process reads the chunks and writes the shards; the cache is the same either way.
    """
    check_seq_length(max_seq_length)
    if chunk_size < 1 or shard_size < 1:
        raise ValueError("chunk_size and shard_size must be positive")
    dtype = token_dtype(tokenizer.vocab_size).newbyteorder("<")
    if len(set(labels)) != len(labels) or len(labels) >= np.iinfo(dtype).max:
        raise ValueError(f"labels must be distinct and fewer than {np.iinfo(dtype).max}: {list(labels)}")
    if replace_span is not None:
        tokenizer.token_to_id(replace_span)  # fail before any work
    with atomic_directory(cache_dir) as tmp:
        writer = _ShardWriter(tmp, shard_size)
        try:
            source = records if hasattr(records, "columns") else RecordChunks(records)
            job = _ChunkJob(source, tokenizer, int(max_seq_length), replace_span, labels)
            totals = _write_records(job, writer, dtype, chunk_size, progress,
                                    default_workers() if workers is None else workers)
        finally:
            writer.close()
        info = CacheInfo(
            cache_dir=os.path.abspath(cache_dir), key=key, shard_files=tuple(writer.names),
            shard_examples=tuple(writer.counts), max_seq_length=int(max_seq_length), dtype=dtype.name,
            labels=tuple(labels), pad_id=int(tokenizer.pad_id), replace_span=replace_span,
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), **totals,
        )
        with open(os.path.join(tmp, META_FILE), "w", encoding="utf-8") as f:
            json.dump(info.to_meta(), f, indent=2, ensure_ascii=False)
            f.write("\n")
    return info


def default_workers() -> int:
    """Featurizing processes for a cache build: $BERT_TF_FEATURIZE_WORKERS, else the usable cores."""
    value = os.environ.get(WORKERS_ENV, "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            raise InputError(f"{WORKERS_ENV}={value!r}: expected a positive integer") from None
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


@dataclasses.dataclass
class _ChunkJob:
    """What turns one chunk of a record source into label ids and features."""

    source: Any
    tokenizer: WordPieceTokenizer
    length: int
    replace_span: Optional[str]
    labels: Sequence[str]

    def __post_init__(self) -> None:
        self.label_ids = {label: i for i, label in enumerate(self.labels)}

    def __call__(self, chunk: Any) -> Tuple[np.ndarray, MentionFeatures]:
        gold, lefts, mentions, rights = self.source.columns(chunk)
        gold_ids = np.fromiter(map(self.label_ids.get, gold, itertools.repeat(-1)), np.int64, len(gold))
        features = featurize_mentions(lefts, mentions, rights, self.tokenizer, self.length, self.replace_span)
        return gold_ids, features


_WORKER_JOB: Optional[_ChunkJob] = None


def _init_worker(job: _ChunkJob) -> None:
    """Pool initializer: remember the job every chunk is processed with (inherited, not pickled)."""
    global _WORKER_JOB
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one process per core already
    _WORKER_JOB = job


def _run_worker_job(chunk: Any) -> Tuple[np.ndarray, MentionFeatures]:
    return _WORKER_JOB(chunk)


def _processed_chunks(
    job: _ChunkJob, chunks: Iterable[Any], workers: int
) -> Iterable[Tuple[np.ndarray, MentionFeatures]]:
    """(label ids, features) of every chunk, in order; chunks go to `workers` forked processes
    (at most two each in flight, so that the input still streams) when there are several."""
    chunks = iter(chunks)
    head = list(itertools.islice(chunks, 2))
    serial = workers <= 1 or len(head) < 2 or multiprocessing.current_process().daemon
    if serial or "fork" not in multiprocessing.get_all_start_methods():
        for chunk in itertools.chain(head, chunks):
            yield job(chunk)
        return
    context = multiprocessing.get_context("fork")
    with context.Pool(workers, initializer=_init_worker, initargs=(job,)) as pool:
        pending: "collections.deque" = collections.deque()
        for chunk in itertools.chain(head, chunks):
            pending.append(pool.apply_async(_run_worker_job, (chunk,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def _write_records(
    job: _ChunkJob,
    writer: "_ShardWriter",
    dtype: np.dtype,
    chunk_size: int,
    progress: Optional[Callable[[int], None]],
    workers: int,
) -> Dict[str, int]:
    """Featurize the job's source chunk by chunk into the shards; the example and truncation counts."""
    totals = dict(num_examples=0, mentions_truncated=0, left_truncated=0, right_truncated=0)
    for gold_ids, features in _processed_chunks(job, job.source.chunks(chunk_size), workers):
        if not gold_ids.size:
            continue
        rows = np.empty((gold_ids.size, job.length + 1), dtype)
        rows[:, : job.length] = features.token_ids
        rows[:, job.length] = gold_ids + 1
        writer.write(rows)
        _add_counts(totals, features, gold_ids.size)
        if progress is not None:
            progress(totals["num_examples"])
    return totals


def _add_counts(totals: Dict[str, int], features: MentionFeatures, n: int) -> None:
    """Add a chunk's example and truncation counts to the running totals."""
    totals["num_examples"] += n
    totals["mentions_truncated"] += features.mentions_truncated
    totals["left_truncated"] += features.left_truncated
    totals["right_truncated"] += features.right_truncated


def _remove_stale_temps(cache_root: str, name: str) -> None:
    """Remove temporary build directories of `name` left by killed runs over a day ago."""
    try:
        entries = os.listdir(cache_root)
    except OSError:
        return
    now = time.time()
    for entry in entries:
        if entry.startswith(f".{name}.") and (entry.endswith(".tmp") or entry.endswith(".tmp.old")):
            path = os.path.join(cache_root, entry)
            try:
                stale = now - os.path.getmtime(path) > STALE_TMP_SECONDS
            except OSError:
                continue
            if stale:
                shutil.rmtree(path, ignore_errors=True)


def _print_stderr(message: str) -> None:
    """Default log: one line on stderr."""
    print(message, file=sys.stderr, flush=True)


def get_or_build_cache(
    records_factory: Callable[[], Any],
    data_path: str,
    cache_root: str,
    tokenizer: WordPieceTokenizer,
    max_seq_length: int,
    replace_span: Optional[str],
    labels: Sequence[str],
    chunk_size: int = 8192,
    shard_size: int = 262144,
    progress: Optional[Callable[[int], None]] = None,
    log: Callable[[str], None] = _print_stderr,
    workers: Optional[int] = None,
) -> CacheInfo:
    """The feature cache <cache_root>/<key>/ of a data file, built (from records_factory())
    only when no finished cache with that key exists."""
    key = cache_key(data_path, tokenizer, max_seq_length, replace_span, labels)
    cache_dir = os.path.join(cache_root, key)
    info = load_cache_info(cache_dir)
    if info is not None and info.key == key:
        log(f"reusing feature cache {cache_dir} ({info.num_examples} examples)")
        return info
    _remove_stale_temps(cache_root, key)
    log(f"building feature cache {cache_dir} from {data_path}")
    info = build_feature_cache(
        records_factory(), cache_dir, tokenizer, max_seq_length, replace_span, labels,
        chunk_size=chunk_size, shard_size=shard_size, progress=progress, key=key, workers=workers,
    )
    log(f"built feature cache {cache_dir} ({info.num_examples} examples, {len(info.shard_files)} shards)")
    return info


# ----------------------------------------------------------------------------- reading back


def cache_arrays(info: CacheInfo) -> Tuple[np.ndarray, np.ndarray]:
    """(token ids [N, L] in the cache dtype, label ids int32 [N], -1 for none), all in memory."""
    width = info.max_seq_length + 1
    dtype = np.dtype(info.dtype).newbyteorder("<")
    parts = [np.fromfile(path, dtype).reshape(-1, width) for path in info.shard_paths]
    rows = np.concatenate(parts) if parts else np.zeros((0, width), dtype)
    token_ids = rows[:, : info.max_seq_length].astype(np.dtype(info.dtype))
    return token_ids, rows[:, info.max_seq_length].astype(np.int32) - 1


def cache_dataset(
    info: CacheInfo,
    batch_size: int,
    shuffle: bool,
    seed: int,
    drop_remainder: bool = False,
    num_parallel_calls: int = AUTOTUNE,
    repeat: bool = False,
    with_index: bool = False,
) -> "tf.data.Dataset":  # noqa: F821
    """A tf.data pipeline over a cache: ({"token_ids", "padding_mask", "segment_ids"}: int32
    [B, L], labels: int32 [B]). Without shuffle the order is the input order; with it,
    shards are interleaved in a seeded random order and examples go through a shuffle buffer
    (reshuffled every epoch). `with_index` adds "index" (int32 [B]) to the features: each
    example's position in the input, for putting distributed predictions back in order."""
    import tensorflow as tf

    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    dataset = _indexed_records(info, shuffle, seed, num_parallel_calls)
    if shuffle:
        dataset = dataset.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    parse = _record_parser(info)

    def parse_indexed(indices, records):
        features, labels = parse(records)
        if with_index:
            features["index"] = tf.cast(indices, tf.int32)
        return features, labels

    dataset = dataset.map(parse_indexed, num_parallel_calls=num_parallel_calls, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _indexed_records(info: CacheInfo, shuffle: bool, seed: int,
                     num_parallel_calls: int) -> "tf.data.Dataset":  # noqa: F821
    """(input position, raw record) of every example; shards in a seeded random order with shuffle."""
    import tensorflow as tf

    record_bytes = info.record_bytes
    paths = tf.constant(info.shard_paths, tf.string, shape=[len(info.shard_paths)])
    if not (shuffle and len(info.shard_paths) > 1):
        return tf.data.FixedLengthRecordDataset(paths, record_bytes, buffer_size=1 << 20).enumerate()
    offsets = tf.constant(np.cumsum((0,) + tuple(info.shard_examples[:-1])), tf.int64)
    files = tf.data.Dataset.from_tensor_slices((paths, offsets))
    files = files.shuffle(len(info.shard_paths), seed=seed, reshuffle_each_iteration=True)

    def shard_records(path, offset):
        return tf.data.FixedLengthRecordDataset(path, record_bytes, buffer_size=1 << 20).enumerate(offset)

    return files.interleave(shard_records, cycle_length=min(len(info.shard_paths), 8), block_length=1,
                            num_parallel_calls=num_parallel_calls, deterministic=True)


def _record_parser(info: CacheInfo) -> Callable:
    """A function from a batch of raw records to (features, labels) tensors."""
    import tensorflow as tf

    length, pad_id = info.max_seq_length, info.pad_id
    tf_dtype = tf.uint16 if info.dtype == "uint16" else tf.int32

    def parse(records):
        values = tf.cast(tf.io.decode_raw(records, tf_dtype, little_endian=True), tf.int32)
        values = tf.reshape(values, [-1, length + 1])
        token_ids = values[:, :length]
        features = {
            "token_ids": token_ids,
            "padding_mask": tf.cast(tf.not_equal(token_ids, pad_id), tf.int32),
            "segment_ids": tf.zeros_like(token_ids),
        }
        return features, values[:, length] - 1

    return parse
