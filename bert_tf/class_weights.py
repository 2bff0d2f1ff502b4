"""Per-label loss weights for imbalanced training data (--class_weights=none|balanced|FILE)."""

from __future__ import annotations

import math
import os
from typing import Dict, Optional, Sequence

import numpy as np

from bert_tf.errors import InputError

NONE, BALANCED = "none", "balanced"


def balanced_weights(label_ids: np.ndarray, num_labels: int) -> np.ndarray:
    """n / (k * count_c) per label c, with n labelled examples (ids < 0 are ignored) and k labels seen in them
    (scikit-learn's "balanced"); a label never seen gets 1.0 (it never weighs in the loss anyway)."""
    ids = np.asarray(label_ids, np.int64).reshape(-1)
    ids = ids[ids >= 0]
    counts = np.bincount(ids, minlength=num_labels).astype(np.float64)
    seen = counts > 0
    weights = np.ones(num_labels, np.float64)
    if seen.any():
        weights[seen] = ids.size / (seen.sum() * counts[seen])
    return weights


def read_weights_file(path: str, labels: Sequence[str]) -> np.ndarray:
    """Weights from `label<TAB>weight` lines (blank lines skipped); labels the file does not name get 1.0."""
    if not os.path.isfile(path):
        raise InputError("no such class weights file (give none, balanced, or a file of label<TAB>weight lines)", path)
    index = {label: i for i, label in enumerate(labels)}
    weights = np.ones(len(labels), np.float64)
    seen: Dict[str, int] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    label, weight = _parse_line(line, number, path, index, seen)
                    weights[index[label]] = weight
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 ({e.reason})", path) from None
    return weights


def _parse_line(line: str, number: int, path: str, index: Dict[str, int], seen: Dict[str, int]) -> tuple:
    """(label, weight) of one `label<TAB>weight` line, checked."""
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) != 2:
        raise InputError(f"expected label<TAB>weight, found {len(fields)} tab-separated field(s)", path, number)
    label, text = fields[0].strip(), fields[1].strip()
    if label not in index:
        raise InputError(f"unknown label {label!r} (labels: {', '.join(index)})", path, number)
    if label in seen:
        raise InputError(f"label {label!r} given again (first on line {seen[label]})", path, number)
    try:
        weight = float(text)
    except ValueError:
        raise InputError(f"weight {text!r} is not a number", path, number) from None
    if not (math.isfinite(weight) and weight > 0):
        raise InputError(f"weight {text!r} must be a positive finite number", path, number)
    seen[label] = number
    return label, weight


def resolve_class_weights(spec: str, labels: Sequence[str], train_label_ids: np.ndarray) -> Optional[np.ndarray]:
    """The loss weight of every label for --class_weights=`spec` (none: None, balanced, or a file)."""
    if spec is None or spec == NONE:
        return None
    if spec == BALANCED:
        return balanced_weights(train_label_ids, len(labels))
    return read_weights_file(spec, labels)


def describe_class_weights(spec: Optional[str], weights: Optional[np.ndarray], labels: Sequence[str]) -> str:
    """One line for the run table: 'none' or the source and each label's weight."""
    if weights is None:
        return NONE
    shown = ", ".join(f"{label} {w:.3g}" for label, w in zip(labels, weights))
    return f"{spec}: {shown}"
