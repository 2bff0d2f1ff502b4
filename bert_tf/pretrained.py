"""Pretrained BERT checkpoints in every format people hold: finding them, reading their weights into a keras-hub
BertBackbone with the activation they mean, and their tokenizers.

Formats: Hugging Face directories (model.safetensors, sharded safetensors, tf_model.h5, pytorch_model.bin),
Google / NVIDIA / BioBERT TensorFlow 1 checkpoints (bert_config.json + vocab.txt + bert_model.ckpt.* or
model.ckpt-NNNN.*), NVIDIA's flag trio (--bert_config_file, --vocab_file, --init_checkpoint), keras-hub presets,
and models saved by bert-tf (recognised here, loaded by bert_tf.models).

Every reader maps the names of its file to one canonical form: Hugging Face PyTorch names without the
"bert." prefix, LayerNorm parameters as weight/bias, dense weights as [out, in]. `backbone_slots` lists
what a backbone needs under those names; `assign_backbone_weights` checks that every one is present with
the right shape (only the pooler may be missing) and fails with one InputError naming the file and the
tensors otherwise.

keras-hub fixes the feed-forward activation of its BertBackbone to the tanh approximation of GELU; a
Hugging Face config with `hidden_act: "gelu"` means the exact (erf) GELU, so `set_feedforward_activation`
puts back what the checkpoint's config says.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import importlib.util
import os
import re
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import keras
import numpy as np

from bert_tf.cli import notice
from bert_tf.errors import InputError, first_line
from bert_tf.io_utils import load_json  # noqa: F401  (models and export read JSON through here)
from bert_tf.tokenization import WordPieceTokenizer, _read_vocab, _vocab_looks_cased

Shape = Tuple[int, ...]

POOLER_KEYS = ("pooler.dense.weight", "pooler.dense.bias")
REQUIRED_CONFIG_INTS = ("vocab_size", "num_hidden_layers", "num_attention_heads", "hidden_size", "intermediate_size")
# Google's modeling.py computes "gelu" with the tanh approximation.
TF1_ACTIVATIONS = {"gelu": "gelu_tanh", "gelu_new": "gelu_tanh", "relu": "relu"}
# TF1 variables that are not part of the encoder and are skipped on purpose.
TF1_IGNORED = re.compile(
    r"(^|/)(adam_m|adam_v|Adam|Adam_1|Momentum|LAMB|LAMB_1)$"  # optimizer slots
    r"|^global_step$|^cls/"  # step counter, pre-training heads (masked LM, next sentence)
    r"|(^|/)(loss_scale|current_loss_scale|good_steps|bad_steps)$"  # NVIDIA mixed-precision state
)
HF_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "tf_model.h5")
HF_TORCH_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
SAVED_MODEL_META = "bert_tf_model.json"  # what marks a model saved by bert-tf (bert_tf.models writes it)

# Hugging Face `hidden_act` values -> activation name (a key of ACTIVATIONS)
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


# --- canonical names and layouts -------------------------------------------------------------------


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


# --- weight sources ------------------------------------------------------------------------------------


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


def _hf_spell(names: Iterable[str]) -> Callable[[str], str]:
    prefix = "bert." if any(n.startswith("bert.") for n in names) else ""
    return lambda key: prefix + key if not key.startswith("classifier.") else key


def _read_safetensor(path: str, name: str) -> np.ndarray:
    from safetensors import safe_open

    with safe_open(path, framework="np") as f:
        return np.asarray(f.get_tensor(name)).astype("float32")


def _safetensors_entries(path: str) -> Dict[str, StoredTensor]:
    from safetensors import safe_open

    try:
        with safe_open(path, framework="np") as f:
            shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except Exception as e:  # the Rust library raises its own error types for damaged files
        raise InputError(f"cannot read safetensors ({type(e).__name__}: {first_line(e)})", path) from None
    return {
        hf_canonical_name(name): StoredTensor(name, path, shape, False, functools.partial(_read_safetensor, path, name))
        for name, shape in shapes.items()
    }


def _shard_files(index_path: str) -> List[str]:
    weight_map = load_json(index_path).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise InputError("no weight_map in the shard index", index_path)
    directory = os.path.dirname(index_path)
    files = [os.path.join(directory, f) for f in sorted(set(weight_map.values()))]
    for path in files:
        if not os.path.isfile(path):
            raise InputError(f"the shard index names {os.path.basename(path)}, which is missing", index_path)
    return files


def read_safetensors(path: str) -> WeightSource:
    """Tensors of a model.safetensors file or of the shards named by a model.safetensors.index.json."""
    files = _shard_files(path) if path.endswith(".json") else [path]
    tensors: Dict[str, StoredTensor] = {}
    for file in files:
        tensors.update(_safetensors_entries(file))
    return WeightSource(path, tensors, _hf_spell(t.name for t in tensors.values()))


def torch_available() -> bool:
    """Whether PyTorch can be imported (needed only for pytorch_model.bin)."""
    return importlib.util.find_spec("torch") is not None


def _torch_state(path: str) -> Dict[str, np.ndarray]:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and torch errors for damaged or unsafe files
        raise InputError(f"cannot read PyTorch weights ({type(e).__name__}: {first_line(e)})", path) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError("not a PyTorch state dict", path)
    return {k: v.detach().to(torch.float32).numpy() for k, v in state.items() if v.is_floating_point()}


def read_pytorch_bin(path: str) -> WeightSource:
    """Tensors of a pytorch_model.bin (or of the shards of a pytorch_model.bin.index.json); needs torch."""
    files = _shard_files(path) if path.endswith(".json") else [path]
    tensors: Dict[str, StoredTensor] = {}
    for file in files:
        for name, array in _torch_state(file).items():
            tensors[hf_canonical_name(name)] = StoredTensor(name, file, array.shape, False, lambda a=array: a)
    return WeightSource(path, tensors, _hf_spell(t.name for t in tensors.values()))


def h5_canonical_name(path: str) -> Optional[Tuple[str, bool]]:
    """(canonical name, transposed?) of a dataset in a Hugging Face tf_model.h5, or None if not a weight.

    Datasets sit at LAYER/MODEL_NAME/bert/encoder/layer_._0/attention/self/query/kernel:0; the heads of
    TFBertForPreTraining / TFBertForMaskedLM at mlm___cls/MODEL_NAME/mlm___cls/predictions/... and
    nsp___cls/MODEL_NAME/nsp___cls/seq_relationship/... (transformers' "NAME___" prefix dropped: cls.predictions.*).
    """
    parts = [p.split("___")[-1] for p in path.replace(":0", "").replace("_._", "/").split("/") if p][1:]
    anchors = ("bert", "classifier", "embeddings", "encoder", "pooler")
    if parts and parts[0] not in anchors:
        parts = parts[1:]  # the model's own name (tf_bert_model, tf_bert_for_token_classification, ...)
    if parts[:1] == ["bert"]:
        parts = parts[1:]
    if len(parts) < 2:
        return None
    leaf = parts[-1]
    transposed = leaf == "kernel"
    parts[-1] = {"kernel": "weight", "gamma": "weight", "beta": "bias", "embeddings": "weight"}.get(leaf, leaf)
    return ".".join(parts), transposed


def _read_h5(path: str, name: str, transposed: bool) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as f:
        value = np.asarray(f[name]).astype("float32")
    return np.transpose(value) if transposed else value


def read_tf_h5(path: str) -> WeightSource:
    """Tensors of a Hugging Face TensorFlow 2 tf_model.h5 (Keras 2 HDF5 weights)."""
    import h5py

    datasets: Dict[str, Shape] = {}
    try:
        with h5py.File(path, "r") as f:
            f.visititems(lambda n, o: datasets.__setitem__(n, tuple(o.shape)) if isinstance(o, h5py.Dataset) else None)
    except OSError as e:
        raise InputError(f"cannot read HDF5 ({first_line(e)})", path) from None
    tensors: Dict[str, StoredTensor] = {}
    for name, shape in datasets.items():
        converted = h5_canonical_name(name)
        if converted is not None:
            key, transposed = converted
            canonical_shape = shape[::-1] if transposed else shape
            tensors[key] = StoredTensor(name, path, canonical_shape, transposed,
                                        functools.partial(_read_h5, path, name, transposed))
    return WeightSource(path, tensors, tf2_h5_name)


def _read_tf1(reader: Any, name: str, transposed: bool) -> np.ndarray:
    value = np.asarray(reader.get_tensor(name)).astype("float32")
    return np.transpose(value) if transposed else value


def read_tf1(prefix: str, keys: Sequence[str]) -> WeightSource:
    """The tensors named `keys` (canonical) of a Google-layout TF1 checkpoint, by their TF1 names."""
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
    except Exception as e:  # tf.errors.* for missing or damaged bundles
        raise InputError(f"cannot read the TensorFlow checkpoint ({first_line(e)})", prefix + ".index") from None
    tensors: Dict[str, StoredTensor] = {}
    for key in keys:
        name = tf1_name(key)
        if name in shapes:
            transposed = is_dense_weight(key)
            shape = tuple(shapes[name])
            tensors[key] = StoredTensor(name, prefix, shape[::-1] if transposed else shape, transposed,
                                        functools.partial(_read_tf1, reader, name, transposed))
    used = {t.name for t in tensors.values()}
    unused = sorted(n for n in shapes if n not in used and not TF1_IGNORED.search(n))
    return WeightSource(prefix, tensors, tf1_name, unused)


TF1_CLASSIFIER_WEIGHTS = "output_weights"  # the published run_ner_consensus.py classifier head
TF1_CLASSIFIER_BIAS = "output_bias"


def read_tf1_classifier_head(prefix: str) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """The classifier head of a checkpoint fine-tuned by the published TF1 code: output_weights [rows, hidden]
    and output_bias [rows] (rows = labels + 1 there), or None when the checkpoint has no such head."""
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
    except Exception as e:  # tf.errors.* for missing or damaged bundles
        raise InputError(f"cannot read the TensorFlow checkpoint ({first_line(e)})", prefix + ".index") from None
    if TF1_CLASSIFIER_WEIGHTS not in shapes and TF1_CLASSIFIER_BIAS not in shapes:
        return None
    weights_shape, bias_shape = shapes.get(TF1_CLASSIFIER_WEIGHTS), shapes.get(TF1_CLASSIFIER_BIAS)
    if weights_shape is None or bias_shape is None or len(weights_shape) != 2 or list(bias_shape) != weights_shape[:1]:
        raise InputError(f"classifier head {TF1_CLASSIFIER_WEIGHTS} {weights_shape} / {TF1_CLASSIFIER_BIAS} "
                         f"{bias_shape}: expected [rows, hidden] and [rows]", prefix + ".index")
    weights = np.asarray(reader.get_tensor(TF1_CLASSIFIER_WEIGHTS), dtype="float32")
    return weights, np.asarray(reader.get_tensor(TF1_CLASSIFIER_BIAS), dtype="float32")


# --- putting weights into a backbone ----------------------------------------------------------------


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


def assign_backbone_weights(backbone: Any, source: WeightSource) -> None:
    """Copy every backbone weight from `source`; InputError naming the tensors if any is missing or misshapen.

    Only the pooler may be absent (task checkpoints such as BertForTokenClassification have none): it
    then keeps its random initialisation, with a notice.
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
    if missing:
        notice("no pooler weights (normal for a token-classification checkpoint); the pooler stays randomly "
               "initialised", source.description)
    if source.unused:
        listed = ", ".join(source.unused[:5]) + (", ..." if len(source.unused) > 5 else "")
        notice(f"ignored {len(source.unused)} variable(s) that are not part of the BERT encoder: {listed}",
               source.description)


# --- configs, vocabularies, finding the files -------------------------------------------------------


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


def hf_weights_path(directory: str) -> str:
    """The weights file of a Hugging Face directory, in order of preference; InputError if none is usable."""
    for name in HF_WEIGHT_FILES:
        if os.path.isfile(os.path.join(directory, name)):
            return os.path.join(directory, name)
    for name in HF_TORCH_FILES:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            if torch_available():
                return path
            raise InputError(
                f"only PyTorch weights ({name}) and torch is not installed: pip install torch, or convert them "
                "once to model.safetensors where transformers is installed: python -c \"from transformers "
                "import AutoModel; AutoModel.from_pretrained('DIR').save_pretrained('DIR')\"",
                directory,
            )
    found = sorted(f for f in os.listdir(directory) if f.endswith((".bin", ".h5", ".safetensors", ".msgpack",
                                                                    ".index", ".ckpt", ".pt", ".pth")))
    raise InputError("no model weights: expected model.safetensors, model.safetensors.index.json, tf_model.h5 or "
                     "pytorch_model.bin" + (f" (found {', '.join(found)})" if found else ""), directory)


def hf_weight_source(directory: str) -> WeightSource:
    """The weights of a Hugging Face directory, whatever file holds them."""
    path = hf_weights_path(directory)
    if path.endswith(".h5"):
        return read_tf_h5(path)
    if "pytorch_model.bin" in os.path.basename(path):
        return read_pytorch_bin(path)
    return read_safetensors(path)


def _prefix_from_state_file(directory: str) -> Optional[str]:
    path = os.path.join(directory, "checkpoint")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        match = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', f.read(), re.MULTILINE)
    if not match:
        return None
    prefix = match.group(1)
    prefix = prefix if os.path.isabs(prefix) else os.path.join(directory, prefix)
    if not os.path.isfile(prefix + ".index"):
        # the state file may hold the absolute path of the machine that trained; try beside it
        local = os.path.join(directory, os.path.basename(prefix))
        if not os.path.isfile(local + ".index"):
            raise InputError(f"names {match.group(1)}, but {os.path.basename(prefix)}.index is not there", path)
        prefix = local
    return prefix


def _pick_tf1_prefix(directory: str, prefixes: Sequence[str]) -> str:
    numbered = sorted((int(m.group(1)), p) for p in prefixes if (m := re.fullmatch(r"model\.ckpt-(\d+)", p)))
    if numbered:
        return numbered[-1][1]
    if "bert_model.ckpt" in prefixes:
        return "bert_model.ckpt"
    if len(prefixes) == 1:
        return prefixes[0]
    raise InputError(f"several checkpoints ({', '.join(sorted(prefixes))}); name one in a `checkpoint` file "
                     "or pass its prefix", directory)


def resolve_tf1_prefix(path: str) -> str:
    """The checkpoint prefix of a TF1 directory (the `checkpoint` file's, else the highest model.ckpt-NNNN,
    else bert_model.ckpt), or of a prefix given directly (a trailing .index is dropped)."""
    if os.path.isdir(path):
        prefix = _prefix_from_state_file(path)
        if prefix is None:
            prefixes = [f[: -len(".index")] for f in os.listdir(path) if f.endswith(".index")]
            if not prefixes:
                raise InputError("no TensorFlow checkpoint: expected bert_model.ckpt.index or "
                                 "model.ckpt-NNNN.index (with its .data-* files)", path)
            prefix = os.path.join(path, _pick_tf1_prefix(path, prefixes))
    else:
        prefix = path[: -len(".index")] if path.endswith(".index") else path
    if not os.path.isfile(prefix + ".index"):
        raise InputError("no TensorFlow checkpoint with this prefix (expected PREFIX.index and PREFIX.data-*)",
                         prefix)
    if not glob.glob(glob.escape(prefix) + ".data-*"):
        raise InputError(f"{os.path.basename(prefix)}.index has no data file "
                         f"({os.path.basename(prefix)}.data-00000-of-00001 expected)", prefix + ".index")
    return prefix


def tf1_activation(config: Mapping[str, Any], config_path: str) -> str:
    """The activation a TF1 bert_config.json means ("gelu" is the tanh form in Google's code)."""
    act = config.get("hidden_act", "gelu")
    if act not in TF1_ACTIVATIONS:
        raise InputError(f"unsupported hidden_act {act!r} (supported: {', '.join(TF1_ACTIVATIONS)})", config_path)
    return TF1_ACTIVATIONS[act]


def _load_config(config_path: str) -> Dict[str, Any]:
    if not os.path.isfile(config_path):
        raise InputError("BERT config file does not exist", config_path)
    config = load_json(config_path)
    validate_bert_config(config, config_path)
    return config


def checkpoint_from_trio(bert_config_file: str, vocab_file: str, init_checkpoint: str) -> Checkpoint:
    """A TF1 checkpoint given as NVIDIA's/Google's flag trio: bert_config.json, vocab.txt and the checkpoint
    prefix (e.g. /models/bert/model.ckpt-28252, a directory holding one also works).

    The tokenizer comes from `trio_tokenizer(vocab_file, do_lower_case)`; `Checkpoint.path` is the prefix.
    """
    config = _load_config(bert_config_file)
    if not os.path.isfile(vocab_file):
        raise InputError("vocabulary file does not exist", vocab_file)
    check_vocab_file(vocab_file, config["vocab_size"], bert_config_file)
    if not init_checkpoint:
        raise InputError("--init_checkpoint is empty: give the checkpoint prefix (e.g. .../bert_model.ckpt)")
    prefix = resolve_tf1_prefix(init_checkpoint)
    return Checkpoint("tf1", prefix, tf1_activation(config, bert_config_file), config)


def trio_tokenizer(vocab_file: str, do_lower_case: Optional[bool] = None) -> WordPieceTokenizer:
    """The WordPiece tokenizer of a vocab file; casing guessed from the vocabulary when not given."""
    if do_lower_case is None:
        do_lower_case = not _vocab_looks_cased(_read_vocab(vocab_file))
    return WordPieceTokenizer.from_vocab(vocab_file, do_lower_case)


def tf1_checkpoint_from_dir(directory: str) -> Checkpoint:
    """A Google-style directory: bert_config.json + vocab.txt + a TF1 checkpoint.

    With no TF1 checkpoint but Hugging Face weights beside bert_config.json (old pytorch-pretrained-bert
    ports), the directory is read as a Hugging Face one with that config.
    """
    config_path = os.path.join(directory, "bert_config.json")
    config = _load_config(config_path)
    vocab_path = os.path.join(directory, "vocab.txt")
    if os.path.isfile(vocab_path):
        check_vocab_file(vocab_path, config["vocab_size"], config_path)
    has_tf1 = os.path.isfile(os.path.join(directory, "checkpoint")) or any(
        f.endswith(".index") for f in os.listdir(directory))
    if not has_tf1 and any(os.path.isfile(os.path.join(directory, f)) for f in HF_WEIGHT_FILES + HF_TORCH_FILES):
        hf_weights_path(directory)
        act = config.get("hidden_act", "gelu")
        if act not in HF_ACTIVATIONS:
            raise InputError(f"unsupported hidden_act {act!r} (supported: {', '.join(HF_ACTIVATIONS)})", config_path)
        return Checkpoint("hf", directory, HF_ACTIVATIONS[act], config)
    resolve_tf1_prefix(directory)
    return Checkpoint("tf1", directory, tf1_activation(config, config_path), config)


# --- loading -------------------------------------------------------------------------------------------


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


def weight_source(checkpoint: Checkpoint, keys: Sequence[str]) -> WeightSource:
    """The weights of an "hf" or "tf1" checkpoint."""
    if checkpoint.kind == "tf1":
        return read_tf1(resolve_tf1_prefix(checkpoint.path), keys)
    return hf_weight_source(checkpoint.path)


def load_pretrained_backbone(checkpoint: Checkpoint, dropout: Optional[float] = None) -> Any:
    """Build the backbone of an "hf" or "tf1" checkpoint, copy every weight in, set its activation."""
    if dropout is None:
        dropout = float(checkpoint.config.get("hidden_dropout_prob", 0.1))
    backbone = backbone_from_config(checkpoint.config, dropout)
    source = weight_source(checkpoint, [slot.key for slot in backbone_slots(backbone)])
    assign_backbone_weights(backbone, source)
    set_feedforward_activation(backbone, checkpoint.activation)
    return backbone


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


# --- finding a checkpoint and its tokenizer ------------------------------------------------------------


def resolve_model_dir(path: str) -> str:
    """The directory holding a saved bert-tf model: `path` itself or its `model/` subdirectory."""
    for candidate in (path, os.path.join(path, "model")):
        if os.path.isfile(os.path.join(candidate, SAVED_MODEL_META)):
            return candidate
    raise InputError(f"no saved bert-tf model here (no {SAVED_MODEL_META})", path)


def saved_model_under(path: Optional[str]) -> Optional[str]:
    """The saved bert-tf model at `path`: the folder itself, its `model/` (a run's output folder), or the run
    folder of a `model.ckpt-N`-style prefix inside one; None when there is none."""
    if not path:
        return None
    candidates = [path, os.path.join(path, "model")]
    if os.path.basename(path).startswith("model.ckpt"):
        candidates.append(os.path.join(os.path.dirname(path), "model"))
    for candidate in candidates:
        if os.path.isfile(os.path.join(candidate, SAVED_MODEL_META)):
            return candidate
    return None


def _holds_model(directory: str) -> bool:
    """True when `directory` holds a model's config (Hugging Face, TF1 or bert-tf)."""
    return any(os.path.isfile(os.path.join(directory, name))
               for name in ("config.json", "bert_config.json", SAVED_MODEL_META))


def find_checkpoint(path: str) -> Checkpoint:
    """Recognise a checkpoint: a Hugging Face directory, a TF1 checkpoint (directory or prefix), a keras-hub
    preset, or a bert-tf model."""
    if not os.path.exists(path) and os.path.isfile(path + ".index"):
        directory = os.path.dirname(os.path.abspath(path))
        found = tf1_checkpoint_from_dir(directory)
        return Checkpoint("tf1", resolve_tf1_prefix(path), found.activation, found.config)
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
            return tf1_checkpoint_from_dir(path)
        raise InputError(
            "not a model directory: expected a Hugging Face directory (config.json + model.safetensors, "
            "tf_model.h5 or pytorch_model.bin), a TensorFlow 1 checkpoint (bert_config.json + vocab.txt + "
            "bert_model.ckpt.*), a keras-hub preset, or a model saved by bert-tf",
            path,
        )
    config = load_json(config_path)
    if os.path.isfile(os.path.join(path, "metadata.json")) and "class_name" in config:
        return Checkpoint("keras_hub", path, "gelu_tanh", config.get("config", {}))
    validate_bert_config(config, config_path)
    act = config.get("hidden_act", "gelu")
    if act not in HF_ACTIVATIONS:
        raise InputError(f"unsupported hidden_act {act!r} (supported: {', '.join(HF_ACTIVATIONS)})", config_path)
    hf_weights_path(path)
    if os.path.isfile(os.path.join(path, "vocab.txt")):
        check_vocab_file(os.path.join(path, "vocab.txt"), config["vocab_size"], config_path)
    return Checkpoint("hf", path, HF_ACTIVATIONS[act], config)


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
    if checkpoint.kind == "keras_hub" and os.path.isfile(os.path.join(checkpoint.path, *KERAS_HUB_VOCABULARY)):
        return keras_hub_tokenizer(checkpoint.path, do_lower_case)
    return WordPieceTokenizer.from_model_dir(tokenizer_dir(checkpoint), do_lower_case)


KERAS_HUB_VOCABULARY = ("assets", "tokenizer", "vocabulary.txt")  # where Tokenizer.save_to_preset puts it


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
    return trio_tokenizer(os.path.join(path, *KERAS_HUB_VOCABULARY), do_lower_case)


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
        checkpoint = checkpoint_from_trio(bert_config_file, vocab_file, init_checkpoint)
        return checkpoint, trio_tokenizer(vocab_file, do_lower_case)
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


def max_positions(checkpoint: Checkpoint) -> Optional[int]:
    """How many positions the checkpoint's position embeddings hold (None if unknown)."""
    config = checkpoint.config
    if checkpoint.kind == "bert_tf":
        config = config.get("backbone", {})
    for key in ("max_position_embeddings", "max_sequence_length"):
        if isinstance(config.get(key), int):
            return config[key]
    return None
