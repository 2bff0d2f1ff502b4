"""Test fixtures that write checkpoints: tiny random BERTs in Hugging Face layout and TF1 checkpoints."""

from __future__ import annotations

import json
import os
from typing import Dict, Mapping, Sequence

import numpy as np


def make_random_hf_checkpoint(directory: str, vocab: Sequence[str], hidden: int = 32, layers: int = 2,
                              heads: int = 2, intermediate: int = 64, max_positions: int = 128,
                              lowercase: bool = True, seed: int = 0, hidden_act: str = "gelu") -> str:
    """Write a tiny randomly initialised BERT as a Hugging Face directory."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    config = {
        "model_type": "bert", "vocab_size": len(vocab), "hidden_size": hidden, "num_hidden_layers": layers,
        "num_attention_heads": heads, "intermediate_size": intermediate, "max_position_embeddings": max_positions,
        "type_vocab_size": 2, "hidden_act": hidden_act, "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "layer_norm_eps": 1e-12,
    }

    def normal(*shape: int) -> np.ndarray:
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


def tf1_tensors(state: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Canonical backbone weights renamed and laid out as in Google's TF1 checkpoints."""
    from bert_tf.checkpoints.names import is_dense_weight, tf1_name  # here: importing this module needs no TensorFlow

    return {tf1_name(k): (np.transpose(v) if is_dense_weight(k) else v) for k, v in state.items()}


def write_tf1_checkpoint(prefix: str, tensors: Mapping[str, np.ndarray]) -> None:
    """Write `tensors` under exactly these names as a TF1 (V2 bundle) checkpoint: PREFIX.index and
    PREFIX.data-00000-of-00001, readable by tf.train.load_checkpoint and Google's BERT code."""
    import tensorflow as tf

    names = sorted(tensors)
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(tensors[n]) for n in names])


# Google's TF1 names of the pretraining heads (BERT's run_pretraining.py): masked LM and next sentence. Dense
# kernels are stored [in, out] except output_weights, which is [2, hidden] (read with transpose_b=True).
TF1_PRETRAINING_HEAD_NAMES = {
    "cls.predictions.transform.dense.weight": "cls/predictions/transform/dense/kernel",
    "cls.predictions.transform.dense.bias": "cls/predictions/transform/dense/bias",
    "cls.predictions.transform.LayerNorm.weight": "cls/predictions/transform/LayerNorm/gamma",
    "cls.predictions.transform.LayerNorm.bias": "cls/predictions/transform/LayerNorm/beta",
    "cls.predictions.bias": "cls/predictions/output_bias",
    "cls.seq_relationship.weight": "cls/seq_relationship/output_weights",
    "cls.seq_relationship.bias": "cls/seq_relationship/output_bias",
}


def random_pretraining_heads(hidden: int, vocab_size: int, seed: int = 5,
                             next_sentence: bool = True) -> Dict[str, np.ndarray]:
    """A random masked-LM head (and next-sentence head) under transformers' BertForPreTraining names."""
    rng = np.random.default_rng(seed)
    heads = {"cls.predictions.transform.dense.weight": rng.normal(0, 0.2, (hidden, hidden)).astype("float32"),
             "cls.predictions.transform.dense.bias": rng.normal(0, 0.2, hidden).astype("float32"),
             "cls.predictions.transform.LayerNorm.weight": rng.normal(1, 0.2, hidden).astype("float32"),
             "cls.predictions.transform.LayerNorm.bias": rng.normal(0, 0.2, hidden).astype("float32"),
             "cls.predictions.bias": rng.normal(0, 0.5, vocab_size).astype("float32")}
    if next_sentence:
        heads["cls.seq_relationship.weight"] = rng.normal(0, 0.5, (2, hidden)).astype("float32")
        heads["cls.seq_relationship.bias"] = rng.normal(0, 0.5, 2).astype("float32")
    return heads


def tf1_head_tensors(heads: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Pretraining heads (BertForPreTraining names) renamed and laid out as in Google's TF1 checkpoints."""
    return {TF1_PRETRAINING_HEAD_NAMES[k]: (np.transpose(v) if k.endswith("dense.weight") else v)
            for k, v in heads.items()}
