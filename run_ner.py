"""Fine-tune BERT for named entity recognition on CSV data (tokens, tags), then test and report.

    python run_ner.py --bert_model=/models/finbert --data_path=./data --save_model_path=model/test_model \
        --max_len=512 --learning_rate=5e-5 --epochs=5 --batch_size=16

    python run_ner.py --do_predict --save_model_path=model/test_model --predict_file=new.csv
"""

from __future__ import annotations

from bert_tf import quiet  # noqa: F401  (first: silences TensorFlow's start-up unless --verbose_tf)

import dataclasses
import functools
import json
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple

from absl import app, flags

from bert_tf import flags as shared_flags
from bert_tf.errors import InputError
from bert_tf.ner import decoding, windowing

shared_flags.define_shared_flags()
shared_flags.set_published_ner_model()
flags.DEFINE_string("data_path", None, "Folder with train.csv, val.csv, test.csv (or only train.csv / data.csv "
                    "to be split with --val_test_size). Columns: tokens, tags (Python list literals).")
flags.DEFINE_string("save_model_path", None, "Output folder: model, plots, history, test report.")
flags.DEFINE_integer("max_len", 128, "Maximum sequence length in sub-tokens ([CLS] and [SEP] included).")
flags.DEFINE_float("gamma", 0.9, "Exponential decay: the learning rate is multiplied by gamma after every epoch "
                   "(with --nolinear_scheduler).")
flags.DEFINE_integer("epochs", 5, "Maximum number of training epochs.")
flags.DEFINE_integer("batch_size", 16, "Global batch size (split across replicas).")
flags.DEFINE_bool("bucket_by_length", True,
                  "Batch sequences of similar length and pad them to a fixed set of lengths (--bucket_lengths); "
                  "--nobucket_by_length pads every batch to --max_len.")
flags.DEFINE_list("bucket_lengths", [], "Padded lengths for --bucket_by_length, e.g. 32,64,128 (default: 16 to "
                  "512, at most 25%% apart above 32; capped at --max_len). Fewer lengths: fewer XLA compilations, "
                  "more padding.")
flags.DEFINE_integer("num_workers", 2, "Input-pipeline parallelism (tf.data threads and prefetched batches).")
flags.DEFINE_integer("patience", 3, "Stop after this many epochs without a new best validation F1 (0: never).")
flags.DEFINE_integer("freeze_layers", 0, "0: train everything; N>0: freeze the embeddings and the first N "
                     "encoder layers; -1: freeze the embeddings only.")
flags.DEFINE_bool("double_lr", False, "Encoder at learning_rate/10, classification head at learning_rate.")
flags.DEFINE_float("classifier_dropout", 0.1, "Dropout before the classification layer.")
flags.DEFINE_integer("num_validate_during_training", 1, "Validations per epoch, evenly spaced, the last at its end.")
flags.DEFINE_bool("linear_scheduler", True, "Linear warm-up (20%% of one epoch) then linear decay to 0; "
                  "--nolinear_scheduler: exponential decay by --gamma per epoch.")
flags.DEFINE_float("val_test_size", 0.1, "Fraction for each of val and test when data_path holds a single file.")
flags.DEFINE_integer("max_train_examples", 0, "Train on the first N training examples only (0: all); the "
                     "validation and test splits are kept whole (the demo trains on fewer examples, more passes).")
flags.DEFINE_bool("do_train", True, "Train (the default unless --do_predict is given alone).")
flags.DEFINE_string("predict_file", None, "Input for --do_predict: CSV with a tokens column, CoNLL, or raw text "
                    "(a .txt file, one document a line, or a folder of .txt files, one document each: split into "
                    "sentences and words here; entities also written with character offsets and as brat .ann).")
flags.DEFINE_enum("context", "auto", ["auto", *windowing.CONTEXT_MODES],
                  "Cross-sentence context: document fills each sentence's window with the preceding and following "
                  "sentences of its document (doc_id column, -DOCSTART- lines); none: each row alone; auto: "
                  "none for training, the saved model's setting for prediction (document context did not beat "
                  "sentence-only on both BC5CDR and Turku NER in bench/CONTEXT_RESULTS.md, so it is not the default).")
