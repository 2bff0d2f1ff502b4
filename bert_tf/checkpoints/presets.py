"""keras-hub presets (a folder saved by `save_to_preset`, or a handle keras-hub fetches): the backbone, the
tokenizer, and the masked-LM head of a preset saved from a BertMaskedLM task."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional

import numpy as np

from bert_tf.checkpoints import tf1
from bert_tf.checkpoints.checkpoint import Checkpoint, set_feedforward_activation
from bert_tf.checkpoints.names import HEAD_DENSE_WEIGHT, mlm_head_variables
from bert_tf.errors import InputError, first_line
from bert_tf.io_utils import load_json
from bert_tf.tokenization import WordPieceTokenizer

KERAS_HUB_VOCABULARY = ("assets", "tokenizer", "vocabulary.txt")  # where Tokenizer.save_to_preset puts it


def load_preset_backbone(checkpoint: Checkpoint, dropout: Optional[float] = None) -> Any:
    """The backbone of a keras-hub preset directory (BertBackbone.from_preset), with its activation set."""
    import keras_hub

    kwargs: Dict[str, Any] = {}
    if dropout is not None:
        kwargs["dropout"] = float(dropout)
    try:
        backbone = keras_hub.models.BertBackbone.from_preset(checkpoint.path, **kwargs)
    except InputError:
        raise
    except Exception as e:  # keras-hub raises assorted errors for broken checkpoints
        raise InputError(f"cannot load the BERT weights ({type(e).__name__}: {first_line(e)})",
                         checkpoint.path) from None
    set_feedforward_activation(backbone, checkpoint.activation)
    return backbone


def keras_hub_tokenizer(path: str, do_lower_case: Optional[bool] = None) -> WordPieceTokenizer:
    """The WordPiece tokenizer of a keras-hub preset directory: its vocabulary file, lower-casing as its
    tokenizer.json (keras-hub's BertTokenizer config, not a Hugging Face tokenizers file) says unless given."""
    config_path = os.path.join(path, "tokenizer.json")
    config = load_json(config_path) if os.path.isfile(config_path) else {}
    if config and config.get("class_name") != "BertTokenizer":
        raise InputError(f"a keras-hub {config.get('class_name')} preset: only BertTokenizer (WordPiece) presets "
                         "are supported", config_path)
    if do_lower_case is None:
        do_lower_case = config.get("config", {}).get("lowercase")
    return tf1.trio_tokenizer(os.path.join(path, *KERAS_HUB_VOCABULARY), do_lower_case)


def preset_head_weights(path: str) -> Optional[Dict[str, np.ndarray]]:
    """The masked-LM head of a keras-hub preset saved from a BertMaskedLM task (task.json naming it, and
    task.weights.h5), in the canonical layout; None for a preset of a backbone alone or of another task."""
    import keras_hub

    config_path = os.path.join(path, "task.json")
    if not (os.path.isfile(config_path) and os.path.isfile(os.path.join(path, "task.weights.h5"))):
        return None
    with open(config_path, encoding="utf-8") as f:
        if json.load(f).get("class_name") != "BertMaskedLM":
            return None
    try:
        task = keras_hub.models.BertMaskedLM.from_preset(path, preprocessor=None)
    except Exception as e:  # keras-hub raises assorted errors for broken presets
        raise InputError(f"cannot load the masked-LM task ({type(e).__name__}: {str(e).splitlines()[0]})",
                         path) from None
    values = {k: np.asarray(v.numpy(), np.float32) for k, v in mlm_head_variables(task.masked_lm_head).items()}
    values[HEAD_DENSE_WEIGHT] = values[HEAD_DENSE_WEIGHT].T  # Keras kernels are [in, out]
    return values
