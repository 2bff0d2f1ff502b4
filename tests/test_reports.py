"""Tests for bert_tf.reports: history CSV, learning-curve and confusion-matrix PNGs, atomic writes."""

from __future__ import annotations

import math
import os

import matplotlib
import matplotlib.image
import pandas as pd
import pytest
from matplotlib.figure import Figure

from bert_tf import reports
from bert_tf.reports import plot_all_history, plot_confusion_matrix, plot_history, write_history_csv
from conftest import check_png

HISTORY = [
    {"epoch": 0.5, "step": 50, "split": "train", "end_of_epoch": False, "loss": 1.2, "learning_rate": 2e-5},
    {"epoch": 0.5, "step": 50, "split": "val", "end_of_epoch": False, "loss": 0.9, "accuracy": 0.6, "f1": 0.4},
    {"epoch": 1.0, "step": 100, "split": "train", "end_of_epoch": True, "loss": 0.8, "learning_rate": 1e-5},
    {"epoch": 1.0, "step": 100, "split": "val", "end_of_epoch": True, "loss": 0.7, "accuracy": 0.7, "f1": 0.6},
    {"epoch": 1.5, "step": 150, "split": "val", "end_of_epoch": False, "loss": 0.5, "accuracy": 0.8,
     "f1": float("nan")},
    {"epoch": 2.0, "step": 200, "split": "train", "end_of_epoch": True, "loss": 0.4},
    {"epoch": 2.0, "step": 200, "split": "val", "end_of_epoch": True, "loss": 0.6, "accuracy": 0.75, "f1": 0.7},
]


def _assert_png(path: str) -> None:
    check_png(path, (101, 101))
    assert matplotlib.image.imread(path).ndim == 3


def _capture_figures(monkeypatch) -> list[Figure]:
    """Record every figure saved by the module while still writing it."""
    saved: list[Figure] = []
    original = Figure.savefig

    def recording_savefig(self, *args, **kwargs):
        saved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", recording_savefig)
    return saved


def _fail_savefig(monkeypatch) -> None:
    def broken_savefig(self, fname, *args, **kwargs):
        with open(fname, "wb") as f:
            f.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)


# ----------------------------------------------------------------------------- CSV


def test_history_csv_round_trips_with_pandas(tmp_path):
    path = tmp_path / "history.csv"
    write_history_csv(HISTORY, str(path))
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["epoch", "step", "split", "end_of_epoch", "loss", "learning_rate",
                                   "accuracy", "f1"]
    assert frame["epoch"].tolist() == [0.5, 0.5, 1.0, 1.0, 1.5, 2.0, 2.0]
    assert frame["step"].tolist() == [50, 50, 100, 100, 150, 200, 200]
    assert frame["split"].tolist() == ["train", "val", "train", "val", "val", "train", "val"]
    assert frame["end_of_epoch"].tolist() == [False, False, True, True, False, True, True]
    assert frame["loss"].tolist() == [1.2, 0.9, 0.8, 0.7, 0.5, 0.4, 0.6]
    assert frame["learning_rate"].tolist()[0] == 2e-5
    assert math.isnan(frame["learning_rate"].tolist()[1])  # absent key
    assert math.isnan(frame["f1"].tolist()[4])  # NaN value
    assert frame["f1"].tolist()[6] == 0.7
    assert os.listdir(tmp_path) == ["history.csv"]


def test_empty_history_csv_has_header_only(tmp_path):
    path = tmp_path / "history.csv"
    write_history_csv([], str(path))
    assert path.read_text() == "epoch,step,split,end_of_epoch\n"


# ----------------------------------------------------------------------------- learning curves


def test_plot_history_writes_png_and_nothing_else(tmp_path):
    path = tmp_path / "loss.png"
    plot_history(HISTORY, "loss", str(path))
    _assert_png(str(path))
    assert os.listdir(tmp_path) == ["loss.png"]


def test_plot_history_marks_best_validation_and_mid_epoch_points(tmp_path, monkeypatch):
    saved = _capture_figures(monkeypatch)
    plot_history(HISTORY, "loss", str(tmp_path / "loss.png"), title="Loss curve")
    plot_history(HISTORY, "f1", str(tmp_path / "f1.png"))
    loss_axes, f1_axes = saved[0].axes[0], saved[1].axes[0]
    # loss: lowest validation value 0.5 (mid-epoch at 1.5); f1: highest 0.7 (epoch 2), NaN ignored
    assert any(text.get_text().startswith("best 0.5000") for text in loss_axes.texts)
    assert any(text.get_text().startswith("best 0.7000") for text in f1_axes.texts)
    assert loss_axes.get_title() == "Loss curve" and f1_axes.get_title() == "f1"
    assert loss_axes.get_xlabel() == "epoch" and loss_axes.get_ylabel() == "loss"
    legend = [text.get_text() for text in loss_axes.get_legend().get_texts()]
    assert "validation (mid-epoch)" in legend and "validation (end of epoch)" in legend and "train" in legend
    mid = next(line for line in loss_axes.get_lines() if line.get_label() == "validation (mid-epoch)")
    assert mid.get_markerfacecolor() == "none"
    assert list(mid.get_xdata()) == [0.5, 1.5]
    end = next(line for line in loss_axes.get_lines() if line.get_label() == "validation (end of epoch)")
    assert list(end.get_xdata()) == [1.0, 2.0] and list(end.get_ydata()) == [0.7, 0.6]
    ticks = [tick for tick in loss_axes.get_xticks() if 0 <= tick <= 2]
    assert all(float(tick).is_integer() for tick in ticks)


