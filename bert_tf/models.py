"""BERT backbones from checkpoints, task heads, freezing, and our saved-model format.

The backbone is keras-hub's `BertBackbone`. keras-hub fixes its feed-forward activation to the
tanh approximation of GELU; a Hugging Face config with `hidden_act: "gelu"` means the exact (erf)
GELU, so `set_feedforward_activation` puts back what the checkpoint's config says.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import keras
import keras_hub

from bert_tf.errors import InputError
from bert_tf.io_utils import atomic_directory
from bert_tf.tokenization import WordPieceTokenizer

SAVED_MODEL_META = "bert_tf_model.json"
SAVED_MODEL_WEIGHTS = "model.weights.h5"
SAVED_FORMAT_VERSION = 1
EMBEDDING_LAYERS = ("token_embedding", "position_embedding", "segment_embedding", "embeddings_layer_norm")

# Hugging Face `hidden_act` values -> (activation name, approximate GELU?)
HF_ACTIVATIONS = {
    "gelu": "gelu_exact",
    "gelu_python": "gelu_exact",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "relu": "relu",
}


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


def _load_json(path: str) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"not valid JSON ({e})", path) from None
    if not isinstance(value, dict):
        raise InputError("expected a JSON object", path)
    return value


def find_checkpoint(path: str) -> Checkpoint:
    """Recognise a checkpoint: a Hugging Face directory, a TF1 checkpoint (directory or prefix), a keras-hub
    preset, or a bert-tf model."""
    from bert_tf import checkpoints

    if not os.path.exists(path) and os.path.isfile(path + ".index"):
        directory = os.path.dirname(os.path.abspath(path))
        found = checkpoints.tf1_checkpoint_from_dir(directory)
        return Checkpoint("tf1", checkpoints.resolve_tf1_prefix(path), found.activation, found.config)
    if not os.path.exists(path):
        raise InputError("model directory does not exist", path)
    if not os.path.isdir(path):
        raise InputError("model path is not a directory", path)
    if os.path.isfile(os.path.join(path, SAVED_MODEL_META)):
        meta = _load_json(os.path.join(path, SAVED_MODEL_META))
        return Checkpoint("bert_tf", path, meta.get("activation", "gelu_tanh"), meta)
    config_path = os.path.join(path, "config.json")
    if not os.path.isfile(config_path):
        if os.path.isfile(os.path.join(path, "bert_config.json")):
            return checkpoints.tf1_checkpoint_from_dir(path)
        raise InputError(
            "not a model directory: expected a Hugging Face directory (config.json + model.safetensors, "
            "tf_model.h5 or pytorch_model.bin), a TensorFlow 1 checkpoint (bert_config.json + vocab.txt + "
            "bert_model.ckpt.*), a keras-hub preset, or a model saved by bert-tf",
            path,
        )
    config = _load_json(config_path)
    if os.path.isfile(os.path.join(path, "metadata.json")) and "class_name" in config:
        return Checkpoint("keras_hub", path, "gelu_tanh", config.get("config", {}))
    checkpoints.validate_bert_config(config, config_path)
    act = config.get("hidden_act", "gelu")
    if act not in HF_ACTIVATIONS:
        raise InputError(f"unsupported hidden_act {act!r} (supported: {', '.join(HF_ACTIVATIONS)})", config_path)
    checkpoints.hf_weights_path(path)
    if os.path.isfile(os.path.join(path, "vocab.txt")):
        checkpoints.check_vocab_file(os.path.join(path, "vocab.txt"), config["vocab_size"], config_path)
    return Checkpoint("hf", path, HF_ACTIVATIONS[act], config)


def set_feedforward_activation(backbone: keras_hub.models.BertBackbone, activation: str) -> None:
    """Make every encoder layer's feed-forward network use `activation` (a key of ACTIVATIONS)."""
    fn = ACTIVATIONS[activation]
    for layer in backbone.transformer_layers:
        layer.activation = fn
        layer._feedforward_intermediate_dense.activation = fn


