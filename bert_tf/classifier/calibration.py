"""How far to trust a classifier's probabilities: temperature scaling, calibration error,
negative log-likelihood, reliability diagrams, and the majority-class baseline a model must beat."""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence

import keras
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bert_tf import models
from bert_tf.errors import InputError
from bert_tf.io_utils import atomic_path
from bert_tf.classifier.metrics import classification_metrics
from bert_tf.metrics import log_softmax, softmax

ECE_BINS = 15
# Temperatures searched when fitting (log-uniform bounds): wide enough for any fine-tuned classifier.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def nll(logits: np.ndarray, gold: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the gold labels under softmax(logits / temperature); 0.0 for no examples."""
    gold = np.asarray(gold, np.int64)
    if gold.size == 0:
        return 0.0
    return float(-np.mean(log_softmax(logits, temperature)[np.arange(gold.size), gold]))


def expected_calibration_error(probs: np.ndarray, gold: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error of the top label: |accuracy - mean confidence| per equal-width confidence bin,
    weighted by the bin's share of the examples (bins are (lo, hi], the first one [0, hi])."""
    stats = reliability_bins(probs, gold, bins)
    total = stats["count"].sum()
    if total == 0:
        return 0.0
    gaps = np.abs(stats["accuracy"] - stats["confidence"]) * stats["count"]
    return float(np.nansum(gaps) / total)


def reliability_bins(probs: np.ndarray, gold: np.ndarray, bins: int = ECE_BINS) -> Dict[str, np.ndarray]:
    """Per equal-width bin of top-label confidence: count, accuracy and mean confidence (NaN for empty bins)."""
    probs = np.asarray(probs, np.float64)
    gold = np.asarray(gold, np.int64)
    confidence = probs.max(axis=1) if probs.size else np.zeros(0)
    correct = (probs.argmax(axis=1) == gold).astype(np.float64) if probs.size else np.zeros(0)
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(which, weights=correct, minlength=bins) / count
        mean_confidence = np.bincount(which, weights=confidence, minlength=bins) / count
    return {"count": count, "accuracy": accuracy, "confidence": mean_confidence,
            "edges": np.linspace(0.0, 1.0, bins + 1)}


def fit_temperature(logits: np.ndarray, gold: np.ndarray, tolerance: float = 1e-4) -> float:
    """The temperature T > 0 that minimises the NLL of softmax(logits / T) on (logits, gold): a golden-section
    search on log T between MIN_TEMPERATURE and MAX_TEMPERATURE (the NLL is unimodal in T for a fixed
    set of logits in practice). 1.0 when there are no examples."""
    gold = np.asarray(gold, np.int64)
    if gold.size == 0:
        return 1.0
    logits = np.asarray(logits, np.float64)
    loss = lambda log_t: nll(logits, gold, math.exp(log_t))  # noqa: E731
    lo, hi = math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)
    a, b = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
    fa, fb = loss(a), loss(b)
    while hi - lo > tolerance:
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - _GOLDEN * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + _GOLDEN * (hi - lo)
            fb = loss(b)
    best = (lo + hi) / 2.0
    # Never worse than leaving the logits alone.
    return math.exp(best) if loss(best) <= loss(0.0) else 1.0


def calibration_report(logits: np.ndarray, gold: np.ndarray, temperature: float) -> Dict[str, Any]:
    """ECE and NLL of softmax(logits) ("before") and of softmax(logits / temperature) ("after")."""
    return {
        "temperature": float(temperature),
        "ece_bins": ECE_BINS,
        "before": {"ece": expected_calibration_error(softmax(logits), gold), "nll": nll(logits, gold)},
        "after": {"ece": expected_calibration_error(softmax(logits, temperature), gold),
                  "nll": nll(logits, gold, temperature)},
    }


def apply_fitted_temperature(task: models.TaskModel, source: str) -> None:
    """Fold the temperature --calibrate fitted (meta `fitted_temperature`) into the classifier, once: its
    probabilities become the calibrated ones and meta `temperature` says so; InputError when none was fitted."""
    fitted = task.meta.get("fitted_temperature")
    if float(task.meta.get("temperature") or 1.0) != 1.0:
        return  # folded already (a model trained with --apply_temperature, or before temperatures were recorded)
    if fitted is None:
        raise InputError("--apply_temperature: this model has no fitted temperature (train it with --calibrate)",
                         source)
    models.fold_temperature(task, float(fitted))


