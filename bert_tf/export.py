"""Export a model fine-tuned by bert-tf as a Hugging Face directory, a TensorFlow SavedModel or a TensorFlow 1
checkpoint for the published TF1 code.

    python -m bert_tf.export --model_dir=runs/ner/model --format=hf --output_dir=out/hf [--overwrite]
    python -m bert_tf.export --model_dir=runs/ner/model --format=savedmodel --output_dir=out/serving
    python -m bert_tf.export --model_dir=runs/clf/model --format=tf1 --output_dir=out/tf1

hf: config.json, model.safetensors (BertForTokenClassification or BertForSequenceClassification names and
layouts), vocab.txt and tokenizer_config.json, loadable by transformers and by bert-tf itself
(`load_hf_task_model`). A sequence classifier that does not read the pooler (--pooling=cls or mention) has no
transformers class: it is exported as a BertModel (architectures ["BertModel"]) with the same classifier.weight
and classifier.bias tensors beside it and `bert_tf_pooling` / `bert_tf_pooling_position` in config.json, saying
which hidden state the classifier reads. savedmodel: a SavedModel whose `serving_default` signature takes int32 token_ids,
padding_mask and segment_ids of shape [batch, length] and returns logits and probabilities, with
labels.txt beside it. tf1 (sequence classifiers reading the pooler, the published setting): model.ckpt-STEP
with the variable names and shapes of a classifier fine-tuned by the published run_ner_consensus.py (bert/...,
output_weights [labels + 1, hidden] and output_bias [labels + 1], rows in sorted label order, the last one the
published code's unused row, its bias -10,000 so that no probability changes; global_step), a `checkpoint` file,
bert_config.json, vocab.txt and labels.txt (for --labels_dir).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from bert_tf import cli, models, pretrained
from bert_tf.batch_format import FEATURE_KEYS
from bert_tf.errors import InputError
from bert_tf.io_utils import atomic_directory
from bert_tf.tokenization import TOKENIZER_CONFIG, WordPieceTokenizer

FORMATS = ("hf", "savedmodel", "tf1")
HF_ARCHITECTURES = {"token": "BertForTokenClassification", "sequence": "BertForSequenceClassification"}
HF_ENCODER_ONLY = "BertModel"  # the architecture of a sequence classifier that does not read the pooler
# Which hidden state a non-pooler sequence classifier reads, in words for config.json.
HF_POOLING_POSITIONS = {"cls": "0 ([CLS])", "mention": "sequence_length // 2 (the mention's first token)"}
HF_HIDDEN_ACT = {"gelu_exact": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}
LABELS_FILE = "labels.txt"
TF1_HIDDEN_ACT = {"gelu_tanh": "gelu", "gelu_exact": "gelu", "relu": "relu"}  # Google's "gelu" is the tanh form
UNUSED_ROW_BIAS = -1.0e4  # the published head's extra row: exp(-1e4) is 0, so every probability stays ours


# --- Hugging Face ------------------------------------------------------------------------------------------


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


def hf_config(task: models.TaskModel) -> Dict[str, Any]:
    """The transformers config.json of a task model."""
    pooled_by_us = task.head == "sequence" and task.pooling != "pooler"
    pooling = {"bert_tf_pooling": task.pooling, "bert_tf_pooling_position": HF_POOLING_POSITIONS[task.pooling]} \
        if pooled_by_us else {}
    return {
        "architectures": [HF_ENCODER_ONLY if pooled_by_us else HF_ARCHITECTURES[task.head]],
        **pooling,
        **hf_encoder_config(task.backbone, task.activation, task.tokenizer.pad_id),
        "classifier_dropout": float(task.dropout),
        "id2label": {str(i): label for i, label in enumerate(task.labels)},
        "label2id": {label: i for i, label in enumerate(task.labels)},
        "num_labels": len(task.labels),
    }


def hf_state_dict(task: models.TaskModel) -> Dict[str, np.ndarray]:
    """The task model's weights under transformers' names and layouts ([out, in] dense weights).

    A token classifier has no pooler in transformers (BertForTokenClassification), so none is written.
    """
    state = pretrained.backbone_state(task.backbone, include_pooler=task.head == "sequence")
    tensors = {"bert." + key: value.astype("float32") for key, value in state.items()}
    classifier = task.model.get_layer("classifier")
    tensors["classifier.weight"] = np.ascontiguousarray(np.transpose(classifier.kernel.numpy())).astype("float32")
    tensors["classifier.bias"] = np.asarray(classifier.bias.numpy()).astype("float32")
    return tensors


def vocabulary_lines(tokenizer: WordPieceTokenizer) -> List[str]:
    """The vocabulary as vocab.txt lines (line index = token id)."""
    if tokenizer.source.endswith(".txt"):
        with open(tokenizer.source, encoding="utf-8") as f:
            return [line.rstrip("\r\n") for line in f]
    by_id = {i: token for token, i in tokenizer.tokenizer.get_vocab(with_added_tokens=True).items()}
    return [by_id.get(i, f"[unused_id_{i}]") for i in range(max(by_id) + 1)]


def write_hf_tokenizer(task: models.TaskModel, directory: str) -> None:
    """vocab.txt and tokenizer_config.json for transformers' BertTokenizer."""
    write_hf_tokenizer_files(task.tokenizer, task.backbone.max_sequence_length, directory)


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


