"""TensorFlow 1 checkpoints of Google's, NVIDIA's and BioBERT's code: reading the encoder (bert_config.json +
vocab.txt + bert_model.ckpt.* or model.ckpt-NNNN.*, or NVIDIA's flag trio), the published classifier's head
(output_weights / output_bias), the pre-training heads (cls/predictions, cls/seq_relationship); and writing a
fine-tuned sequence classifier as the published code's checkpoint."""

from __future__ import annotations

import functools
import glob
import json
import os
import re
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from bert_tf import cli, models
from bert_tf.checkpoints import huggingface
from bert_tf.checkpoints.checkpoint import LABELS_FILE, Checkpoint, check_vocab_file, load_config
from bert_tf.checkpoints.names import (HEAD_BIAS, HEAD_DENSE_BIAS, HEAD_DENSE_WEIGHT, HEAD_NORM_BIAS,
                                       HEAD_NORM_WEIGHT, NSP_BIAS, NSP_WEIGHT, POOLER_KEYS, StoredTensor,
                                       WeightSource, backbone_state, is_dense_weight, tf1_name)
from bert_tf.errors import InputError, first_line
from bert_tf.io_utils import atomic_directory
from bert_tf.tokenization import WordPieceTokenizer, _read_vocab, _vocab_looks_cased

# Google's modeling.py computes "gelu" with the tanh approximation.
TF1_ACTIVATIONS = {"gelu": "gelu_tanh", "gelu_new": "gelu_tanh", "relu": "relu"}
# TF1 variables that are not part of the encoder and are skipped on purpose.
TF1_IGNORED = re.compile(
    r"(^|/)(adam_m|adam_v|Adam|Adam_1|Momentum|LAMB|LAMB_1)$"  # optimizer slots
    r"|^global_step$|^cls/"  # step counter, pre-training heads (masked LM, next sentence)
    r"|(^|/)(loss_scale|current_loss_scale|good_steps|bad_steps)$"  # NVIDIA mixed-precision state
)
TF1_CLASSIFIER_WEIGHTS = "output_weights"  # the published run_ner_consensus.py classifier head
TF1_CLASSIFIER_BIAS = "output_bias"
# The masked-LM head's TF1 names (its dense kernel is stored [in, out]).
TF1_HEAD_NAMES = {
    HEAD_DENSE_WEIGHT: "cls/predictions/transform/dense/kernel",
    HEAD_DENSE_BIAS: "cls/predictions/transform/dense/bias",
    HEAD_NORM_WEIGHT: "cls/predictions/transform/LayerNorm/gamma",
    HEAD_NORM_BIAS: "cls/predictions/transform/LayerNorm/beta",
    HEAD_BIAS: "cls/predictions/output_bias",
}
TF1_NSP_NAMES = {NSP_WEIGHT: "cls/seq_relationship/output_weights", NSP_BIAS: "cls/seq_relationship/output_bias"}
# The pooler the next-sentence head reads, which a checkpoint with the head must hold too.
TF1_POOLER_NAMES = {key: tf1_name(key) for key in POOLER_KEYS}
TF1_HIDDEN_ACT = {"gelu_tanh": "gelu", "gelu_exact": "gelu", "relu": "relu"}  # Google's "gelu" is the tanh form
UNUSED_ROW_BIAS = -1.0e4  # the published head's extra row: exp(-1e4) is 0, so every probability stays ours


# --- finding -----------------------------------------------------------------------------------------------


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


def checkpoint_from_trio(bert_config_file: str, vocab_file: str, init_checkpoint: str) -> Checkpoint:
    """A TF1 checkpoint given as NVIDIA's/Google's flag trio: bert_config.json, vocab.txt and the checkpoint
    prefix (e.g. /models/bert/model.ckpt-28252, a directory holding one also works).

    The tokenizer comes from `trio_tokenizer(vocab_file, do_lower_case)`; `Checkpoint.path` is the prefix.
    """
    config = load_config(bert_config_file)
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
    config = load_config(config_path)
    vocab_path = os.path.join(directory, "vocab.txt")
    if os.path.isfile(vocab_path):
        check_vocab_file(vocab_path, config["vocab_size"], config_path)
    has_tf1 = os.path.isfile(os.path.join(directory, "checkpoint")) or any(
        f.endswith(".index") for f in os.listdir(directory))
    hf_files = huggingface.HF_WEIGHT_FILES + huggingface.HF_TORCH_FILES
    if not has_tf1 and any(os.path.isfile(os.path.join(directory, f)) for f in hf_files):
        huggingface.hf_weights_path(directory)
        return Checkpoint("hf", directory, huggingface.hf_activation(config, config_path), config)
    resolve_tf1_prefix(directory)
    return Checkpoint("tf1", directory, tf1_activation(config, config_path), config)


