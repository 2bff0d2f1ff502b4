"""TensorBoard event files of a training run: OUTPUT/tensorboard/train and OUTPUT/tensorboard/validation.

Written with the core `tf.summary.write` and the metadata TensorBoard's own scalar and image summaries use,
so the files are identical to theirs and need no TensorBoard package at training time (only to view them:
`tensorboard --logdir OUTPUT/tensorboard`). Train: loss (mean of the last steps; also each term of a several-term
loss), learning_rate and examples_per_second every --log_every steps, the epoch's training metrics at its end.
Validation: every metric at every validation and, where the task gives one, the confusion matrix as an image.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Callable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from bert_tf import reports
from bert_tf.optimization import current_learning_rate

DIRECTORY = "tensorboard"
TRAIN_RUN, VALIDATION_RUN = "train", "validation"
FLUSH_MILLIS = 10_000  # new points reach the files (and a watching TensorBoard) within 10 s
ConfusionSource = Callable[[], Optional[np.ndarray]]


def _metadata(plugin: str, data_class: int) -> summary_pb2.SummaryMetadata:
    """Summary metadata as TensorBoard's plugin of that name writes it."""
    metadata = summary_pb2.SummaryMetadata(data_class=data_class)
    metadata.plugin_data.plugin_name = plugin
    return metadata


_SCALAR = _metadata("scalars", summary_pb2.DATA_CLASS_SCALAR)
_IMAGE = _metadata("images", summary_pb2.DATA_CLASS_BLOB_SEQUENCE)


def write_scalar(tag: str, value: float, step: int) -> None:
    """One scalar point to the default summary writer."""
    tf.summary.write(tag, tf.constant(float(value), tf.float32), step=step, metadata=_SCALAR)


def write_png(tag: str, png: bytes, width: int, height: int, step: int) -> None:
    """One PNG image to the default summary writer."""
    tf.summary.write(tag, tf.constant([str(width), str(height), png]), step=step, metadata=_IMAGE)


def _png_size(png: bytes) -> tuple:
    """(width, height) from a PNG's IHDR chunk."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def confusion_png(matrix: np.ndarray, labels: Sequence[str], title: str) -> bytes:
    """The confusion-matrix plot of bert_tf.reports as PNG bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "cm.png")
        reports.plot_confusion_matrix(np.asarray(matrix), list(labels), path, title=title)
        with open(path, "rb") as f:
            return f.read()


class TensorBoardWriter(keras.callbacks.Callback):
    """A callback the Trainer drives that writes training and validation summaries (chief only)."""

    def __init__(self, trainer, out_dir: str, labels: Sequence[str] = (),
                 confusion_matrix: Optional[ConfusionSource] = None):
        super().__init__()
        self.trainer, self.labels, self.confusion_matrix = trainer, list(labels), confusion_matrix
        root = os.path.join(out_dir, DIRECTORY)
        self.writers = {run: tf.summary.create_file_writer(os.path.join(root, run), flush_millis=FLUSH_MILLIS)
                        for run in (TRAIN_RUN, VALIDATION_RUN)}
        self._since, self._last_time = 0, None

    def on_train_begin(self, logs=None):
        self._last_time = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        now = time.perf_counter()
        examples = logs.get("examples")
        step = self.trainer.global_step
        with self.writers[TRAIN_RUN].as_default():
            for key, value in logs.items():  # recent_loss, and recent_NAME for each term of a several-term loss
                if key.startswith("recent_"):
                    write_scalar(key[len("recent_"):], value, step)
            if self.trainer.optimizer is not None:
                write_scalar("learning_rate", current_learning_rate(self.trainer.optimizer), step)
            if examples and self._last_time is not None and now > self._last_time:
                write_scalar("examples_per_second", examples / (now - self._last_time), step)
        self._last_time = now

    def on_test_end(self, logs=None):
        step = self.trainer.global_step
        with self.writers[VALIDATION_RUN].as_default():
            for key, value in (logs or {}).items():
                if key.startswith("val_") and np.isfinite(value):
                    write_scalar(key[len("val_"):], value, step)
            matrix = self.confusion_matrix() if self.confusion_matrix else None
            if matrix is not None:
                png = confusion_png(matrix, self.labels, f"Confusion matrix (validation, step {step})")
                write_png("confusion_matrix", png, *_png_size(png), step)
        self.writers[VALIDATION_RUN].flush()
        self._last_time = time.perf_counter()  # validation time is not training throughput

    def on_epoch_end(self, epoch, logs=None):
        step = self.trainer.global_step
        with self.writers[TRAIN_RUN].as_default():
            for key, value in (logs or {}).items():
                if not key.startswith("val_") and key not in ("loss", "learning_rate", "seconds"):
                    if isinstance(value, (int, float)) and np.isfinite(value):
                        write_scalar(key, value, step)
            if logs and "loss" in logs:
                write_scalar("epoch_loss", logs["loss"], step)
        self.writers[TRAIN_RUN].flush()

    def on_train_end(self, logs=None):
        for writer in self.writers.values():
            writer.close()


def make_writer(enabled: bool, chief: bool, trainer, out_dir: str, labels: Sequence[str] = (),
                confusion_matrix: Optional[ConfusionSource] = None) -> list:
    """[TensorBoardWriter] when --tensorboard is on and this is the chief, else [] (nothing is created)."""
    if not (enabled and chief):
        return []
    return [TensorBoardWriter(trainer, out_dir, labels, confusion_matrix)]
