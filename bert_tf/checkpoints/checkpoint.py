"""What a pretrained checkpoint is, whatever its format: its kind, folder, BERT config and the activation it means.

keras-hub fixes the feed-forward activation of its BertBackbone to the tanh approximation of GELU; a
Hugging Face config with `hidden_act: "gelu"` means the exact (erf) GELU, so `set_feedforward_activation`
puts back what the checkpoint's config says.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, Mapping, Optional

import keras

from bert_tf.errors import InputError
from bert_tf.io_utils import load_json
from bert_tf.tokenization import _read_vocab

REQUIRED_CONFIG_INTS = ("vocab_size", "num_hidden_layers", "num_attention_heads", "hidden_size", "intermediate_size")
LABELS_FILE = "labels.txt"  # the labels beside an exported model (SavedModel, TF1), one a line


def gelu_exact(x):
    """GELU with the exact erf form (Hugging Face "gelu")."""
    return keras.activations.gelu(x, approximate=False)


def gelu_tanh(x):
    """GELU with the tanh approximation (Google's TF1 BERT, HF "gelu_new")."""
    return keras.activations.gelu(x, approximate=True)


ACTIVATIONS = {"gelu_exact": gelu_exact, "gelu_tanh": gelu_tanh, "relu": keras.activations.relu}


@dataclasses.dataclass
class Checkpoint:
    """A pretrained checkpoint found on disk: its kind, directory and what it means."""

    kind: str  # "hf" | "tf1" | "keras_hub" | "bert_tf"
    path: str  # a directory; for "tf1" a directory or a checkpoint prefix
    activation: str  # key of ACTIVATIONS
    config: Dict[str, Any]
    hub: Optional[Dict[str, str]] = None  # a Hub id's resolution (bert_tf.hub.HubModel.record), else None

    def source_rows(self) -> Dict[str, str]:
        """Run-table rows saying where a Hub id was resolved to (none for a local path)."""
        if not self.hub:
            return {}
        return {"hub": f"{self.hub['hub_id']} revision {self.hub['revision']} = commit {self.hub['commit']} "
                       f"({self.hub['snapshot']})"}


def set_feedforward_activation(backbone: Any, activation: str) -> None:
    """Make every encoder layer's feed-forward network of a BertBackbone use `activation` (a key of ACTIVATIONS)."""
    fn = ACTIVATIONS[activation]
    for layer in backbone.transformer_layers:
        layer.activation = fn
        layer._feedforward_intermediate_dense.activation = fn


def validate_bert_config(config: Mapping[str, Any], config_path: str) -> None:
    """InputError unless the config describes a BERT encoder keras-hub can build."""
    model_type = config.get("model_type", "bert")
    if model_type != "bert":
        raise InputError(f"model_type is {model_type!r}; only BERT checkpoints are supported", config_path)
    for key in REQUIRED_CONFIG_INTS:
        value = config.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"config has no positive integer {key!r}", config_path)
    if config["hidden_size"] % config["num_attention_heads"]:
        raise InputError(f"hidden_size {config['hidden_size']} is not a multiple of num_attention_heads "
                         f"{config['num_attention_heads']}", config_path)
    position_type = config.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise InputError(f"position_embedding_type {position_type!r} is not supported (only 'absolute')",
                         config_path)


def check_vocab_file(vocab_path: str, vocab_size: int, config_path: str) -> None:
    """InputError if vocab.txt has ids beyond the config's vocab_size (the embedding table)."""
    entries = max(_read_vocab(vocab_path).values()) + 1
    if entries > vocab_size:
        raise InputError(
            f"the vocabulary has {entries} entries but {os.path.basename(config_path)} says vocab_size "
            f"{vocab_size} (the embedding table): vocabulary and weights do not belong together",
            vocab_path,
        )


def load_config(config_path: str) -> Dict[str, Any]:
    """A BERT config file, validated (InputError when missing or unusable)."""
    if not os.path.isfile(config_path):
        raise InputError("BERT config file does not exist", config_path)
    config = load_json(config_path)
    validate_bert_config(config, config_path)
    return config


def backbone_from_config(config: Mapping[str, Any], dropout: float) -> Any:
    """A randomly initialised keras-hub BertBackbone shaped as a (validated) BERT config says."""
    import keras_hub

    return keras_hub.models.BertBackbone(
        vocabulary_size=config["vocab_size"],
        num_layers=config["num_hidden_layers"],
        num_heads=config["num_attention_heads"],
        hidden_dim=config["hidden_size"],
        intermediate_dim=config["intermediate_size"],
        dropout=float(dropout),
        max_sequence_length=int(config.get("max_position_embeddings", 512)),
        num_segments=int(config.get("type_vocab_size", 2)),
    )


def max_positions(checkpoint: Checkpoint) -> Optional[int]:
    """How many positions the checkpoint's position embeddings hold (None if unknown)."""
    config = checkpoint.config
    if checkpoint.kind == "bert_tf":
        config = config.get("backbone", {})
    for key in ("max_position_embeddings", "max_sequence_length"):
        if isinstance(config.get(key), int):
            return config[key]
    return None
