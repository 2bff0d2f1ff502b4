"""A NER training run: read and encode the data, build the token classifier, fit it (validating, keeping the best
model by validation F1, resumable), then test the best model and write the reports."""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from bert_tf import (checkpoints, class_weights, cli, config, distribution, fine_tuning, html_report, lifecycle,
                     models, optimization, resume, tensorboard)
from bert_tf.errors import InputError
from bert_tf.io_utils import write_json_atomic, write_text_atomic
from bert_tf.ner.metrics import format_ner_report
from bert_tf.ner import data as ner_data, windowing
from bert_tf.ner.batching import ROW_ID, batches_dataset, bucket_lengths, make_batches
from bert_tf.ner.config import COMMAND, NerConfig
from bert_tf.ner.evaluation import evaluate, format_decoding_report, training_metrics
from bert_tf.ner.model_settings import NerModelSettings
from bert_tf.ner.prediction import EvalSet, make_eval_set
from bert_tf.ner.rows import Rows, encode_documents, training_rows
from bert_tf.tokenization import WordPieceTokenizer
from bert_tf.training import BestModelMonitor, HistoryWriter, OutputTracker, Trainer

Datasets = Dict[str, List[ner_data.NerExample]]


def read_datasets(cfg: NerConfig) -> Tuple[Datasets, bool]:
    """train/val/test examples, and whether they were split from a single file."""
    if not cfg.data_path:
        raise InputError("--data_path is required for training")
    files = ner_data.find_ner_files(cfg.data_path)
    if "data" in files:
        examples = ner_data.read_ner_csv(files["data"])
        train, val, test = ner_data.split_train_val_test(examples, cfg.val_test_size, cfg.seed)
        return {"train": first_examples(cfg, train), "val": val, "test": test}, True
    datasets = {split: ner_data.read_ner_csv(files[split]) for split in ("train", "val", "test")}
    return {**datasets, "train": first_examples(cfg, datasets["train"])}, False


def first_examples(cfg: NerConfig, train: List[ner_data.NerExample]) -> List[ner_data.NerExample]:
    """The training examples --max_train_examples keeps (all when 0)."""
    return train[:cfg.max_train_examples] if cfg.max_train_examples else train


def build_optimizer(cfg: NerConfig, steps_per_epoch: int):
    """AdamW with the chosen schedule and, with --double_lr, the encoder at a tenth of the rate."""
    if cfg.linear_scheduler:
        schedule = optimization.WarmupLinearDecay(cfg.learning_rate, int(0.2 * steps_per_epoch),
                                                  cfg.epochs * steps_per_epoch)
    else:
        schedule = optimization.EpochExponentialDecay(cfg.learning_rate, cfg.gamma, steps_per_epoch)
    multiplier = (lambda v: 1.0 if models.is_head_variable(v) else 0.1) if cfg.double_lr else None
    return optimization.make_optimizer("adamw", schedule, cfg.weight_decay, multiplier_of=multiplier)


def choose_labels(cfg: NerConfig, datasets: Datasets) -> List[str]:
    """The model's labels (--labels_file, or the training tags), every split's tags checked against them."""
    labels = (ner_data.read_labels_file(cfg.labels_file) if cfg.labels_file
              else ner_data.label_list_from_examples(datasets["train"]))
    for split in (("train", "val", "test") if cfg.labels_file else ("val", "test")):
        source = datasets[split][0].source if datasets[split] else cfg.data_path
        ner_data.check_known_tags(datasets[split], labels, source, cfg.labels_file)
    return labels


def choose_context(requested: str, has_documents: bool, saved: str = "none") -> Tuple[str, str]:
    """--context, with auto resolved: the saved model's setting when predicting with one, else none (document
    context did not beat sentence-only context on both BC5CDR and Turku NER in bench/CONTEXT_RESULTS.md, so it
    is asked for with --context=document); the context that runs and its description (a warning when document
    context was asked for and the data has no document ids)."""
    context, description = windowing.resolve_context(requested, has_documents, saved)
    if description != context:
        cli.notice(f"context {description}", kind="warning")
    return context, description


def eval_set_of(examples: Sequence[ner_data.NerExample], labels: Optional[List[str]], tokenizer: WordPieceTokenizer,
                max_len: int, context: str) -> EvalSet:
    """Windows of the examples, with gold labels when `labels` is given."""
    tags = None if labels is None else [e.tags for e in examples]
    label_to_id = {} if labels is None else {label: i for i, label in enumerate(labels)}
    return make_eval_set([e.tokens for e in examples], tags, label_to_id, tokenizer, max_len,
                         [e.doc_id for e in examples], context)


