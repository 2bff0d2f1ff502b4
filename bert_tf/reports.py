"""Training-history CSV and PNG plots (learning curves, confusion matrix), all written atomically.

Plots are drawn on figures bound to the Agg canvas directly, so no pyplot state or display backend is
touched: importing this module is safe whether or not pyplot was imported before.
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bert_tf.io_utils import atomic_path, write_text_atomic

FIXED_COLUMNS = ("epoch", "step", "split", "end_of_epoch")
TRAIN_SPLIT = "train"
VALIDATION_SPLIT = "val"


# ----------------------------------------------------------------------------- CSV


def _metric_columns(history: Iterable[dict]) -> list[str]:
    """The non-fixed keys of all rows, in the order they are first seen."""
    columns: dict[str, None] = {}
    for row in history:
        for key in row:
            if key not in FIXED_COLUMNS:
                columns.setdefault(key, None)
    return list(columns)


def _csv_cell(value: Any) -> Any:
    """A value as written to the CSV: missing or NaN values become an empty cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def write_history_csv(history: list[dict], path: str) -> None:
    """Write the history rows as CSV: epoch, step, split, end_of_epoch, then every metric seen."""
    columns = [*FIXED_COLUMNS, *_metric_columns(history)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in history:
        writer.writerow([_csv_cell(row.get(column)) for column in columns])
    write_text_atomic(path, buffer.getvalue())


# ----------------------------------------------------------------------------- figures


def _new_figure(width: float, height: float) -> Figure:
    """A figure drawn by the Agg canvas, independent of pyplot."""
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save_png(figure: Figure, path: str) -> None:
    """Save the figure as PNG at `path` atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")


def _finite_number(value: Any) -> bool:
    """True for an int or float that is neither NaN nor infinite (booleans excluded)."""
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)


def _points(history: Sequence[dict], metric: str, split: str, end_of_epoch: Optional[bool] = None) -> tuple:
    """(epochs, values) of the rows of one split holding a finite `metric`, optionally by end_of_epoch."""
    rows = [
        row
        for row in history
        if row.get("split") == split
        and _finite_number(row.get(metric))
        and (end_of_epoch is None or bool(row.get("end_of_epoch")) == end_of_epoch)
    ]
    rows.sort(key=lambda row: (float(row.get("epoch", 0.0)), int(row.get("step", 0))))
    return [float(row.get("epoch", 0.0)) for row in rows], [float(row[metric]) for row in rows]


def _lower_is_better(metric: str) -> bool:
    """True for loss-like metrics, whose best value is the smallest."""
    return "loss" in metric.lower()


def _annotate_best(axes: Any, history: Sequence[dict], metric: str) -> None:
    """Mark and label the best validation value of `metric`, if there is one."""
    epochs, values = _points(history, metric, VALIDATION_SPLIT)
    if not values:
        return
    pick = int(np.argmin(values)) if _lower_is_better(metric) else int(np.argmax(values))
    axes.plot([epochs[pick]], [values[pick]], marker="*", markersize=14, color="tab:red", linestyle="none",
              label=f"best validation: {values[pick]:.4f}", zorder=5)
    axes.annotate(f"best {values[pick]:.4f}\n(epoch {epochs[pick]:g})", xy=(epochs[pick], values[pick]),
                  xytext=(10, 10), textcoords="offset points", fontsize=8,
                  arrowprops={"arrowstyle": "->", "color": "tab:red"})


def _draw_curves(axes: Any, history: Sequence[dict], metric: str) -> None:
    """Train curve, end-of-epoch validation line and hollow mid-epoch validation markers."""
    train_x, train_y = _points(history, metric, TRAIN_SPLIT)
    if train_x:
        axes.plot(train_x, train_y, color="tab:blue", marker="." if len(train_x) < 50 else None,
                  label="train")
    end_x, end_y = _points(history, metric, VALIDATION_SPLIT, end_of_epoch=True)
    if end_x:
        axes.plot(end_x, end_y, color="tab:orange", marker="o", label="validation (end of epoch)")
    mid_x, mid_y = _points(history, metric, VALIDATION_SPLIT, end_of_epoch=False)
    if mid_x:
        axes.plot(mid_x, mid_y, linestyle="none", marker="o", markersize=8, markerfacecolor="none",
                  markeredgecolor="tab:green", markeredgewidth=1.5, label="validation (mid-epoch)")


def _style_epoch_axes(axes: Any, history: Sequence[dict], metric: str, title: str) -> None:
    """Labels, grid, integer epoch ticks covering the whole run, legend and title."""
    last_epoch = max([float(row.get("epoch", 0.0)) for row in history] + [1.0])
    axes.set_xlim(0.0, math.ceil(last_epoch) + 0.05)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch")
    axes.set_ylabel(metric)
    axes.set_title(title)
    axes.grid(True, alpha=0.4)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="best", fontsize=8)


def plot_history(history: list[dict], metric: str, path: str, title: Optional[str] = None) -> None:
    """Write a PNG of the train and validation curves of `metric` against epoch, best validation marked."""
    figure = _new_figure(8.0, 5.0)
    axes = figure.add_subplot(1, 1, 1)
    _draw_curves(axes, history, metric)
    _annotate_best(axes, history, metric)
    _style_epoch_axes(axes, history, metric, title if title is not None else metric)
    figure.tight_layout()
    _save_png(figure, path)


def _row_normalised(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (rows summing to zero stay zero)."""
    totals = matrix.sum(axis=1, keepdims=True).astype(np.float64)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=np.float64), where=totals > 0)


