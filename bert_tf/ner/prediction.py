"""NER prediction: the model's logits over every window, each word decided by a vote among its windows, then
decoded (argmax or IOB2-valid Viterbi)."""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence

import numpy as np

from bert_tf.metrics import log_softmax
from bert_tf.ner import decoding, windowing
from bert_tf.ner.batching import ROW_ID, batches_dataset, make_batches
from bert_tf.ner.rows import Rows, encode_documents, window_rows
from bert_tf.tokenization import WordPieceTokenizer

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