flags.DEFINE_enum("context_vote", windowing.DEFAULT_VOTE, list(windowing.VOTES),
                  "Which window decides a word seen in several: a majority over all of them (ties: the most "
                  "central), or the one where it is most central (bench/CONTEXT_RESULTS.md: majority is as good or "
                  "better on both BC5CDR and Turku NER).")
flags.DEFINE_enum("decode", decoding.DEFAULT_DECODE, list(decoding.DECODE_MODES),
                  "viterbi: the most probable IOB2-valid tag sequence of each sentence; argmax: each word's most "
                  "probable tag.")
flags.DEFINE_string("labels_file", None, "The tags, one a line, 'O' first, in the model's order (default: 'O' "
                    "then the training data's tags, sorted). Tags of val/test must be in it.")
flags.DEFINE_string("predict_output", None, "Predictions CSV (default: <save_model_path>/predictions.csv); "
                    ".conll and .jsonl files are written beside it.")
FLAGS = flags.FLAGS

# Imported after the flags so that `--help` is fast and TensorFlow starts only when needed.
import numpy as np  # noqa: E402

from bert_tf import (class_weights, cli, distribution, fine_tuning, html_report, models, optimization,  # noqa: E402
                     checkpoints, resume, tensorboard)
from bert_tf.ner import data as ner_data, raw_text, task as ner  # noqa: E402
from bert_tf.io_utils import write_json_atomic, write_text_atomic  # noqa: E402
from bert_tf.metrics import format_ner_report  # noqa: E402
from bert_tf.tokenization import WordPieceTokenizer  # noqa: E402
from bert_tf.training import BestModelMonitor, HistoryWriter, OutputTracker, Trainer  # noqa: E402


def check_flags() -> None:
    """Reject flag values that cannot work, before anything is read or written."""
    if FLAGS.max_len < 8:
        raise InputError(f"--max_len={FLAGS.max_len}: must be at least 8")
    for name in ("epochs", "batch_size", "num_workers", "num_validate_during_training"):
        if FLAGS[name].value < 1:
            raise InputError(f"--{name}={FLAGS[name].value}: must be at least 1")
    if not 0.0 < FLAGS.classifier_dropout < 1.0 and FLAGS.classifier_dropout != 0.0:
        raise InputError(f"--classifier_dropout={FLAGS.classifier_dropout}: must be in [0, 1)")
    if FLAGS.max_train_examples < 0:
        raise InputError(f"--max_train_examples={FLAGS.max_train_examples}: must be 0 (all) or positive")
    if FLAGS.learning_rate <= 0:
        raise InputError(f"--learning_rate={FLAGS.learning_rate}: must be positive")
    if not all(b.isdigit() and int(b) >= 8 for b in FLAGS.bucket_lengths):
        raise InputError(f"--bucket_lengths={','.join(FLAGS.bucket_lengths)}: must be whole numbers of at least 8")


def read_datasets() -> Tuple[Dict[str, List[ner_data.NerExample]], bool]:
    """train/val/test examples, and whether they were split from a single file."""
    if not FLAGS.data_path:
        raise InputError("--data_path is required for training")
    files = ner_data.find_ner_files(FLAGS.data_path)
    if "data" in files:
        examples = ner_data.read_ner_csv(files["data"])
        train, val, test = ner_data.split_train_val_test(examples, FLAGS.val_test_size, FLAGS.seed)
        return {"train": first_examples(train), "val": val, "test": test}, True
    datasets = {split: ner_data.read_ner_csv(files[split]) for split in ("train", "val", "test")}
    return {**datasets, "train": first_examples(datasets["train"])}, False


def first_examples(train: List[ner_data.NerExample]) -> List[ner_data.NerExample]:
    """The training examples --max_train_examples keeps (all when 0)."""
    return train[:FLAGS.max_train_examples] if FLAGS.max_train_examples else train


