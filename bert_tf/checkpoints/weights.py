"""The weights of a checkpoint of any kind put into Keras: the backbone, a new task model on it, and the
masked-LM and next-sentence heads a checkpoint may hold (each format's reader does the reading)."""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import keras_hub
import numpy as np

from bert_tf import models
from bert_tf.checkpoints import bert_tf_format, huggingface, presets, tf1
from bert_tf.checkpoints.checkpoint import Checkpoint
from bert_tf.checkpoints.encoder import load_pretrained_backbone
from bert_tf.checkpoints.names import HEAD_DENSE_WEIGHT, HEAD_KEYS, NSP_KEYS, is_dense_weight
from bert_tf.tokenization import WordPieceTokenizer


def load_backbone(checkpoint: Checkpoint, dropout: Optional[float] = None) -> keras_hub.models.BertBackbone:
    """Load the pretrained backbone of a checkpoint of any kind with its weights and the right activation."""
    if checkpoint.kind in ("hf", "tf1"):
        return load_pretrained_backbone(checkpoint, dropout)
    if checkpoint.kind == "bert_tf":
        return bert_tf_format.load_saved_backbone(checkpoint, dropout)
    return presets.load_preset_backbone(checkpoint, dropout)


def build_task_model(
    checkpoint: Checkpoint,
    tokenizer: WordPieceTokenizer,
    labels: Sequence[str],
    head: str,
    dropout: float,
    encoder_dropout: Optional[float] = None,
    pooling: str = "pooler",
) -> models.TaskModel:
    """A new task model on top of a pretrained checkpoint (or a bert-tf model's backbone)."""
    if checkpoint.kind == "bert_tf":
        saved = bert_tf_format.load_saved_model(checkpoint.path)
        backbone = saved.backbone
    else:
        backbone = load_backbone(checkpoint, encoder_dropout)
    return models.new_task_model(backbone, tokenizer, labels, head, checkpoint.activation, dropout, pooling)


def read_masked_lm_head(checkpoint: Checkpoint) -> Optional[Dict[str, np.ndarray]]:
    """The masked-LM head of an "hf", "tf1" or "keras_hub" checkpoint in the canonical layout, or None when it has
    none."""
    if checkpoint.kind == "keras_hub":
        return presets.preset_head_weights(checkpoint.path)
    if checkpoint.kind == "hf":
        return huggingface.read_hf_tensors(checkpoint.path, HEAD_KEYS)
    if checkpoint.kind == "tf1":  # TF1 kernels are [in, out]
        return tf1.read_tf1_tensors(tf1.resolve_tf1_prefix(checkpoint.path), tf1.TF1_HEAD_NAMES, (HEAD_DENSE_WEIGHT,))
    return None


def read_next_sentence_head(checkpoint: Checkpoint) -> Optional[Dict[str, np.ndarray]]:
    """The next-sentence head (cls.seq_relationship weight [2, hidden] and bias [2]) of an "hf" checkpoint
    (safetensors, tf_model.h5, pytorch_model.bin; bert-tf's own output) or a "tf1" one, or None when it has none or
    no pooler to read it from (keras-hub has no next-sentence task)."""
    names = {**tf1.TF1_NSP_NAMES, **tf1.TF1_POOLER_NAMES}
    if checkpoint.kind == "hf":
        values = huggingface.read_hf_tensors(checkpoint.path, list(names))
    elif checkpoint.kind == "tf1":
        values = tf1.read_tf1_tensors(tf1.resolve_tf1_prefix(checkpoint.path), names,
                                      tuple(k for k in tf1.TF1_POOLER_NAMES if is_dense_weight(k)))
    else:
        values = None
    return None if values is None else {k: values[k] for k in NSP_KEYS}
