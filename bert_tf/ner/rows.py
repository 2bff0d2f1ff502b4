"""NER rows: WordPiece sub-tokens of word-level examples cut into windows of at most max_len.

Each word is split into WordPiece sub-tokens; the word's first sub-token carries its label and its prediction,
the other sub-tokens are ignored by the loss (label -1). Training, evaluation and prediction use the same windows
(`bert_tf.ner.windowing`): an example longer than `max_len` becomes overlapping windows and every word is the
target (loss) of the one where it is most central; with document context each example's window is filled with
its neighbours.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple

import numpy as np

from bert_tf.batch_format import IGNORE_LABEL
from bert_tf.ner import windowing
from bert_tf.tokenization import WordPieceTokenizer


@dataclasses.dataclass
class RowArrays:
    """One materialized row: sub-token ids and, per position, label, global word index and centrality."""

    token_ids: np.ndarray  # int32 [len] with [CLS] ... [SEP]
    labels: np.ndarray  # int32 [len]: label id on the first sub-token of target words, -1 elsewhere
    word_index: np.ndarray  # int32 [len]: global word index on first sub-tokens, -1 elsewhere
    centrality: np.ndarray  # int32 [len]: how far the word is from the window's nearest edge (in words)


@dataclasses.dataclass
class Rows:
    """Windows over the words of a set of examples, materialized one row at a time (memory flat in length).

    Words are numbered globally (every example's words in order); `windows` holds (start, end,
    target_start, target_end) per row, see `bert_tf.ner.windowing`.
    """

    piece_ids: np.ndarray  # int32: every word's sub-tokens, one after the other (each capped at the budget)
    word_offsets: np.ndarray  # int64 [words + 1]: where each word's sub-tokens start in piece_ids
    word_labels: Optional[np.ndarray]  # int32 [words] or None when unlabelled
    windows: np.ndarray  # int64 [rows, 4]
    cls_id: int
    sep_id: int

    def __len__(self) -> int:
        return len(self.windows)

    def lengths(self) -> np.ndarray:
        """Length of every row in sub-tokens ([CLS] and [SEP] included)."""
        if not len(self.windows):
            return np.zeros(0, np.int64)
        return self.word_offsets[self.windows[:, 1]] - self.word_offsets[self.windows[:, 0]] + 2

    def row(self, i: int) -> RowArrays:
        """The arrays of row `i`."""
        start, end, target_start, target_end = (int(x) for x in self.windows[i])
        first, last = self.word_offsets[start], self.word_offsets[end]
        ids = np.concatenate([[self.cls_id], self.piece_ids[first:last], [self.sep_id]]).astype(np.int32)
        words = np.arange(start, end)
        positions = (self.word_offsets[start:end] - first + 1).astype(np.int64)
        word_index = np.full(len(ids), -1, np.int32)
        word_index[positions] = words
        centrality = np.zeros(len(ids), np.int32)
        centrality[positions] = np.minimum(words - start, end - 1 - words)
        labels = np.full(len(ids), IGNORE_LABEL, np.int32)
        if self.word_labels is not None:
            targets = slice(target_start - start, target_end - start)
            labels[positions[targets]] = self.word_labels[target_start:target_end]
        return RowArrays(ids, labels, word_index, centrality)

    @property
    def token_ids(self) -> List[np.ndarray]:
        """Every row's sub-token ids (materializes all rows: for tools and tests)."""
        return [self.row(i).token_ids for i in range(len(self))]

    @property
    def labels(self) -> List[np.ndarray]:
        """Every row's labels (materializes all rows: for tools and tests)."""
        return [self.row(i).labels for i in range(len(self))]


def encode_documents(docs: Sequence[Sequence[str]], tokenizer: WordPieceTokenizer) -> List[List[List[int]]]:
    """Sub-token ids of every word of every document (batched over all words at once)."""
    flat = [w for doc in docs for w in doc]
    pieces = tokenizer.encode_words(flat)
    out, start = [], 0
    for doc in docs:
        out.append(pieces[start:start + len(doc)])
        start += len(doc)
    return out


def build_rows(pieces: Sequence[Sequence[Sequence[int]]], max_len: int, tokenizer: WordPieceTokenizer,
               label_ids: Optional[Sequence[Sequence[int]]] = None, doc_ids: Optional[Sequence[Optional[str]]] = None,
               context: str = "none", training: bool = False) -> Rows:
    """Windows of at most `max_len` sub-tokens over the examples (see `bert_tf.ner.windowing`).

    With `context="document"`, consecutive examples of one doc_id form a document whose words
    fill each example's window. With `training`, windows without target words are left out.
    """
    budget = max_len - 2
    flat = [list(p)[:budget] or [tokenizer.unk_id] for example in pieces for p in example]
    word_lengths = np.fromiter((len(p) for p in flat), np.int64, count=len(flat))
    offsets = np.concatenate([[0], np.cumsum(word_lengths)]).astype(np.int64)
    piece_ids = np.fromiter((i for p in flat for i in p), np.int32, count=int(offsets[-1]))
    example_starts = np.concatenate([[0], np.cumsum([len(e) for e in pieces])]).astype(np.int64)
    ranges = windowing.document_ranges(doc_ids if doc_ids is not None else [None] * len(pieces), context)
    windows = windowing.plan_document_windows(word_lengths, example_starts, ranges, budget, context == "document")
    if training:
        windows = [w for w in windows if w[3] > w[2]]
    labels = None
    if label_ids is not None:
        labels = np.fromiter((x for example in label_ids for x in example), np.int32, count=len(flat))
    return Rows(piece_ids, offsets, labels, np.asarray(windows, np.int64).reshape(-1, 4), tokenizer.cls_id,
                tokenizer.sep_id)


def words_not_targeted(rows: Rows) -> int:
    """How many words are the target of no window (0 by construction; the run table reports it)."""
    targeted = np.zeros(len(rows.word_offsets) - 1, np.int64)
    for _, _, first, last in rows.windows:
        targeted[first:last] += 1
    return int(np.sum(targeted == 0))


def training_rows(pieces: Sequence[Sequence[Sequence[int]]], label_ids: Sequence[Sequence[int]], max_len: int,
                  tokenizer: WordPieceTokenizer, doc_ids: Optional[Sequence[Optional[str]]] = None,
                  context: str = "none") -> Tuple[Rows, int, int]:
    """Training windows (every word labelled once); returns (rows, words cut, over-long words shortened)."""
    rows = build_rows(pieces, max_len, tokenizer, label_ids, doc_ids, context, training=True)
    shortened = sum(1 for example in pieces for p in example if len(p) > max_len - 2)
    return rows, words_not_targeted(rows), shortened


def window_rows(pieces: Sequence[Sequence[Sequence[int]]], max_len: int, tokenizer: WordPieceTokenizer,
                label_ids: Optional[Sequence[Sequence[int]]] = None, doc_ids: Optional[Sequence[Optional[str]]] = None,
                context: str = "none") -> Rows:
    """Evaluation windows of at most `max_len` sub-tokens that together cover every word."""
    return build_rows(pieces, max_len, tokenizer, label_ids, doc_ids, context)