def build_optimizer(task: models.TaskModel, steps_per_epoch: int):
    """AdamW with the chosen schedule and, with --double_lr, the encoder at a tenth of the rate."""
    if FLAGS.linear_scheduler:
        schedule = optimization.WarmupLinearDecay(
            FLAGS.learning_rate, int(0.2 * steps_per_epoch), FLAGS.epochs * steps_per_epoch)
    else:
        schedule = optimization.EpochExponentialDecay(FLAGS.learning_rate, FLAGS.gamma, steps_per_epoch)
    multiplier = (lambda v: 1.0 if models.is_head_variable(v) else 0.1) if FLAGS.double_lr else None
    return optimization.make_optimizer("adamw", schedule, FLAGS.weight_decay, multiplier_of=multiplier)


def choose_labels(datasets: Dict[str, List[ner_data.NerExample]]) -> List[str]:
    """The model's labels (--labels_file, or the training tags), every split's tags checked against them."""
    labels = (ner_data.read_labels_file(FLAGS.labels_file) if FLAGS.labels_file
              else ner_data.label_list_from_examples(datasets["train"]))
    for split in (("train", "val", "test") if FLAGS.labels_file else ("val", "test")):
        source = datasets[split][0].source if datasets[split] else FLAGS.data_path
        ner_data.check_known_tags(datasets[split], labels, source, FLAGS.labels_file)
    return labels


def choose_context(has_documents: bool, saved: str = "none") -> Tuple[str, str]:
    """--context, with auto resolved: the saved model's setting when predicting with one, else none (document
    context did not beat sentence-only context on both BC5CDR and Turku NER in bench/CONTEXT_RESULTS.md, so it
    is asked for with --context=document); the context that runs and its description (a warning when document
    context was asked for and the data has no document ids)."""
    context, description = windowing.resolve_context(FLAGS.context, has_documents, saved)
    if description != context:
        cli.notice(f"context {description}", kind="warning")
    return context, description


def eval_set_of(examples: Sequence[ner_data.NerExample], labels: Optional[List[str]], tokenizer: WordPieceTokenizer,
                max_len: int, context: str) -> ner.EvalSet:
    """Windows of the examples, with gold labels when `labels` is given."""
    tags = None if labels is None else [e.tags for e in examples]
    label_to_id = {} if labels is None else {label: i for i, label in enumerate(labels)}
    return ner.make_eval_set([e.tokens for e in examples], tags, label_to_id, tokenizer, max_len,
                             [e.doc_id for e in examples], context)


@dataclasses.dataclass
class TrainingInputs:
    """What a training run reads, as the model sees it: the splits, labels, context, windows and batching."""

    datasets: Dict[str, List[ner_data.NerExample]]
    was_split: bool
    labels: List[str]
    context: str
    context_description: str
    train_rows: ner.Rows
    words_cut: int
    shortened: int
    val_set: ner.EvalSet
    test_set: ner.EvalSet
    buckets: List[int]
    steps_per_epoch: int
    class_weights: Optional[np.ndarray]

    @property
    def train_docs(self) -> List[ner_data.NerExample]:
        """The training examples."""
        return self.datasets["train"]


def prepare_output_dir(out_dir: str, datasets: Dict[str, List[ner_data.NerExample]]) -> resume.TrainingCheckpointer:
    """Check the output folder (empty, --overwrite_output_dir, or a run of these flags and data to resume); the
    run's checkpointer."""
    data_files = sorted({e.source for split in datasets.values() for e in split[:1] if e.source})
    fingerprint = resume.run_fingerprint(cli.flag_values(flags), data_files)
    return resume.prepare_training_dir(out_dir, FLAGS.overwrite_output_dir, FLAGS.resume, "save_model_path",
                                       fingerprint, distribution.chief_by_environment(FLAGS.distribution),
                                       cli.run_identity(flags, data_files))