@dataclasses.dataclass
class TrainingInputs:
    """What a training run reads, as the model sees it: the splits, labels, context, windows and batching."""

    datasets: Datasets
    was_split: bool
    labels: List[str]
    context: str
    context_description: str
    train_rows: Rows
    words_cut: int
    shortened: int
    val_set: EvalSet
    test_set: EvalSet
    buckets: List[int]
    steps_per_epoch: int
    class_weights: Optional[np.ndarray]

    @property
    def train_docs(self) -> List[ner_data.NerExample]:
        """The training examples."""
        return self.datasets["train"]


def prepare_output_dir(cfg: NerConfig, datasets: Datasets) -> resume.TrainingCheckpointer:
    """Check the output folder (empty, --overwrite_output_dir, or a run of these settings and data to resume); the
    run's checkpointer."""
    data_files = sorted({e.source for split in datasets.values() for e in split[:1] if e.source})
    return resume.prepare_training_dir(cfg.save_model_path, cfg.overwrite_output_dir, cfg.resume, "save_model_path",
                                       config.fingerprint(cfg, data_files),
                                       distribution.chief_by_environment(cfg.distribution),
                                       config.identity(cfg, COMMAND, data_files))


def encode_inputs(cfg: NerConfig, datasets: Datasets, was_split: bool, labels: List[str],
                  context_choice: Tuple[str, str], tokenizer: WordPieceTokenizer) -> TrainingInputs:
    """Training windows, validation and test sets, padded lengths, steps per epoch and class weights; the context
    that runs and its description from choose_context."""
    context = context_choice[0]
    label_to_id = {label: i for i, label in enumerate(labels)}
    train_docs = datasets["train"]
    pieces = encode_documents([e.tokens for e in train_docs], tokenizer)
    rows, words_cut, shortened = training_rows(
        pieces, [[label_to_id[t] for t in e.tags] for e in train_docs], cfg.max_len, tokenizer,
        [e.doc_id for e in train_docs], context)
    val_set, test_set = (eval_set_of(datasets[s], labels, tokenizer, cfg.max_len, context) for s in ("val", "test"))
    buckets = bucket_lengths(cfg.max_len, cfg.bucket_by_length, cfg.bucket_lengths)
    weights = class_weights.resolve_class_weights(
        cfg.class_weights, labels, np.array([label_to_id[t] for e in train_docs for t in e.tags], np.int64))
    steps_per_epoch = len(make_batches(rows.lengths(), cfg.batch_size, buckets, False))
    return TrainingInputs(datasets, was_split, labels, *context_choice, rows, words_cut, shortened, val_set,
                          test_set, buckets, steps_per_epoch, weights)


def build_model(cfg: NerConfig, run: distribution.RunContext, checkpoint: checkpoints.Checkpoint,
                tokenizer: WordPieceTokenizer, inputs: TrainingInputs) -> Tuple[models.TaskModel, List[str], Trainer]:
    """The token classifier (with --freeze_layers applied; the frozen parts named), its optimizer and trainer."""
    with run.strategy.scope():
        task = checkpoints.build_task_model(checkpoint, tokenizer, inputs.labels, "token", cfg.classifier_dropout)
        frozen = models.freeze_layers(task.backbone, cfg.freeze_layers, "freeze_layers")
        optimizer = build_optimizer(cfg, inputs.steps_per_epoch)
    trainer = Trainer(task.model, optimizer, run.strategy, use_xla=cfg.use_xla, loss_scale=run.loss_scale,
                      passthrough_keys=(ROW_ID,), log_every=cfg.log_every, verbose=cfg.verbose,
                      class_weights=inputs.class_weights)
    return task, frozen, trainer


