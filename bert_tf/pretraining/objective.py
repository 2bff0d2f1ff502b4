"""The training objective: its loss terms (masked LM alone, or masked LM + next-sentence prediction) and the names
of the figures a run records."""

from __future__ import annotations

from typing import Tuple

from bert_tf.batch_format import LABELS
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