def encode_inputs(datasets: Dict[str, List[ner_data.NerExample]], was_split: bool, labels: List[str],
                  context_choice: Tuple[str, str], tokenizer: WordPieceTokenizer) -> TrainingInputs:
    """Training windows, validation and test sets, padded lengths, steps per epoch and class weights; the context
    that runs and its description from choose_context."""
    context = context_choice[0]
    label_to_id = {label: i for i, label in enumerate(labels)}
    train_docs = datasets["train"]
    pieces = ner.encode_documents([e.tokens for e in train_docs], tokenizer)
    train_rows, words_cut, shortened = ner.training_rows(
        pieces, [[label_to_id[t] for t in e.tags] for e in train_docs], FLAGS.max_len, tokenizer,
        [e.doc_id for e in train_docs], context)
    val_set, test_set = (eval_set_of(datasets[s], labels, tokenizer, FLAGS.max_len, context) for s in ("val", "test"))
    buckets = ner.bucket_lengths(FLAGS.max_len, FLAGS.bucket_by_length, FLAGS.bucket_lengths)
    weights = class_weights.resolve_class_weights(
        FLAGS.class_weights, labels, np.array([label_to_id[t] for e in train_docs for t in e.tags], np.int64))
    steps_per_epoch = len(ner.make_batches(train_rows.lengths(), FLAGS.batch_size, buckets, False))
    return TrainingInputs(datasets, was_split, labels, *context_choice, train_rows, words_cut, shortened, val_set, test_set,
                          buckets, steps_per_epoch, weights)


def build_model(run: distribution.RunContext, checkpoint: checkpoints.Checkpoint, tokenizer: WordPieceTokenizer,
                inputs: TrainingInputs) -> Tuple[models.TaskModel, List[str], Trainer]:
    """The token classifier (with --freeze_layers applied; the frozen parts named), its optimizer and trainer."""
    with run.strategy.scope():
        task = checkpoints.build_task_model(checkpoint, tokenizer, inputs.labels, "token", FLAGS.classifier_dropout)
        frozen = models.freeze_layers(task.backbone, FLAGS.freeze_layers)
        optimizer = build_optimizer(task, inputs.steps_per_epoch)
    trainer = Trainer(task.model, optimizer, run.strategy, use_xla=FLAGS.use_xla, loss_scale=run.loss_scale,
                      passthrough_keys=(ner.ROW_ID,), log_every=FLAGS.log_every, verbose=FLAGS.verbose,
                      class_weights=inputs.class_weights)
    return task, frozen, trainer


def run_table(checkpoint: checkpoints.Checkpoint, task: models.TaskModel, run: distribution.RunContext,
              inputs: TrainingInputs, frozen: List[str]) -> Dict[str, object]:
    """What this run trains, on what, how: printed at the start and kept for report.html."""
    train_docs, labels, context = inputs.train_docs, inputs.labels, inputs.context
    data_rows = {
        "labels": f"{len(labels)}: {', '.join(labels)}",
        "data": f"train {len(train_docs)}, val {inputs.val_set.num_docs}, test {inputs.test_set.num_docs} documents"
                + (f" (split from one file, {FLAGS.val_test_size} each for val and test)" if inputs.was_split else ""),
        "windows": f"{len(inputs.train_rows)} training windows of at most max_len={FLAGS.max_len} for "
                   f"{len(train_docs)} rows; {inputs.words_cut} training words cut"
                   + (f" ({inputs.shortened} over-long words keep their first {FLAGS.max_len - 2} sub-tokens)"
                      if inputs.shortened else ""),
        "context": inputs.context_description
                   + (f" (documents: {len(ner_data.document_groups(train_docs))} in training)"
                                   if context == "document" else "")
                   + f"; words decided by the {FLAGS.context_vote} window; decoding {FLAGS.decode}",
    }
    training_rows = {
        "steps": f"{inputs.steps_per_epoch} per epoch, up to {FLAGS.epochs} epochs; padded lengths {inputs.buckets}",
        "class weights": class_weights.describe_class_weights(FLAGS.class_weights, inputs.class_weights, labels),
    }
    trainable = sum(int(v.numpy().size) for v in task.model.trainable_variables)
    return {**fine_tuning.run_table(checkpoint, task, run, FLAGS.batch_size, FLAGS.use_xla, data_rows, training_rows),
            "trainable": f"{trainable:,} parameters" + (f" (frozen: {', '.join(frozen)})" if frozen else "")}