# --- reading -----------------------------------------------------------------------------------------------


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


def read_tf1_tensors(prefix: str, tf1_names: Dict[str, str],
                     transposed: Sequence[str] = ()) -> Optional[Dict[str, np.ndarray]]:
    """The tensors of `tf1_names`' keys (canonical names; the TF1 names beside them) in the canonical layout, or
    None unless the checkpoint holds them all (`transposed`: stored [in, out] in TF1)."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    names = reader.get_variable_to_shape_map()
    if not all(n in names for n in tf1_names.values()):
        return None
    values = {k: np.asarray(reader.get_tensor(n), np.float32) for k, n in tf1_names.items()}
    return {k: v.T if k in transposed else v for k, v in values.items()}


# --- writing -----------------------------------------------------------------------------------------------


def tf1_config(task: models.TaskModel) -> Dict[str, Any]:
    """Google's bert_config.json of the task model's encoder."""
    backbone = task.backbone
    return {"attention_probs_dropout_prob": float(backbone.dropout), "hidden_act": TF1_HIDDEN_ACT[task.activation],
            "hidden_dropout_prob": float(backbone.dropout), "hidden_size": backbone.hidden_dim,
            "initializer_range": 0.02, "intermediate_size": backbone.intermediate_dim,
            "max_position_embeddings": backbone.max_sequence_length, "num_attention_heads": backbone.num_heads,
            "num_hidden_layers": backbone.num_layers, "type_vocab_size": backbone.num_segments,
            "vocab_size": backbone.vocabulary_size}


def tf1_classifier_tensors(task: models.TaskModel) -> Dict[str, np.ndarray]:
    """The classifier's weights under the published TF1 names and layouts: bert/... ([in, out] kernels),
    output_weights [labels + 1, hidden] and output_bias [labels + 1] in sorted label order, global_step."""
    if task.head != "sequence" or task.pooling != "pooler":
        raise InputError(f"--format=tf1 needs a sequence classifier that reads the pooler (the published head); "
                         f"this model is a {task.head} model with pooling {task.pooling!r}")
    state = backbone_state(task.backbone, include_pooler=True)
    tensors = {tf1_name(key): np.ascontiguousarray(np.transpose(value) if is_dense_weight(key) else value)
               .astype("float32")
               for key, value in state.items()}
    order = sorted(range(len(task.labels)), key=lambda i: task.labels[i])  # the published code sorts its labels
    classifier = task.model.get_layer("classifier")
    weights = np.transpose(np.asarray(classifier.kernel.numpy(), np.float32))[order]
    bias = np.asarray(classifier.bias.numpy(), np.float32)[order]
    tensors[TF1_CLASSIFIER_WEIGHTS] = np.vstack([weights, np.zeros((1, weights.shape[1]), np.float32)])
    tensors[TF1_CLASSIFIER_BIAS] = np.append(bias, np.float32(UNUSED_ROW_BIAS)).astype(np.float32)
    tensors["global_step"] = np.asarray(int(task.meta.get("global_step", 0)), np.int64)
    return tensors


def write_tf1_directory(output_dir: str, tensors: Dict[str, np.ndarray], bert_config: Dict[str, Any],
                        vocab_lines: Sequence[str], labels: Optional[Sequence[str]] = None) -> str:
    """Write model.ckpt-STEP (V2 bundle of `tensors`, STEP their global_step), `checkpoint`, bert_config.json,
    vocab.txt (and labels.txt), atomically; returns the checkpoint prefix."""
    import tensorflow as tf

    name = f"model.ckpt-{int(tensors['global_step'])}"
    with atomic_directory(output_dir) as tmp:
        names = sorted(tensors)
        tf.raw_ops.SaveV2(prefix=os.path.join(tmp, name), tensor_names=names, shape_and_slices=[""] * len(names),
                          tensors=[tf.constant(tensors[n]) for n in names])
        with open(os.path.join(tmp, "checkpoint"), "w", encoding="utf-8") as f:
            f.write(f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')
        with open(os.path.join(tmp, "bert_config.json"), "w", encoding="utf-8") as f:
            json.dump(bert_config, f, indent=2)
        with open(os.path.join(tmp, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(vocab_lines) + "\n")
        if labels is not None:
            with open(os.path.join(tmp, LABELS_FILE), "w", encoding="utf-8") as f:
                f.write("\n".join(labels) + "\n")
    return os.path.join(output_dir, name)


def note_exact_gelu(activation: str) -> None:
    """Say that Google's TF1 code computes GELU's tanh form when the model computes it exactly."""
    if activation == "gelu_exact":
        cli.notice("this model computes GELU exactly; Google's TF1 BERT code (bert_config \"gelu\") computes its "
                   "tanh form, so the published code's logits differ slightly (about 1e-3)")


def export_tf1(task: models.TaskModel, output_dir: str) -> str:
    """Write the fine-tuned classifier as model.ckpt-STEP (V2 bundle), `checkpoint`, bert_config.json, vocab.txt and
    labels.txt, atomically; returns the checkpoint prefix."""
    tensors = tf1_classifier_tensors(task)
    note_exact_gelu(task.activation)
    return write_tf1_directory(output_dir, tensors, tf1_config(task), huggingface.vocabulary_lines(task.tokenizer),
                               sorted(task.labels))


# --- a pretrained model (masked-LM and next-sentence heads) ------------------------------------------------

PRETRAINING_ARCHITECTURES = ("BertForMaskedLM", "BertForPreTraining")
GLOBAL_STEP_KEY = "bert_tf_global_step"  # config.json: the optimizer step a pretraining snapshot was taken at


def is_pretrained_model_dir(path: str) -> bool:
    """True for a Hugging Face BertForMaskedLM / BertForPreTraining directory (run_pretraining.py's model/ and
    model.ckpt-STEP snapshots)."""
    config_path = os.path.join(path, "config.json")
    if not os.path.isfile(config_path) or not os.path.isfile(os.path.join(path, "model.safetensors")):
        return False
    try:
        with open(config_path, encoding="utf-8") as f:
            architectures = json.load(f).get("architectures") or []
    except (OSError, ValueError):
        return False
    return any(a in PRETRAINING_ARCHITECTURES for a in architectures)


def pretraining_tf1_tensors(state: Mapping[str, np.ndarray], source: str) -> Dict[str, np.ndarray]:
    """A BertForMaskedLM / BertForPreTraining state dict under Google's TF1 names and layouts: bert/... ([in, out]
    kernels), cls/predictions/... and, when present, cls/seq_relationship/...; InputError without the masked-LM
    head."""
    tensors: Dict[str, np.ndarray] = {}
    for key, value in state.items():
        if key.startswith("bert."):
            canonical = key[len("bert."):]
            name, transposed = tf1_name(canonical), is_dense_weight(canonical)
        elif key in TF1_HEAD_NAMES:
            name, transposed = TF1_HEAD_NAMES[key], key == HEAD_DENSE_WEIGHT
        elif key in TF1_NSP_NAMES:  # [2, hidden] in both layouts
            name, transposed = TF1_NSP_NAMES[key], False
        else:
            continue  # the tied decoder (the word embeddings) and its duplicate bias
        tensors[name] = np.ascontiguousarray(np.transpose(value) if transposed else value).astype("float32")
    missing = sorted(n for n in TF1_HEAD_NAMES.values() if n not in tensors)
    if missing:
        raise InputError(f"no masked-LM head ({', '.join(missing)} missing)", source)
    return tensors


def bert_config_from_hf(config: Mapping[str, Any], config_path: str) -> Tuple[Dict[str, Any], str]:
    """(Google's bert_config.json of a transformers BERT config.json, the activation it computes)."""
    activation = huggingface.hf_activation(config, config_path)
    keys = ("attention_probs_dropout_prob", "hidden_dropout_prob", "hidden_size", "initializer_range",
            "intermediate_size", "max_position_embeddings", "num_attention_heads", "num_hidden_layers",
            "type_vocab_size", "vocab_size")
    return {**{k: config[k] for k in keys if k in config}, "hidden_act": TF1_HIDDEN_ACT[activation]}, activation


def export_pretrained_tf1(model_dir: str, output_dir: str) -> str:
    """Write a pretrained model (is_pretrained_model_dir) as Google's/NVIDIA's TF1 pretraining checkpoint:
    model.ckpt-STEP with bert/..., both heads' cls/... (the next-sentence head when the model has it) and
    global_step, `checkpoint`, bert_config.json, vocab.txt; returns the checkpoint prefix."""
    from safetensors.numpy import load_file

    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    tensors = pretraining_tf1_tensors(load_file(os.path.join(model_dir, "model.safetensors")), model_dir)
    tensors["global_step"] = np.asarray(int(config.get(GLOBAL_STEP_KEY, 0)), np.int64)
    bert_config, activation = bert_config_from_hf(config, os.path.join(model_dir, "config.json"))
    note_exact_gelu(activation)
    if TF1_NSP_NAMES[NSP_WEIGHT] not in tensors:
        cli.notice("the model has no next-sentence head: the checkpoint holds cls/predictions only (Google's and "
                   "NVIDIA's run_pretraining.py start cls/seq_relationship afresh)", model_dir)
    with open(os.path.join(model_dir, "vocab.txt"), encoding="utf-8") as f:
        vocab_lines = [line.rstrip("\r\n") for line in f]
    return write_tf1_directory(output_dir, tensors, bert_config, vocab_lines)