def export_hf(task: models.TaskModel, output_dir: str) -> None:
    """Write a transformers directory (config, safetensors weights, tokenizer files), replacing it atomically."""
    from safetensors.numpy import save_file

    with atomic_directory(output_dir) as tmp:
        with open(os.path.join(tmp, "config.json"), "w", encoding="utf-8") as f:
            json.dump(hf_config(task), f, indent=2, ensure_ascii=False)
        save_file(hf_state_dict(task), os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        write_hf_tokenizer(task, tmp)


def load_hf_task_weights(task: models.TaskModel, directory: str) -> None:
    """Copy classifier.weight / classifier.bias of a Hugging Face task checkpoint into `task`'s head."""
    source = pretrained.hf_weight_source(directory)
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
    checkpoint = pretrained.find_checkpoint(directory)
    config_path = os.path.join(directory, "config.json")
    if checkpoint.kind != "hf":
        raise InputError("not a Hugging Face directory (config.json + weights)", directory)
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
    task = models.build_task_model(checkpoint, tokenizer, labels, heads[architecture], dropout,
                                   pooling=pooling if heads[architecture] == "sequence" else "pooler")
    load_hf_task_weights(task, directory)
    return task


# --- SavedModel --------------------------------------------------------------------------------------------


def serving_module(model: Any) -> Any:
    """A tf.Module around a Keras task model with a `serve` function: int32 token_ids, padding_mask,
    segment_ids [batch, length] -> {"logits", "probabilities" (softmax over the last axis)}."""
    import tensorflow as tf

    spec = [tf.TensorSpec([None, None], tf.int32, name=n) for n in FEATURE_KEYS]

    class Serving(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="bert_tf_serving")
            self.model_variables = list(model.variables)  # tracked here; the Keras model stays untracked

        @tf.function(input_signature=spec, autograph=False)
        def serve(self, token_ids, padding_mask, segment_ids):
            inputs = dict(zip(FEATURE_KEYS, (token_ids, padding_mask, segment_ids)))
            logits = tf.cast(model(inputs, training=False), tf.float32)
            return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1)}

    return Serving()


def export_savedmodel(task: models.TaskModel, output_dir: str) -> None:
    """Write a TensorFlow SavedModel with a `serving_default` signature and labels.txt, atomically."""
    import tensorflow as tf

    module = serving_module(task.model)
    with atomic_directory(output_dir) as tmp:
        tf.saved_model.save(module, tmp, signatures={"serving_default": module.serve})
        with open(os.path.join(tmp, LABELS_FILE), "w", encoding="utf-8") as f:
            f.write("\n".join(task.labels) + "\n")


