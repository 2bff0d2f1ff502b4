"""An independent reference for the Hugging Face BERT format: a numpy forward pass that reads a transformers
folder (config.json + model.safetensors) directly, written from the BERT paper and transformers' documented
tensor names, sharing no code with bert_tf. Tests compare what bert-tf writes or reads against it, so a naming,
transpose or activation bug that a round trip through our own loader would hide fails there.

Covers BertModel, BertForTokenClassification and BertForSequenceClassification (pooler + classifier); the
absolute position embeddings of BERT; GELU exact (`gelu`) or tanh (`gelu_new`, `gelu_pytorch_tanh`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np
from safetensors.numpy import load_file


@dataclass
class ReferenceBert:
    """A transformers BERT folder held as plain numpy arrays."""
    config: Dict
    tensors: Dict[str, np.ndarray]

    @classmethod
    def load(cls, folder: str) -> "ReferenceBert":
        """Read config.json and model.safetensors as they are on disk."""
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
        return cls(config, load_file(os.path.join(folder, "model.safetensors")))

    def tensor(self, name: str) -> np.ndarray:
        """A tensor by its transformers name, with or without the `bert.` prefix of task models."""
        for key in (name, "bert." + name):
            if key in self.tensors:
                return self.tensors[key].astype(np.float64)
        raise KeyError(name)

    @property
    def labels(self) -> list:
        """The labels in id order, from config.json's id2label."""
        id2label = self.config["id2label"]
        return [id2label[str(i)] for i in range(len(id2label))]

    def encode(self, token_ids: np.ndarray, attention_mask: np.ndarray,
               token_type_ids: Optional[np.ndarray] = None) -> np.ndarray:
        """The last hidden states, [batch, length, hidden]."""
        if token_type_ids is None:
            token_type_ids = np.zeros_like(token_ids)
        eps = float(self.config.get("layer_norm_eps", 1e-12))
        length = token_ids.shape[1]
        x = (self.tensor("embeddings.word_embeddings.weight")[token_ids]
             + self.tensor("embeddings.position_embeddings.weight")[np.arange(length)][None]
             + self.tensor("embeddings.token_type_embeddings.weight")[token_type_ids])
        x = self._norm(x, "embeddings.LayerNorm", eps)
        additive = (1.0 - attention_mask.astype(np.float64))[:, None, None, :] * -1e9
        for i in range(int(self.config["num_hidden_layers"])):
            x = self._layer(x, f"encoder.layer.{i}.", additive, eps)
        return x

    def pooled(self, hidden: np.ndarray) -> np.ndarray:
        """The pooler: tanh(dense([CLS]))."""
        return np.tanh(self._dense(hidden[:, 0], "pooler.dense"))

    def token_logits(self, token_ids, attention_mask, token_type_ids=None) -> np.ndarray:
        """BertForTokenClassification's logits, [batch, length, labels]."""
        return self._classifier(self.encode(token_ids, attention_mask, token_type_ids))

    def sequence_logits(self, token_ids, attention_mask, token_type_ids=None) -> np.ndarray:
        """BertForSequenceClassification's logits, [batch, labels] (classifier over the pooler)."""
        return self._classifier(self.pooled(self.encode(token_ids, attention_mask, token_type_ids)))

    def _classifier(self, x: np.ndarray) -> np.ndarray:
        return x @ self.tensors["classifier.weight"].astype(np.float64).T + self.tensors["classifier.bias"]

    def _dense(self, x: np.ndarray, prefix: str) -> np.ndarray:
        # torch.nn.Linear stores weight as [out, in].
        return x @ self.tensor(prefix + ".weight").T + self.tensor(prefix + ".bias")

    def _norm(self, x: np.ndarray, prefix: str, eps: float) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + eps) * self.tensor(prefix + ".weight") + self.tensor(prefix + ".bias")

    def _activation(self, x: np.ndarray) -> np.ndarray:
        act = self.config.get("hidden_act", "gelu")
        if act == "gelu":
            erf = np.vectorize(math.erf)
            return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
        if act in ("gelu_new", "gelu_pytorch_tanh"):
            return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
        if act == "relu":
            return np.maximum(x, 0.0)
        raise ValueError(f"hidden_act {act!r} not covered by the reference")

    def _layer(self, x: np.ndarray, p: str, additive: np.ndarray, eps: float) -> np.ndarray:
        heads = int(self.config["num_attention_heads"])
        batch, length, hidden = x.shape
        size = hidden // heads

        def split(t: np.ndarray) -> np.ndarray:
            return t.reshape(batch, length, heads, size).transpose(0, 2, 1, 3)

        q = split(self._dense(x, p + "attention.self.query"))
        k = split(self._dense(x, p + "attention.self.key"))
        v = split(self._dense(x, p + "attention.self.value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + additive
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = scores / scores.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
        x = self._norm(x + self._dense(context, p + "attention.output.dense"), p + "attention.output.LayerNorm", eps)
        inner = self._activation(self._dense(x, p + "intermediate.dense"))
        return self._norm(x + self._dense(inner, p + "output.dense"), p + "output.LayerNorm", eps)
