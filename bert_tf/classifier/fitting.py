"""Fine-tuning the classifier: its features, model, optimizer and schedule, the training loop with a validation on
dev.tsv after every epoch, calibration, and the saved model."""

from __future__ import annotations

import functools
import math
import os
import time
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from bert_tf import (checkpoints, class_weights, cli, config, distribution, fine_tuning, html_report, models,
                     optimization, resume, tensorboard)
from bert_tf.batch_format import LABELS
from bert_tf.classifier import calibration, evaluation, feature_cache, inference, inputs
from bert_tf.classifier.config import ClassifierConfig
from bert_tf.classifier.model_settings import Classifier, ModelSettings
from bert_tf.tokenization import WordPieceTokenizer
from bert_tf.training import HistoryWriter, OutputTracker, Trainer

TITLE = "bert-tf consensus classifier"


class Steps(NamedTuple):
    """The training length: steps per epoch, steps in all (--num_train_epochs may end mid-epoch), epochs begun,
    and steps of linear warm-up."""

    per_epoch: int
    total: int
    epochs: int
    warmup: int


def cache_root(cfg: ClassifierConfig) -> str:
    """Where feature caches live."""
    return cfg.cache_dir or os.path.join(cfg.output_dir, "feature_cache")


def training_steps(cfg: ClassifierConfig, num_examples: int) -> Steps:
    """How long --num_train_epochs of --train_batch_size (global) batches over `num_examples` train, counted as the
    published code counted them: int(n / batch * epochs) steps in all, rounded down (12.5M examples at 256:
    48,828 steps, not 48,829), full batches only (an epoch: n // batch of them; one, partial, when n < batch);
    the warm-up int(--warmup_proportion * steps)."""
    per_epoch = max(1, num_examples // cfg.train_batch_size)
    total = max(1, int(num_examples / cfg.train_batch_size * cfg.num_train_epochs))
    return Steps(per_epoch, total, int(math.ceil(total / per_epoch)), int(cfg.warmup_proportion * total))


def load_features(cfg: ClassifierConfig, chief: bool, labels: Sequence[str], labels_source: str,
                  tokenizer: WordPieceTokenizer) -> Tuple[feature_cache.CacheInfo, feature_cache.CacheInfo]:
    """The features of train.tsv and dev.tsv (from the feature cache when built before)."""
    paths = [inputs.split_path(cfg.data_dir, split) for split in ("train", "dev")]
    train_info, dev_info = (inputs.build_features(path, labels, labels_source, tokenizer, cfg.max_seq_length,
                                                  cfg.replace_span, cache_root(cfg), chief=chief,
                                                  workers=cfg.featurize_workers)
                            for path in paths)
    return train_info, dev_info


def build_model(cfg: ClassifierConfig, run: distribution.RunContext, checkpoint: checkpoints.Checkpoint,
                tokenizer: WordPieceTokenizer, labels: Sequence[str], steps: Steps,
                weights: Optional[np.ndarray]) -> Tuple[models.TaskModel, Trainer]:
    """The sequence classifier, its optimizer (--optimizer, linear warm-up and decay) and trainer."""
    with run.strategy.scope():
        task = checkpoints.build_task_model(checkpoint, tokenizer, labels, "sequence", cfg.classifier_dropout,
                                       pooling=cfg.pooling)
        schedule = optimization.WarmupLinearDecay(cfg.learning_rate, steps.warmup, steps.total)
        optimizer = optimization.make_optimizer(cfg.optimizer, schedule, cfg.weight_decay)
    trainer = Trainer(task.model, optimizer, run.strategy, use_xla=cfg.use_xla, loss_scale=run.loss_scale,
                      log_every=cfg.log_every, verbose=cfg.verbose, class_weights=weights)
    return task, trainer


def run_table(cfg: ClassifierConfig, checkpoint: checkpoints.Checkpoint, task: models.TaskModel,
              run: distribution.RunContext, labels_source: str, train_info: feature_cache.CacheInfo,
              dev_info: feature_cache.CacheInfo, steps: Steps, weights: Optional[np.ndarray]) -> Dict[str, object]:
    """What this run trains, on what, how: printed at the start and kept for report.html."""
    data_rows = {
        "labels": f"{', '.join(task.labels)} (from {labels_source})",
        "data": f"train {train_info.num_examples}, dev {dev_info.num_examples} examples; "
                f"max_seq_length {cfg.max_seq_length}; replace_span {cfg.replace_span}",
    }
    tolerated = {split: inputs.describe_tolerated(info) for split, info in (("train", train_info), ("dev", dev_info))}
    if any(tolerated.values()):
        data_rows["rows read as published"] = "; ".join(f"{split}: {text or 'none'}"
                                                        for split, text in tolerated.items())
    training_rows = {
        "steps": f"{steps.per_epoch} per epoch, {steps.total} in all ({cfg.num_train_epochs:g} epochs; full "
                 f"batches, rounded down as published), warm-up {steps.warmup}",
        "optimizer": f"{cfg.optimizer}, peak learning rate {cfg.learning_rate:g}, weight decay "
                     f"{cfg.weight_decay:g}, clip norm 1.0",
        "head": f"pooling {cfg.pooling}; class weights "
                f"{class_weights.describe_class_weights(cfg.class_weights, weights, task.labels)}; "
                f"calibrate {cfg.calibrate}",
    }
    return fine_tuning.run_table(checkpoint, task, run, cfg.train_batch_size, cfg.use_xla, data_rows, training_rows)


def write_run_summary(cfg: ClassifierConfig, summary: Dict[str, object], train_info: feature_cache.CacheInfo) -> None:
    """The run table, examples per epoch and truncation counts, for report.html."""
    html_report.write_run_summary(cfg.output_dir, TITLE,
                                  {**summary, html_report.EXAMPLES_PER_EPOCH: train_info.num_examples,
                                   "cut to max_seq_length (train)": f"{train_info.mentions_truncated} mentions, "
                                   f"{train_info.left_truncated} left and {train_info.right_truncated} right "
                                   "contexts"})


def epoch_dataset(cfg: ClassifierConfig, train_info: feature_cache.CacheInfo, steps: Steps, epoch: int,
                  first_step: int):
    """The batches of training epoch `epoch` from step `first_step` on (shuffled by seed and epoch), and how many
    the epoch has (the last may be cut short by --num_train_epochs)."""
    count = min(steps.per_epoch, steps.total - epoch * steps.per_epoch)
    data = feature_cache.cache_dataset(train_info, cfg.train_batch_size, shuffle=True, seed=cfg.seed * 1000 + epoch)
    return inputs.as_training_batches(data).take(count).skip(first_step), count


class DevValidation:
    """The validation after every epoch: loss, accuracy and macro F1 on dev.tsv; it keeps the last confusion
    matrix (for TensorBoard) and watches for a collapse (`guard`)."""

    def __init__(self, trainer: Trainer, dev_info: feature_cache.CacheInfo, labels: Sequence[str], batch_size: int):
        self.trainer, self.dev_info, self.labels, self.batch_size = trainer, dev_info, labels, batch_size
        self.guard = calibration.CollapseGuard()
        self.confusion_matrix: Optional[list] = None

    def __call__(self) -> Dict[str, float]:
        metrics = evaluation.evaluate(self.trainer, self.dev_info, self.labels, self.batch_size)
        self.confusion_matrix = metrics["confusion_matrix"]
        self.guard.check(metrics)
        return {"loss": metrics["loss"], "accuracy": metrics["accuracy"], "f1": metrics["macro"]["f1"]}


def fit(cfg: ClassifierConfig, task: models.TaskModel, trainer: Trainer, train_info: feature_cache.CacheInfo,
        dev_info: feature_cache.CacheInfo, steps: Steps, checkpointer: resume.TrainingCheckpointer,
        chief: bool) -> calibration.CollapseGuard:
    """Train (resuming where the checkpointer left off), validating on dev.tsv after every epoch; what the
    validations saw of a collapse."""
    validation = DevValidation(trainer, dev_info, task.labels, cfg.eval_batch_size)
    tracker = OutputTracker(["preds", LABELS], evaluation.training_metrics)
    callbacks = [validation.guard] + ([HistoryWriter(trainer, cfg.output_dir, ("loss", "accuracy", "f1"))]
                                      if chief else [])
    callbacks += tensorboard.make_writer(cfg.tensorboard, chief, trainer, cfg.output_dir, task.labels,
                                         lambda: validation.confusion_matrix)
    checkpointer.attach(task.model, trainer.optimizer)
    started = time.time()
    trainer.fit(functools.partial(epoch_dataset, cfg, train_info, steps), epochs=steps.epochs, validate=validation,
                outputs=tracker, callbacks=callbacks, checkpointer=checkpointer,
                save_every_steps=cfg.save_checkpoints_steps)
    print(f"training took {time.time() - started:.1f} s")
    return validation.guard


def calibrate(cfg: ClassifierConfig, model: Classifier, dev_info: feature_cache.CacheInfo) -> None:
    """Fit a temperature on the dev logits and record it with the model (`fitted_temperature`); applied to the
    probabilities only with --apply_temperature."""
    logits, gold = inference.predict_logits(model.trainer, dev_info, cfg.eval_batch_size)
    temperature = calibration.fit_temperature(logits, gold)
    report = calibration.calibration_report(logits, gold, temperature)
    model.settings.fitted_temperature = temperature
    model.task.meta["fitted_temperature"] = temperature
    model.task.meta["calibration"] = {"fitted_on": dev_info.num_examples, **report}
    print(f"calibration: temperature {temperature:.4f} fitted on dev ({dev_info.num_examples} examples): "
          f"ECE {report['before']['ece']:.4f} -> {report['after']['ece']:.4f}, "
          f"NLL {report['before']['nll']:.4f} -> {report['after']['nll']:.4f}; "
          + ("applied (--apply_temperature)" if cfg.apply_temperature
             else "recorded, not applied: the probabilities are the raw softmax (--apply_temperature applies it)"))


def finish_model(cfg: ClassifierConfig, model: Classifier, dev_info: feature_cache.CacheInfo,
                 guard: calibration.CollapseGuard, chief: bool) -> None:
    """Record a collapse, calibrate (--calibrate) and save the model (the chief) to <output_dir>/model."""
    settings = model.settings
    settings.collapsed, settings.global_step, settings.temperature = guard.collapsed, model.trainer.global_step, 1.0
    if guard.collapsed:
        print(f"WARNING: {guard.summary()}")
    model.task.meta.update(collapsed=settings.collapsed, global_step=settings.global_step, temperature=1.0)
    if cfg.calibrate:
        calibrate(cfg, model, dev_info)
    if cfg.apply_temperature:
        model.apply_fitted_temperature("the model just trained")
    if chief:
        checkpoints.save_model(model.task, os.path.join(cfg.output_dir, "model"),
                          {"max_seq_length": cfg.max_seq_length, "replace_span": cfg.replace_span,
                           "flags": config.values(cfg)})


def train_model(cfg: ClassifierConfig, run: distribution.RunContext, labels: Sequence[str], labels_source: str,
                checkpointer: resume.TrainingCheckpointer) -> Classifier:
    """Fine-tune on train.tsv, validate on dev.tsv after every epoch, save the final model."""
    checkpoint, tokenizer = checkpoints.load_checkpoint(cfg.checkpoint_spec, chief=run.chief,
                                                       length=cfg.max_seq_length, length_name="max_seq_length")
    if run.chief and checkpoint.hub:
        cli.write_run_config(cfg.output_dir, config.values(cfg), {"hub": checkpoint.hub})
    train_info, dev_info = load_features(cfg, run.chief, labels, labels_source, tokenizer)
    steps = training_steps(cfg, train_info.num_examples)
    weights = class_weights.resolve_class_weights(cfg.class_weights, labels, inputs.cache_label_ids(train_info))
    task, trainer = build_model(cfg, run, checkpoint, tokenizer, labels, steps, weights)
    summary = run_table(cfg, checkpoint, task, run, labels_source, train_info, dev_info, steps, weights)
    cli.print_table(TITLE, summary)
    if run.chief:
        write_run_summary(cfg, summary, train_info)
    guard = fit(cfg, task, trainer, train_info, dev_info, steps, checkpointer, run.chief)
    model = Classifier(task, trainer, ModelSettings(cfg.max_seq_length, cfg.replace_span, pooling=cfg.pooling))
    finish_model(cfg, model, dev_info, guard, chief=run.chief)
    return model
