"""bert_tf.classifier.calibration: softmax, ECE, NLL, temperature fit, majority baseline and the collapse guard."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bert_tf.classifier import evaluation as classifier
from bert_tf.metrics import log_softmax, softmax

from bert_tf.classifier import calibration
from conftest import check_png

LABELS = ["che", "dis", "out"]


def test_softmax_and_log_softmax_are_stable_and_scale_with_temperature() -> None:
    logits = np.array([[1000.0, 1000.0 + math.log(3.0)], [0.0, 0.0]])
    np.testing.assert_allclose(softmax(logits), [[0.25, 0.75], [0.5, 0.5]])
    np.testing.assert_allclose(log_softmax(logits)[0], [math.log(0.25), math.log(0.75)])
    np.testing.assert_allclose(softmax(np.array([[2.0, 0.0]]), temperature=2.0),
                               softmax(np.array([[1.0, 0.0]])))


def test_nll_hand_computed() -> None:
    logits = np.array([[0.0, 0.0], [math.log(3.0), 0.0]])
    assert calibration.nll(logits, np.array([0, 0])) == pytest.approx((math.log(2.0) - math.log(0.75)) / 2)
    assert calibration.nll(logits, np.array([1, 1])) == pytest.approx((math.log(2.0) - math.log(0.25)) / 2)
    assert calibration.nll(np.zeros((0, 2)), np.zeros(0)) == 0.0


def test_ece_hand_computed() -> None:
    # One example per bin (15 bins of width 1/15): confidence 0.9 right, 0.65 wrong, 0.7 right.
    probs = np.array([[0.9, 0.1], [0.65, 0.35], [0.3, 0.7]])
    gold = np.array([0, 1, 1])
    assert calibration.expected_calibration_error(probs, gold) == pytest.approx((0.1 + 0.65 + 0.3) / 3)
    # Two examples in one bin (0.91 right, 0.92 wrong): |0.5 - 0.915| weighted 2/2.
    probs = np.array([[0.91, 0.09], [0.92, 0.08]])
    assert calibration.expected_calibration_error(probs, np.array([0, 1])) == pytest.approx(0.415)
    # Perfectly calibrated: confidence 0.5 and half right.
    assert calibration.expected_calibration_error(np.full((4, 2), 0.5), np.array([0, 1, 0, 1])) == pytest.approx(0.0)
    bins = calibration.reliability_bins(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 0]))
    assert bins["count"][-1] == 2 and bins["accuracy"][-1] == 0.5  # confidence 1.0 falls in the last bin


def test_temperature_fit_recovers_a_known_temperature() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20000, 4)) * 4.0
    true_t = 2.5
    p = softmax(logits, true_t)
    gold = (rng.random(len(p))[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    fitted = calibration.fit_temperature(logits, gold)
    assert fitted == pytest.approx(true_t, rel=0.05)
    report = calibration.calibration_report(logits, gold, fitted)
    assert report["after"]["nll"] < report["before"]["nll"] and report["after"]["ece"] < report["before"]["ece"]
    # Logits that are calibrated already keep a temperature near 1; sharper ones get T < 1.
    assert calibration.fit_temperature(logits / true_t, gold) == pytest.approx(1.0, rel=0.05)
    assert calibration.fit_temperature(logits / 10, gold) == pytest.approx(true_t / 10, rel=0.05)
    assert calibration.fit_temperature(np.zeros((0, 4)), np.zeros(0)) == 1.0


def test_majority_baseline_and_collapse_problem() -> None:
    gold = np.array([2, 2, 2, 0, 1, 2])
    baseline = calibration.majority_baseline(gold, LABELS)
    # Always "out": accuracy 4/6; F1 of out = 2 * (4/6) / (1 + 4/6) = 0.8, macro over 3 labels = 0.8 / 3.
    assert baseline == {"label": "out", "accuracy": pytest.approx(4 / 6), "macro_f1": pytest.approx(0.8 / 3)}
    constant = calibration.collapse_problem(np.full(6, 2), 0.8 / 3, baseline, LABELS)
    assert constant == "every prediction is 'out'"
    weak = calibration.collapse_problem(np.array([2, 2, 2, 2, 2, 0]), 0.2, baseline, LABELS)
    assert "no better than always predicting 'out'" in weak
    assert calibration.collapse_problem(gold, 1.0, baseline, LABELS) is None


def test_metrics_from_logits_and_the_guard(capsys) -> None:
    gold = np.array([2, 2, 2, 0, 1, 2])
    constant = np.tile([0.0, 0.0, 3.0], (6, 1))
    good = np.eye(3)[gold] * 4.0
    bad_metrics = classifier.metrics_from_logits(constant, gold, LABELS)
    good_metrics = classifier.metrics_from_logits(good, gold, LABELS, temperature=2.0)
    assert bad_metrics["majority_baseline"]["accuracy"] == pytest.approx(4 / 6)
    assert not bad_metrics["beats_majority_baseline"] and good_metrics["beats_majority_baseline"]
    # The temperature given is the one folded into the logits: "before" undoes it.
    assert good_metrics["calibration"]["before"]["nll"] == pytest.approx(calibration.nll(good * 2.0, gold))
    assert good_metrics["calibration"]["after"]["nll"] == pytest.approx(good_metrics["loss"])
    guard = calibration.CollapseGuard()
    assert not guard.collapsed  # no validation yet
    guard.check(bad_metrics)
    out = capsys.readouterr().out
    assert "WARNING" in out and "every prediction is 'out'" in out and "--pooling=mention" in out
    assert guard.collapsed and "no validation beat the majority baseline" in guard.summary()
    guard.check(good_metrics)
    assert "WARNING" not in capsys.readouterr().out and not guard.collapsed


def test_reliability_plot_is_a_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(200, 3)) * 3
    gold = rng.integers(0, 3, 200)
    path = tmp_path / "reliability.png"
    calibration.plot_reliability(softmax(logits), gold, str(path),
                                   calibrated=softmax(logits, 3.0))
    check_png(path)