def load_backbone(checkpoint: Checkpoint, dropout: Optional[float] = None) -> keras_hub.models.BertBackbone:
    """Load the pretrained backbone of a checkpoint with its weights and the right activation."""
    from bert_tf import checkpoints

    if checkpoint.kind in ("hf", "tf1"):
        return checkpoints.load_pretrained_backbone(checkpoint, dropout)
    if checkpoint.kind == "bert_tf":
        return checkpoints.load_saved_backbone(checkpoint, dropout)
    kwargs: Dict[str, Any] = {}
    if dropout is not None:
        kwargs["dropout"] = float(dropout)
    try:
        backbone = keras_hub.models.BertBackbone.from_preset(checkpoint.path, **kwargs)
    except InputError:
        raise
    except Exception as e:  # keras-hub raises assorted errors for broken checkpoints
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot load the BERT weights ({type(e).__name__}: {message})", checkpoint.path) from None
    set_feedforward_activation(backbone, checkpoint.activation)
    return backbone


def check_vocab_matches(backbone: keras_hub.models.BertBackbone, tokenizer: WordPieceTokenizer) -> None:
    """Refuse a vocabulary larger than the model's embedding table."""
    if tokenizer.vocab_size > backbone.vocabulary_size:
        raise InputError(
            f"the vocabulary has {tokenizer.vocab_size} entries but the model's embedding table "
            f"has {backbone.vocabulary_size}: vocabulary and weights do not belong together",
            tokenizer.source,
        )


def backbone_inputs() -> Dict[str, keras.KerasTensor]:
    """Symbolic inputs of a BERT backbone."""
    return {
        name: keras.Input(shape=(None,), dtype="int32", name=name)
        for name in ("token_ids", "padding_mask", "segment_ids")
    }


def _classification_layers(features: keras.KerasTensor, num_labels: int, dropout: float) -> keras.KerasTensor:
    """Dropout then a dense layer with exactly one float32 logit per label."""
    x = keras.layers.Dropout(dropout, name="classifier_dropout")(features)
    return keras.layers.Dense(
        num_labels,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        dtype="float32",
        name="classifier",
    )(x)


def build_token_classifier(backbone: keras.Model, num_labels: int, dropout: float) -> keras.Model:
    """BERT + dropout + a per-token dense layer with one logit per label."""
    backbone.get_layer("pooled_dense").trainable = False  # unused by token classification
    inputs = backbone_inputs()
    logits = _classification_layers(backbone(inputs)["sequence_output"], num_labels, dropout)
    return keras.Model(inputs, logits, name="bert_token_classifier")


def build_sequence_classifier(backbone: keras.Model, num_labels: int, dropout: float) -> keras.Model:
    """BERT pooled [CLS] output + dropout + a dense layer with exactly one logit per label."""
    inputs = backbone_inputs()
    logits = _classification_layers(backbone(inputs)["pooled_output"], num_labels, dropout)
    return keras.Model(inputs, logits, name="bert_sequence_classifier")


HEADS = {"token": build_token_classifier, "sequence": build_sequence_classifier}


def freeze_layers(backbone: keras_hub.models.BertBackbone, freeze: int) -> List[str]:
    """Freeze nothing (0), the embeddings (-1), or the embeddings and the first `freeze` encoder layers."""
    if freeze == 0:
        return []
    if freeze < -1 or freeze > backbone.num_layers:
        raise InputError(f"--freeze_layers={freeze}: must be -1, 0 or 1..{backbone.num_layers}")
    names = list(EMBEDDING_LAYERS) + [f"transformer_layer_{i}" for i in range(max(freeze, 0))]
    for name in names:
        backbone.get_layer(name).trainable = False
    return names


def is_head_variable(variable: keras.Variable) -> bool:
    """True for the task head's weights (the layers outside the backbone)."""
    return variable.path.startswith("classifier")


@dataclasses.dataclass
class TaskModel:
    """A fine-tunable model with everything needed to use it again."""

    model: keras.Model
    backbone: keras_hub.models.BertBackbone
    tokenizer: WordPieceTokenizer
    labels: List[str]
    head: str  # "token" | "sequence"
    activation: str
    dropout: float
    meta: Dict[str, Any]


