"""Continued masked-LM pretraining as Python functions of a `PretrainingConfig` (what run_pretraining.py does):

    from bert_tf.pretraining.config import PretrainingConfig
    from bert_tf.pretraining import run

    result = run.train(PretrainingConfig(bert_model="/models/bert", input_files="text/*.txt", output_dir="out",
                                         num_train_steps=1000))
    result.after["perplexity"], result.model_dir  # the model_dir is --bert_model of run_ner.py / run_classifier.py

`train` continues pretraining (held-out figures before and after), `evaluate` measures a checkpoint on held-out
data without training, `run` does what the config's --do_train says. Each opens one run of the lifecycle
(bert_tf.lifecycle) unless one is in progress.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Dict, Optional, Tuple

import numpy as np

from bert_tf import (checkpoints, cli, config, distribution, html_report, lifecycle, optimization, resume,
                     tensorboard)
from bert_tf.batch_format import LABELS, PADDING_MASK
from bert_tf.errors import InputError
from bert_tf.checkpoints import Checkpoint
from bert_tf.checkpoints.tf1 import GLOBAL_STEP_KEY
from bert_tf.pretraining import evaluation, model as mlm_model, objective, tfrecords
from bert_tf.pretraining.config import COMMAND, PretrainingConfig, check, with_horovod
from bert_tf.pretraining.data import Data, TrainingData, read_held_out, read_training_data
from bert_tf.pretraining.tfrecords import NSP_FEATURE
from bert_tf.pretraining.snapshots import SnapshotWriter, snapshot_steps
from bert_tf.pretraining.training_accuracy import TrainingAccuracy
from bert_tf.tokenization import WordPieceTokenizer
from bert_tf.training import HistoryWriter, Trainer

Figures = Dict[str, float]


@dataclasses.dataclass
class PretrainingResult:
    """What a run produced: its output folder, the saved model (training only), and the held-out figures (loss,
    accuracy, perplexity; with next-sentence prediction also its loss and accuracy): before and after training, or
    of the checkpoint alone (`evaluated`)."""

    output_dir: str
    model_dir: Optional[str] = None
    before: Optional[Figures] = None
    after: Optional[Figures] = None
    evaluated: Optional[Figures] = None


def run(cfg: PretrainingConfig) -> PretrainingResult:
    """What the command line does: train (--do_train), else evaluate the checkpoint."""
    with lifecycle.running(COMMAND):
        cfg = prepared(cfg)
        return _train(cfg) if cfg.do_train else _evaluate(cfg)


def train(cfg: PretrainingConfig) -> PretrainingResult:
    """Continue pretraining for cfg.num_train_steps; save OUTPUT/model; held-out figures before and after."""
    with lifecycle.running(COMMAND):
        return _train(prepared(dataclasses.replace(cfg, do_train=True)))


def evaluate(cfg: PretrainingConfig) -> PretrainingResult:
    """The checkpoint's held-out masked-LM loss, accuracy and perplexity (and next-sentence loss and accuracy when
    the records carry its labels and the checkpoint has the head); trains nothing (--nodo_train)."""
    with lifecycle.running(COMMAND):
        return _evaluate(prepared(dataclasses.replace(cfg, do_train=False)))


def prepared(cfg: PretrainingConfig) -> PretrainingConfig:
    """The checked config, with the --horovod launch applied; the published flags that do nothing said once."""
    check(cfg)
    config.note_published_noops(cfg)
    return with_horovod(cfg)


def load(cfg: PretrainingConfig) -> Tuple[Checkpoint, WordPieceTokenizer]:
    """The checkpoint and its tokenizer, checked against --max_seq_length and for a [MASK] token."""
    checkpoint, tokenizer = checkpoints.load_checkpoint(
        cfg.checkpoint_spec, chief=distribution.chief_by_environment(cfg.distribution), length=cfg.max_seq_length,
        length_name="max_seq_length")
    tokenizer.token_to_id("[MASK]")
    return checkpoint, tokenizer


def next_sentence_plan(cfg: PretrainingConfig, checkpoint: Checkpoint,
                       data: Data) -> Tuple[Optional[Dict[str, np.ndarray]], str]:
    """(the checkpoint's next-sentence head when next-sentence prediction trains, else None; the run table's line
    saying which and why): on only when the TFRecords carry next_sentence_labels and the checkpoint has the head."""
    if cfg.next_sentence_prediction == "off":
        return None, "off (--next_sentence_prediction=off)"
    if not isinstance(data, tfrecords.TFRecordData):
        return None, "off (text carries no next-sentence labels)"
    if not data.has_next_sentence_labels:
        return None, "off (the TFRecords carry no next_sentence_labels)"
    head = checkpoints.read_next_sentence_head(checkpoint)
    if head is None:
        return None, "off (the checkpoint has no next-sentence head: cls/seq_relationship with the pooler)"
    return head, (f"on (labels in the TFRecords, head from {checkpoint.path}); loss = masked-LM loss + "
                  "next-sentence loss")


def use_next_sentence_labels(train_data: Data, held: Optional[Data]) -> None:
    """Make both sides' batches carry the next-sentence labels; InputError when the held-out records lack them."""
    if held is not None and not held.has_next_sentence_labels:
        raise InputError(f"the held-out records carry no {NSP_FEATURE} while the training records do (or give "
                         "--next_sentence_prediction=off)", held.paths[0])
    for data in (train_data, held):
        if data is not None:
            data.next_sentence = True