def write_run_files(out_dir: str, chief: bool, summary: Dict[str, object], inputs: TrainingInputs,
                    checkpoint: checkpoints.Checkpoint) -> None:
    """run_config.json, the run summary for report.html and, for data split here, the three splits."""
    os.makedirs(out_dir, exist_ok=True)
    if not chief:
        return
    cli.write_run_config(out_dir, cli.flag_values(flags), {"labels": inputs.labels, "max_len": FLAGS.max_len,
                                                           "checkpoint": checkpoint.path, "context": inputs.context,
                                                           "hub": checkpoint.hub})
    html_report.write_run_summary(out_dir, "bert-tf NER", {
        **summary, html_report.EXAMPLES_PER_EPOCH: len(inputs.train_docs),
        "training tag counts": html_report.counts(t for e in inputs.train_docs for t in e.tags),
        "windows": f"val {len(inputs.val_set.rows)}, test {len(inputs.test_set.rows)} windows of "
                   f"max_len={FLAGS.max_len}"})
    if inputs.was_split:
        for split, examples in inputs.datasets.items():
            ner_data.write_ner_csv(os.path.join(out_dir, f"{split}.csv"), examples)


def epoch_dataset(inputs: TrainingInputs, pad_id: int, epoch: int, first_step: int):
    """The batches of training epoch `epoch` from step `first_step` on (shuffled by seed and epoch), and how many
    the epoch has."""
    batches = ner.make_batches(inputs.train_rows.lengths(), FLAGS.batch_size, inputs.buckets, True,
                               np.random.default_rng([FLAGS.seed, epoch]))
    dataset = ner.batches_dataset(inputs.train_rows, batches[first_step:], inputs.buckets, pad_id, FLAGS.num_workers)
    return dataset, len(batches)


def validate(trainer: Trainer, inputs: TrainingInputs, pad_id: int) -> Dict[str, float]:
    """Loss, accuracy and F1 on the validation set."""
    metrics, _ = ner.evaluate(trainer, inputs.val_set, inputs.labels, FLAGS.batch_size, inputs.buckets, pad_id,
                              FLAGS.num_workers, FLAGS.context_vote, FLAGS.decode)
    return {"loss": metrics["loss"], "accuracy": metrics["accuracy"], "f1": metrics["f1"]}


def save_model(task: models.TaskModel, model_dir: str, context: str, chief: bool) -> None:
    """Save the model (the chief only) with what prediction needs: max_len, context, vote, decoding, flags."""
    if chief:
        checkpoints.save_model(task, model_dir, {"max_len": FLAGS.max_len, "flags": cli.flag_values(flags),
                                            "context": context, "context_vote": FLAGS.context_vote,
                                            "decode": FLAGS.decode})


def fit(trainer: Trainer, task: models.TaskModel, inputs: TrainingInputs, checkpointer: resume.TrainingCheckpointer,
        out_dir: str, chief: bool) -> BestModelMonitor:
    """Train (resuming where the checkpointer left off), validating and saving the best model by validation F1,
    stopping after --patience validations without a better one; the best weights are restored at the end."""
    model_dir, pad_id = os.path.join(out_dir, "model"), task.tokenizer.pad_id
    tracker = OutputTracker(["preds", ner.ROW_ID],
                            lambda parts: ner.training_metrics(parts, inputs.train_rows, inputs.labels))
    monitor = BestModelMonitor("val_f1", functools.partial(save_model, task, model_dir, inputs.context, chief),
                               FLAGS.patience, "max", FLAGS.verbose)
    callbacks = [monitor] + ([HistoryWriter(trainer, out_dir, ("loss", "accuracy", "f1"))] if chief else [])
    callbacks += tensorboard.make_writer(FLAGS.tensorboard, chief, trainer, out_dir)
    checkpointer.attach(task.model, trainer.optimizer)
    started = time.time()
    trainer.fit(functools.partial(epoch_dataset, inputs, pad_id), epochs=FLAGS.epochs,
                validate=functools.partial(validate, trainer, inputs, pad_id), outputs=tracker,
                validations_per_epoch=FLAGS.num_validate_during_training, callbacks=callbacks,
                checkpointer=checkpointer, save_every_steps=FLAGS.save_checkpoints_steps)
    print(f"training took {time.time() - started:.1f} s; best validation F1 {monitor.best:.4f} "
          f"at epoch {monitor.best_position:.2f}")
    monitor.restore_best(task.model, lambda: checkpoints.load_saved_model(model_dir).model.get_weights())
    return monitor


