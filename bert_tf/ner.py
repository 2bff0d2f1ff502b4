"""NER featurization, batching, evaluation and prediction on word-level examples.

Each word is split into WordPiece sub-tokens; the word's first sub-token carries its label and
its prediction, the other sub-tokens are ignored by the loss (label -1). Training rows are
truncated to `max_len`; evaluation and prediction rows are overlapping windows, and each word is
scored by the window in which it has the most context on both sides, so every word is counted.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from bert_tf import probabilities
from bert_tf.batch_format import IGNORE_LABEL, LABELS, PADDING_MASK, SEGMENT_IDS, TOKEN_IDS
from bert_tf.metrics import ner_metrics
from bert_tf.tokenization import WordPieceTokenizer

# Padded lengths of length-bucketed batches: steps of at most 25% above 32 (13.9% padding on BC5CDR
# against 31% with powers of two) while XLA still compiles at most 15 programs per step function.
DEFAULT_BUCKETS = (16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 320, 384, 512)


@dataclasses.dataclass
class Rows:
    """Featurized rows (one sequence each) of a set of documents."""

    token_ids: List[np.ndarray]  # int32 [len] with [CLS] ... [SEP]
    labels: List[np.ndarray]  # int32 [len]: label id on first sub-tokens, -1 elsewhere
    word_index: List[np.ndarray]  # int32 [len]: word index (in its document) on first sub-tokens, -1 elsewhere
    centrality: List[np.ndarray]  # int32 [len]: how far the word is from the window's nearest edge
    doc_index: np.ndarray  # int32 [rows]

    def __len__(self) -> int:
        return len(self.token_ids)

    def lengths(self) -> np.ndarray:
        """Length of every row in sub-tokens."""
        return np.fromiter((len(t) for t in self.token_ids), dtype=np.int64, count=len(self.token_ids))


def encode_documents(docs: Sequence[Sequence[str]], tokenizer: WordPieceTokenizer) -> List[List[List[int]]]:
    """Sub-token ids of every word of every document (batched over all words at once)."""
    flat = [w for doc in docs for w in doc]
    pieces = tokenizer.encode_words(flat)
    out, start = [], 0
    for doc in docs:
        out.append(pieces[start:start + len(doc)])
        start += len(doc)
    return out


def plan_windows(word_lengths: Sequence[int], budget: int) -> List[Tuple[int, int]]:
    """Word ranges [start, end) of overlapping windows of at most `budget` sub-tokens covering all words.

    Consecutive windows overlap by about half a window, so every word has a window in which it
    is far from both edges. A single word longer than the budget gets a window of its own.
    """
    n = len(word_lengths)
    if n == 0:
        return [(0, 0)]
    lengths = [max(1, min(int(x), budget)) for x in word_lengths]
    windows: List[Tuple[int, int]] = []
    start = 0
    while True:
        end, used = start, 0
        while end < n and used + lengths[end] <= budget:
            used += lengths[end]
            end += 1
        windows.append((start, end))
        if end >= n:
            return windows
        start = max(start + 1, start + (end - start) // 2)


def _row(word_pieces: Sequence[Sequence[int]], start: int, end: int, label_ids: Optional[Sequence[int]],
         budget: int, tokenizer: WordPieceTokenizer) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ids, labels, words, central = [tokenizer.cls_id], [IGNORE_LABEL], [-1], [0]
    for w in range(start, end):
        pieces = list(word_pieces[w])[: budget] or [tokenizer.unk_id]
        if len(ids) - 1 + len(pieces) > budget:
            break
        ids.extend(pieces)
        labels.extend([label_ids[w] if label_ids is not None else IGNORE_LABEL] + [IGNORE_LABEL] * (len(pieces) - 1))
        words.extend([w] + [-1] * (len(pieces) - 1))
        central.extend([min(w - start, end - 1 - w)] + [0] * (len(pieces) - 1))
    ids.append(tokenizer.sep_id)
    labels.append(IGNORE_LABEL)
    words.append(-1)
    central.append(0)
    return (np.asarray(ids, np.int32), np.asarray(labels, np.int32), np.asarray(words, np.int32),
            np.asarray(central, np.int32))


def training_rows(pieces: Sequence[Sequence[Sequence[int]]], label_ids: Sequence[Sequence[int]], max_len: int,
                  tokenizer: WordPieceTokenizer) -> Tuple[Rows, int, int]:
    """One row per document, truncated to `max_len`; returns (rows, words cut, documents cut)."""
    budget = max_len - 2
    rows = Rows([], [], [], [], np.arange(len(pieces), dtype=np.int32))
    words_cut = docs_cut = 0
    for doc_pieces, doc_labels in zip(pieces, label_ids):
        ids, labels, words, central = _row(doc_pieces, 0, len(doc_pieces), doc_labels, budget, tokenizer)
        kept = int(np.sum(words >= 0))
        if kept < len(doc_pieces):
            words_cut += len(doc_pieces) - kept
            docs_cut += 1
        for target, value in zip((rows.token_ids, rows.labels, rows.word_index, rows.centrality),
                                 (ids, labels, words, central)):
            target.append(value)
    return rows, words_cut, docs_cut


def window_rows(pieces: Sequence[Sequence[Sequence[int]]], max_len: int, tokenizer: WordPieceTokenizer,
                label_ids: Optional[Sequence[Sequence[int]]] = None) -> Rows:
    """Overlapping windows of at most `max_len` sub-tokens that together cover every word."""
    budget = max_len - 2
    rows = Rows([], [], [], [], np.zeros(0, np.int32))
    doc_index: List[int] = []
    for d, doc_pieces in enumerate(pieces):
        lengths = [min(len(p), budget) or 1 for p in doc_pieces]
        for start, end in plan_windows(lengths, budget):
            ids, labels, words, central = _row(doc_pieces, start, end, None if label_ids is None else label_ids[d],
                                               budget, tokenizer)
            for target, value in zip((rows.token_ids, rows.labels, rows.word_index, rows.centrality),
                                     (ids, labels, words, central)):
                target.append(value)
            doc_index.append(d)
    rows.doc_index = np.asarray(doc_index, np.int32)
    return rows


def bucket_lengths(max_len: int, bucket_by_length: bool, lengths: Optional[Sequence[int]] = None) -> List[int]:
    """The padded lengths batches may have: a small fixed set (bounded XLA programs), or just max_len.

    `lengths` replaces DEFAULT_BUCKETS; those at or above max_len are dropped and max_len is always one.
    """
    if not bucket_by_length:
        return [max_len]
    chosen = DEFAULT_BUCKETS if not lengths else [int(b) for b in lengths]
    if any(b < 1 for b in chosen):
        raise ValueError(f"bucket lengths must be positive, got {list(chosen)}")
    return sorted({b for b in chosen if b < max_len} | {max_len})


def padded_length(length: int, buckets: Sequence[int]) -> int:
    """The smallest bucket that holds `length` sub-tokens."""
    for b in buckets:
        if length <= b:
            return b
    return buckets[-1]


def make_batches(lengths: np.ndarray, batch_size: int, buckets: Sequence[int], shuffle: bool,
                 rng: Optional[np.random.Generator] = None) -> List[np.ndarray]:
    """Row indices of each batch: rows grouped by bucket, shuffled within and across buckets if asked."""
    assigned = np.searchsorted(np.asarray(buckets), np.minimum(lengths, buckets[-1]), side="left")
    batches: List[np.ndarray] = []
    for bucket in range(len(buckets)):
        members = np.flatnonzero(assigned == bucket)
        if shuffle:
            members = rng.permutation(members)
        batches.extend(members[i:i + batch_size] for i in range(0, len(members), batch_size))
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


ROW_ID = "row_id"  # the row each batch row came from (to stitch window predictions back together)
OUTPUT_SIGNATURE = {
    TOKEN_IDS: tf.TensorSpec([None, None], tf.int32),
    PADDING_MASK: tf.TensorSpec([None, None], tf.int32),
    SEGMENT_IDS: tf.TensorSpec([None, None], tf.int32),
    LABELS: tf.TensorSpec([None, None], tf.int32),
    ROW_ID: tf.TensorSpec([None], tf.int32),
}


def pad_batch(rows: Rows, indices: np.ndarray, buckets: Sequence[int], pad_id: int) -> Dict[str, np.ndarray]:
    """A padded batch (dict of int32 arrays) of the given rows."""
    length = padded_length(max(len(rows.token_ids[i]) for i in indices), buckets)
    token_ids = np.full((len(indices), length), pad_id, np.int32)
    labels = np.full((len(indices), length), IGNORE_LABEL, np.int32)
    mask = np.zeros((len(indices), length), np.int32)
    for r, i in enumerate(indices):
        n = len(rows.token_ids[i])
        token_ids[r, :n] = rows.token_ids[i]
        labels[r, :n] = rows.labels[i]
        mask[r, :n] = 1
    return {TOKEN_IDS: token_ids, PADDING_MASK: mask, SEGMENT_IDS: np.zeros_like(mask), LABELS: labels,
            ROW_ID: np.asarray(indices, np.int32)}


def batches_dataset(rows: Rows, batches: List[np.ndarray], buckets: Sequence[int], pad_id: int,
                    num_workers: int = 2) -> tf.data.Dataset:
    """A tf.data pipeline of padded batches, prepared ahead of the accelerator."""

    def generate() -> Iterator[Dict[str, np.ndarray]]:
        for indices in batches:
            yield pad_batch(rows, indices, buckets, pad_id)

    dataset = tf.data.Dataset.from_generator(generate, output_signature=OUTPUT_SIGNATURE)
    options = tf.data.Options()
    options.threading.private_threadpool_size = max(1, num_workers)
    return dataset.with_options(options).prefetch(max(2, num_workers))


@dataclasses.dataclass
class WordPredictions:
    """Per-document word-level results stitched from window predictions."""

    label_ids: List[np.ndarray]  # predicted label id per word
    confidence: List[np.ndarray]  # softmax probability of the predicted label per word
    log_probs: List[np.ndarray]  # [words, labels] log-softmax per word


class WindowCollector:
    """Collects first-sub-token logits from prediction batches and stitches them per word."""

    def __init__(self, rows: Rows, num_docs: int, doc_lengths: Sequence[int]):
        self.rows, self.num_docs, self.doc_lengths = rows, num_docs, list(doc_lengths)
        self._docs: List[np.ndarray] = []
        self._words: List[np.ndarray] = []
        self._central: List[np.ndarray] = []
        self._logits: List[np.ndarray] = []

    def __call__(self, out: Dict[str, np.ndarray]) -> None:
        for logits, row in zip(out["logits"], out[ROW_ID]):
            words = self.rows.word_index[row]
            positions = np.flatnonzero(words >= 0)
            self._docs.append(np.full(len(positions), self.rows.doc_index[row], np.int64))
            self._words.append(words[positions].astype(np.int64))
            self._central.append(self.rows.centrality[row][positions].astype(np.int64))
            self._logits.append(logits[positions])

    def result(self) -> WordPredictions:
        """Each word's prediction from the window where it had the most context."""
        docs, words = np.concatenate(self._docs), np.concatenate(self._words)
        central, logits = np.concatenate(self._central), np.concatenate(self._logits).astype(np.float64)
        order = np.lexsort((-central, words, docs))
        docs, words, logits = docs[order], words[order], logits[order]
        first = np.ones(len(docs), bool)
        first[1:] = (docs[1:] != docs[:-1]) | (words[1:] != words[:-1])
        docs, words, logits = docs[first], words[first], logits[first]
        log_probs = probabilities.log_softmax(logits)
        result = WordPredictions([], [], [])
        bounds = np.searchsorted(docs, np.arange(self.num_docs + 1))
        for d in range(self.num_docs):
            lp = log_probs[bounds[d]:bounds[d + 1]]
            got = words[bounds[d]:bounds[d + 1]]
            if len(got) != self.doc_lengths[d] or np.any(got != np.arange(self.doc_lengths[d])):
                raise AssertionError(f"document {d}: {len(got)} of {self.doc_lengths[d]} words predicted")
            result.log_probs.append(lp)
            result.label_ids.append(lp.argmax(axis=1) if len(lp) else np.zeros(0, np.int64))
            result.confidence.append(np.exp(lp.max(axis=1)) if len(lp) else np.zeros(0))
        return result


