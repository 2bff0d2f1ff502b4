"""TensorFlow SavedModel exports of a task model: a `serving_default` signature (int32 token_ids, padding_mask,
segment_ids -> logits and probabilities) and labels.txt beside it."""

from __future__ import annotations

import os
from typing import Any

from bert_tf import models
from bert_tf.batch_format import FEATURE_KEYS
from bert_tf.checkpoints.checkpoint import LABELS_FILE
from bert_tf.io_utils import atomic_directory


def serving_module(model: Any) -> Any:
    """A tf.Module around a Keras task model with a `serve` function: int32 token_ids, padding_mask,
    segment_ids [batch, length] -> {"logits", "probabilities" (softmax over the last axis)}."""
    import tensorflow as tf

    spec = [tf.TensorSpec([None, None], tf.int32, name=n) for n in FEATURE_KEYS]

    class Serving(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="bert_tf_serving")
            self.model_variables = list(model.variables)  # tracked here; the Keras model stays untracked

        @tf.function(input_signature=spec, autograph=False)
        def serve(self, token_ids, padding_mask, segment_ids):
            inputs = dict(zip(FEATURE_KEYS, (token_ids, padding_mask, segment_ids)))
            logits = tf.cast(model(inputs, training=False), tf.float32)
            return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1)}

    return Serving()


def export_savedmodel(task: models.TaskModel, output_dir: str) -> None:
    """Write a TensorFlow SavedModel with a `serving_default` signature and labels.txt, atomically."""
    import tensorflow as tf

    module = serving_module(task.model)
    with atomic_directory(output_dir) as tmp:
        tf.saved_model.save(module, tmp, signatures={"serving_default": module.serve})
        with open(os.path.join(tmp, LABELS_FILE), "w", encoding="utf-8") as f:
            f.write("\n".join(task.labels) + "\n")
