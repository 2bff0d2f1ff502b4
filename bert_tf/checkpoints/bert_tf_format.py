"""bert-tf's own saved models. A saved model is a Hugging Face task folder (config.json with id2label and
label2id, model.safetensors under transformers' BertForTokenClassification / BertForSequenceClassification names,
vocab.txt, tokenizer_config.json) that transformers loads as it is, with bert_tf_model.json beside it (head,
labels, activation, dropout, pooling, the backbone's config, and what the job adds: max_len, context, decoding,
temperature, the run's settings). Folders saved before that format (model.weights.h5) still load, and so does a
Hugging Face token or sequence classification folder written by another tool (its id2label gives the labels)."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, Optional

import keras_hub

from bert_tf import lifecycle, models
from bert_tf.checkpoints import hf_task
from bert_tf.checkpoints.checkpoint import Checkpoint, set_feedforward_activation
from bert_tf.errors import InputError, first_line
from bert_tf.io_utils import atomic_directory, load_json
from bert_tf.tokenization import WordPieceTokenizer

SAVED_MODEL_META = "bert_tf_model.json"  # what marks a model saved by bert-tf
SAVED_MODEL_WEIGHTS = "model.weights.h5"  # format 1 (Keras weights); format 2 writes model.safetensors
SAVED_FORMAT_VERSION = 2


def _holds_saved_model(directory: str) -> bool:
    """A bert-tf model, or a Hugging Face token / sequence classification folder."""
    if os.path.isfile(os.path.join(directory, SAVED_MODEL_META)):
        return True
    return hf_task.is_hf_task_folder(directory)


def resolve_model_dir(path: str) -> str:
    """The directory holding a saved model (bert-tf's, or a Hugging Face token / sequence classification folder):
    `path` itself or its `model/` subdirectory."""
    for candidate in (path, os.path.join(path, "model")):
        if _holds_saved_model(candidate):
            return candidate
    raise InputError(f"no saved model here (neither {SAVED_MODEL_META} nor a Hugging Face config.json of a "
                     "BertForTokenClassification / BertForSequenceClassification)", path)


def saved_model_under(path: Optional[str]) -> Optional[str]:
    """The saved bert-tf model at `path`: the folder itself, its `model/` (a run's output folder), or the run
    folder of a `model.ckpt-N`-style prefix inside one; None when there is none."""
    if not path:
        return None
    candidates = [path, os.path.join(path, "model")]
    if os.path.basename(path).startswith("model.ckpt"):
        candidates.append(os.path.join(os.path.dirname(path), "model"))
    for candidate in candidates:
        if os.path.isdir(candidate) and _holds_saved_model(candidate):
            return candidate
    return None


def save_model(task: models.TaskModel, directory: str, extra: Optional[Dict[str, Any]] = None) -> None:
    """Save `task` as a Hugging Face task folder with bert_tf_model.json beside it, replacing `directory`
    atomically."""
    meta = {
        "format_version": SAVED_FORMAT_VERSION,
        "head": task.head,
        "labels": task.labels,
        "activation": task.activation,
        "dropout": task.dropout,
        "pooling": task.pooling,
        "backbone": task.backbone.get_config(),
        "do_lower_case": task.tokenizer.lowercase,
        **task.meta,
        **(extra or {}),
    }
    meta["backbone"].pop("dtype", None)
    lifecycle.enter_phase("save")
    with atomic_directory(directory) as tmp:
        hf_task.write_hf_folder(task, tmp)
        with open(os.path.join(tmp, SAVED_MODEL_META), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2, ensure_ascii=False)


def _backbone_from_config(config: Dict[str, Any], activation: str) -> keras_hub.models.BertBackbone:
    config = {k: v for k, v in config.items() if k not in ("name", "trainable", "dtype")}
    backbone = keras_hub.models.BertBackbone(**config)
    set_feedforward_activation(backbone, activation)
    return backbone


def load_saved_model(path: str) -> models.TaskModel:
    """Load a model saved by `save_model`, or a Hugging Face token / sequence classification folder (for
    prediction or further training)."""
    directory = resolve_model_dir(path)
    meta_path = os.path.join(directory, SAVED_MODEL_META)
    meta = load_json(meta_path) if os.path.isfile(meta_path) else {}
    if not os.path.isfile(os.path.join(directory, SAVED_MODEL_WEIGHTS)):
        task = hf_task.load_hf_task_model(directory, meta.get("do_lower_case"), meta.get("dropout"))
        return dataclasses.replace(task, meta={**task.meta, **meta})
    return _load_keras_weights_model(directory, meta)


def _load_keras_weights_model(directory: str, meta: Dict[str, Any]) -> models.TaskModel:
    """A format-1 saved model (model.weights.h5)."""
    try:
        backbone = _backbone_from_config(meta["backbone"], meta["activation"])
        labels = list(meta["labels"])
        pooling = str(meta.get("pooling", "pooler"))  # models saved before pooling was a choice used the pooler
        model = models.build_head(meta["head"], backbone, len(labels), float(meta["dropout"]), pooling)
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{SAVED_MODEL_META} is incomplete or invalid ({e})", directory) from None
    weights = os.path.join(directory, SAVED_MODEL_WEIGHTS)
    try:
        model.load_weights(weights)
    except Exception as e:  # h5py/keras raise many types for damaged files
        raise InputError(f"cannot read the weights ({type(e).__name__}: {first_line(e)})", weights) from None
    tokenizer = WordPieceTokenizer.from_model_dir(directory, meta.get("do_lower_case"))
    return models.TaskModel(model, backbone, tokenizer, labels, meta["head"], meta["activation"],
                            float(meta["dropout"]), meta, pooling)


def load_saved_backbone(checkpoint: Checkpoint, dropout: Optional[float] = None) -> keras_hub.models.BertBackbone:
    """The backbone of a model saved by bert-tf (rebuilt with `dropout` if one is given)."""
    backbone = load_saved_model(checkpoint.path).backbone
    if dropout is None or float(dropout) == float(backbone.dropout):
        return backbone
    config = {k: v for k, v in backbone.get_config().items() if k not in ("name", "trainable", "dtype")}
    config["dropout"] = float(dropout)
    rebuilt = keras_hub.models.BertBackbone(**config)
    rebuilt.set_weights(backbone.get_weights())
    set_feedforward_activation(rebuilt, checkpoint.activation)
    return rebuilt
