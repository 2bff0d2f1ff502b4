"""Evaluation figures of entity-type classification: accuracy, per-label and averaged precision/recall/F1, the
confusion matrix, entity vs out; the text report; the published eval_results.txt names."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np

from bert_tf.metrics import PRF_KEYS, format_number, heading, prf, safe_ratio, score_table


def _as_label_ids(values: Sequence[int] | np.ndarray, num_labels: int, name: str) -> np.ndarray:
    """The values as a 1-D int64 array, checked to be label indices."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer label indices, got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    if array.size and (array.min() < 0 or array.max() >= num_labels):
        raise ValueError(f"{name} holds a label index outside 0..{num_labels - 1}")
    return array


def _confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> np.ndarray:
    """Counts with gold label index as row and predicted label index as column."""
    flat = np.bincount(y_true * num_labels + y_pred, minlength=num_labels * num_labels)
    return flat.reshape(num_labels, num_labels)


def _vector_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise numerator / denominator with 0.0 where the denominator is zero."""
    numerator = numerator.astype(np.float64)
    denominator = denominator.astype(np.float64)
    safe = np.where(denominator == 0, 1.0, denominator)
    return np.where(denominator == 0, 0.0, numerator / safe)


def _per_class_arrays(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Per-label precision, recall, F1 and support arrays from a confusion matrix."""
    correct = np.diag(matrix)
    support = matrix.sum(axis=1)
    precision = _vector_ratio(correct, matrix.sum(axis=0))
    recall = _vector_ratio(correct, support)
    f1 = _vector_ratio(2.0 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def _averages(arrays: dict[str, np.ndarray], accuracy: float, total: int) -> dict[str, dict]:
    """Micro, macro and support-weighted averages of the per-label figures."""
    support = arrays["support"].astype(np.float64)
    macro = {key: float(arrays[key].mean()) if arrays[key].size else 0.0 for key in PRF_KEYS}
    weighted = {key: safe_ratio(float((arrays[key] * support).sum()), support.sum()) for key in PRF_KEYS}
    micro = {key: accuracy for key in PRF_KEYS}
    return {
        "micro": {**micro, "support": total},
        "macro": {**macro, "support": total},
        "weighted": {**weighted, "support": total},
    }


def _entity_vs_out(y_true: np.ndarray, y_pred: np.ndarray, negative: int, out_figures: dict) -> dict:
    """Detection (entity or not), typing (right entity type) and negative-label figures."""
    gold_entity = y_true != negative
    pred_entity = y_pred != negative
    num_gold, num_pred = int(gold_entity.sum()), int(pred_entity.sum())
    detected = int((gold_entity & pred_entity).sum())
    typed_right = int((gold_entity & (y_true == y_pred)).sum())
    return {
        "detection": {**prf(detected, num_pred, num_gold), "support": num_gold},
        "typing": {**prf(typed_right, num_pred, num_gold), "support": num_gold},
        "type_accuracy_on_detected": safe_ratio(typed_right, detected),
        "out_precision": out_figures["precision"],
        "out_recall": out_figures["recall"],
        "out_f1": out_figures["f1"],
    }


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    labels: Sequence[str],
    negative_label: Optional[str] = "out",
) -> dict:
    """Single-label multi-class evaluation: accuracy, per-label and averaged P/R/F1, confusion matrix.

    y_true and y_pred hold indices into `labels`. When `negative_label` is one of the labels the result
    also has "entity_vs_out": entity detection, entity typing and the negative label's own figures.
    Raises ValueError on arrays of different length or indices outside the label list.
    """
    label_names = [str(label) for label in labels]
    gold = _as_label_ids(y_true, len(label_names), "y_true")
    pred = _as_label_ids(y_pred, len(label_names), "y_pred")
    if gold.shape != pred.shape:
        raise ValueError(f"y_true has {gold.size} examples but y_pred has {pred.size}")
    matrix = _confusion_matrix(gold, pred, len(label_names))
    total = int(gold.size)
    accuracy = safe_ratio(int(np.trace(matrix)), total)
    arrays = _per_class_arrays(matrix)
    per_class = {
        name: {
            "precision": float(arrays["precision"][index]),
            "recall": float(arrays["recall"][index]),
            "f1": float(arrays["f1"][index]),
            "support": int(arrays["support"][index]),
        }
        for index, name in enumerate(label_names)
    }
    result = {
        "accuracy": accuracy,
        "num_examples": total,
        "labels": label_names,
        "per_class": per_class,
        **_averages(arrays, accuracy, total),
        "confusion_matrix": matrix.astype(int).tolist(),
    }
    if negative_label is not None and negative_label in label_names:
        negative = label_names.index(negative_label)
        result["entity_vs_out"] = _entity_vs_out(gold, pred, negative, per_class[negative_label])
    return result


