"""Held-out evaluation (masked-LM loss, accuracy, perplexity; with next-sentence prediction also its loss and
accuracy), the training objective's terms and the training metrics."""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

import keras
import numpy as np

from bert_tf.batch_format import IGNORE_LABEL, LABELS
from bert_tf.pretraining.model import MLM_LOGITS, NSP_LOGITS
from bert_tf.pretraining.tfrecords import NSP_FEATURE
from bert_tf.training import SINGLE_LOSS, Loss

NSP_PREDS = "next_sentence_preds"
# Masked LM + next-sentence prediction: the objective is the sum of the two means (NVIDIA's total loss).
PRETRAINING_LOSSES = (Loss("masked_lm_loss", MLM_LOGITS, LABELS, "preds"),
                      Loss("next_sentence_loss", NSP_LOGITS, NSP_FEATURE, NSP_PREDS))
METRICS = ("loss", "accuracy", "perplexity")
NSP_METRICS = ("masked_lm_loss", "next_sentence_loss", "next_sentence_accuracy")


def losses(next_sentence: bool) -> Tuple[Loss, ...]:
    """The Trainer's loss terms: masked LM alone, or masked LM + next-sentence prediction."""
    return PRETRAINING_LOSSES if next_sentence else SINGLE_LOSS


def metrics(next_sentence: bool) -> Tuple[str, ...]:
    """The figures the history, curves and eval_results hold ("loss" is the whole objective, "accuracy" and
    "perplexity" the masked LM's)."""
    return METRICS + (NSP_METRICS if next_sentence else ())


class CrossEntropyScores:
    """Sums of the float64 cross-entropy and of argmax hits over the labelled rows added."""

    def __init__(self) -> None:
        self.loss_sum, self.correct, self.count = 0.0, 0, 0

    def add_rows(self, logits: np.ndarray, gold: np.ndarray) -> None:
        """Add logits [n, classes] against labels [n]."""
        rows = logits.astype(np.float64)
        top = rows.max(axis=-1, keepdims=True)
        log_norm = np.log(np.exp(rows - top).sum(axis=-1)) + top[:, 0]
        self.loss_sum += float(np.sum(log_norm - rows[np.arange(len(gold)), gold]))
        self.correct += int(np.sum(rows.argmax(axis=-1) == gold))
        self.count += len(gold)


class MaskedLMScores(CrossEntropyScores):
    """The masked-LM cross-entropy and correct predictions over the labelled positions of batches."""

    def add(self, logits: np.ndarray, labels: np.ndarray) -> None:
        """Add one batch's float32 logits [batch, predictions, vocab] and labels [batch, predictions]."""
        keep = labels != IGNORE_LABEL
        self.add_rows(logits[keep], labels[keep])

    def result(self) -> Dict[str, float]:
        """Mean loss, accuracy and perplexity (exp of the mean loss) over every position added."""
        loss = self.loss_sum / max(self.count, 1)
        return {"loss": loss, "accuracy": self.correct / max(self.count, 1), "perplexity": math.exp(min(loss, 700.0))}


class NextSentenceScores(CrossEntropyScores):
    """The next-sentence cross-entropy and correct predictions over the sequences of batches: add_rows with one
    batch's float32 logits [batch, 2] and labels [batch] (0: B follows A, 1: B is random)."""

    def result(self) -> Dict[str, float]:
        """Mean loss and accuracy over every sequence added."""
        return {"next_sentence_loss": self.loss_sum / max(self.count, 1),
                "next_sentence_accuracy": self.correct / max(self.count, 1)}


def combined(masked_lm: Dict[str, float], next_sentence: Optional[Dict[str, float]]) -> Dict[str, float]:
    """The held-out figures: masked LM alone, or "loss" the sum of both losses beside each one's figures."""
    if next_sentence is None:
        return masked_lm
    return {**masked_lm, "loss": masked_lm["loss"] + next_sentence["next_sentence_loss"],
            "masked_lm_loss": masked_lm["loss"], **next_sentence}


def evaluate(trainer, data, batch_size: int, next_sentence: bool = False) -> Dict[str, float]:
    """Masked-LM loss, accuracy and perplexity of the model on every held-out sequence of `data` (a MaskedLMStream
    or TFRecordData), with its fixed held-out masks (the same at every evaluation, so the figures compare); with
    `next_sentence` also the next-sentence loss and accuracy, and "loss" their sum."""
    scores, nsp = MaskedLMScores(), NextSentenceScores() if next_sentence else None

    def add(out: Dict[str, np.ndarray]) -> None:
        scores.add(out[MLM_LOGITS], out[LABELS])
        if nsp is not None:
            nsp.add_rows(out[NSP_LOGITS], out[NSP_FEATURE])

    dataset, batches = data.eval_dataset(batch_size)
    trainer.predict(dataset, batches, on_batch=add)
    return combined(scores.result(), nsp.result() if nsp is not None else None)


class TrainingAccuracy:
    """The training metrics (a TrainingOutputs): masked-LM accuracy over the epoch's labelled positions and, when it
    is trained, next-sentence accuracy over its sequences, from running counts (memory does not grow with the
    epoch); `running()` shows them on the progress line."""

    KEYS = ("masked_lm_correct", "masked_lm_count", "next_sentence_correct", "next_sentence_count")

    def __init__(self, next_sentence: bool):
        self.next_sentence = next_sentence
        self.counts = np.zeros(len(self.KEYS), np.int64)

    def add(self, outputs: Dict[str, np.ndarray]) -> None:
        """Count one training step's argmax hits against its labels."""
        keep = outputs[LABELS] != IGNORE_LABEL
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
