"""A classifier fine-tuned by the published TF1 code, loaded for prediction."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from bert_tf import checkpoints, models
from bert_tf.checkpoints import tf1
from bert_tf.errors import InputError
from bert_tf.tokenization import WordPieceTokenizer


def load_published_classifier(checkpoint: checkpoints.Checkpoint, tokenizer: WordPieceTokenizer,
                              labels: Sequence[str], labels_source: str) -> models.TaskModel:
    """A classifier fine-tuned by the published TF1 code (BERT body + pooler, output_weights/output_bias of
    len(labels) or len(labels) + 1 rows), ready to predict: its model gives every row's logit."""
    head = tf1.read_tf1_classifier_head(tf1.resolve_tf1_prefix(checkpoint.path))
    if head is None:
        raise InputError(f"no classifier head ({tf1.TF1_CLASSIFIER_WEIGHTS}, {tf1.TF1_CLASSIFIER_BIAS}): "
                         "a pretrained checkpoint, not a fine-tuned classifier (train with --do_train)", checkpoint.path)
    weights, bias = head
    if weights.shape[0] not in (len(labels), len(labels) + 1):
        raise InputError(f"{len(labels)} labels, but the checkpoint's {tf1.TF1_CLASSIFIER_WEIGHTS} has "
                         f"{weights.shape[0]} rows (expected {len(labels)} or {len(labels) + 1})", labels_source)
    backbone = checkpoints.load_backbone(checkpoint)
    models.check_vocab_matches(backbone, tokenizer)
    if weights.shape[1] != backbone.hidden_dim:
        raise InputError(f"{tf1.TF1_CLASSIFIER_WEIGHTS} has {weights.shape[1]} columns, the model's hidden "
                         f"size is {backbone.hidden_dim}", checkpoint.path)
    model = models.build_sequence_classifier(backbone, int(weights.shape[0]), 0.1, "pooler")
    layer = model.get_layer("classifier")
    layer.kernel.assign(np.transpose(weights))
    layer.bias.assign(bias)
    meta = {"published_tf1": True, "extra_logits": int(weights.shape[0]) - len(labels)}
    return models.TaskModel(model, backbone, tokenizer, list(labels), "sequence", checkpoint.activation, 0.1, meta)