def setup(cfg: PretrainingConfig) -> distribution.RunContext:
    """Seeds, precision and the tf.distribute strategy of the run."""
    return distribution.setup_run(cfg.seed, cfg.mixed_precision, cfg.distribution, cfg.deterministic, cfg.amp_dtype)


def build_trainer(cfg: PretrainingConfig, checkpoint: Checkpoint, tokenizer: WordPieceTokenizer,
                  context: distribution.RunContext,
                  next_sentence: Optional[Dict[str, np.ndarray]]) -> Tuple[mlm_model.MaskedLM, Trainer]:
    """The masked-LM model (head from the checkpoint when it has one; with the next-sentence head when given), its
    optimizer, and the Trainer."""
    with context.strategy.scope():
        mlm = mlm_model.load_masked_lm(checkpoint, tokenizer, next_sentence=next_sentence)
        schedule = optimization.make_schedule(cfg.learning_rate_schedule, cfg.optimizer_type, cfg.peak_learning_rate,
                                              cfg.warmup_steps, cfg.num_train_steps)
        if cfg.head_warmup_steps:
            schedule = optimization.AfterConstantPhase(schedule, cfg.head_warmup_steps, cfg.head_warmup_learning_rate)
        optimizer = optimization.make_optimizer(cfg.optimizer_type, schedule, cfg.weight_decay,
                                                lamb_decay=cfg.lamb_weight_decay)
        if cfg.head_warmup_steps:
            encoder = {v.path for v in mlm.backbone.trainable_variables}
            optimizer.freeze_until(cfg.head_warmup_steps, lambda v: v.path in encoder)
    on = next_sentence is not None
    trainer = Trainer(mlm.model, optimizer, context.strategy, use_xla=cfg.use_xla, loss_scale=context.loss_scale,
                      passthrough_keys=(LABELS, PADDING_MASK) + ((NSP_FEATURE,) if on else ()),
                      log_every=cfg.log_every, verbose=cfg.verbose, feature_keys=mlm_model.MODEL_INPUTS,
                      accumulation_steps=cfg.num_accumulation_steps, losses=objective.losses(on))
    return mlm, trainer


def describe_masking(cfg: PretrainingConfig, data: Data) -> str:
    """The run table's masking line: the TFRecords' own masks, or how text is masked."""
    if isinstance(data, tfrecords.TFRecordData):
        return (f"as written in the TFRecords (made once by create_pretraining_data.py, at most "
                f"{cfg.max_predictions_per_seq} a sequence; --masked_lm_prob and --whole_word_masking do not apply)")
    return (f"{'whole-word' if cfg.whole_word_masking else 'per-piece'}, {cfg.masked_lm_prob:g} of the tokens (at "
            f"most {cfg.max_predictions_per_seq}), 80/10/10, new masks every epoch (seed {cfg.seed})")


def describe_rate(cfg: PretrainingConfig) -> str:
    """The run table's learning-rate line: the effective peak (with the --horovod scaling) and the schedule."""
    peak = f"peak {cfg.peak_learning_rate:g}"
    if cfg.horovod_ranks > 1:
        peak += (f" (--learning_rate {cfg.learning_rate:g} x {cfg.horovod_ranks} ranks, as NVIDIA's --horovod)"
                 if cfg.scale_learning_rate_by_ranks else
                 " (not scaled by the ranks: --noscale_learning_rate_by_ranks)")
    return peak + "; " + optimization.describe_schedule(cfg.learning_rate_schedule, cfg.optimizer_type,
                                                        cfg.peak_learning_rate, cfg.warmup_steps, cfg.num_train_steps)