def test_plot_history_single_epoch_without_validation(tmp_path, monkeypatch):
    saved = _capture_figures(monkeypatch)
    history = [{"epoch": 1.0, "step": 10, "split": "train", "end_of_epoch": True, "loss": 0.3}]
    plot_history(history, "loss", str(tmp_path / "loss.png"))
    _assert_png(str(tmp_path / "loss.png"))
    assert [line.get_label() for line in saved[0].axes[0].get_lines()] == ["train"]
    assert len(saved[0].axes[0].texts) == 0  # no validation, nothing annotated


def test_plot_all_history_only_metrics_present(tmp_path):
    out_dir = tmp_path / "plots"
    paths = plot_all_history(HISTORY, str(out_dir), metrics=("loss", "accuracy", "f1", "precision"))
    assert paths == [str(out_dir / "loss.png"), str(out_dir / "accuracy.png"), str(out_dir / "f1.png")]
    for path in paths:
        _assert_png(path)
    assert sorted(os.listdir(out_dir)) == ["accuracy.png", "f1.png", "loss.png"]


def test_failed_plot_leaves_previous_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "loss.png"
    path.write_bytes(b"previous contents")
    _fail_savefig(monkeypatch)
    with pytest.raises(RuntimeError, match="disk full"):
        plot_history(HISTORY, "loss", str(path))
    assert path.read_bytes() == b"previous contents"
    assert os.listdir(tmp_path) == ["loss.png"]


def test_failed_plot_creates_no_file(tmp_path, monkeypatch):
    _fail_savefig(monkeypatch)
    with pytest.raises(RuntimeError):
        plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b"], str(tmp_path / "cm.png"))
    assert os.listdir(tmp_path) == []


def test_plotting_keeps_pyplot_backend(tmp_path):
    import matplotlib.pyplot as plt  # noqa: F401  (already-imported pyplot must keep working)

    backend = matplotlib.get_backend()
    plot_history(HISTORY, "accuracy", str(tmp_path / "accuracy.png"))
    assert matplotlib.get_backend() == backend
    _assert_png(str(tmp_path / "accuracy.png"))


# ----------------------------------------------------------------------------- confusion matrix


def test_plot_confusion_matrix_shows_counts_and_row_shares(tmp_path, monkeypatch):
    saved = _capture_figures(monkeypatch)
    path = tmp_path / "confusion.png"
    plot_confusion_matrix([[3, 1, 0], [0, 0, 0], [2, 2, 4]], ["che", "dis", "out"], str(path), title="dev")
    _assert_png(str(path))
    assert os.listdir(tmp_path) == ["confusion.png"]
    axes = saved[0].axes[0]
    assert [text.get_text() for text in axes.texts] == ["3", "1", "0", "0", "0", "0", "2", "2", "4"]
    shares = axes.get_images()[0].get_array()
    assert shares.tolist() == [[0.75, 0.25, 0.0], [0.0, 0.0, 0.0], [0.25, 0.25, 0.5]]
    assert [label.get_text() for label in axes.get_xticklabels()] == ["che", "dis", "out"]
    assert axes.get_xlabel() == "predicted label" and axes.get_ylabel() == "gold label"
    assert len(saved[0].axes) == 2  # heatmap and colorbar


def test_plot_confusion_matrix_rejects_wrong_shape(tmp_path):
    with pytest.raises(ValueError):
        plot_confusion_matrix([[1, 2, 3], [4, 5, 6]], ["a", "b"], str(tmp_path / "cm.png"))
    assert os.listdir(tmp_path) == []


def test_eval_results_in_the_google_nvidia_form(tmp_path, capsys):
    from bert_tf.classifier.metrics import classification_metrics, published_eval_results

    metrics = classification_metrics([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], ["che", "dis", "out"], "out")
    metrics["loss"] = 0.5
    result = published_eval_results(metrics, 48828)
    path = tmp_path / "eval_results.txt"
    reports.write_published_eval_results(str(path), result)
    lines = path.read_text().splitlines()
    assert lines[:6] == ["che_f1 = 0.5", "che_precision = 0.5", "che_recall = 0.5", "che_support = 2",
                         "dis_f1 = 0.6666667", "dis_precision = 0.5"]
    pairs = dict(line.split(" = ") for line in lines)
    assert pairs["eval_accuracy"] == "0.6666667" and pairs["f1-score"] == "0.6666667"  # micro = accuracy
    assert pairs["global_step"] == "48828" and pairs["eval_loss"] == pairs["loss"] == "0.5"
    assert float(pairs["f1-macro"]) == pytest.approx((0.5 + 2 / 3 + 0.8) / 3)
    assert lines == sorted(lines) and len(lines) == 4 + 9 + 3 * 4
    err = capsys.readouterr().err.splitlines()
    assert err == ["INFO:tensorflow:***** Eval results *****"] + [f"INFO:tensorflow:  {line}" for line in lines]