def majority_baseline(gold: np.ndarray, labels: Sequence[str]) -> Dict[str, Any]:
    """Accuracy and macro F1 of always predicting the most frequent gold label (ties: the first label)."""
    gold = np.asarray(gold, np.int64)
    counts = np.bincount(gold, minlength=len(labels))
    majority = int(np.argmax(counts))
    metrics = classification_metrics(gold, np.full(gold.size, majority), labels, None)
    return {"label": str(labels[majority]), "accuracy": metrics["accuracy"], "macro_f1": metrics["macro"]["f1"]}


def collapse_problem(pred: np.ndarray, macro_f1: float, baseline: Dict[str, Any],
                     labels: Sequence[str]) -> Optional[str]:
    """Why these predictions show a model that learned nothing (all one class, or macro F1 no better than
    the majority baseline's), or None when they beat the baseline."""
    pred = np.asarray(pred, np.int64)
    distinct = np.unique(pred)
    if pred.size and distinct.size == 1:
        return f"every prediction is {labels[int(distinct[0])]!r}"
    if macro_f1 <= baseline["macro_f1"]:
        return (f"macro F1 {macro_f1:.4f} is no better than always predicting {baseline['label']!r} "
                f"({baseline['macro_f1']:.4f})")
    return None


COLLAPSE_ADVICE = "try a higher --learning_rate, more epochs, or --pooling=mention"


class CollapseGuard(keras.callbacks.Callback):
    """Watches every validation for a model that learned nothing (one class for everything, or macro F1 no
    better than always predicting the majority label) and remembers whether any validation beat that. A callback
    of the training loop only so that what it saw is saved with the training state (get_state, set_state)."""

    def __init__(self) -> None:
        super().__init__()
        self.validations = 0
        self.beaten = False
        self.best_f1: Optional[float] = None
        self.baseline: Dict = {}

    def check(self, metrics: Dict) -> None:
        """Take one validation's metrics (classifier.evaluate); print a warning when it shows a collapse."""
        self.validations += 1
        self.baseline = metrics["majority_baseline"]
        f1 = metrics["macro"]["f1"]
        self.best_f1 = f1 if self.best_f1 is None else max(self.best_f1, f1)
        if metrics["collapse_problem"] is None:
            self.beaten = True
            return
        print(f"  WARNING: the model may have collapsed: {metrics['collapse_problem']} on dev "
              f"(majority baseline: accuracy {self.baseline['accuracy']:.4f}, macro F1 "
              f"{self.baseline['macro_f1']:.4f}); {COLLAPSE_ADVICE}")

    def get_state(self) -> Dict[str, Any]:
        """What it saw, for a checkpoint."""
        return {"validations": self.validations, "beaten": self.beaten, "best_f1": self.best_f1,
                "baseline": self.baseline}

    def set_state(self, state: Dict[str, Any]) -> None:
        """Restore get_state()'s output (a resumed run)."""
        self.validations, self.beaten = int(state["validations"]), bool(state["beaten"])
        self.best_f1, self.baseline = state["best_f1"], dict(state["baseline"])

    @property
    def collapsed(self) -> bool:
        """True when there were validations and none beat the majority baseline."""
        return self.validations > 0 and not self.beaten

    def summary(self) -> str:
        """One line on a collapsed run."""
        return (f"no validation beat the majority baseline (best macro F1 {self.best_f1:.4f} vs "
                f"{self.baseline['macro_f1']:.4f} for always {self.baseline['label']!r}): the model collapsed; "
                f"{COLLAPSE_ADVICE}")


def plot_reliability(probs: np.ndarray, gold: np.ndarray, path: str, title: str = "Reliability",
                     calibrated: Optional[np.ndarray] = None) -> None:
    """A reliability diagram (accuracy per confidence bin as bars, the diagonal of perfect calibration) as PNG;
    with `calibrated`, its bars are drawn beside those of `probs`."""
    figure = Figure(figsize=(6.0, 5.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    series = [("before", probs, "#9ecae1")] if calibrated is None else [
        ("before calibration", probs, "#9ecae1"), ("after calibration", calibrated, "#3182bd")]
    width = 1.0 / ECE_BINS / len(series)
    for i, (name, p, colour) in enumerate(series):
        stats = reliability_bins(p, gold)
        left = stats["edges"][:-1] + i * width
        heights = np.nan_to_num(stats["accuracy"])
        ece = expected_calibration_error(p, gold)
        axes.bar(left, heights, width=width, align="edge", color=colour, edgecolor="black", linewidth=0.4,
                 label=f"{name} (ECE {ece:.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("confidence (top-label probability)")
    axes.set_ylabel("accuracy")
    axes.set_title(title)
    axes.legend(loc="upper left")
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
