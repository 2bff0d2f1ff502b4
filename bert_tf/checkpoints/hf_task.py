"""Hugging Face task models: a bert-tf token or sequence classifier written as a transformers
BertForTokenClassification / BertForSequenceClassification directory (or a BertModel with the classifier beside it
when it does not read the pooler), and such a directory read back as a bert-tf task model."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

import numpy as np

from bert_tf import models
from bert_tf.checkpoints import encoder, huggingface
from bert_tf.checkpoints.names import backbone_state
from bert_tf.errors import InputError
from bert_tf.io_utils import atomic_directory, load_json
from bert_tf.tokenization import WordPieceTokenizer

HF_ARCHITECTURES = {"token": "BertForTokenClassification", "sequence": "BertForSequenceClassification"}
HF_ENCODER_ONLY = "BertModel"  # the architecture of a sequence classifier that does not read the pooler
# Which hidden state a non-pooler sequence classifier reads, in words for config.json.
HF_POOLING_POSITIONS = {"cls": "0 ([CLS])", "mention": "sequence_length // 2 (the mention's first token)"}


def hf_config(task: models.TaskModel) -> Dict[str, Any]:
    """The transformers config.json of a task model."""
    pooled_by_us = task.head == "sequence" and task.pooling != "pooler"
    pooling = {"bert_tf_pooling": task.pooling, "bert_tf_pooling_position": HF_POOLING_POSITIONS[task.pooling]} \
        if pooled_by_us else {}
    return {
        "architectures": [HF_ENCODER_ONLY if pooled_by_us else HF_ARCHITECTURES[task.head]],
        **pooling,
        **huggingface.hf_encoder_config(task.backbone, task.activation, task.tokenizer.pad_id),
        "classifier_dropout": float(task.dropout),
        "id2label": {str(i): label for i, label in enumerate(task.labels)},
        "label2id": {label: i for i, label in enumerate(task.labels)},
        "num_labels": len(task.labels),
    }


def hf_state_dict(task: models.TaskModel) -> Dict[str, np.ndarray]:
    """The task model's weights under transformers' names and layouts ([out, in] dense weights).

    A token classifier has no pooler in transformers (BertForTokenClassification), so none is written.
    """
    state = backbone_state(task.backbone, include_pooler=task.head == "sequence")
    tensors = {"bert." + key: value.astype("float32") for key, value in state.items()}
    classifier = task.model.get_layer("classifier")
    tensors["classifier.weight"] = np.ascontiguousarray(np.transpose(classifier.kernel.numpy())).astype("float32")
    tensors["classifier.bias"] = np.asarray(classifier.bias.numpy()).astype("float32")
    return tensors


def write_hf_tokenizer(task: models.TaskModel, directory: str) -> None:
    """vocab.txt and tokenizer_config.json for transformers' BertTokenizer."""
    huggingface.write_hf_tokenizer_files(task.tokenizer, task.backbone.max_sequence_length, directory)


def write_hf_folder(task: models.TaskModel, directory: str) -> None:
    """Write config.json, model.safetensors and the tokenizer files of `task` into the existing `directory`."""
    from safetensors.numpy import save_file

    with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as f:
        json.dump(hf_config(task), f, indent=2, ensure_ascii=False)
    save_file(hf_state_dict(task), os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
    write_hf_tokenizer(task, directory)


def export_hf(task: models.TaskModel, output_dir: str) -> None:
    """Write a transformers directory (config, safetensors weights, tokenizer files), replacing it atomically."""
    with atomic_directory(output_dir) as tmp:
        write_hf_folder(task, tmp)


def is_hf_task_folder(directory: str) -> bool:
    """True when `directory` holds a Hugging Face config.json naming a token or sequence classification
    architecture (or a BertModel with bert-tf's pooling) and its weights."""
    try:
        with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return False
    architecture = (config.get("architectures") or [""])[0] if isinstance(config, dict) else ""
    known = architecture in HF_ARCHITECTURES.values() or (
        architecture == HF_ENCODER_ONLY and config.get("bert_tf_pooling") in HF_POOLING_POSITIONS)
    return known and any(os.path.isfile(os.path.join(directory, name))
                         for name in ("model.safetensors", "pytorch_model.bin", "tf_model.h5"))


def load_hf_task_weights(task: models.TaskModel, directory: str) -> None:
    """Copy classifier.weight / classifier.bias of a Hugging Face task checkpoint into `task`'s head."""
    source = huggingface.hf_weight_source(directory)
    layer = task.model.get_layer("classifier")
    expected = {"classifier.weight": (len(task.labels), task.backbone.hidden_dim),
                "classifier.bias": (len(task.labels),)}
    for key, shape in expected.items():
        stored = source.tensors.get(key)
        if stored is None:
            raise InputError(f"no {key}: not a BertForTokenClassification / BertForSequenceClassification "
                             "checkpoint", source.description)
        if stored.shape != shape:
            raise InputError(f"{stored.name} has shape {list(stored.file_shape)}, expected {list(shape)} "
                             f"({len(task.labels)} labels)", source.description)
    layer.kernel.assign(np.transpose(source.tensors["classifier.weight"].read()))
    layer.bias.assign(source.tensors["classifier.bias"].read())


def _hf_labels(config: Dict[str, Any], config_path: str) -> List[str]:
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        raise InputError("config has no id2label", config_path)
    try:
        pairs = sorted((int(i), str(label)) for i, label in id2label.items())
    except ValueError:
        raise InputError("id2label keys must be integers", config_path) from None
    if [i for i, _ in pairs] != list(range(len(pairs))):
        raise InputError("id2label ids must be 0..N-1", config_path)
    return [label for _, label in pairs]


def load_hf_task_model(directory: str, do_lower_case: Optional[bool] = None,
                       dropout: Optional[float] = None) -> models.TaskModel:
    """A bert-tf task model from a Hugging Face BertForTokenClassification / BertForSequenceClassification
    directory (such as one written by `export_hf`), classifier weights included."""
    config_path = os.path.join(directory, "config.json")
    if not os.path.isfile(config_path):
        raise InputError("not a Hugging Face directory (config.json + weights)", directory)
    checkpoint = huggingface.hf_checkpoint(directory, load_json(config_path), config_path)
    architecture = (checkpoint.config.get("architectures") or [""])[0]
    heads = {arch: head for head, arch in HF_ARCHITECTURES.items()}
    pooling = str(checkpoint.config.get("bert_tf_pooling", "pooler"))
    if architecture == HF_ENCODER_ONLY and pooling in HF_POOLING_POSITIONS:
        heads[HF_ENCODER_ONLY] = "sequence"
    if architecture not in heads:
        raise InputError(f"architectures is {architecture!r}; expected one of {', '.join(heads)} (or {HF_ENCODER_ONLY} "
                         "with bert_tf_pooling)", config_path)
    labels = _hf_labels(checkpoint.config, config_path)
    tokenizer = WordPieceTokenizer.from_model_dir(directory, do_lower_case)
    if dropout is None:
        config = checkpoint.config
        dropout = float(config.get("classifier_dropout") or config.get("hidden_dropout_prob", 0.1))
    head = heads[architecture]
    backbone = encoder.load_pretrained_backbone(checkpoint, task_head=head)
    pooling = pooling if head == "sequence" else "pooler"
    task = models.new_task_model(backbone, tokenizer, labels, head, checkpoint.activation, dropout, pooling)
    load_hf_task_weights(task, directory)
    return task

