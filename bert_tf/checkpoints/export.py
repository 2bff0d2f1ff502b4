"""Export a model fine-tuned by bert-tf as a Hugging Face directory, a TensorFlow SavedModel or a TensorFlow 1
checkpoint for the published TF1 code.

    python -m bert_tf.checkpoints.export --model_dir=runs/ner/model --format=hf --output_dir=out/hf [--overwrite]
    python -m bert_tf.checkpoints.export --model_dir=runs/ner/model --format=savedmodel --output_dir=out/serving
    python -m bert_tf.checkpoints.export --model_dir=runs/clf/model --format=tf1 --output_dir=out/tf1

hf: config.json, model.safetensors (BertForTokenClassification or BertForSequenceClassification names and
layouts), vocab.txt and tokenizer_config.json, loadable by transformers and by bert-tf itself
(`load_hf_task_model`). A sequence classifier that does not read the pooler (pooling cls or mention) has no
transformers class: it is exported as a BertModel (architectures ["BertModel"]) with the same classifier.weight
and classifier.bias tensors beside it and `bert_tf_pooling` / `bert_tf_pooling_position` in config.json, saying
which hidden state the classifier reads. savedmodel: a SavedModel whose `serving_default` signature takes int32 token_ids,
padding_mask and segment_ids of shape [batch, length] and returns logits and probabilities, with
labels.txt beside it. tf1 (sequence classifiers reading the pooler, the published setting): model.ckpt-STEP
with the variable names and shapes of a classifier fine-tuned by the published run_ner_consensus.py (bert/...,
output_weights [labels + 1, hidden] and output_bias [labels + 1], rows in sorted label order, the last one the
published code's unused row, its bias -10,000 so that no probability changes; global_step), a `checkpoint` file,
bert_config.json, vocab.txt and labels.txt (for run_classifier.py's labels folder).

A model of run_pretraining.py (its model/ or a model.ckpt-STEP snapshot: a Hugging Face BertForMaskedLM or
BertForPreTraining directory) exports as tf1 only: model.ckpt-STEP with the encoder (bert/...), the masked-LM head
(cls/predictions/transform/dense/kernel [hidden, hidden] and bias, cls/predictions/transform/LayerNorm/gamma and
beta, cls/predictions/output_bias [vocab]), the next-sentence head when the model has it
(cls/seq_relationship/output_weights [2, hidden], output_bias [2]) and global_step: the names and shapes Google's and
NVIDIA's run_pretraining.py read with --init_checkpoint; with `checkpoint`, bert_config.json and vocab.txt. The
directory is already a transformers one (hf).

`python -m bert_tf.export` runs the same command line.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from bert_tf import cli
from bert_tf.checkpoints import bert_tf_format, hf_task, savedmodel, tf1
from bert_tf.errors import InputError

FORMATS = ("hf", "savedmodel", "tf1")


def export(model_dir: str, fmt: str, output_dir: str, overwrite: bool = False) -> None:
    """Export the bert-tf model in `model_dir` to `output_dir` in format "hf", "savedmodel" or "tf1"."""
    if fmt not in FORMATS:
        raise InputError(f"--format={fmt}: must be one of {', '.join(FORMATS)}")
    cli.check_output_dir(output_dir, overwrite, "output_dir", overwrite_flag="--overwrite", action="replace it")
    if not tf1.is_pretrained_model_dir(model_dir) and tf1.is_pretrained_model_dir(os.path.join(model_dir, "model")):
        model_dir = os.path.join(model_dir, "model")  # a run_pretraining.py output folder: its final model
    if tf1.is_pretrained_model_dir(model_dir):
        if fmt != "tf1":
            raise InputError(f"--format={fmt}: a pretrained model (masked-LM head) exports as tf1 only; the directory "
                             "is already a Hugging Face one", model_dir)
        tf1.export_pretrained_tf1(model_dir, output_dir)
        return
    task = bert_tf_format.load_saved_model(model_dir)
    if fmt == "hf":
        hf_task.export_hf(task, output_dir)
    elif fmt == "tf1":
        tf1.export_tf1(task, output_dir)
    else:
        savedmodel.export_savedmodel(task, output_dir)


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
