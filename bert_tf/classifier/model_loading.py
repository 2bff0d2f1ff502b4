"""The trained classifier a run evaluates and predicts with when it does not train: a model saved by bert-tf
(<output_dir>/model, --bert_model, or --init_checkpoint naming a fine-tuning run's output), or a classifier
fine-tuned by the published TF1 code (with its labels)."""

from __future__ import annotations

import os
from typing import List, Optional, Tuple

from bert_tf import checkpoints, cli, distribution
from bert_tf.classifier import inputs, model_settings
from bert_tf.classifier.config import ClassifierConfig
from bert_tf.classifier.model_settings import Classifier, ModelSettings
from bert_tf.classifier.published_model import load_published_classifier
from bert_tf.errors import InputError
from bert_tf.training import Trainer


def given_labels(cfg: ClassifierConfig, keep_order: bool = False) -> Optional[Tuple[List[str], str]]:
    """The labels of --labels_dir (sorted) or --labels_file (sorted, or in file order with --keep_labels_order
    or `keep_order`) and their file; None when neither."""
    if cfg.labels_dir:
        return inputs.read_labels_dir(cfg.labels_dir)
    if cfg.labels_file:
        return inputs.resolve_labels(cfg.labels_file, None, cfg.keep_labels_order or keep_order)
    return None


def _lengths_given(cfg: ClassifierConfig) -> bool:
    """Whether --max_seq_length or --replace_span differ from their defaults (were chosen for this run)."""
    defaults = ClassifierConfig()
    return (cfg.max_seq_length, cfg.replace_span) != (defaults.max_seq_length, defaults.replace_span)


def load_trained(cfg: ClassifierConfig, run: distribution.RunContext) -> Classifier:
    """A trained classifier: a published TF1 one (--bert_config_file/--vocab_file/--init_checkpoint, or --bert_model
    a TF1 checkpoint, with --labels_file or --labels_dir), else a saved one (--output_dir/model or --bert_model: a
    model saved by bert-tf or a Hugging Face sequence classification folder)."""
    trio = cfg.bert_config_file or cfg.vocab_file or cfg.init_checkpoint
    candidates = [] if trio else [os.path.join(cfg.output_dir, "model")] + ([cfg.bert_model] if cfg.bert_model else [])
    fine_tuned = checkpoints.saved_model_under(cfg.init_checkpoint)
    if fine_tuned:  # the published prediction command: --init_checkpoint names the fine-tuning run's output
        cli.notice("--init_checkpoint is a model fine-tuned by bert-tf: its own config and vocabulary are used "
                   "(--bert_config_file and --vocab_file are not needed)", fine_tuned)
        candidates, trio = [fine_tuned], None
    for path in candidates:
        if os.path.isdir(path) and checkpoints.saved_model_under(path) == path:
            return load_saved(cfg, run, path)
    if trio or (cfg.bert_model and os.path.exists(cfg.bert_model)):
        checkpoint, tokenizer = checkpoints.load_checkpoint(cfg.checkpoint_spec, chief=run.chief)
        if checkpoint.kind == "tf1":
            return load_published(cfg, run, checkpoint, tokenizer)
    raise InputError("no trained model: train with --do_train first, or point --bert_model at a saved model "
                     "(or give a published TF1 classifier checkpoint with --labels_dir)",
                     (candidates or [cfg.init_checkpoint])[0])


def load_saved(cfg: ClassifierConfig, run: distribution.RunContext, path: str) -> Classifier:
    """A sequence classifier saved by bert-tf, with its saved settings (--apply_temperature folds its fitted
    temperature in)."""
    with run.strategy.scope():
        task = checkpoints.load_saved_model(path)
    if task.head != "sequence":
        raise InputError("this saved model is not a sequence classifier", path)
    task.meta.setdefault("model_path", os.path.abspath(path))
    settings = model_settings.resolve(task.meta, cfg.max_seq_length, cfg.replace_span, path, task.pooling,
                                      _lengths_given(cfg))
    model = Classifier(task, Trainer(task.model, None, run.strategy, use_xla=cfg.use_xla, verbose=cfg.verbose),
                       settings)
    if cfg.apply_temperature:
        model.apply_fitted_temperature(path)
    return model


def load_published(cfg: ClassifierConfig, run: distribution.RunContext, checkpoint: checkpoints.Checkpoint,
                   tokenizer) -> Classifier:
    """A classifier fine-tuned by the published TF1 code, with the (sorted) labels it was trained on; its
    max_seq_length and replace_span are this run's."""
    found = given_labels(cfg, keep_order=True)  # the checkpoint's rows are in sorted order whatever the file's
    if found is None:
        raise InputError("a published TF1 classifier needs its labels: --labels_dir (or --labels_file)", checkpoint.path)
    labels, source = found
    if list(labels) != sorted(labels):
        cli.notice("the published code sorts its labels; using them sorted: " + ", ".join(sorted(labels)), source)
    with run.strategy.scope():
        task = load_published_classifier(checkpoint, tokenizer, sorted(labels), source)
    task.meta.update(max_seq_length=cfg.max_seq_length, replace_span=cfg.replace_span, model_path=checkpoint.path)
    settings = ModelSettings(cfg.max_seq_length, cfg.replace_span, extra_logits=task.meta["extra_logits"],
                             pooling=task.pooling, published_tf1=True, model_path=checkpoint.path)
    print(f"published TF1 classifier {checkpoint.path}: labels {', '.join(task.labels)} (+{settings.extra_logits} "
          f"unused logit); max_seq_length {cfg.max_seq_length}, replace_span {cfg.replace_span}")
    return Classifier(task, Trainer(task.model, None, run.strategy, use_xla=cfg.use_xla, verbose=cfg.verbose),
                      settings)
