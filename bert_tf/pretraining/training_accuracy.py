"""The training metrics: masked-LM (and next-sentence) accuracy over an epoch's training steps, from running
counts."""

from __future__ import annotations

from typing import Dict

import numpy as np

from bert_tf.batch_format import IGNORE_LABEL, LABELS, PADDING_MASK
from bert_tf.pretraining.objective import NSP_PREDS
from bert_tf.pretraining.tfrecords import NSP_FEATURE


class TrainingAccuracy:
    """The training metrics (a TrainingOutputs): masked-LM accuracy over the epoch's labelled positions and, when it
    is trained, next-sentence accuracy over its sequences, from running counts (memory does not grow with the
    epoch); `running()` shows them on the progress line. `tokens` counts the real (not padding) tokens this process
    trained on."""

    KEYS = ("masked_lm_correct", "masked_lm_count", "next_sentence_correct", "next_sentence_count")

    def __init__(self, next_sentence: bool):
        self.next_sentence = next_sentence
        self.counts = np.zeros(len(self.KEYS), np.int64)
        self.tokens = 0

    def add(self, outputs: Dict[str, np.ndarray]) -> None:
        """Count one training step's argmax hits against its labels."""
        keep = outputs[LABELS] != IGNORE_LABEL
        if PADDING_MASK in outputs:
            self.tokens += int(np.sum(outputs[PADDING_MASK]))
        self.counts[:2] += (int(np.sum(outputs["preds"][keep] == outputs[LABELS][keep])), int(keep.sum()))
        if self.next_sentence:
            hits = outputs[NSP_PREDS] == outputs[NSP_FEATURE]
            self.counts[2:] += (int(hits.sum()), hits.size)

    def running(self) -> Dict[str, float]:
        """The accuracies so far in the epoch."""
        mlm_correct, mlm_count, nsp_correct, nsp_count = (int(c) for c in self.counts)
        result = {"accuracy": mlm_correct / max(mlm_count, 1)}
        if self.next_sentence:
            result["next_sentence_accuracy"] = nsp_correct / max(nsp_count, 1)
        return result

    def result(self) -> Dict[str, float]:
        """The epoch's accuracies (and a fresh start)."""
        result = self.running() if self.counts[1] or self.counts[3] else {}
        self.counts[:] = 0
        return result

    def get_state(self) -> Dict[str, np.ndarray]:
        """The counts so far, for a checkpoint."""
        return {"training_counts": self.counts.copy()}

    def set_state(self, arrays: Dict[str, np.ndarray]) -> None:
        """Restore get_state()'s output."""
        self.counts = np.asarray(arrays["training_counts"], np.int64).copy()
