"""The encoder of a Hugging Face or TF1 checkpoint as a keras-hub BertBackbone with its weights."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from bert_tf.checkpoints import huggingface, tf1
from bert_tf.checkpoints.checkpoint import Checkpoint, backbone_from_config, set_feedforward_activation
from bert_tf.checkpoints.names import WeightSource, assign_backbone_weights, backbone_slots


def weight_source(checkpoint: Checkpoint, keys: Sequence[str]) -> WeightSource:
    """The weights of an "hf" or "tf1" checkpoint."""
    if checkpoint.kind == "tf1":
        return tf1.read_tf1(tf1.resolve_tf1_prefix(checkpoint.path), keys)
    return huggingface.hf_weight_source(checkpoint.path)


def load_pretrained_backbone(checkpoint: Checkpoint, dropout: Optional[float] = None,
                             task_head: Optional[str] = None) -> Any:
    """Build the backbone of an "hf" or "tf1" checkpoint, copy every weight in, set its activation (`task_head`:
    the checkpoint is read as that task model, see `assign_backbone_weights`)."""
    if dropout is None:
        dropout = float(checkpoint.config.get("hidden_dropout_prob", 0.1))
    backbone = backbone_from_config(checkpoint.config, dropout)
    source = weight_source(checkpoint, [slot.key for slot in backbone_slots(backbone)])
    assign_backbone_weights(backbone, source, task_head)
    set_feedforward_activation(backbone, checkpoint.activation)
    return backbone
