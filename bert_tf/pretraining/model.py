"""The masked-LM model: a BERT backbone and BERT's prediction head (dense + activation + LayerNorm, then the word
embeddings transposed, i.e. a decoder tied to them, plus an output bias), its head weights read from the checkpoint,
and its Hugging Face BertForMaskedLM directory (the run's OUTPUT/model). With next-sentence prediction also BERT's
next-sentence head (dense 2 over the pooler's output, i.e. tanh(dense([CLS]))), read from the checkpoint, and the
directory is a BertForPreTraining one. Reading the heads of each checkpoint format is bert_tf.checkpoints'
business (read_masked_lm_head, read_next_sentence_head)."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, Optional, Sequence, Tuple

import keras
import keras_hub
import numpy as np

from bert_tf import checkpoints, models
from bert_tf.batch_format import FEATURE_KEYS
from bert_tf.checkpoints import huggingface, names
from bert_tf.checkpoints.checkpoint import ACTIVATIONS, Checkpoint
from bert_tf.checkpoints.names import HEAD_BIAS, HEAD_DENSE_WEIGHT, NSP_BIAS, NSP_WEIGHT
from bert_tf.errors import InputError
from bert_tf.io_utils import atomic_directory
from bert_tf.pretraining.masking import MASKED_POSITIONS
from bert_tf.tokenization import WordPieceTokenizer

MODEL_INPUTS = FEATURE_KEYS + (MASKED_POSITIONS,)
HF_ARCHITECTURE = "BertForMaskedLM"
HF_PRETRAINING_ARCHITECTURE = "BertForPreTraining"  # masked LM + next-sentence prediction
MLM_LOGITS, NSP_LOGITS = "logits", "next_sentence_logits"  # the outputs of a model with both heads
LAYER_NORM_EPSILON = 1e-12
@dataclasses.dataclass
class MaskedLM:
    """The masked-LM model with its backbone, head layer, tokenizer and activation."""

    model: keras.Model
    backbone: keras_hub.models.BertBackbone
    head: keras_hub.layers.MaskedLMHead
    tokenizer: WordPieceTokenizer
    activation: str
    head_source: str  # where the head's weights came from ("random" when the checkpoint had none)
    next_sentence: Optional[keras.layers.Dense] = None  # the next-sentence head when it is trained


def build_masked_lm(backbone: keras_hub.models.BertBackbone, activation: str, next_sentence: bool = False) -> tuple:
    """(model, masked-LM head, next-sentence head or None): inputs FEATURE_KEYS + masked_lm_positions, output float32
    logits [batch, predictions, vocab]; with `next_sentence` a dict of those (MLM_LOGITS) and the next-sentence
    logits [batch, 2] (NSP_LOGITS), and the pooler trains."""
    backbone.get_layer("pooled_dense").trainable = next_sentence  # masked LM alone does not read the pooler
    inputs = models.backbone_inputs()
    inputs[MASKED_POSITIONS] = keras.Input(shape=(None,), dtype="int32", name=MASKED_POSITIONS)
    outputs = backbone({k: inputs[k] for k in FEATURE_KEYS})
    initializer = keras.initializers.TruncatedNormal(stddev=0.02)
    head = keras_hub.layers.MaskedLMHead(
        token_embedding=backbone.token_embedding, intermediate_activation=ACTIVATIONS[activation],
        layer_norm_epsilon=LAYER_NORM_EPSILON, kernel_initializer=initializer, name="mlm_head")
    logits = keras.layers.Activation("linear", dtype="float32", name="mlm_logits")(
        head(outputs["sequence_output"], inputs[MASKED_POSITIONS]))
    if not next_sentence:
        return keras.Model(inputs, logits, name="bert_masked_lm"), head, None
    nsp_head = keras.layers.Dense(2, kernel_initializer=initializer, name="next_sentence")
    nsp_logits = keras.layers.Activation("linear", dtype="float32", name=NSP_LOGITS)(
        nsp_head(outputs["pooled_output"]))
    model = keras.Model(inputs, {MLM_LOGITS: logits, NSP_LOGITS: nsp_logits}, name="bert_pretraining")
    return model, head, nsp_head


def assign_canonical(slots: Sequence[Tuple[str, Any, bool]], values: Dict[str, np.ndarray], source: str) -> None:
    """Copy canonical weights into (key, variable, transposed: a dense kernel stored [in, out]) slots; InputError
    naming the tensor when a shape differs."""
    for key, variable, transposed in slots:
        value = values[key].T if transposed else values[key]
        if tuple(value.shape) != tuple(variable.shape):
            raise InputError(f"{key} has shape {list(values[key].shape)}, the model needs "
                             f"{list(variable.shape)[::-1] if transposed else list(variable.shape)}", source)
        variable.assign(value.astype("float32"))


def assign_head(head: keras_hub.layers.MaskedLMHead, values: Dict[str, np.ndarray], source: str) -> None:
    """Copy canonical masked-LM head weights into the head; InputError naming the tensor when a shape differs."""
    slots = [(k, v, k == HEAD_DENSE_WEIGHT) for k, v in names.mlm_head_variables(head).items()]
    assign_canonical(slots, values, source)


def assign_next_sentence(head: keras.layers.Dense, values: Dict[str, np.ndarray], source: str) -> None:
    """Copy a canonical next-sentence head ([2, hidden] weight, [2] bias) into the Dense layer; InputError naming
    the tensor when a shape differs."""
    assign_canonical([(NSP_WEIGHT, head.kernel, True), (NSP_BIAS, head.bias, False)], values, source)


def load_masked_lm(checkpoint: Checkpoint, tokenizer: WordPieceTokenizer, dropout: Optional[float] = None,
                   next_sentence: Optional[Dict[str, np.ndarray]] = None) -> MaskedLM:
    """The masked-LM model of a checkpoint of any kind; its head from the checkpoint when it has one. With
    `next_sentence` (checkpoints.read_next_sentence_head's weights), the model also predicts the next sentence."""
    backbone = checkpoints.load_backbone(checkpoint, dropout)
    models.check_vocab_matches(backbone, tokenizer)
    model, head, nsp_head = build_masked_lm(backbone, checkpoint.activation, next_sentence is not None)
    values = checkpoints.read_masked_lm_head(checkpoint)
    if values is not None:
        assign_head(head, values, checkpoint.path)
    if nsp_head is not None:
        assign_next_sentence(nsp_head, next_sentence, checkpoint.path)
    source = f"{checkpoint.path} (tied decoder)" if values is not None else "random (the checkpoint has no masked-LM head)"
    return MaskedLM(model, backbone, head, tokenizer, checkpoint.activation, source, nsp_head)


def hf_state_dict(mlm: MaskedLM) -> Dict[str, np.ndarray]:
    """The model's weights under transformers' BertForMaskedLM names (the decoder is tied, so not stored); with the
    next-sentence head under BertForPreTraining's (cls.seq_relationship.*)."""
    state = {"bert." + key: value for key, value in
             names.backbone_state(mlm.backbone, include_pooler=True).items()}
    for key, variable in names.mlm_head_variables(mlm.head).items():
        value = np.asarray(variable.numpy(), np.float32)
        state[key] = np.ascontiguousarray(value.T) if key == HEAD_DENSE_WEIGHT else value
    state["cls.predictions.decoder.bias"] = state[HEAD_BIAS]
    if mlm.next_sentence is not None:
        state[NSP_WEIGHT] = np.ascontiguousarray(np.asarray(mlm.next_sentence.kernel.numpy()).T)
        state[NSP_BIAS] = np.asarray(mlm.next_sentence.bias.numpy())
    return {k: v.astype("float32") for k, v in state.items()}


def save_hf(mlm: MaskedLM, directory: str, extra: Optional[Dict[str, Any]] = None) -> None:
    """Write a transformers BertForMaskedLM directory (BertForPreTraining with the next-sentence head; config.json,
    model.safetensors, vocab.txt, tokenizer_config.json), replacing `directory` atomically; every bert-tf script
    loads it as --bert_model."""
    from safetensors.numpy import save_file

    architecture = HF_ARCHITECTURE if mlm.next_sentence is None else HF_PRETRAINING_ARCHITECTURE
    config = {"architectures": [architecture],
              **huggingface.hf_encoder_config(mlm.backbone, mlm.activation, mlm.tokenizer.pad_id),
              "tie_word_embeddings": True, **(extra or {})}
    with atomic_directory(directory) as tmp:
        with open(os.path.join(tmp, "config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2, ensure_ascii=False)
        save_file(hf_state_dict(mlm), os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        huggingface.write_hf_tokenizer_files(mlm.tokenizer, mlm.backbone.max_sequence_length, tmp)