def run_table(cfg: NerConfig, checkpoint: checkpoints.Checkpoint, task: models.TaskModel,
              run: distribution.RunContext, inputs: TrainingInputs, frozen: List[str]) -> Dict[str, object]:
    """What this run trains, on what, how: printed at the start and kept for report.html."""
    train_docs, labels, context = inputs.train_docs, inputs.labels, inputs.context
    data_rows = {
        "labels": f"{len(labels)}: {', '.join(labels)}",
        "data": f"train {len(train_docs)}, val {inputs.val_set.num_docs}, test {inputs.test_set.num_docs} documents"
                + (f" (split from one file, {cfg.val_test_size} each for val and test)" if inputs.was_split else ""),
        "windows": f"{len(inputs.train_rows)} training windows of at most max_len={cfg.max_len} for "
                   f"{len(train_docs)} rows; {inputs.words_cut} training words cut"
                   + (f" ({inputs.shortened} over-long words keep their first {cfg.max_len - 2} sub-tokens)"
                      if inputs.shortened else ""),
        "context": inputs.context_description
                   + (f" (documents: {len(ner_data.document_groups(train_docs))} in training)"
                      if context == "document" else "")
                   + f"; words decided by the {cfg.vote} window; decoding {cfg.decoding}",
    }
    training_rows_ = {
        "steps": f"{inputs.steps_per_epoch} per epoch, up to {cfg.epochs} epochs; padded lengths {inputs.buckets}",
        "class weights": class_weights.describe_class_weights(cfg.class_weights, inputs.class_weights, labels),
    }
    trainable = sum(int(v.numpy().size) for v in task.model.trainable_variables)
    return {**fine_tuning.run_table(checkpoint, task, run, cfg.batch_size, cfg.use_xla, data_rows, training_rows_),
            "trainable": f"{trainable:,} parameters" + (f" (frozen: {', '.join(frozen)})" if frozen else "")}


def write_run_files(cfg: NerConfig, chief: bool, summary: Dict[str, object], inputs: TrainingInputs,
                    checkpoint: checkpoints.Checkpoint) -> None:
    """run_config.json, the run summary for report.html and, for data split here, the three splits."""
    out_dir = cfg.save_model_path
    os.makedirs(out_dir, exist_ok=True)
    if not chief:
        return
    cli.write_run_config(out_dir, config.values(cfg), {"labels": inputs.labels, "max_len": cfg.max_len,
                                                       "checkpoint": checkpoint.path, "context": inputs.context,
                                                       "hub": checkpoint.hub})
    html_report.write_run_summary(out_dir, "bert-tf NER", {
        **summary, html_report.EXAMPLES_PER_EPOCH: len(inputs.train_docs),
        "training tag counts": html_report.counts(t for e in inputs.train_docs for t in e.tags),
        "windows": f"val {len(inputs.val_set.rows)}, test {len(inputs.test_set.rows)} windows of "
                   f"max_len={cfg.max_len}"})
    if inputs.was_split:
        for split, examples in inputs.datasets.items():
            ner_data.write_ner_csv(os.path.join(out_dir, f"{split}.csv"), examples)


def epoch_dataset(cfg: NerConfig, inputs: TrainingInputs, pad_id: int, epoch: int, first_step: int):
    """The batches of training epoch `epoch` from step `first_step` on (shuffled by seed and epoch), and how many
    the epoch has."""
    batches = make_batches(inputs.train_rows.lengths(), cfg.batch_size, inputs.buckets, True,
                           np.random.default_rng([cfg.seed, epoch]))
    dataset = batches_dataset(inputs.train_rows, batches[first_step:], inputs.buckets, pad_id, cfg.num_workers)
    return dataset, len(batches)


def validate(cfg: NerConfig, trainer: Trainer, inputs: TrainingInputs, pad_id: int) -> Dict[str, float]:
    """Loss, accuracy and F1 on the validation set."""
    metrics, _ = evaluate(trainer, inputs.val_set, inputs.labels, cfg.batch_size, inputs.buckets, pad_id,
                          cfg.num_workers, cfg.vote, cfg.decoding)
    return {"loss": metrics["loss"], "accuracy": metrics["accuracy"], "f1": metrics["f1"]}


def save_model(cfg: NerConfig, task: models.TaskModel, model_dir: str, context: str, chief: bool) -> None:
    """Save the model (the chief only) with what prediction needs: max_len, context, vote, decoding, settings."""
    if chief:
        checkpoints.save_model(task, model_dir, {"flags": config.values(cfg),
                                            **NerModelSettings.of_training(cfg, context).meta()})


