"""Task models on a BERT backbone: the classification heads, freezing, and the TaskModel they make (loading and
saving them is bert_tf.checkpoints' business)."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Dict, List, Optional, Sequence

import keras
import keras_hub

from bert_tf.batch_format import FEATURE_KEYS
from bert_tf.errors import InputError
from bert_tf.tokenization import WordPieceTokenizer

EMBEDDING_LAYERS = ("token_embedding", "position_embedding", "segment_embedding", "embeddings_layer_norm")


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
    return {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in FEATURE_KEYS}


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


@keras.saving.register_keras_serializable(package="bert_tf")
class TokenAt(keras.layers.Layer):
    """The hidden state at one position of every sequence: the first ("first") or the middle ("middle",
    index length // 2, where the consensus layout puts the mention's first token)."""

    def __init__(self, position: str, **kwargs: Any):
        super().__init__(**kwargs)
        if position not in ("first", "middle"):
            raise ValueError(f"position must be 'first' or 'middle', got {position!r}")
        self.position = position

    def call(self, sequence: Any) -> Any:
        """[batch, length, hidden] -> [batch, hidden]."""
        index = 0 if self.position == "first" else keras.ops.shape(sequence)[1] // 2
        return keras.ops.take(sequence, index, axis=1)

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]) -> tuple:
        """Drops the length axis."""
        return (input_shape[0], input_shape[2])

    def get_config(self) -> Dict[str, Any]:
        """The layer's config (with its position)."""
        return {**super().get_config(), "position": self.position}


# How a sequence classifier pools the backbone's output into one vector: the trained tanh pooler over [CLS]
# (BERT's and the published classifier's choice), the raw [CLS] state, or the mention's first token.
POOLINGS = ("pooler", "cls", "mention")
_TOKEN_POSITIONS = {"cls": "first", "mention": "middle"}


def check_pooling(pooling: str) -> str:
    """`pooling` if it is one of POOLINGS, else InputError."""
    if pooling not in POOLINGS:
        raise InputError(f"pooling {pooling!r}: must be one of {', '.join(POOLINGS)}")
    return pooling


def build_sequence_classifier(backbone: keras.Model, num_labels: int, dropout: float,
                              pooling: str = "pooler") -> keras.Model:
    """BERT pooled into one vector per sequence (see POOLINGS) + dropout + a dense layer with one logit per label.

    With any pooling but "pooler" the unused pooler weights are frozen, so the optimizer never sees them."""
    check_pooling(pooling)
    inputs = backbone_inputs()
    outputs = backbone(inputs)
    # Set both ways: a backbone reused from a saved model keeps the flag its earlier head gave it.
    backbone.get_layer("pooled_dense").trainable = pooling == "pooler"
    if pooling == "pooler":
        features = outputs["pooled_output"]
    else:
        features = TokenAt(_TOKEN_POSITIONS[pooling], name=f"{pooling}_pooling")(outputs["sequence_output"])
    logits = _classification_layers(features, num_labels, dropout)
    return keras.Model(inputs, logits, name="bert_sequence_classifier")


def build_head(head: str, backbone: keras.Model, num_labels: int, dropout: float, pooling: str = "pooler") -> keras.Model:
    """The task model of kind `head` ("token" or "sequence"; only a sequence classifier pools)."""
    if head == "token":
        if pooling != "pooler":
            raise InputError(f"pooling {pooling!r} applies to sequence classifiers only")
        return build_token_classifier(backbone, num_labels, dropout)
    if head == "sequence":
        return build_sequence_classifier(backbone, num_labels, dropout, pooling)
    raise InputError(f"unknown head {head!r}: must be token or sequence")


def fold_temperature(task: "TaskModel", temperature: float) -> None:
    """Make the model's logits those divided by `temperature` (by scaling its classifier layer) and record the
    temperature in the model's meta, so every probability computed from the model is the calibrated one."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    layer = task.model.get_layer("classifier")
    layer.kernel.assign(layer.kernel / temperature)
    layer.bias.assign(layer.bias / temperature)
    task.meta["temperature"] = float(task.meta.get("temperature", 1.0)) * float(temperature)


def weights_digest(model: keras.Model) -> str:
    """The SHA-256 (hex) of every weight of a model, backbone and head, by variable path, shape and float32 value:
    the same weights give the same digest whatever file they were read from."""
    digest = hashlib.sha256()
    for variable in model.weights:
        value = keras.ops.convert_to_numpy(variable.value).astype("float32")
        digest.update(f"{variable.path}:{value.shape};".encode("utf-8"))
        digest.update(value.tobytes())
    return digest.hexdigest()


def freeze_layers(backbone: keras_hub.models.BertBackbone, freeze: int, setting: str) -> List[str]:
    """Freeze nothing (0), the embeddings (-1), or the embeddings and the first `freeze` encoder layers."""
    if freeze == 0:
        return []
    if freeze < -1 or freeze > backbone.num_layers:
        raise InputError(f"--{setting}={freeze}: must be -1, 0 or 1..{backbone.num_layers}")
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
    pooling: str = "pooler"


def new_task_model(backbone: keras_hub.models.BertBackbone, tokenizer: WordPieceTokenizer, labels: Sequence[str],
                   head: str, activation: str, dropout: float, pooling: str = "pooler") -> TaskModel:
    """A task model with a new `head` on `backbone`, whose embedding table must fit `tokenizer`."""
    check_vocab_matches(backbone, tokenizer)
    model = build_head(head, backbone, len(labels), dropout, pooling)
    return TaskModel(model, backbone, tokenizer, list(labels), head, activation, dropout, {}, pooling)


def describe_backbone(backbone: keras_hub.models.BertBackbone) -> str:
    """A one-line summary of a backbone's shape."""
    return (
        f"{backbone.num_layers} layers, hidden {backbone.hidden_dim}, {backbone.num_heads} heads, "
        f"vocabulary {backbone.vocabulary_size}, max positions {backbone.max_sequence_length}"
    )
