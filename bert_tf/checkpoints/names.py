"""Canonical weight names: every reader maps the names of its file to one canonical form (Hugging Face PyTorch
names without the "bert." prefix, LayerNorm parameters as weight/bias, dense weights as [out, in]).

`backbone_slots` lists what a keras-hub BertBackbone needs under those names; `assign_backbone_weights` checks
that every one is present with the right shape (only the pooler may be missing) and fails with one InputError
naming the file and the tensors otherwise. The masked-LM and next-sentence heads have canonical names too
(Hugging Face's cls.predictions.* and cls.seq_relationship.*).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from bert_tf.cli import notice
from bert_tf.errors import InputError

Shape = Tuple[int, ...]

POOLER_KEYS = ("pooler.dense.weight", "pooler.dense.bias")
# The masked-LM head (canonical layout: dense weights [out, in]).
HEAD_DENSE_WEIGHT, HEAD_DENSE_BIAS = "cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias"
HEAD_NORM_WEIGHT, HEAD_NORM_BIAS = "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias"
HEAD_BIAS = "cls.predictions.bias"
HEAD_KEYS = (HEAD_DENSE_WEIGHT, HEAD_DENSE_BIAS, HEAD_NORM_WEIGHT, HEAD_NORM_BIAS, HEAD_BIAS)
# The next-sentence head: [2, hidden] and [2] in Hugging Face and TF1 alike (Google's output_weights are [out, in]).
# Logit 0: B follows A; 1: B is random (create_pretraining_data.py's next_sentence_labels).
NSP_WEIGHT, NSP_BIAS = "cls.seq_relationship.weight", "cls.seq_relationship.bias"
NSP_KEYS = (NSP_WEIGHT, NSP_BIAS)


def is_dense_weight(key: str) -> bool:
    """True for a dense layer's weight matrix (stored [out, in] by PyTorch, [in, out] by TensorFlow)."""
    return key.endswith(".weight") and "LayerNorm" not in key and "_embeddings." not in key


def to_keras_value(key: str, array: np.ndarray, variable_shape: Sequence[int]) -> np.ndarray:
    """A canonical array reshaped (and for dense weights transposed) to a Keras variable's shape."""
    value = np.transpose(array) if is_dense_weight(key) else array
    return np.reshape(value, tuple(variable_shape)).astype("float32")


def from_keras_value(key: str, value: np.ndarray, canonical_shape: Shape) -> np.ndarray:
    """A Keras variable's value in the canonical layout (the inverse of `to_keras_value`)."""
    if is_dense_weight(key):
        return np.ascontiguousarray(np.transpose(np.reshape(value, canonical_shape[::-1])))
    return np.reshape(value, canonical_shape)


@dataclasses.dataclass
class Slot:
    """One weight a backbone needs: canonical name, Keras variable, shape in the canonical layout."""

    key: str
    variable: Any
    shape: Shape


def _dense_slots(prefix: str, layer: Any, out_dim: int, in_dim: int) -> List[Slot]:
    return [Slot(prefix + ".weight", layer.kernel, (out_dim, in_dim)), Slot(prefix + ".bias", layer.bias, (out_dim,))]


def _norm_slots(prefix: str, layer: Any, dim: int) -> List[Slot]:
    return [Slot(prefix + ".weight", layer.gamma, (dim,)), Slot(prefix + ".bias", layer.beta, (dim,))]


def _encoder_layer_slots(index: int, block: Any, hidden: int, intermediate: int) -> List[Slot]:
    p = f"encoder.layer.{index}."
    attention = block._self_attention_layer
    slots: List[Slot] = []
    for name in ("query", "key", "value"):
        slots += _dense_slots(p + f"attention.self.{name}", getattr(attention, f"{name}_dense"), hidden, hidden)
    slots += _dense_slots(p + "attention.output.dense", attention.output_dense, hidden, hidden)
    slots += _norm_slots(p + "attention.output.LayerNorm", block._self_attention_layer_norm, hidden)
    slots += _dense_slots(p + "intermediate.dense", block._feedforward_intermediate_dense, intermediate, hidden)
    slots += _dense_slots(p + "output.dense", block._feedforward_output_dense, hidden, intermediate)
    slots += _norm_slots(p + "output.LayerNorm", block._feedforward_layer_norm, hidden)
    return slots


def backbone_slots(backbone: Any) -> List[Slot]:
    """Every weight of a keras-hub BertBackbone under its canonical (Hugging Face) name."""
    hidden, intermediate = backbone.hidden_dim, backbone.intermediate_dim
    slots = [
        Slot("embeddings.word_embeddings.weight", backbone.get_layer("token_embedding").embeddings,
             (backbone.vocabulary_size, hidden)),
        Slot("embeddings.position_embeddings.weight", backbone.get_layer("position_embedding").position_embeddings,
             (backbone.max_sequence_length, hidden)),
        Slot("embeddings.token_type_embeddings.weight", backbone.get_layer("segment_embedding").embeddings,
             (backbone.num_segments, hidden)),
    ]
    slots += _norm_slots("embeddings.LayerNorm", backbone.get_layer("embeddings_layer_norm"), hidden)
    for index, block in enumerate(backbone.transformer_layers):
        slots += _encoder_layer_slots(index, block, hidden, intermediate)
    slots += _dense_slots("pooler.dense", backbone.get_layer("pooled_dense"), hidden, hidden)
    return slots