def build_task_model(
    checkpoint: Checkpoint,
    tokenizer: WordPieceTokenizer,
    labels: Sequence[str],
    head: str,
    dropout: float,
    encoder_dropout: Optional[float] = None,
) -> TaskModel:
    """A new task model on top of a pretrained checkpoint (or a bert-tf model's backbone)."""
    if checkpoint.kind == "bert_tf":
        saved = load_saved_model(checkpoint.path)
        backbone = saved.backbone
    else:
        backbone = load_backbone(checkpoint, encoder_dropout)
    check_vocab_matches(backbone, tokenizer)
    model = HEADS[head](backbone, len(labels), dropout)
    return TaskModel(model, backbone, tokenizer, list(labels), head, checkpoint.activation, dropout, {})


def save_model(task: TaskModel, directory: str, extra: Optional[Dict[str, Any]] = None) -> None:
    """Save weights, config, labels and tokenizer into `directory`, replacing it atomically."""
    meta = {
        "format_version": SAVED_FORMAT_VERSION,
        "head": task.head,
        "labels": task.labels,
        "activation": task.activation,
        "dropout": task.dropout,
        "backbone": task.backbone.get_config(),
        "do_lower_case": task.tokenizer.lowercase,
        **task.meta,
        **(extra or {}),
    }
    meta["backbone"].pop("dtype", None)
    with atomic_directory(directory) as tmp:
        task.model.save_weights(os.path.join(tmp, SAVED_MODEL_WEIGHTS))
        task.tokenizer.save(tmp)
        with open(os.path.join(tmp, SAVED_MODEL_META), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2, ensure_ascii=False)


def _backbone_from_config(config: Dict[str, Any], activation: str) -> keras_hub.models.BertBackbone:
    config = {k: v for k, v in config.items() if k not in ("name", "trainable", "dtype")}
    backbone = keras_hub.models.BertBackbone(**config)
    set_feedforward_activation(backbone, activation)
    return backbone


def resolve_model_dir(path: str) -> str:
    """The directory holding a saved bert-tf model: `path` itself or its `model/` subdirectory."""
    for candidate in (path, os.path.join(path, "model")):
        if os.path.isfile(os.path.join(candidate, SAVED_MODEL_META)):
            return candidate
    raise InputError(f"no saved bert-tf model here (no {SAVED_MODEL_META})", path)


def load_saved_model(path: str) -> TaskModel:
    """Load a model saved by `save_model` (for prediction or further training)."""
    directory = resolve_model_dir(path)
    meta = _load_json(os.path.join(directory, SAVED_MODEL_META))
    try:
        backbone = _backbone_from_config(meta["backbone"], meta["activation"])
        labels = list(meta["labels"])
        model = HEADS[meta["head"]](backbone, len(labels), float(meta["dropout"]))
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{SAVED_MODEL_META} is incomplete or invalid ({e})", directory) from None
    weights = os.path.join(directory, SAVED_MODEL_WEIGHTS)
    if not os.path.isfile(weights):
        raise InputError(f"missing {SAVED_MODEL_WEIGHTS}", directory)
    try:
        model.load_weights(weights)
    except Exception as e:  # h5py/keras raise many types for damaged files
        raise InputError(f"cannot read the weights ({type(e).__name__}: {str(e).splitlines()[0]})", weights) from None
    tokenizer = WordPieceTokenizer.from_model_dir(directory, meta.get("do_lower_case"))
    return TaskModel(model, backbone, tokenizer, labels, meta["head"], meta["activation"], float(meta["dropout"]), meta)


def describe_backbone(backbone: keras_hub.models.BertBackbone) -> str:
    """A one-line summary of a backbone's shape."""
    return (
        f"{backbone.num_layers} layers, hidden {backbone.hidden_dim}, {backbone.num_heads} heads, "
        f"vocabulary {backbone.vocabulary_size}, max positions {backbone.max_sequence_length}"
    )