def _confusion_table(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> list[str]:
    """The confusion matrix as aligned text, gold labels down the side and predictions across."""
    corner = "gold \\ pred"
    name_width = max([len(corner)] + [len(label) for label in labels])
    cell_width = max([len(label) for label in labels] + [len(str(count)) for row in matrix for count in row] + [1])
    header = f"{corner:<{name_width}}  " + "  ".join(f"{label:>{cell_width}}" for label in labels)
    rows = [
        f"{label:<{name_width}}  " + "  ".join(f"{count:>{cell_width}}" for count in row)
        for label, row in zip(labels, matrix)
    ]
    return [header, *rows]


def _entity_vs_out_lines(figures: dict) -> list[str]:
    """The entity-versus-negative figures as text lines."""
    table = score_table({key: figures[key] for key in ("detection", "typing")}, "entity vs out")
    return [
        *table,
        f"type accuracy on detected: {format_number(figures['type_accuracy_on_detected'])}",
        "out label: precision {}  recall {}  f1 {}".format(
            format_number(figures["out_precision"]), format_number(figures["out_recall"]), format_number(figures["out_f1"])
        ),
    ]


def format_classification_report(metrics: dict, loss: Optional[float] = None, title: str = "") -> str:
    """A fixed-width text report of `classification_metrics` output, confusion matrix included."""
    lines = heading(title)
    lines.append(f"loss      {format_number(loss)}")
    lines.append(f"accuracy  {format_number(metrics.get('accuracy'))}")
    lines.append(f"examples  {metrics.get('num_examples', 0)}")
    lines.append("")
    rows = dict(metrics.get("per_class", {}))
    rows.update({f"{kind} avg": metrics[kind] for kind in ("micro", "macro", "weighted") if kind in metrics})
    lines.extend(score_table(rows, "label"))
    if "entity_vs_out" in metrics:
        lines.append("")
        lines.extend(_entity_vs_out_lines(metrics["entity_vs_out"]))
    lines.append("")
    lines.extend(_confusion_table(metrics.get("confusion_matrix", []), metrics.get("labels", [])))
    return "\n".join(lines) + "\n"


PUBLISHED_AVERAGE_KEYS = {("micro", "precision"): "precision", ("micro", "recall"): "recall",
                          ("micro", "f1"): "f1-score", ("macro", "precision"): "precision_mac",
                          ("macro", "recall"): "recall_mac", ("macro", "f1"): "f1-macro",
                          ("weighted", "precision"): "precision_weighted", ("weighted", "recall"): "recall_weighted",
                          ("weighted", "f1"): "f1-weighted"}


def published_eval_results(metrics: Dict[str, Any], global_step: int) -> Dict[str, Any]:
    """A classification evaluation under the names the published TF1 code gives it (eval_accuracy, eval_loss,
    loss, global_step, precision/recall/f1-score (micro), *_mac / f1-macro, *_weighted / f1-weighted), plus
    LABEL_precision, LABEL_recall, LABEL_f1 and LABEL_support for every label."""
    result: Dict[str, Any] = {"eval_accuracy": metrics["accuracy"], "eval_loss": metrics["loss"],
                              "loss": metrics["loss"], "global_step": int(global_step)}
    for (average, figure), key in PUBLISHED_AVERAGE_KEYS.items():
        result[key] = metrics[average][figure]
    for label, figures in metrics["per_class"].items():
        for figure in ("precision", "recall", "f1", "support"):
            result[f"{label}_{figure}"] = figures[figure]
    return result