def word_level_loss(predictions: WordPredictions, gold_ids: Sequence[Sequence[int]]) -> float:
    """Mean negative log-likelihood of the gold label over all words."""
    total, count = 0.0, 0
    for lp, gold in zip(predictions.log_probs, gold_ids):
        if len(gold):
            total -= float(lp[np.arange(len(gold)), np.asarray(gold)].sum())
            count += len(gold)
    return total / max(count, 1)


def training_metrics(parts: Dict[str, List[np.ndarray]], rows: Rows, labels: Sequence[str]) -> Dict[str, float]:
    """Word-level accuracy and F1 of the predictions made during an epoch's training steps."""
    gold, pred = [], []
    for preds, row_ids in zip(parts["preds"], parts[ROW_ID]):
        for p, row in zip(preds, row_ids):
            if row < 0:
                continue
            row_labels = rows.labels[row]
            positions = np.flatnonzero(row_labels != IGNORE_LABEL)
            gold.append([labels[i] for i in row_labels[positions]])
            pred.append([labels[i] for i in p[positions]])
    result = ner_metrics(gold, pred)
    return {"accuracy": result["accuracy"], "f1": result["f1"]}


@dataclasses.dataclass
class EvalSet:
    """Documents prepared for evaluation or prediction: windows plus word-level gold labels."""

    rows: Rows
    words: List[Sequence[str]]
    gold_ids: Optional[List[List[int]]]

    @property
    def num_docs(self) -> int:
        """Number of documents."""
        return len(self.words)


