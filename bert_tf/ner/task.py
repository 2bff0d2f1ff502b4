"""NER featurization, batching, evaluation and prediction on word-level examples.

Each word is split into WordPiece sub-tokens; the word's first sub-token carries its label and
its prediction, the other sub-tokens are ignored by the loss (label -1). Training, evaluation and
prediction use the same windows (`bert_tf.ner.windowing`): an example longer than `max_len` becomes
overlapping windows and every word is the target (loss) of the one where it is most central;
with document context each example's window is filled with its neighbours. At evaluation each
word is decided by the window where it is most central, or by a majority over its windows.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from seqeval.metrics.sequence_labeling import get_entities

from bert_tf.batch_format import IGNORE_LABEL, LABELS, PADDING_MASK, SEGMENT_IDS, TOKEN_IDS
from bert_tf.metrics import log_softmax, ner_metrics
from bert_tf.ner import decoding, windowing
from bert_tf.tokenization import WordPieceTokenizer

# Padded lengths of length-bucketed batches: steps of at most 25% above 32 (13.9% padding on BC5CDR
# against 31% with powers of two) while XLA still compiles at most 15 programs per step function.
DEFAULT_BUCKETS = (16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 320, 384, 512)


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
    built = [rows.row(int(i)) for i in indices]
    length = padded_length(max(len(r.token_ids) for r in built), buckets)
    token_ids = np.full((len(indices), length), pad_id, np.int32)
    labels = np.full((len(indices), length), IGNORE_LABEL, np.int32)
    mask = np.zeros((len(indices), length), np.int32)
    for r, row in enumerate(built):
        n = len(row.token_ids)
        token_ids[r, :n] = row.token_ids
        labels[r, :n] = row.labels
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
    """Per-example word-level results stitched from window predictions."""

    label_ids: List[np.ndarray]  # chosen label id per word (argmax, or the decoded sequence)
    confidence: List[np.ndarray]  # probability of the chosen label per word
    log_probs: List[np.ndarray]  # [words, labels] log-softmax per word


class WindowCollector:
    """Collects first-sub-token logits of every word of every window and decides each word by a vote."""

    def __init__(self, rows: Rows, num_docs: int, doc_lengths: Sequence[int]):
        self.rows, self.num_docs, self.doc_lengths = rows, num_docs, list(doc_lengths)
        self._words: List[np.ndarray] = []
        self._central: List[np.ndarray] = []
        self._rows: List[np.ndarray] = []
        self._logits: List[np.ndarray] = []

    def __call__(self, out: Dict[str, np.ndarray]) -> None:
        for logits, row in zip(out["logits"], out[ROW_ID]):
            if row < 0:
                continue
            arrays = self.rows.row(int(row))
            positions = np.flatnonzero(arrays.word_index >= 0)
            self._words.append(arrays.word_index[positions].astype(np.int64))
            self._central.append(arrays.centrality[positions].astype(np.int64))
            self._rows.append(np.full(len(positions), row, np.int64))
            self._logits.append(np.asarray(logits)[positions])

    def result(self, vote: str = windowing.DEFAULT_VOTE) -> WordPredictions:
        """Each word's distribution from the window where it is most central or, with vote="majority",
        from the most central window among those whose argmax is the word's majority label."""
        total = int(sum(self.doc_lengths))
        words, central = np.concatenate(self._words), np.concatenate(self._central)
        rows, log_probs = np.concatenate(self._rows), log_softmax(np.concatenate(self._logits))
        eligible = np.ones(len(words), bool)
        if vote == "majority":
            predicted = log_probs.argmax(axis=1)
            counts = np.zeros((total, log_probs.shape[1]), np.int64)
            np.add.at(counts, (words, predicted), 1)
            eligible = counts[words, predicted] == counts.max(axis=1)[words]
        order = np.lexsort((rows, -central, ~eligible, words))
        words, log_probs = words[order], log_probs[order]
        first = np.ones(len(words), bool)
        first[1:] = words[1:] != words[:-1]
        if not np.array_equal(words[first], np.arange(total)):
            raise AssertionError(f"{int(first.sum())} of {total} words predicted")
        chosen = log_probs[first]
        result = WordPredictions([], [], [])
        bounds = np.concatenate([[0], np.cumsum(self.doc_lengths)]).astype(np.int64)
        for d in range(self.num_docs):
            lp = chosen[bounds[d]:bounds[d + 1]]
            result.log_probs.append(lp)
            result.label_ids.append(lp.argmax(axis=1) if len(lp) else np.zeros(0, np.int64))
            result.confidence.append(np.exp(lp.max(axis=1)) if len(lp) else np.zeros(0))
        return result