def train(out_dir: str) -> None:
    """Fine-tune, keep the best model by validation F1, then test it and write the reports."""
    datasets, was_split = read_datasets()
    checkpoint, tokenizer = fine_tuning.load_checkpoint(FLAGS, "max_len")
    labels = choose_labels(datasets)
    context = choose_context(ner_data.has_documents(datasets["train"]))
    checkpointer = prepare_output_dir(out_dir, datasets)
    run = distribution.setup_run(FLAGS.seed, FLAGS.use_amp, FLAGS.distribution, FLAGS.deterministic,
                                 FLAGS.amp_dtype)
    inputs = encode_inputs(datasets, was_split, labels, context, tokenizer)
    task, frozen, trainer = build_model(run, checkpoint, tokenizer, inputs)
    summary = run_table(checkpoint, task, run, inputs, frozen)
    cli.print_table("bert-tf NER", summary)
    write_run_files(out_dir, run.chief, summary, inputs, checkpoint)
    monitor = fit(trainer, task, inputs, checkpointer, out_dir, run.chief)
    test(trainer, inputs.test_set, labels, inputs.buckets, tokenizer.pad_id, monitor, out_dir, run.chief)
    resume.finish_training(checkpointer, FLAGS.keep_checkpoints)


def test(trainer: Trainer, test_set: ner.EvalSet, labels: List[str], buckets: List[int], pad_id: int,
         monitor: BestModelMonitor, out_dir: str, chief: bool) -> None:
    """Evaluate the best model on the test set; write and print the report."""
    cli.enter_phase("test")
    metrics, _ = ner.evaluate(trainer, test_set, labels, FLAGS.batch_size, buckets, pad_id, FLAGS.num_workers,
                              FLAGS.context_vote, FLAGS.decode, compare=True)
    metrics["best_validation_f1"] = monitor.best
    metrics["best_validation_epoch"] = monitor.best_position
    report = format_ner_report(metrics, metrics["loss"], title="Test set (best validation model)")
    report += ner.format_decoding_report(metrics)
    if chief:
        write_json_atomic(os.path.join(out_dir, "test_results.json"), metrics)
        write_text_atomic(os.path.join(out_dir, "test_report.txt"), report)
        html_report.write_run_report(out_dir)
    print(report)
    print(f"outputs in {out_dir}: model/, history.csv, loss.png, accuracy.png, f1.png, "
          f"test_results.json, test_report.txt, report.html")