def make_eval_set(docs: Sequence[Sequence[str]], tags: Optional[Sequence[Sequence[str]]],
                  label_to_id: Dict[str, int], tokenizer: WordPieceTokenizer, max_len: int) -> EvalSet:
    """Windows of the documents, with gold label ids when tags are given."""
    pieces = encode_documents(docs, tokenizer)
    gold = None if tags is None else [[label_to_id[t] for t in doc_tags] for doc_tags in tags]
    return EvalSet(window_rows(pieces, max_len, tokenizer, gold), list(docs), gold)


def predict_words(trainer, eval_set: EvalSet, batch_size: int, buckets: Sequence[int], pad_id: int,
                  num_workers: int = 2) -> WordPredictions:
    """Word-level predictions for every word of every document."""
    batches = make_batches(eval_set.rows.lengths(), batch_size, buckets, shuffle=False)
    dataset = batches_dataset(eval_set.rows, batches, buckets, pad_id, num_workers)
    collector = WindowCollector(eval_set.rows, eval_set.num_docs, [len(w) for w in eval_set.words])
    trainer.predict(dataset, len(batches), collector)
    return collector.result()


def evaluate(trainer, eval_set: EvalSet, labels: Sequence[str], batch_size: int, buckets: Sequence[int],
             pad_id: int, num_workers: int = 2) -> Tuple[Dict, WordPredictions]:
    """Loss and word-level metrics (with and without O, per class) of a labelled set."""
    predictions = predict_words(trainer, eval_set, batch_size, buckets, pad_id, num_workers)
    gold_tags = [[labels[i] for i in doc] for doc in eval_set.gold_ids]
    pred_tags = [[labels[i] for i in doc] for doc in predictions.label_ids]
    metrics = ner_metrics(gold_tags, pred_tags)
    metrics = {"loss": word_level_loss(predictions, eval_set.gold_ids), **metrics}
    return metrics, predictions


def entities_of(words: Sequence[str], tags: Sequence[str], confidence: Sequence[float]) -> List[Dict]:
    """Entities (type, word span, text, mean confidence) in a tagged document, conlleval chunking."""
    from seqeval.metrics.sequence_labeling import get_entities

    out = []
    for entity_type, start, end in get_entities(list(tags)):
        out.append({
            "type": entity_type,
            "start_word": int(start),
            "end_word": int(end) + 1,
            "text": " ".join(words[start:end + 1]),
            "confidence": round(float(np.mean(confidence[start:end + 1])), 6),
        })
    return out