def decode(predictions: WordPredictions, labels: Sequence[str], mode: str) -> WordPredictions:
    """The predictions with label ids chosen by `mode`: "argmax" per word, or "viterbi" (IOB2-valid)."""
    if mode == "argmax":
        ids = [np.asarray(x) for x in predictions.label_ids]
    elif mode == "viterbi":
        ids = decoding.viterbi(predictions.log_probs, labels)
    else:
        raise ValueError(f"unknown decoding {mode!r}; expected one of {decoding.DECODE_MODES}")
    confidence = [np.exp(decoding.chosen_log_probs(lp, i)) for lp, i in zip(predictions.log_probs, ids)]
    return WordPredictions(ids, confidence, predictions.log_probs)


def word_level_loss(predictions: WordPredictions, gold_ids: Sequence[Sequence[int]]) -> float:
    """Mean negative log-likelihood of the gold label over all words."""
    total, count = 0.0, 0
    for lp, gold in zip(predictions.log_probs, gold_ids):
        if len(gold):
            total -= float(lp[np.arange(len(gold)), np.asarray(gold)].sum())
            count += len(gold)
    return total / max(count, 1)


def training_metrics(parts: Dict[str, List[np.ndarray]], rows: Rows, labels: Sequence[str]) -> Dict[str, float]:
    """Word-level accuracy and F1 of the predictions made during an epoch's training steps (target words)."""
    gold, pred = [], []
    for preds, row_ids in zip(parts["preds"], parts[ROW_ID]):
        for p, row in zip(preds, row_ids):
            if row < 0:
                continue
            row_labels = rows.row(int(row)).labels
            positions = np.flatnonzero(row_labels != IGNORE_LABEL)
            gold.append([labels[i] for i in row_labels[positions]])
            pred.append([labels[i] for i in p[positions]])
    result = ner_metrics(gold, pred)
    return {"accuracy": result["accuracy"], "f1": result["f1"]}


@dataclasses.dataclass
class EvalSet:
    """Examples prepared for evaluation or prediction: windows plus word-level gold labels."""

    rows: Rows
    words: List[Sequence[str]]
    gold_ids: Optional[List[List[int]]]

    @property
    def num_docs(self) -> int:
        """Number of examples (sentences, or documents when a row is a document)."""
        return len(self.words)


def make_eval_set(docs: Sequence[Sequence[str]], tags: Optional[Sequence[Sequence[str]]],
                  label_to_id: Dict[str, int], tokenizer: WordPieceTokenizer, max_len: int,
                  doc_ids: Optional[Sequence[Optional[str]]] = None, context: str = "none") -> EvalSet:
    """Windows of the examples (filled from their documents with context="document"), with gold label ids."""
    pieces = encode_documents(docs, tokenizer)
    gold = None if tags is None else [[label_to_id[t] for t in doc_tags] for doc_tags in tags]
    return EvalSet(window_rows(pieces, max_len, tokenizer, gold, doc_ids, context), list(docs), gold)


def collect_windows(trainer, eval_set: EvalSet, batch_size: int, buckets: Sequence[int], pad_id: int,
                    num_workers: int = 2) -> WindowCollector:
    """The model's logits for every word of every window of the set."""
    batches = make_batches(eval_set.rows.lengths(), batch_size, buckets, shuffle=False)
    dataset = batches_dataset(eval_set.rows, batches, buckets, pad_id, num_workers)
    collector = WindowCollector(eval_set.rows, eval_set.num_docs, [len(w) for w in eval_set.words])
    trainer.predict(dataset, len(batches), collector)
    return collector


def predict_words(trainer, eval_set: EvalSet, batch_size: int, buckets: Sequence[int], pad_id: int,
                  num_workers: int = 2, vote: str = windowing.DEFAULT_VOTE) -> WordPredictions:
    """Word-level distributions (and argmax labels) for every word of every example."""
    return collect_windows(trainer, eval_set, batch_size, buckets, pad_id, num_workers).result(vote)


def _tags(ids: Sequence[np.ndarray], labels: Sequence[str]) -> List[List[str]]:
    """Label names of label-id sequences."""
    return [[labels[i] for i in doc] for doc in ids]


