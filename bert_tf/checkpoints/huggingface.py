"""Hugging Face checkpoints: reading the weights of a directory (model.safetensors, sharded safetensors,
tf_model.h5, pytorch_model.bin) under canonical names, what its config means, and writing the encoder's
config.json entries and the tokenizer files transformers' BertTokenizer reads."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from bert_tf.checkpoints.checkpoint import Checkpoint, check_vocab_file, validate_bert_config
from bert_tf.checkpoints.names import Shape, StoredTensor, WeightSource, hf_canonical_name, tf2_h5_name
from bert_tf.errors import InputError, first_line
from bert_tf.io_utils import load_json
from bert_tf.tokenization import TOKENIZER_CONFIG, WordPieceTokenizer

HF_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "tf_model.h5")
HF_TORCH_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")

# Hugging Face `hidden_act` values -> activation name (a key of ACTIVATIONS)
HF_ACTIVATIONS = {
    "gelu": "gelu_exact",
    "gelu_python": "gelu_exact",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "relu": "relu",
}

HF_HIDDEN_ACT = {"gelu_exact": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}  # activation -> hidden_act


# --- reading -----------------------------------------------------------------------------------------------


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


def hf_activation(config: Mapping[str, Any], config_path: str) -> str:
    """The activation a Hugging Face config's hidden_act means (a key of ACTIVATIONS)."""
    act = config.get("hidden_act", "gelu")
    if act not in HF_ACTIVATIONS:
        raise InputError(f"unsupported hidden_act {act!r} (supported: {', '.join(HF_ACTIVATIONS)})", config_path)
    return HF_ACTIVATIONS[act]


def hf_checkpoint(path: str, config: Dict[str, Any], config_path: str) -> Checkpoint:
    """The Hugging Face checkpoint of directory `path` with its config.json `config`: validated, with weights and
    a vocabulary that fits the embedding table."""
    validate_bert_config(config, config_path)
    activation = hf_activation(config, config_path)
    hf_weights_path(path)
    if os.path.isfile(os.path.join(path, "vocab.txt")):
        check_vocab_file(os.path.join(path, "vocab.txt"), config["vocab_size"], config_path)
    return Checkpoint("hf", path, activation, config)


def read_hf_tensors(directory: str, keys: Sequence[str]) -> Optional[Dict[str, np.ndarray]]:
    """The tensors named `keys` (canonical) of a Hugging Face directory in the canonical layout, or None unless
    it holds them all."""
    tensors = hf_weight_source(directory).tensors
    if not all(k in tensors for k in keys):
        return None
    return {k: tensors[k].read() for k in keys}


# --- writing -----------------------------------------------------------------------------------------------


def hf_encoder_config(backbone: Any, activation: str, pad_id: int) -> Dict[str, Any]:
    """The transformers config.json entries that describe a BERT encoder (any head)."""
    return {
        "model_type": "bert",
        "vocab_size": backbone.vocabulary_size,
        "hidden_size": backbone.hidden_dim,
        "num_hidden_layers": backbone.num_layers,
        "num_attention_heads": backbone.num_heads,
        "intermediate_size": backbone.intermediate_dim,
        "hidden_act": HF_HIDDEN_ACT[activation],
        "hidden_dropout_prob": float(backbone.dropout),
        "attention_probs_dropout_prob": float(backbone.dropout),
        "max_position_embeddings": backbone.max_sequence_length,
        "type_vocab_size": backbone.num_segments,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "position_embedding_type": "absolute",
        "pad_token_id": pad_id,
        "dtype": "float32",
    }


def vocabulary_lines(tokenizer: WordPieceTokenizer) -> List[str]:
    """The vocabulary as vocab.txt lines (line index = token id)."""
    if tokenizer.source.endswith(".txt"):
        with open(tokenizer.source, encoding="utf-8") as f:
            return [line.rstrip("\r\n") for line in f]
    by_id = {i: token for token, i in tokenizer.tokenizer.get_vocab(with_added_tokens=True).items()}
    return [by_id.get(i, f"[unused_id_{i}]") for i in range(max(by_id) + 1)]


def write_hf_tokenizer_files(tokenizer: WordPieceTokenizer, max_length: int, directory: str) -> None:
    """vocab.txt and tokenizer_config.json of `tokenizer` for transformers' BertTokenizer."""
    with open(os.path.join(directory, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocabulary_lines(tokenizer)) + "\n")
    config = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": tokenizer.lowercase,
        "strip_accents": None,
        "tokenize_chinese_chars": True,
        "model_max_length": max_length,
        "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]",
    }
    with open(os.path.join(directory, TOKENIZER_CONFIG), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)