def describe_optimizer(cfg: PretrainingConfig) -> str:
    """The run table's optimizer line."""
    decay = f"weight decay {cfg.weight_decay:g} (not on LayerNorm weights or biases)"
    if cfg.optimizer_type == "lamb":
        decay += (" inside the trust ratio, as NVIDIA's LAMB" if cfg.lamb_weight_decay == "trust_ratio" else
                  ", decoupled from the LAMB step (--lamb_weight_decay=decoupled)")
    return f"{cfg.optimizer_type}, {decay}; gradients clipped to global norm 1"


def training_summary(cfg: PretrainingConfig, checkpoint: Checkpoint, tokenizer: WordPieceTokenizer,
                     mlm: mlm_model.MaskedLM, nsp_line: str, data: TrainingData,
                     context: distribution.RunContext) -> Dict[str, object]:
    """The rows of the training run's table."""
    steps_per_epoch = data.train.steps_per_epoch
    epochs = math.ceil(cfg.total_steps / steps_per_epoch)
    return {
        "model": f"{checkpoint.path} ({checkpoint.kind}; activation {checkpoint.activation})",
        "masked-LM head": mlm.head_source,
        "head warm-up": (f"{cfg.head_warmup_steps} steps training the head alone (encoder frozen) at "
                         f"{cfg.head_warmup_learning_rate:g}, then the whole model" if cfg.head_warmup_steps else
                         "none (--head_warmup_steps=0)"),
        "next-sentence prediction": nsp_line,
        "tokenizer": f"{tokenizer.source} (lower-case: {tokenizer.lowercase})",
        "data": data.described,
        "masking": describe_masking(cfg, data.train),
        "devices": distribution.describe_devices(context.strategy),
        "batch": f"{context.describe_batch(cfg.train_batch_size)} x {cfg.num_accumulation_steps} accumulation "
                 f"step(s): global batch {cfg.update_batch_size} sequences per update",
        "steps": f"{cfg.total_steps} ({steps_per_epoch} per epoch, {epochs} epoch(s))",
        "optimizer": describe_optimizer(cfg),
        "learning rate": describe_rate(cfg),
        "precision": context.precision, "xla": cfg.use_xla,
    }


def _train(cfg: PretrainingConfig) -> PretrainingResult:
    """train() on a prepared config."""
    checkpoint, tokenizer = load(cfg)
    cfg = cfg.with_head_warmup(checkpoints.read_masked_lm_head(checkpoint) is None)
    data = read_training_data(cfg, tokenizer, cfg.update_batch_size)
    next_sentence, nsp_line = next_sentence_plan(cfg, checkpoint, data.train)
    if next_sentence is not None:
        use_next_sentence_labels(data.train, data.held)
    checkpointer = resume.prepare_training_dir(cfg.output_dir, cfg.overwrite_output_dir, cfg.resume, "output_dir",
                                               config.fingerprint(cfg, data.files),
                                               distribution.chief_by_environment(cfg.distribution))
    context = setup(cfg)
    if cfg.train_batch_size % context.replicas:
        raise InputError(f"--train_batch_size={cfg.train_batch_size} must be a multiple of the {context.replicas} "
                         "replicas")
    mlm, trainer = build_trainer(cfg, checkpoint, tokenizer, context, next_sentence)
    summary = training_summary(cfg, checkpoint, tokenizer, mlm, nsp_line, data, context)
    cli.print_table("bert-tf masked-LM pretraining", summary)
    os.makedirs(cfg.output_dir, exist_ok=True)
    if context.chief:
        cli.write_run_config(cfg.output_dir, config.values(cfg), {"checkpoint": checkpoint.path})
        html_report.write_run_summary(cfg.output_dir, "bert-tf masked-LM pretraining", {
            **summary, html_report.EXAMPLES_PER_EPOCH: data.train.steps_per_epoch * cfg.update_batch_size})
    try:
        with tfrecords.naming_bad_records():
            return fit(cfg, trainer, mlm, data, checkpointer, context.chief)
    except InputError:  # a bad record met while training: the training states saved so far stay
        resume.keep_saved_states(checkpointer)
        raise


