"""The classifier's evaluation: loss, classification metrics, the majority baseline, collapse and calibration of its
logits on labelled data."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from bert_tf.batch_format import LABELS
from bert_tf.classifier import calibration, feature_cache
from bert_tf.classifier.inference import predict_logits
from bert_tf.errors import InputError
from bert_tf.classifier.metrics import classification_metrics


NEGATIVE_LABEL = "out"


def training_metrics(parts: Dict[str, List[np.ndarray]]) -> Dict[str, float]:
    """Accuracy of the predictions made during an epoch's training steps."""
    preds, gold = np.concatenate(parts["preds"]), np.concatenate(parts[LABELS])
    keep = gold >= 0
    return {"accuracy": float(np.mean(preds[keep] == gold[keep])) if keep.any() else 0.0}


def metrics_from_logits(logits: np.ndarray, gold: np.ndarray, labels: Sequence[str], temperature: float = 1.0,
                        fitted: Optional[float] = None) -> Dict:
    """Loss, classification metrics, the majority baseline, whether the model collapsed, and calibration (ECE and
    NLL before and after temperature scaling) of a model's logits on labelled data.

    `temperature`: the one already folded into the model (1.0 for none); `logits * temperature` are the
    uncalibrated logits. `fitted`: a temperature fitted but not folded in, for the calibration report."""
    if np.any(gold < 0):
        raise ValueError("evaluation data has examples without a known label")
    pred = logits[:, :len(labels)].argmax(axis=1)  # a published TF1 head has one logit more than labels
    metrics = classification_metrics(gold, pred, labels, NEGATIVE_LABEL if NEGATIVE_LABEL in labels else None)
    baseline = calibration.majority_baseline(gold, labels)
    problem = calibration.collapse_problem(pred, metrics["macro"]["f1"], baseline, labels)
    return {"loss": calibration.nll(logits, gold), **metrics, "majority_baseline": baseline,
            "beats_majority_baseline": problem is None, "collapse_problem": problem,
            "calibration": calibration.calibration_report(logits * temperature, gold,
                                                          temperature if temperature != 1.0 else fitted or 1.0)}


def evaluation_logits(trainer, info: feature_cache.CacheInfo, batch_size: int) -> Tuple[np.ndarray, np.ndarray]:
    """predict_logits for evaluation data: InputError if an example has no known label."""
    logits, gold = predict_logits(trainer, info, batch_size)
    if np.any(gold < 0):
        raise InputError("evaluation data has examples without a known label", info.cache_dir)
    return logits, gold


def evaluate(trainer, info: feature_cache.CacheInfo, labels: Sequence[str], batch_size: int,
             temperature: float = 1.0) -> Dict:
    """Loss and classification metrics (per class, averages, entity vs out, confusion matrix), the majority
    baseline and calibration (see metrics_from_logits)."""
    logits, gold = evaluation_logits(trainer, info, batch_size)
    return metrics_from_logits(logits, gold, labels, temperature)
