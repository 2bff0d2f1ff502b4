"""The classifier's predictions over a feature cache: logits or probabilities of every example, in input order
(whatever order the replicas hand them back in)."""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from bert_tf.batch_format import LABELS
from bert_tf.classifier import feature_cache
from bert_tf.classifier.inputs import as_training_batches, steps_for
from bert_tf.metrics import softmax


class InputOrder:
    """Hands on rows of predictions in input order, exactly once each, whatever order they arrive in.

    Each row carries its input position ("index"). Distributed prediction gathers the replicas'
    rows (in input order with tf.distribute's splitting of batches, but that is not promised);
    rows that arrive early wait here, rows seen before are dropped, and `finish` fails if any
    position never arrived.
    """

    def __init__(self, total: int, emit: Callable[[Dict[str, np.ndarray]], None]):
        self.total, self.emit = total, emit
        self.next = 0  # the first position not emitted yet
        self.duplicates = 0
        self._waiting: Dict[int, Dict[str, np.ndarray]] = {}

    def add(self, index: np.ndarray, rows: Dict[str, np.ndarray]) -> None:
        """Take a batch of rows whose input positions are `index`."""
        index = np.asarray(index, np.int64)
        if not self._waiting and np.array_equal(index, np.arange(self.next, self.next + len(index))):
            self.next += len(index)  # the usual case: the next rows, in order
            if len(index):
                self.emit(rows)
            return
        for r, i in enumerate(index.tolist()):
            if i < self.next or i in self._waiting or i >= self.total:
                self.duplicates += int(0 <= i < self.total)
                continue
            self._waiting[i] = {k: v[r] for k, v in rows.items()}
        self._emit_ready()

    def _emit_ready(self) -> None:
        ready = []
        while self.next in self._waiting:
            ready.append(self._waiting.pop(self.next))
            self.next += 1
        if ready:
            self.emit({k: np.stack([row[k] for row in ready]) for k in ready[0]})

    def finish(self) -> None:
        """Fail unless every position 0..total-1 was emitted."""
        if self.next != self.total:
            raise RuntimeError(f"prediction returned {self.next + len(self._waiting)} of {self.total} examples "
                               f"(position {self.next} is missing)")


def _predict_rows(trainer, info: feature_cache.CacheInfo, batch_size: int,
                  convert: Callable[[np.ndarray], np.ndarray],
                  on_rows: Optional[Callable[[np.ndarray, np.ndarray], None]], keep: bool,
                  description: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """convert(logits) and gold label ids of every example in input order, handed to `on_rows` and kept if `keep`."""
    dataset = as_training_batches(feature_cache.cache_dataset(info, batch_size, shuffle=False, seed=0, with_index=True))
    rows_out: List[np.ndarray] = []
    gold: List[np.ndarray] = []

    def emit(rows: Dict[str, np.ndarray]) -> None:
        if on_rows is not None:
            on_rows(rows["probs"], rows["labels"])
        if keep:
            rows_out.append(rows["probs"])
            gold.append(rows["labels"])

    order = InputOrder(info.num_examples, emit)

    def on_batch(out: Dict[str, np.ndarray]) -> None:
        order.add(out["index"], {"probs": convert(out["logits"]), "labels": out[LABELS]})

    trainer.predict(dataset, steps_for(info.num_examples, batch_size), on_batch, description=description)
    order.finish()
    if not keep:
        return np.zeros((0, len(info.labels))), np.zeros(0, np.int32)
    return np.concatenate(rows_out), np.concatenate(gold).astype(np.int32)


def predict_probabilities(trainer, info: feature_cache.CacheInfo, batch_size: int,
                          on_rows: Optional[Callable[[np.ndarray, np.ndarray], None]] = None,
                          keep: bool = True, description: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities (over every logit of the model) and gold label ids (-1: none) of every example,
    in input order.

    A calibrated model's classifier weights already include its temperature (models.fold_temperature), so
    these are the calibrated probabilities."""
    return _predict_rows(trainer, info, batch_size, softmax, on_rows, keep, description)


def predict_logits(trainer, info: feature_cache.CacheInfo, batch_size: int,
                   description: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """The model's logits (float64) and gold label ids (-1: none) of every example, in input order."""
    return _predict_rows(trainer, info, batch_size, lambda logits: logits.astype(np.float64), None, True,
                         description)