def _write_counts(axes: Any, counts: np.ndarray, shares: np.ndarray) -> None:
    """Print each raw count in its cell, light text on dark cells."""
    for row in range(counts.shape[0]):
        for column in range(counts.shape[1]):
            colour = "white" if shares[row, column] > 0.5 else "black"
            axes.text(column, row, str(int(counts[row, column])), ha="center", va="center", color=colour,
                      fontsize=9)


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], path: str, title: Optional[str] = None
) -> None:
    """Write a PNG heatmap of the row-normalised confusion matrix with raw counts in the cells."""
    counts = np.asarray(matrix, dtype=np.int64).reshape(-1, len(labels)) if len(labels) else np.zeros((0, 0))
    if counts.shape != (len(labels), len(labels)):
        raise ValueError(f"confusion matrix has shape {counts.shape} but there are {len(labels)} labels")
    shares = _row_normalised(counts)
    side = 2.5 + 0.7 * max(len(labels), 2)
    figure = _new_figure(side + 1.5, side)
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, aspect="equal")
    figure.colorbar(image, ax=axes, label="share of gold row")
    _write_counts(axes, counts, shares)
    axes.set_xticks(range(len(labels)), [str(label) for label in labels], rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), [str(label) for label in labels])
    axes.set_xlabel("predicted label")
    axes.set_ylabel("gold label")
    axes.set_title(title if title is not None else "confusion matrix")
    figure.tight_layout()
    _save_png(figure, path)


def _has_metric(history: Sequence[dict], metric: str) -> bool:
    """True when some row holds a finite value of `metric`."""
    return any(_finite_number(row.get(metric)) for row in history)


def plot_all_history(
    history: list[dict], out_dir: str, metrics: Sequence[str] = ("loss", "accuracy", "f1")
) -> list[str]:
    """Write `{metric}.png` into out_dir for each listed metric found in the history; return the paths."""
    paths = []
    for metric in metrics:
        if _has_metric(history, metric):
            path = os.path.join(out_dir, f"{metric}.png")
            plot_history(history, metric, path)
            paths.append(path)
    return paths


# ----------------------------------------------------------------------------- eval_results.txt, Google/NVIDIA form

# What Google's and NVIDIA's run_classifier.py (and the published run_ner_consensus.py) call the averaged figures.
TF_LOG_PREFIX = "INFO:tensorflow:"


def published_value(value: Any) -> str:
    """A value as the published code wrote it: str() of a float32 for a float, str() otherwise."""
    if isinstance(value, float):
        return str(np.float32(value))
    return str(value)


def published_eval_lines(result: Dict[str, Any]) -> List[str]:
    """The `key = value` lines of eval_results.txt, keys sorted as the published code sorts them."""
    return [f"{key} = {published_value(result[key])}" for key in sorted(result)]


def write_published_eval_results(path: str, result: Dict[str, Any]) -> None:
    """eval_results.txt in the Google/NVIDIA form; and the same lines on stderr as TensorFlow 1's logger wrote
    them (`INFO:tensorflow:  eval_accuracy = 0.9483`), which the published SLURM scripts grep from the .err log."""
    lines = published_eval_lines(result)
    write_text_atomic(path, "".join(line + "\n" for line in lines))
    log = [f"{TF_LOG_PREFIX}***** Eval results *****"] + [f"{TF_LOG_PREFIX}  {line}" for line in lines]
    print("\n".join(log), file=sys.stderr, flush=True)