def make_random_hf_checkpoint(directory: str, vocab: Sequence[str], hidden: int = 32, layers: int = 2,
                              heads: int = 2, intermediate: int = 64, max_positions: int = 128,
                              lowercase: bool = True, seed: int = 0, hidden_act: str = "gelu") -> str:
    """Write a tiny randomly initialised BERT as a Hugging Face directory (for tests and benchmarks)."""
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    config = {
        "model_type": "bert", "vocab_size": len(vocab), "hidden_size": hidden, "num_hidden_layers": layers,
        "num_attention_heads": heads, "intermediate_size": intermediate, "max_position_embeddings": max_positions,
        "type_vocab_size": 2, "hidden_act": hidden_act, "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "layer_norm_eps": 1e-12,
    }

    def normal(*shape: int) -> "np.ndarray":
        return (rng.standard_normal(shape) * 0.02).astype("float32")

    tensors = {
        "embeddings.word_embeddings.weight": normal(len(vocab), hidden),
        "embeddings.position_embeddings.weight": normal(max_positions, hidden),
        "embeddings.token_type_embeddings.weight": normal(2, hidden),
        "embeddings.LayerNorm.weight": np.ones(hidden, "float32"),
        "embeddings.LayerNorm.bias": np.zeros(hidden, "float32"),
        "pooler.dense.weight": normal(hidden, hidden),
        "pooler.dense.bias": np.zeros(hidden, "float32"),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            tensors[p + f"attention.self.{name}.weight"] = normal(hidden, hidden)
            tensors[p + f"attention.self.{name}.bias"] = np.zeros(hidden, "float32")
        tensors[p + "attention.output.dense.weight"] = normal(hidden, hidden)
        tensors[p + "attention.output.dense.bias"] = np.zeros(hidden, "float32")
        tensors[p + "attention.output.LayerNorm.weight"] = np.ones(hidden, "float32")
        tensors[p + "attention.output.LayerNorm.bias"] = np.zeros(hidden, "float32")
        tensors[p + "intermediate.dense.weight"] = normal(intermediate, hidden)
        tensors[p + "intermediate.dense.bias"] = np.zeros(intermediate, "float32")
        tensors[p + "output.dense.weight"] = normal(hidden, intermediate)
        tensors[p + "output.dense.bias"] = np.zeros(hidden, "float32")
        tensors[p + "output.LayerNorm.weight"] = np.ones(hidden, "float32")
        tensors[p + "output.LayerNorm.bias"] = np.zeros(hidden, "float32")
    save_file(tensors, os.path.join(directory, "model.safetensors"))
    with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(directory, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    with open(os.path.join(directory, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"do_lower_case": lowercase}, f)
    return directory


def tokenizer_dir(checkpoint: Checkpoint) -> str:
    """The directory holding a checkpoint's vocabulary."""
    if checkpoint.kind == "bert_tf":
        return resolve_model_dir(checkpoint.path)
    if checkpoint.kind == "tf1" and not os.path.isdir(checkpoint.path):
        return os.path.dirname(os.path.abspath(checkpoint.path))
    return checkpoint.path


def load_pretrained(bert_model: Optional[str], bert_config_file: Optional[str] = None,
                    vocab_file: Optional[str] = None, init_checkpoint: Optional[str] = None,
                    do_lower_case: Optional[bool] = None) -> Tuple[Checkpoint, WordPieceTokenizer]:
    """The checkpoint named by --bert_model (any format) or by NVIDIA's trio, with its tokenizer."""
    from bert_tf import checkpoints

    trio = (bert_config_file, vocab_file, init_checkpoint)
    if any(trio):
        if bert_model:
            raise InputError("give either --bert_model or --bert_config_file/--vocab_file/--init_checkpoint")
        if not all(trio):
            raise InputError("--bert_config_file, --vocab_file and --init_checkpoint go together")
        checkpoint = checkpoints.checkpoint_from_trio(bert_config_file, vocab_file, init_checkpoint)
        return checkpoint, checkpoints.trio_tokenizer(vocab_file, do_lower_case)
    if not bert_model:
        raise InputError("--bert_model (or --bert_config_file, --vocab_file and --init_checkpoint) is required")
    checkpoint = find_checkpoint(bert_model)
    return checkpoint, WordPieceTokenizer.from_model_dir(tokenizer_dir(checkpoint), do_lower_case)


def max_positions(checkpoint: Checkpoint) -> Optional[int]:
    """How many positions the checkpoint's position embeddings hold (None if unknown)."""
    config = checkpoint.config
    if checkpoint.kind == "bert_tf":
        config = config.get("backbone", {})
    for key in ("max_position_embeddings", "max_sequence_length"):
        if isinstance(config.get(key), int):
            return config[key]
    return None