def backbone_state(backbone: Any, include_pooler: bool = True) -> Dict[str, np.ndarray]:
    """The backbone's weights as canonical name -> array in the canonical (PyTorch) layout."""
    return {
        slot.key: from_keras_value(slot.key, np.asarray(slot.variable.numpy()), slot.shape)
        for slot in backbone_slots(backbone)
        if include_pooler or slot.key not in POOLER_KEYS
    }


def tf1_name(key: str) -> str:
    """The Google TF1 variable name of a canonical weight (e.g. bert/encoder/layer_0/.../kernel)."""
    parts = key.split(".")
    if parts[0] == "encoder":
        parts[1:3] = [f"layer_{parts[2]}"]
    if parts[-2].endswith("_embeddings"):
        parts = parts[:-1]
    elif parts[-2] == "LayerNorm":
        parts[-1] = "gamma" if parts[-1] == "weight" else "beta"
    elif parts[-1] == "weight":
        parts[-1] = "kernel"
    return "bert/" + "/".join(parts)


def tf2_h5_name(key: str) -> str:
    """The name a Hugging Face tf_model.h5 gives a canonical weight (for messages)."""
    parts = key.split(".")
    if parts[-2].endswith("_embeddings"):
        parts[-1] = "weight" if parts[-2] == "word_embeddings" else "embeddings"
    elif parts[-2] == "LayerNorm":
        parts[-1] = "gamma" if parts[-1] == "weight" else "beta"
    elif parts[-1] == "weight":
        parts[-1] = "kernel"
    return "bert/" + re.sub(r"^encoder/layer/(\d+)/", r"encoder/layer_._\1/", "/".join(parts))


@dataclasses.dataclass
class StoredTensor:
    """One tensor in a checkpoint: its name there, its file, canonical shape, and a reader."""

    name: str
    file: str
    shape: Shape  # canonical layout
    transposed: bool  # stored as [in, out] in the file
    read: Callable[[], np.ndarray]  # returns the canonical layout

    @property
    def file_shape(self) -> Shape:
        """The shape as stored in the file."""
        return self.shape[::-1] if self.transposed else self.shape


@dataclasses.dataclass
class WeightSource:
    """The tensors of one checkpoint under canonical names."""

    description: str  # the file (or directory) they come from, for messages
    tensors: Dict[str, StoredTensor]
    spell: Callable[[str], str]  # canonical name -> that checkpoint's own name, for messages
    unused: List[str] = dataclasses.field(default_factory=list)


def hf_canonical_name(name: str) -> str:
    """A Hugging Face PyTorch name without "bert." and with LayerNorm gamma/beta as weight/bias."""
    if name.startswith("bert."):
        name = name[len("bert."):]
    if ".LayerNorm." in name or name.startswith("LayerNorm."):
        name = re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", name))
    return name


def _weight_problems(slots: Sequence[Slot], source: WeightSource) -> Tuple[List[str], List[str]]:
    problems, missing = [], []
    for slot in slots:
        stored = source.tensors.get(slot.key)
        if stored is None:
            missing.append(slot.key)
        elif stored.shape != slot.shape:
            expected = slot.shape[::-1] if stored.transposed else slot.shape
            problems.append(f"{stored.name} has shape {list(stored.file_shape)}, the config needs {list(expected)}")
    if sorted(missing) != sorted(POOLER_KEYS):
        problems = [f"{source.spell(k)} is missing" for k in missing] + problems
    return problems, missing


def assign_backbone_weights(backbone: Any, source: WeightSource, task_head: Optional[str] = None) -> None:
    """Copy every backbone weight from `source`; InputError naming the tensors if any is missing or misshapen.

    Only the pooler may be absent (task checkpoints such as BertForTokenClassification have none): it
    then keeps its random initialisation, with a notice. `task_head` ("token" / "sequence"): `source` is read as
    that task model, whose classifier tensors are read elsewhere and, for a token model, has no pooler: no notice.
    """
    slots = backbone_slots(backbone)
    problems, missing = _weight_problems(slots, source)
    if problems:
        shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
        raise InputError(f"{len(problems)} backbone weight(s) missing or of the wrong shape: {shown}",
                         source.description)
    for slot in slots:
        if slot.key in source.tensors:
            slot.variable.assign(to_keras_value(slot.key, source.tensors[slot.key].read(), slot.variable.shape))
    if missing and task_head != "token":
        notice("no pooler weights (normal for a token-classification checkpoint); the pooler stays randomly "
               "initialised", source.description)
    unused = [k for k in source.unused if not (task_head and k.startswith("classifier."))]
    if unused:
        listed = ", ".join(unused[:5]) + (", ..." if len(unused) > 5 else "")
        notice(f"ignored {len(unused)} variable(s) that are not part of the BERT encoder: {listed}",
               source.description)


def mlm_head_variables(head: Any) -> Dict[str, Any]:
    """A keras-hub MaskedLMHead's variables under their canonical names."""
    return {HEAD_DENSE_WEIGHT: head._intermediate_dense.kernel, HEAD_DENSE_BIAS: head._intermediate_dense.bias,
            HEAD_NORM_WEIGHT: head._intermediate_layer_norm.gamma, HEAD_NORM_BIAS: head._intermediate_layer_norm.beta,
            HEAD_BIAS: head._bias}