def fit(cfg: NerConfig, trainer: Trainer, task: models.TaskModel, inputs: TrainingInputs,
        checkpointer: resume.TrainingCheckpointer, chief: bool) -> BestModelMonitor:
    """Train (resuming where the checkpointer left off), validating and saving the best model by validation F1,
    stopping after --patience validations without a better one; the best weights are restored at the end."""
    out_dir = cfg.save_model_path
    model_dir, pad_id = os.path.join(out_dir, "model"), task.tokenizer.pad_id
    tracker = OutputTracker(["preds", ROW_ID], lambda parts: training_metrics(parts, inputs.train_rows, inputs.labels))
    monitor = BestModelMonitor("val_f1", functools.partial(save_model, cfg, task, model_dir, inputs.context, chief),
                               cfg.patience, "max", cfg.verbose)
    callbacks = [monitor] + ([HistoryWriter(trainer, out_dir, ("loss", "accuracy", "f1"))] if chief else [])
    callbacks += tensorboard.make_writer(cfg.tensorboard, chief, trainer, out_dir)
    checkpointer.attach(task.model, trainer.optimizer)
    started = time.time()
    trainer.fit(functools.partial(epoch_dataset, cfg, inputs, pad_id), epochs=cfg.epochs,
                validate=functools.partial(validate, cfg, trainer, inputs, pad_id), outputs=tracker,
                validations_per_epoch=cfg.num_validate_during_training, callbacks=callbacks,
                checkpointer=checkpointer, save_every_steps=cfg.save_checkpoints_steps)
    print(f"training took {time.time() - started:.1f} s; best validation F1 {monitor.best:.4f} "
          f"at epoch {monitor.best_position:.2f}")
    monitor.restore_best(task.model, lambda: checkpoints.load_saved_model(model_dir).model.get_weights())
    return monitor


def train_and_test(cfg: NerConfig) -> Dict[str, object]:
    """Fine-tune, keep the best model by validation F1, then test it and write the reports; the test metrics.
    `cfg` is normalized (bert_tf.ner.config.normalized) and names the output folder."""
    datasets, was_split = read_datasets(cfg)
    checkpoint, tokenizer = checkpoints.load_checkpoint(
        cfg.checkpoint_spec, chief=distribution.chief_by_environment(cfg.distribution), length=cfg.max_len,
        length_name="max_len")
    labels = choose_labels(cfg, datasets)
    context = choose_context(cfg.context, ner_data.has_documents(datasets["train"]))
    checkpointer = prepare_output_dir(cfg, datasets)
    run = distribution.setup_run(cfg.seed, cfg.use_amp, cfg.distribution, cfg.deterministic, cfg.amp_dtype)
    inputs = encode_inputs(cfg, datasets, was_split, labels, context, tokenizer)
    task, frozen, trainer = build_model(cfg, run, checkpoint, tokenizer, inputs)
    summary = run_table(cfg, checkpoint, task, run, inputs, frozen)
    cli.print_table("bert-tf NER", summary)
    write_run_files(cfg, run.chief, summary, inputs, checkpoint)
    monitor = fit(cfg, trainer, task, inputs, checkpointer, run.chief)
    metrics = test(cfg, trainer, inputs, tokenizer.pad_id, monitor, run.chief)
    resume.finish_training(checkpointer, cfg.keep_checkpoints)
    return metrics


def test(cfg: NerConfig, trainer: Trainer, inputs: TrainingInputs, pad_id: int, monitor: BestModelMonitor,
         chief: bool) -> Dict[str, object]:
    """Evaluate the best model on the test set; write and print the report; the test metrics."""
    lifecycle.enter_phase("test")
    out_dir = cfg.save_model_path
    metrics, _ = evaluate(trainer, inputs.test_set, inputs.labels, cfg.batch_size, inputs.buckets, pad_id,
                          cfg.num_workers, cfg.vote, cfg.decoding, compare=True)
    metrics["best_validation_f1"] = monitor.best
    metrics["best_validation_epoch"] = monitor.best_position
    report = format_ner_report(metrics, metrics["loss"], title="Test set (best validation model)")
    report += format_decoding_report(metrics)
    if chief:
        write_json_atomic(os.path.join(out_dir, "test_results.json"), metrics)
        write_text_atomic(os.path.join(out_dir, "test_report.txt"), report)
        html_report.write_run_report(out_dir)
    print(report)
    print(f"outputs in {out_dir}: model/, history.csv, loss.png, accuracy.png, f1.png, "
          f"test_results.json, test_report.txt, report.html")
    return metrics