def argmax_repairs(argmax_ids: Sequence[np.ndarray], decoded_ids: Sequence[np.ndarray],
                   labels: Sequence[str]) -> Dict[str, int]:
    """What constrained decoding changed: invalid argmax tags, words changed, entities only in either output."""
    before = {(i, *e) for i, tags in enumerate(_tags(argmax_ids, labels)) for e in get_entities(tags)}
    after = {(i, *e) for i, tags in enumerate(_tags(decoded_ids, labels)) for e in get_entities(tags)}
    return {
        "invalid_argmax_tags": decoding.invalid_transitions(argmax_ids, labels),
        "words_changed": int(sum(np.sum(np.asarray(a) != np.asarray(b)) for a, b in zip(argmax_ids, decoded_ids))),
        "argmax_entities": len(before), "decoded_entities": len(after),
        "entities_only_in_argmax": len(before - after), "entities_only_in_decoded": len(after - before),
    }


def score(predictions: WordPredictions, eval_set: EvalSet, labels: Sequence[str],
          mode: str) -> Tuple[Dict, WordPredictions]:
    """Loss and word-level metrics of predictions decoded by `mode`, with what decoding changed."""
    decoded = decode(predictions, labels, mode)
    metrics = ner_metrics(_tags(eval_set.gold_ids, labels), _tags(decoded.label_ids, labels))
    metrics = {"loss": word_level_loss(predictions, eval_set.gold_ids), **metrics}
    metrics["decoding"] = {"decode": mode, **argmax_repairs(predictions.label_ids, decoded.label_ids, labels)}
    return metrics, decoded


def evaluate(trainer, eval_set: EvalSet, labels: Sequence[str], batch_size: int, buckets: Sequence[int],
             pad_id: int, num_workers: int = 2, vote: str = windowing.DEFAULT_VOTE,
             decode_mode: str = decoding.DEFAULT_DECODE,
             compare: bool = False) -> Tuple[Dict, WordPredictions]:
    """Loss and word-level metrics (with and without O, per class) of a labelled set.

    With `compare`, metrics["comparison"] also holds the F1 of every vote and decoding.
    """
    collector = collect_windows(trainer, eval_set, batch_size, buckets, pad_id, num_workers)
    metrics, decoded = score(collector.result(vote), eval_set, labels, decode_mode)
    metrics["decoding"]["vote"] = vote
    if compare:
        metrics["comparison"] = {}
        for other_vote in windowing.VOTES:
            predictions = collector.result(other_vote)
            for mode in decoding.DECODE_MODES:
                figures, _ = score(predictions, eval_set, labels, mode)
                metrics["comparison"][f"{other_vote}+{mode}"] = {k: figures[k] for k in ("f1", "precision", "recall")}
    return metrics, decoded


def entities_of(words: Sequence[str], tags: Sequence[str], confidence: Sequence[float],
                log_probs: Optional[np.ndarray] = None) -> List[Dict]:
    """Entities (type, word span, text, mean confidence and, given the chosen tags' log-probabilities,
    probability) in a tagged example, conlleval chunking."""
    out = []
    for entity_type, start, end in get_entities(list(tags)):
        entity = {
            "type": entity_type,
            "start_word": int(start),
            "end_word": int(end) + 1,
            "text": " ".join(words[start:end + 1]),
            "confidence": round(float(np.mean(confidence[start:end + 1])), 6),
        }
        if log_probs is not None:
            entity["probability"] = round(decoding.entity_probability(log_probs, start, end + 1), 6)
        out.append(entity)
    return out


def format_decoding_report(metrics: Dict) -> str:
    """Lines saying how words were decided and decoded, what Viterbi repaired, and the F1 of the alternatives."""
    info = metrics.get("decoding", {})
    lines = ["", f"decoding: {info.get('decode')}; each word decided by the {info.get('vote')} window"]
    lines.append(f"argmax: {info.get('invalid_argmax_tags', 0)} tags break IOB2 (I-X not after B-X/I-X); "
                 f"{info.get('argmax_entities', 0)} entities")
    if info.get("decode") == "viterbi":
        lines.append(f"viterbi: {info.get('words_changed', 0)} words changed; {info.get('decoded_entities', 0)} "
                     f"entities, {info.get('entities_only_in_argmax', 0)} of the argmax's broken or dropped, "
                     f"{info.get('entities_only_in_decoded', 0)} new")
    comparison = metrics.get("comparison", {})
    if comparison:
        lines.append("F1 by vote+decoding: " + ", ".join(f"{k} {v['f1']:.4f}" for k, v in comparison.items()))
    return "\n".join(lines) + "\n"
