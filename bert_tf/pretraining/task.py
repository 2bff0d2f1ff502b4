"""Masked-LM training data per epoch, held-out evaluation (loss, accuracy, perplexity) and the training metrics."""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from bert_tf.batch_format import FEATURE_KEYS, IGNORE_LABEL, LABELS
from bert_tf.pretraining.masking import EVAL_STREAM, MASKED_POSITIONS, Blocks, MaskingConfig, masked_batch

LENGTH_GROUP = 50  # batches whose blocks are grouped by length


def batch_signature(max_predictions: int) -> Dict[str, tf.TensorSpec]:
    """The tf.data element of a masked-LM batch."""
    spec = {k: tf.TensorSpec([None, None], tf.int32) for k in FEATURE_KEYS}
    spec[MASKED_POSITIONS] = tf.TensorSpec([None, max_predictions], tf.int32)
    spec[LABELS] = tf.TensorSpec([None, max_predictions], tf.int32)
    return spec


def split_documents(documents: List, fraction: float, seed: int) -> Tuple[List, List]:
    """(training, held-out) documents: `fraction` of them (at least one when there are two or more), drawn with
    `seed`, held out; order kept."""
    if fraction <= 0 or len(documents) < 2:
        return documents, []
    count = min(len(documents) - 1, max(1, int(round(len(documents) * fraction))))
    held = set(np.random.default_rng([seed, 7]).permutation(len(documents))[:count].tolist())
    return ([d for i, d in enumerate(documents) if i not in held], [d for i, d in enumerate(documents) if i in held])


@dataclasses.dataclass
class MaskedLMData:
    """Packed blocks and how they are masked and batched: `batch_size` blocks per optimizer step (all micro-batches
    and replicas together), each epoch a new seeded order and new masks."""

    blocks: Blocks
    is_continuation: np.ndarray
    masking: MaskingConfig
    seed: int
    batch_size: int
    pad_id: int
    max_length: int

    @property
    def steps_per_epoch(self) -> int:
        """Full batches per epoch (the last incomplete one is left out; the order changes every epoch)."""
        return len(self.blocks) // self.batch_size

    def epoch_batches(self, epoch: int) -> np.ndarray:
        """The block indices of the epoch's batches, [steps, batch_size]: a seeded random order, then within each
        run of LENGTH_GROUP batches the blocks grouped by length (so the short last blocks of documents share
        batches and little is padding), then the batches shuffled."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.blocks))[: self.steps_per_epoch * self.batch_size]
        group = LENGTH_GROUP * self.batch_size
        for start in range(0, len(order), group):
            part = order[start: start + group]
            order[start: start + group] = part[np.argsort(self.blocks.lengths[part], kind="stable")]
        batches = order.reshape(self.steps_per_epoch, self.batch_size)
        return batches[rng.permutation(len(batches))]

    def batch(self, indices: Sequence[int], epoch: int) -> Dict[str, np.ndarray]:
        """One masked batch of the given blocks, with the epoch's masks."""
        return masked_batch(self.blocks, indices, self.is_continuation, self.masking, self.seed, epoch, self.pad_id,
                            max_length=self.max_length)

    def dataset(self, batches: Sequence[Sequence[int]], epoch: int) -> tf.data.Dataset:
        """The batches as a tf.data pipeline (masked while the previous batch trains)."""
        def generate() -> Iterator[Dict[str, np.ndarray]]:
            for indices in batches:
                yield self.batch(indices, epoch)

        signature = batch_signature(self.masking.max_predictions)
        return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(2)

    def eval_batches(self, batch_size: int) -> List[np.ndarray]:
        """Every block once, in order, in batches of `batch_size` (the last may be smaller)."""
        indices = np.arange(len(self.blocks))
        return [indices[i: i + batch_size] for i in range(0, len(indices), batch_size)]

    def real_token_share(self, batches: Sequence[Sequence[int]]) -> float:
        """The share of the batches' positions that are real tokens (not padding)."""
        real = padded = 0
        for indices in batches:
            lengths = self.blocks.lengths[np.asarray(indices)]
            longest = min(-(-int(lengths.max()) // 8) * 8, self.max_length)
            real, padded = real + int(lengths.sum()), padded + longest * len(indices)
        return real / max(padded, 1)


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


def evaluate(trainer, data: MaskedLMData, batch_size: int) -> Dict[str, float]:
    """Masked-LM loss, accuracy and perplexity of the model on every block of `data`, with its fixed held-out
    masks (the same at every evaluation, so the figures are comparable)."""
    scores = MaskedLMScores()
    batches = data.eval_batches(batch_size)
    trainer.predict(data.dataset(batches, EVAL_STREAM), len(batches),
                    on_batch=lambda out: scores.add(out["logits"], out[LABELS]))
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
