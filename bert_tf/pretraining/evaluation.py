"""Held-out evaluation: masked-LM loss, accuracy and perplexity (with next-sentence prediction also its loss and
accuracy), the figures before training kept through a resume, and eval_results.json / eval_results.txt."""

from __future__ import annotations

import math
import os
from typing import Dict, Optional

import keras
import numpy as np

from bert_tf.batch_format import IGNORE_LABEL, LABELS
from bert_tf import reports
from bert_tf.io_utils import write_json_atomic
from bert_tf.pretraining.model import MLM_LOGITS, NSP_LOGITS
from bert_tf.pretraining.tfrecords import NSP_FEATURE


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


def evaluate(trainer, data, batch_size: int, next_sentence: bool = False, max_batches: int = 0) -> Dict[str, float]:
    """Masked-LM loss, accuracy and perplexity of the model on every held-out sequence of `data` (a MaskedLMStream
    or TFRecordData), or on its first `max_batches` batches (0: all), with its fixed held-out masks (the same at
    every evaluation, so the figures compare); with `next_sentence` also the next-sentence loss and accuracy, and
    "loss" their sum."""
    scores, nsp = MaskedLMScores(), NextSentenceScores() if next_sentence else None

    def add(out: Dict[str, np.ndarray]) -> None:
        scores.add(out[MLM_LOGITS], out[LABELS])
        if nsp is not None:
            nsp.add_rows(out[NSP_LOGITS], out[NSP_FEATURE])

    dataset, batches = data.eval_dataset(batch_size)
    if max_batches and max_batches < batches:
        dataset, batches = dataset.take(max_batches), max_batches
    trainer.predict(dataset, batches, on_batch=add)
    return combined(scores.result(), nsp.result() if nsp is not None else None)


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


def published_names(figures: Dict[str, float], prefix: str = "") -> Dict[str, float]:
    """The figures under the names NVIDIA's run_pretraining.py writes to eval_results.txt (masked_lm_accuracy,
    masked_lm_loss, next_sentence_accuracy, next_sentence_loss, loss), with masked_lm_perplexity beside them."""
    named = {"loss": figures["loss"], "masked_lm_accuracy": figures["accuracy"],
             "masked_lm_loss": figures.get("masked_lm_loss", figures["loss"]),
             "masked_lm_perplexity": figures["perplexity"]}
    named.update({k: figures[k] for k in ("next_sentence_accuracy", "next_sentence_loss") if k in figures})
    return {prefix + k: v for k, v in named.items()}


def write_eval_results(out_dir: str, results: Dict[str, Optional[Dict[str, float]]],
                       global_step: Optional[int] = None) -> str:
    """eval_results.json (every figure, before and after training or of the checkpoint alone) and eval_results.txt
    in NVIDIA's `key = value` form (the last figures under its names, global_step when trained, the figures before
    training prefixed before_); returns a one-line-per-side summary."""
    rows = {name: value for name, value in results.items() if value}
    write_json_atomic(os.path.join(out_dir, "eval_results.json"), rows)
    published: Dict[str, float] = {} if global_step is None else {"global_step": int(global_step)}
    for name, values in rows.items():
        published.update(published_names(values, "before_" if name == "before" else ""))
    reports.write_published_eval_results(os.path.join(out_dir, "eval_results.txt"), published)
    return "\n".join(f"{name}: " + "  ".join(f"{k}={v:.4f}" for k, v in values.items())
                     for name, values in rows.items())
