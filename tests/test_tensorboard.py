"""TensorBoard event files written by the training loop: readable with TensorFlow's summary iterator and
holding the expected tags, steps and values; nothing created when switched off."""

from __future__ import annotations

import os
from typing import Dict

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

from bert_tf import checkpoints, optimization, tensorboard
from bert_tf.tokenization import WordPieceTokenizer
from bert_tf.training import Trainer
from conftest import StepOutputs, check_png


def read_scalars(log_dir: str) -> Dict[str, list]:
    """{tag: [(step, value), ...]} of the scalar summaries in a run directory's event files."""
    return {tag: [(step, float(tf.make_ndarray(tensor))) for step, tensor in points]
            for tag, points in read_summaries(log_dir, "scalars").items()}


def read_summaries(log_dir: str, plugin: str) -> Dict[str, list]:
    """{tag: [(step, TensorProto), ...]} of one plugin's summaries in a run directory's event files."""
    out: Dict[str, list] = {}
    plugins: Dict[str, str] = {}  # the metadata may be written only with a tag's first point
    for name in sorted(os.listdir(log_dir)):
        if "tfevents" not in name:
            continue
        for record in tf.data.TFRecordDataset(os.path.join(log_dir, name)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name:
                    plugins[value.tag] = value.metadata.plugin_data.plugin_name
                if plugins.get(value.tag) == plugin:
                    out.setdefault(value.tag, []).append((event.step, value.tensor))
    return out


def _fit(tiny_checkpoint, out_dir, enabled: bool, steps: int = 6, log_every: int = 2):
    checkpoint = checkpoints.find_checkpoint(tiny_checkpoint)
    tokenizer = WordPieceTokenizer.from_model_dir(tiny_checkpoint)
    task = checkpoints.build_task_model(checkpoint, tokenizer, ["O", "B-X", "I-X"], "token", 0.0, encoder_dropout=0.0)
    schedule = optimization.WarmupLinearDecay(1e-3, warmup_steps=2, total_steps=2 * steps)
    trainer = Trainer(task.model, optimization.make_optimizer("adamw", schedule, 0.0), tf.distribute.get_strategy(),
                      log_every=log_every, verbose=False)
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 30, size=(steps * 3, 10)).astype(np.int32)
    data = {"token_ids": ids, "padding_mask": np.ones_like(ids), "segment_ids": np.zeros_like(ids),
            "labels": rng.integers(0, 3, size=ids.shape).astype(np.int32)}
    matrix = np.array([[3, 1, 0], [0, 2, 1], [1, 0, 4]])
    validations = iter([0.9, 0.8, 0.7, 0.6])
    callbacks = tensorboard.make_writer(enabled, True, trainer, str(out_dir), ["O", "B-X", "I-X"], lambda: matrix)
    make = lambda epoch, first: (tf.data.Dataset.from_tensor_slices(data).batch(3).skip(first), steps)
    trainer.fit(make, epochs=2, validate=lambda: {"loss": next(validations), "f1": 0.5},
                outputs=StepOutputs(lambda _: None), validations_per_epoch=2, callbacks=callbacks)
    return trainer


def test_event_files_hold_training_and_validation_summaries(tiny_checkpoint, tmp_path):
    trainer = _fit(tiny_checkpoint, tmp_path, enabled=True)
    train = read_scalars(str(tmp_path / "tensorboard" / "train"))
    val = read_scalars(str(tmp_path / "tensorboard" / "validation"))
    flushes = [2, 3, 5, 6, 8, 9, 11, 12]  # every --log_every steps and at each validation (steps 3, 6, 9, 12)
    assert [s for s, _ in train["loss"]] == flushes
    assert [s for s, _ in train["learning_rate"]] == flushes
    assert [v for _, v in train["learning_rate"]][:3] == pytest.approx([1e-3, 1e-3 * 9 / 10, 1e-3 * 7 / 10])
    assert all(v > 0 for _, v in train["examples_per_second"])
    assert all(np.isfinite(v) and v > 0 for _, v in train["loss"])
    assert [s for s, _ in train["epoch_loss"]] == [6, 12]
    epoch_losses = [r["loss"] for r in trainer.history if r["split"] == "train"]
    assert [v for _, v in train["epoch_loss"]] == pytest.approx(epoch_losses, rel=1e-6)
    sizes = np.diff([0] + flushes[:4])  # the loss points are means over the steps since the last one
    assert np.dot(sizes, [v for _, v in train["loss"][:4]]) / 6 == pytest.approx(epoch_losses[0], rel=1e-5)
    assert val["loss"] == [(3, pytest.approx(0.9)), (6, pytest.approx(0.8)), (9, pytest.approx(0.7)),
                           (12, pytest.approx(0.6))]
    assert [s for s, _ in val["f1"]] == [3, 6, 9, 12]
    images = read_summaries(str(tmp_path / "tensorboard" / "validation"), "images")
    assert [s for s, _ in images["confusion_matrix"]] == [3, 6, 9, 12]
    width, height, png = tf.make_ndarray(images["confusion_matrix"][0][1])
    (tmp_path / "confusion.png").write_bytes(png)
    assert check_png(tmp_path / "confusion.png", (101, 101)) == (int(width), int(height))


def test_switched_off_writes_nothing(tiny_checkpoint, tmp_path):
    _fit(tiny_checkpoint, tmp_path, enabled=False, steps=2)
    assert not os.path.exists(tmp_path / "tensorboard")
    assert tensorboard.make_writer(True, False, None, str(tmp_path)) == []  # not the chief
    assert not os.path.exists(tmp_path / "tensorboard")