# --- TensorFlow 1 (the published code) --------------------------------------------------------------------


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
    state = pretrained.backbone_state(task.backbone, include_pooler=True)
    tensors = {pretrained.tf1_name(key): np.ascontiguousarray(np.transpose(value) if pretrained.is_dense_weight(key)
                                                             else value).astype("float32")
               for key, value in state.items()}
    order = sorted(range(len(task.labels)), key=lambda i: task.labels[i])  # the published code sorts its labels
    classifier = task.model.get_layer("classifier")
    weights = np.transpose(np.asarray(classifier.kernel.numpy(), np.float32))[order]
    bias = np.asarray(classifier.bias.numpy(), np.float32)[order]
    tensors[pretrained.TF1_CLASSIFIER_WEIGHTS] = np.vstack([weights, np.zeros((1, weights.shape[1]), np.float32)])
    tensors[pretrained.TF1_CLASSIFIER_BIAS] = np.append(bias, np.float32(UNUSED_ROW_BIAS)).astype(np.float32)
    tensors["global_step"] = np.asarray(int(task.meta.get("global_step", 0)), np.int64)
    return tensors


def export_tf1(task: models.TaskModel, output_dir: str) -> str:
    """Write model.ckpt-STEP (V2 bundle), `checkpoint`, bert_config.json, vocab.txt and labels.txt, atomically;
    returns the checkpoint prefix."""
    import tensorflow as tf

    tensors = tf1_classifier_tensors(task)
    name = f"model.ckpt-{int(tensors['global_step'])}"
    if task.activation == "gelu_exact":
        cli.notice("this model computes GELU exactly; Google's TF1 BERT code (bert_config \"gelu\") computes its "
                   "tanh form, so the published code's logits differ slightly (about 1e-3)")
    with atomic_directory(output_dir) as tmp:
        names = sorted(tensors)
        tf.raw_ops.SaveV2(prefix=os.path.join(tmp, name), tensor_names=names, shape_and_slices=[""] * len(names),
                          tensors=[tf.constant(tensors[n]) for n in names])
        with open(os.path.join(tmp, "checkpoint"), "w", encoding="utf-8") as f:
            f.write(f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')
        with open(os.path.join(tmp, "bert_config.json"), "w", encoding="utf-8") as f:
            json.dump(tf1_config(task), f, indent=2)
        with open(os.path.join(tmp, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(vocabulary_lines(task.tokenizer)) + "\n")
        with open(os.path.join(tmp, LABELS_FILE), "w", encoding="utf-8") as f:
            f.write("\n".join(sorted(task.labels)) + "\n")
    return os.path.join(output_dir, name)


# --- command line --------------------------------------------------------------------------------------------


def export(model_dir: str, fmt: str, output_dir: str, overwrite: bool = False) -> None:
    """Export the bert-tf model in `model_dir` to `output_dir` in format "hf", "savedmodel" or "tf1"."""
    if fmt not in FORMATS:
        raise InputError(f"--format={fmt}: must be one of {', '.join(FORMATS)}")
    cli.check_output_dir(output_dir, overwrite, "output_dir", overwrite_flag="--overwrite", action="replace it")
    task = models.load_saved_model(model_dir)
    if fmt == "hf":
        export_hf(task, output_dir)
    elif fmt == "tf1":
        export_tf1(task, output_dir)
    else:
        export_savedmodel(task, output_dir)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """The command-line flags (--model_dir, --format, --output_dir, --overwrite)."""
    parser = argparse.ArgumentParser(prog="python -m bert_tf.export", description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True, help="a model saved by bert-tf (or its run directory)")
    parser.add_argument("--format", required=True, choices=FORMATS,
                        help="hf: transformers; savedmodel: TF serving; tf1: the published TF1 code's checkpoint")
    parser.add_argument("--output_dir", required=True, help="where to write the export")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --output_dir")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the export; bad input prints one 'error: ...' line and returns 2."""
    args = parse_args(argv)

    def run() -> None:
        export(args.model_dir, args.format, args.output_dir, args.overwrite)
        print(f"exported {args.model_dir} as {args.format} to {args.output_dir}")

    return cli.error_exit_status(run)


if __name__ == "__main__":
    sys.exit(main())
