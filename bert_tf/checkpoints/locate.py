"""What a --bert_model names and which format a folder holds: a local path, a Hugging Face Hub id (resolved in
the Hub cache by bert_tf.hub), a keras-hub preset handle; a Hugging Face directory, a TF1 checkpoint (folder or
prefix), a keras-hub preset, or a model saved by bert-tf; and the checkpoint's tokenizer."""

from __future__ import annotations

import os
from typing import Dict, Optional, Tuple

from bert_tf.checkpoints import huggingface, presets, tf1
from bert_tf.checkpoints.bert_tf_format import SAVED_MODEL_META, resolve_model_dir
from bert_tf.checkpoints.checkpoint import Checkpoint
from bert_tf.errors import InputError
from bert_tf.io_utils import load_json
from bert_tf.tokenization import WordPieceTokenizer


def _holds_model(directory: str) -> bool:
    """True when `directory` holds a model's config (Hugging Face, TF1 or bert-tf)."""
    return any(os.path.isfile(os.path.join(directory, name))
               for name in ("config.json", "bert_config.json", SAVED_MODEL_META))


def find_checkpoint(path: str) -> Checkpoint:
    """Recognise a checkpoint: a Hugging Face directory, a TF1 checkpoint (directory or prefix), a keras-hub
    preset, or a bert-tf model."""
    if not os.path.exists(path) and os.path.isfile(path + ".index"):
        directory = os.path.dirname(os.path.abspath(path))
        found = tf1.tf1_checkpoint_from_dir(directory)
        return Checkpoint("tf1", tf1.resolve_tf1_prefix(path), found.activation, found.config)
    if not os.path.exists(path):
        raise InputError("model directory does not exist", path)
    if not os.path.isdir(path):
        raise InputError("model path is not a directory", path)
    if not _holds_model(path) and _holds_model(os.path.join(path, "model")):
        return find_checkpoint(os.path.join(path, "model"))  # a run's output folder: its model/ (any format)
    if os.path.isfile(os.path.join(path, SAVED_MODEL_META)):
        meta = load_json(os.path.join(path, SAVED_MODEL_META))
        return Checkpoint("bert_tf", path, meta.get("activation", "gelu_tanh"), meta)
    config_path = os.path.join(path, "config.json")
    if not os.path.isfile(config_path):
        if os.path.isfile(os.path.join(path, "bert_config.json")):
            return tf1.tf1_checkpoint_from_dir(path)
        raise InputError(
            "not a model directory: expected a Hugging Face directory (config.json + model.safetensors, "
            "tf_model.h5 or pytorch_model.bin), a TensorFlow 1 checkpoint (bert_config.json + vocab.txt + "
            "bert_model.ckpt.*), a keras-hub preset, or a model saved by bert-tf",
            path,
        )
    config = load_json(config_path)
    if os.path.isfile(os.path.join(path, "metadata.json")) and "class_name" in config:
        return Checkpoint("keras_hub", path, "gelu_tanh", config.get("config", {}))
    return huggingface.hf_checkpoint(path, config, config_path)


def tokenizer_dir(checkpoint: Checkpoint) -> str:
    """The directory holding a checkpoint's vocabulary."""
    if checkpoint.kind == "bert_tf":
        return resolve_model_dir(checkpoint.path)
    if checkpoint.kind == "tf1" and not os.path.isdir(checkpoint.path):
        return os.path.dirname(os.path.abspath(checkpoint.path))
    return checkpoint.path


def checkpoint_tokenizer(checkpoint: Checkpoint, do_lower_case: Optional[bool] = None) -> WordPieceTokenizer:
    """The tokenizer of a checkpoint: a keras-hub preset's saved BertTokenizer, else the vocab.txt or
    tokenizer.json of its directory."""
    if checkpoint.kind == "keras_hub" and os.path.isfile(os.path.join(checkpoint.path,
                                                                      *presets.KERAS_HUB_VOCABULARY)):
        return presets.keras_hub_tokenizer(checkpoint.path, do_lower_case)
    return WordPieceTokenizer.from_model_dir(tokenizer_dir(checkpoint), do_lower_case)


def load_pretrained(bert_model: Optional[str], bert_config_file: Optional[str] = None,
                    vocab_file: Optional[str] = None, init_checkpoint: Optional[str] = None,
                    do_lower_case: Optional[bool] = None, revision: Optional[str] = None,
                    chief: bool = True) -> Tuple[Checkpoint, WordPieceTokenizer]:
    """The checkpoint named by --bert_model (a path in any format, a Hugging Face Hub id at `revision`, a
    keras-hub preset handle) or by NVIDIA's trio, with its tokenizer. `chief`: whether this process may
    download (under a multi-worker run the others wait for it)."""
    trio = (bert_config_file, vocab_file, init_checkpoint)
    if any(trio):
        if bert_model:
            raise InputError("give either --bert_model or --bert_config_file/--vocab_file/--init_checkpoint")
        if not all(trio):
            raise InputError("--bert_config_file, --vocab_file and --init_checkpoint go together")
        checkpoint = tf1.checkpoint_from_trio(bert_config_file, vocab_file, init_checkpoint)
        return checkpoint, tf1.trio_tokenizer(vocab_file, do_lower_case)
    if not bert_model:
        raise InputError("--bert_model (or --bert_config_file, --vocab_file and --init_checkpoint) is required")
    path, record = locate_model(bert_model, revision, chief)
    checkpoint = find_checkpoint(path)
    checkpoint.hub = record
    return checkpoint, checkpoint_tokenizer(checkpoint, do_lower_case)


def locate_model(bert_model: str, revision: Optional[str] = None, chief: bool = True,
                 ) -> Tuple[str, Optional[Dict[str, str]]]:
    """The local folder of --bert_model: a path as it is; a keras-hub preset handle fetched by keras-hub; a
    Hugging Face Hub id resolved in the Hub cache (downloaded by the chief when missing), with its record."""
    from bert_tf import hub

    if hub.is_preset_handle(bert_model):
        return hub.resolve_preset(bert_model), None
    if hub.is_hub_id(bert_model):
        found = hub.resolve_hub_model(hub.hub_id_of(bert_model), revision, chief)
        return found.path, found.record()
    if revision:
        raise InputError(f"--revision={revision} pins a Hugging Face Hub id; --bert_model is a local path", bert_model)
    return bert_model, None