def predict(model_path: str) -> None:
    """Tag --predict_file with a saved model; write CSV, CoNLL and JSONL predictions."""
    if not FLAGS.predict_file:
        raise InputError("--do_predict needs --predict_file")
    documents = raw_text.read_documents(FLAGS.predict_file) if raw_text.is_raw_text(FLAGS.predict_file) else None
    examples = raw_text.as_examples(documents) if documents else ner_data.read_words_file(FLAGS.predict_file)
    output = FLAGS.predict_output or os.path.join(model_path, "predictions.csv")
    stem = os.path.splitext(output)[0]
    outputs = [output, stem + ".conll", stem + ".jsonl"] + ([stem + "_brat"] if documents else [])

    def check() -> None:
        existing = [p for p in outputs if os.path.exists(p)]
        if existing and not FLAGS.overwrite_output_dir:
            raise InputError("prediction output exists; use --overwrite_output_dir to replace it", existing[0])

    cli.claim_output_dir(os.path.dirname(os.path.abspath(output)), cli.run_identity(flags, [FLAGS.predict_file]),
                         FLAGS.overwrite_output_dir, check)
    run = distribution.setup_run(FLAGS.seed, FLAGS.use_amp, FLAGS.distribution, amp_dtype=FLAGS.amp_dtype)
    with run.strategy.scope():
        task = checkpoints.load_saved_model(model_path)
    max_len = int(task.meta.get("max_len", FLAGS.max_len))
    context, context_text = choose_context(ner_data.has_documents(examples), task.meta.get("context", "none"))
    vote, decode = (FLAGS[name].value if FLAGS[name].present else task.meta.get(name, FLAGS[name].value)
                    for name in ("context_vote", "decode"))
    trainer = Trainer(task.model, None, run.strategy, use_xla=FLAGS.use_xla, verbose=FLAGS.verbose)
    print(f"predicting with {distribution.describe_devices(run.strategy)}; "
          f"batch {run.describe_batch(FLAGS.batch_size)}; precision {run.precision}; "
          f"context {context_text}, {vote} window, decoding {decode}")
    eval_set = eval_set_of(examples, None, task.tokenizer, max_len, context)
    buckets = ner.bucket_lengths(max_len, FLAGS.bucket_by_length, FLAGS.bucket_lengths)
    started = time.time()
    predictions = ner.decode(ner.predict_words(trainer, eval_set, FLAGS.batch_size, buckets, task.tokenizer.pad_id,
                                               FLAGS.num_workers, vote), task.labels, decode)
    seconds = time.time() - started
    tags = [[task.labels[i] for i in doc] for doc in predictions.label_ids]
    write_predictions(examples, tags, predictions, outputs)
    if documents:  # raw text: JSONL with character offsets, and brat .txt + .ann pairs
        chosen = [decoding.chosen_log_probs(lp, ids) for lp, ids in zip(predictions.log_probs, predictions.label_ids)]
        raw_text.write_predictions(documents, tags, predictions.confidence, outputs[2], outputs[3], chosen)
    words = sum(len(e.tokens) for e in examples)
    print(f"tagged {len(examples)} documents, {words} words in {seconds:.1f} s ({words / max(seconds, 1e-9):.0f} "
          f"words/s); wrote {', '.join(outputs)}")


def write_predictions(examples: Sequence[ner_data.NerExample], tags: List[List[str]],
                      predictions: ner.WordPredictions, paths: List[str]) -> None:
    """Write predicted tags as CSV (tokens, tags), CoNLL (word TAB tag) and JSONL (entities with probabilities)."""
    predicted = [ner_data.NerExample(tuple(e.tokens), tuple(t), e.line, doc_id=e.doc_id)
                 for e, t in zip(examples, tags)]
    ner_data.write_ner_csv(paths[0], predicted)
    conll = "\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(e.tokens, tg)) for e, tg in zip(examples, tags))
    write_text_atomic(paths[1], conll + "\n")
    chosen = [decoding.chosen_log_probs(lp, ids) for lp, ids in zip(predictions.log_probs, predictions.label_ids)]
    lines = [json.dumps({"document": i, "line": e.line, **({"doc_id": e.doc_id} if e.doc_id is not None else {}),
                         "entities": ner.entities_of(e.tokens, tg, c, lp)}, ensure_ascii=False)
             for i, (e, tg, c, lp) in enumerate(zip(examples, tags, predictions.confidence, chosen))]
    write_text_atomic(paths[2], "\n".join(lines) + ("\n" if lines else ""))


@cli.exit_on_error
def main(argv: Sequence[str]) -> None:
    """Train (default), predict (--do_predict), or both (--do_train --do_predict)."""
    check_flags()
    distribution.apply_horovod_flags(FLAGS, "batch_size")
    if not FLAGS.save_model_path:
        raise InputError("--save_model_path is required")
    do_train = FLAGS.do_train if (FLAGS["do_train"].present or not FLAGS.do_predict) else False
    if do_train:
        train(FLAGS.save_model_path)
    if FLAGS.do_predict:
        predict(FLAGS.save_model_path)


if __name__ == "__main__":
    app.run(main)
