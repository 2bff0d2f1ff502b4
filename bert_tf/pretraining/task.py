"""Held-out masked-LM evaluation (loss, accuracy, perplexity) and the training metrics."""

from __future__ import annotations

import math
from typing import Dict, List, Optional

import keras
import numpy as np

from bert_tf.batch_format import IGNORE_LABEL, LABELS

class MaskedLMScores:
    """Sums of the masked-LM cross-entropy and of correct predictions over the labelled positions of batches."""

    def __init__(self) -> None:
        self.loss_sum, self.correct, self.count = 0.0, 0, 0

    def add(self, logits: np.ndarray, labels: np.ndarray) -> None:
        """Add one batch's float32 logits [batch, predictions, vocab] and labels [batch, predictions]."""
        keep = labels != IGNORE_LABEL
        rows, gold = logits[keep].astype(np.float64), labels[keep]
        top = rows.max(axis=-1, keepdims=True)
        log_norm = np.log(np.exp(rows - top).sum(axis=-1)) + top[:, 0]
        self.loss_sum += float(np.sum(log_norm - rows[np.arange(len(gold)), gold]))
        self.correct += int(np.sum(rows.argmax(axis=-1) == gold))
        self.count += int(keep.sum())

    def result(self) -> Dict[str, float]:
        """Mean loss, accuracy and perplexity (exp of the mean loss) over every position added."""
        loss = self.loss_sum / max(self.count, 1)
        return {"loss": loss, "accuracy": self.correct / max(self.count, 1), "perplexity": math.exp(min(loss, 700.0))}


def evaluate(trainer, data, batch_size: int) -> Dict[str, float]:
    """Masked-LM loss, accuracy and perplexity of the model on every held-out sequence of `data` (a MaskedLMStream
    or TFRecordData), with its fixed held-out masks (the same at every evaluation, so the figures compare)."""
    scores = MaskedLMScores()
    dataset, batches = data.eval_dataset(batch_size)
    trainer.predict(dataset, batches, on_batch=lambda out: scores.add(out["logits"], out[LABELS]))
    return scores.result()


def training_accuracy(parts: Dict[str, List[np.ndarray]]) -> Dict[str, float]:
    """The masked-LM accuracy of an epoch's training steps (their argmax predictions against the labels)."""
    preds = np.concatenate([p.reshape(-1) for p in parts["preds"]])
    labels = np.concatenate([p.reshape(-1) for p in parts[LABELS]])
    keep = labels != IGNORE_LABEL
    return {"accuracy": float(np.mean(preds[keep] == labels[keep])) if keep.any() else 0.0}


class HeldOutBefore(keras.callbacks.Callback):
    """Keeps the held-out figures measured before training through a resume (in the training state)."""

    def __init__(self, values: Optional[Dict[str, float]]):
        super().__init__()
        self.values = values

    def get_state(self) -> Dict[str, Optional[Dict[str, float]]]:
        """What the training state keeps."""
        return {"before": self.values}

    def set_state(self, state: Dict[str, Optional[Dict[str, float]]]) -> None:
        """Restore get_state()'s output."""
        self.values = state["before"]
