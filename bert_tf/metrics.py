"""What the jobs' evaluation figures share: precision/recall/F1 arithmetic, fixed-width score tables, softmax.
Each job's own figures are in its package (bert_tf.ner.metrics, bert_tf.classifier.metrics)."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

PRF_KEYS = ("precision", "recall", "f1")


# ----------------------------------------------------------------------------- shared arithmetic


def safe_ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator as a plain float, 0.0 when the denominator is zero."""
    return float(numerator) / float(denominator) if denominator else 0.0


def f1_of(precision: float, recall: float) -> float:
    """Harmonic mean of precision and recall, 0.0 when both are zero."""
    total = precision + recall
    return 2.0 * precision * recall / total if total else 0.0


def prf(correct: int, predicted: int, gold: int) -> dict:
    """Precision, recall and F1 from the three counts."""
    precision = safe_ratio(correct, predicted)
    recall = safe_ratio(correct, gold)
    return {"precision": precision, "recall": recall, "f1": f1_of(precision, recall)}


# ----------------------------------------------------------------------------- classification


# ----------------------------------------------------------------------------- text reports


def format_number(value: Optional[float]) -> str:
    """A figure with 4 decimals, or "n/a" when absent or not a number."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4f}"


def heading(title: str) -> list[str]:
    """The title and an underline, or nothing when the title is empty."""
    return [title, "=" * len(title)] if title else []


def score_table(rows: dict[str, dict], first_header: str) -> list[str]:
    """Fixed-width rows of precision, recall, F1 and support, one per key of `rows`."""
    width = max([len(first_header)] + [len(name) for name in rows])
    lines = [f"{first_header:<{width}}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>9}"]
    for name, figures in rows.items():
        scores = "  ".join(f"{format_number(figures[key]):>9}" for key in PRF_KEYS)
        lines.append(f"{name:<{width}}  {scores}  {int(figures['support']):>9}")
    return lines


def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """log softmax(logits / temperature) over the last axis, in float64, stable for any logit size."""
    scaled = np.asarray(logits, np.float64) / float(temperature)
    shifted = scaled - scaled.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / temperature) over the last axis, in float64."""
    return np.exp(log_softmax(logits, temperature))