def fit(cfg: PretrainingConfig, trainer: Trainer, mlm: mlm_model.MaskedLM, data: TrainingData,
        checkpointer: resume.TrainingCheckpointer, chief: bool) -> PretrainingResult:
    """Train for --num_train_steps with held-out evaluations; write the model, results and report."""
    out_dir, train_data, held = cfg.output_dir, data.train, data.held
    steps_per_epoch = train_data.steps_per_epoch

    def make_epoch_dataset(epoch: int, first_step: int):
        num = min(steps_per_epoch, cfg.total_steps - epoch * steps_per_epoch)
        return train_data.epoch_dataset(epoch, first_step, num), num

    on = mlm.next_sentence is not None
    validate = (lambda: evaluation.evaluate(trainer, held, cfg.eval_batch_size, on, cfg.max_eval_steps)
                ) if held is not None else None
    before = validate() if validate is not None and checkpointer.resume_state is None else None
    if before:
        print("held-out before training: " + "  ".join(f"{k}={v:.4f}" for k, v in before.items()))
    held_out_before = evaluation.HeldOutBefore(before)
    callbacks = [held_out_before] + ([HistoryWriter(trainer, out_dir, objective.metrics(on))] if chief else [])
    callbacks += tensorboard.make_writer(cfg.tensorboard, chief, trainer, out_dir)
    checkpointer.attach(mlm.model, trainer.optimizer)
    if chief:
        trainer.step_hooks.append(SnapshotWriter(mlm, out_dir, cfg.save_checkpoints_steps, cfg.keep_checkpoint_max))
    started, accuracy = time.time(), TrainingAccuracy(on)
    trainer.fit(make_epoch_dataset, epochs=math.ceil(cfg.total_steps / steps_per_epoch), validate=validate,
                outputs=accuracy, validations_per_epoch=cfg.num_validate_during_training,
                validate_every_steps=cfg.eval_every_steps,
                callbacks=callbacks, checkpointer=checkpointer, save_every_steps=cfg.save_checkpoints_steps)
    seconds = time.time() - started
    print(f"training took {seconds:.1f} s ({accuracy.tokens / max(seconds, 1e-9):.0f} tokens/s: real tokens, "
          "padding not counted)")
    last = next((row for row in reversed(trainer.history) if row["split"] == "val"), None)
    after = {k: last[k] for k in objective.metrics(on)} if last else None
    model_dir = os.path.join(out_dir, "model")
    if chief:
        mlm_model.save_hf(mlm, model_dir, {GLOBAL_STEP_KEY: trainer.global_step})
        print(evaluation.write_eval_results(out_dir, {"before": held_out_before.values, "after": after},
                                            trainer.global_step))
        html_report.write_run_report(out_dir)
    resume.finish_training(checkpointer, cfg.keep_checkpoints)
    architecture = mlm_model.HF_PRETRAINING_ARCHITECTURE if on else mlm_model.HF_ARCHITECTURE
    print(f"outputs in {out_dir}: model/ (Hugging Face {architecture}; --bert_model={out_dir} for run_ner.py and "
          f"run_classifier.py), {'model.ckpt-STEP snapshots, ' if snapshot_steps(out_dir) else ''}eval_results.txt, "
          "history.csv, loss.png, accuracy.png, perplexity.png"
          f"{', masked_lm_loss.png, next_sentence_loss.png, next_sentence_accuracy.png' if on else ''}, report.html")
    return PretrainingResult(out_dir, model_dir, held_out_before.values, after)


def _evaluate(cfg: PretrainingConfig) -> PretrainingResult:
    """evaluate() on a prepared config."""
    checkpoint, tokenizer = load(cfg)
    held, described = read_held_out(cfg, tokenizer)
    next_sentence, nsp_line = next_sentence_plan(cfg, checkpoint, held)
    if next_sentence is not None:
        use_next_sentence_labels(held, None)
    context = setup(cfg)
    with context.strategy.scope():
        mlm = mlm_model.load_masked_lm(checkpoint, tokenizer, next_sentence=next_sentence)
    trainer = Trainer(mlm.model, None, context.strategy, use_xla=cfg.use_xla, passthrough_keys=(LABELS,),
                      verbose=cfg.verbose, feature_keys=mlm_model.MODEL_INPUTS)
    cli.print_table("bert-tf masked-LM evaluation", {
        "model": f"{checkpoint.path} ({checkpoint.kind})", "masked-LM head": mlm.head_source,
        "next-sentence prediction": nsp_line, "data": described,
        "masking": describe_masking(cfg, held) if isinstance(held, tfrecords.TFRecordData) else
                   f"fixed held-out masks, {cfg.masked_lm_prob:g} of the tokens (seed {cfg.seed})",
        "devices": distribution.describe_devices(context.strategy), "precision": context.precision})
    with tfrecords.naming_bad_records():
        results = evaluation.evaluate(trainer, held, cfg.eval_batch_size, next_sentence is not None,
                                      cfg.max_eval_steps)
    if context.chief:
        os.makedirs(cfg.output_dir, exist_ok=True)
        print(evaluation.write_eval_results(cfg.output_dir, {"eval": results}))
        print(f"outputs in {cfg.output_dir}: eval_results.txt, eval_results.json")
    return PretrainingResult(cfg.output_dir, evaluated=results)
