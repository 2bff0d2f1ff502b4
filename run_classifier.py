"""Fine-tune BERT (BioBERT) to classify dictionary-tagger matches: che, dis, ggp, org or out.

NVIDIA run_classifier style:

    python run_classifier.py --task_name=consensus --data_dir=data --output_dir=out \
        --bert_model=/models/biobert --do_train --do_eval --do_predict \
        --max_seq_length=256 --train_batch_size=32 --learning_rate=2e-5 --num_train_epochs=4 \
        --replace_span=[unused1]
"""

from __future__ import annotations

from bert_tf import quiet  # noqa: F401  (first: silences TensorFlow's start-up unless --verbose_tf)

import functools
import math
import os
import time
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

from absl import app, flags

from bert_tf import flags as shared_flags, published_flags
from bert_tf.classifier import corpus
from bert_tf.errors import InputError

shared_flags.define_shared_flags()
published_flags.define_published_flags()
flags.DEFINE_enum("task_name", "consensus", ["consensus"], "The data format (one DataProcessor per format).")
flags.DEFINE_string("data_dir", None, "Folder with train.tsv, dev.tsv, test.tsv (six tab-separated columns).")
flags.DEFINE_string("output_dir", None, "Output folder: model, reports, plots, predictions.")
flags.DEFINE_string("labels_file", None, "Label set, one a line (default: the sorted labels of train.tsv).")
flags.DEFINE_string("labels_dir", None, "Published-pipeline style: a folder holding labels.txt, whose labels are "
                    "sorted as the published code sorts them (instead of --labels_file).")
flags.DEFINE_integer("max_seq_length", 128, "Sequence length in sub-tokens; the mention starts at its middle.")
flags.DEFINE_bool("do_train", False, "Train on train.tsv (validating on dev.tsv after every epoch).")
flags.DEFINE_bool("do_eval", False, "Evaluate on dev.tsv: eval_results.txt (key = value, as Google's and NVIDIA's "
                  "run_classifier.py), eval_report.txt, eval_results.json, confusion_matrix.png.")
flags.DEFINE_integer("train_batch_size", 64, "Global training batch size (split across replicas; per rank under "
                     "--horovod). The default is the published script's.")
flags.DEFINE_integer("eval_batch_size", 64, "Evaluation batch size.")
flags.DEFINE_integer("predict_batch_size", 64, "Prediction batch size.")
flags.DEFINE_float("num_train_epochs", 3.0, "Training epochs (a fraction trains part of the last epoch).")
flags.DEFINE_float("warmup_proportion", 0.1, "Fraction of the training steps with linear warm-up.")
flags.DEFINE_string("replace_span", None, "Replace the mention with this single token (published runs: [unused1]).")
flags.DEFINE_enum("optimizer", "adamw", ["adamw", "lamb"], "Optimizer.")
flags.DEFINE_float("classifier_dropout", 0.1, "Dropout on the pooled vector (see --pooling).")
flags.DEFINE_string("cache_dir", None, "Feature cache root (default: <output_dir>/feature_cache); share it "
                    "between runs on the same data, e.g. in a grid search.")
flags.DEFINE_integer("featurize_workers", None, "Processes that featurize a data file into the feature cache "
                     "(default: the usable cores, at most 8; 1: in this process).", lower_bound=1)
corpus.define_flags()
flags.DEFINE_enum("pooling", "pooler", ["pooler", "cls", "mention"],
                  "What the classifier reads: pooler (the pretrained tanh pooler over [CLS], the published "
                  "setting), cls (the raw [CLS] state) or mention (the state of the mention's first token, "
                  "position max_seq_length/2; the --replace_span marker when given). Saved with the model.")
flags.DEFINE_bool("calibrate", True, "After --do_train, fit a temperature on dev.tsv (minimum NLL) and record it "
                  "with the model (eval_results reports ECE and NLL before and after); the probabilities stay the raw "
                  "softmax, which the published blocklist thresholds were set on, unless --apply_temperature.")
flags.DEFINE_bool("apply_temperature", False, "Calibrated probabilities: fold the temperature fitted by --calibrate "
                  "into the classifier (with --do_train: into the saved model; with a saved model: into this run's "
                  "evaluation and predictions). Off: raw softmax, as the published pipeline.")
flags.DEFINE_bool("use_fp16", False, "Accepted from published command lines; changes nothing: the published "
                  "--use_fp16 only changed the optimizer (loss scaling, float16 compression of Horovod's "
                  "gradient all-reduce) while the model stayed float32 (its automatic mixed precision switch is "
                  "commented out). --use_amp is mixed precision.")
flags.FLAGS.set_default("learning_rate", 5e-6)
FLAGS = flags.FLAGS
EVAL_REPORT = "eval_report.txt"  # the formatted report; eval_results.txt is the published key = value form

import bert_tf  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from bert_tf import (class_weights, cli, distribution, fine_tuning, html_report, models, optimization,  # noqa: E402
                     checkpoints, reports, resume, tensorboard)
from bert_tf.classifier import calibration, feature_cache, task as classifier  # noqa: E402
from bert_tf.batch_format import LABELS  # noqa: E402
from bert_tf.io_utils import write_json_atomic, write_text_atomic  # noqa: E402
from bert_tf.metrics import format_classification_report, softmax  # noqa: E402
from bert_tf.tokenization import WordPieceTokenizer  # noqa: E402
from bert_tf.training import HistoryWriter, OutputTracker, Trainer  # noqa: E402


def check_flags() -> None:
    """Reject flag combinations that cannot work, before anything is read or written."""
    if not (FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict):
        raise InputError("nothing to do: give at least one of --do_train, --do_eval, --do_predict")
    if not FLAGS.output_dir:
        raise InputError("--output_dir is required")
    if FLAGS.max_seq_length < 8:
        raise InputError(f"--max_seq_length={FLAGS.max_seq_length}: must be at least 8")
    for name in ("train_batch_size", "eval_batch_size", "predict_batch_size"):
        if FLAGS[name].value < 1:
            raise InputError(f"--{name}={FLAGS[name].value}: must be at least 1")
    if FLAGS.num_train_epochs <= 0:
        raise InputError(f"--num_train_epochs={FLAGS.num_train_epochs}: must be positive")
    if not 0.0 <= FLAGS.warmup_proportion < 1.0:
        raise InputError(f"--warmup_proportion={FLAGS.warmup_proportion}: must be in [0, 1)")
    if (FLAGS.do_train or FLAGS.do_eval) and not FLAGS.data_dir:
        raise InputError("--data_dir is required for --do_train and --do_eval")
    if FLAGS.labels_file and FLAGS.labels_dir:
        raise InputError("give --labels_file or --labels_dir, not both")


def given_labels() -> Optional[Tuple[list, str]]:
    """The labels of --labels_dir (sorted) or --labels_file (file order) and their file; None when neither."""
    if FLAGS.labels_dir:
        return classifier.read_labels_dir(FLAGS.labels_dir)
    if FLAGS.labels_file:
        return classifier.resolve_labels(FLAGS.labels_file, None)
    return None


def predict_dir() -> str:
    """Where --do_predict writes."""
    return FLAGS.predict_output_dir or FLAGS.output_dir


def cache_root() -> str:
    """Where feature caches live."""
    return FLAGS.cache_dir or os.path.join(FLAGS.output_dir, "feature_cache")


class Steps(NamedTuple):
    """The training length: steps per epoch, steps in all (--num_train_epochs may end mid-epoch), epochs begun,
    and steps of linear warm-up."""

    per_epoch: int
    total: int
    epochs: int
    warmup: int


def training_steps(num_examples: int) -> Steps:
    """How long --num_train_epochs of --train_batch_size batches over `num_examples` train, and the warm-up
    (--warmup_proportion of all steps)."""
    per_epoch = classifier.steps_for(num_examples, FLAGS.train_batch_size)
    total = max(1, int(round(FLAGS.num_train_epochs * per_epoch)))
    return Steps(per_epoch, total, int(math.ceil(total / per_epoch)), int(FLAGS.warmup_proportion * total))


def load_features(run: distribution.RunContext, labels: Sequence[str], labels_source: str,
                  tokenizer: WordPieceTokenizer) -> Tuple[feature_cache.CacheInfo, feature_cache.CacheInfo]:
    """The features of train.tsv and dev.tsv (from the feature cache when built before)."""
    paths = [classifier.split_path(FLAGS.data_dir, split) for split in ("train", "dev")]
    train_info, dev_info = (classifier.build_features(path, labels, labels_source, tokenizer, FLAGS.max_seq_length,
                                                      FLAGS.replace_span, cache_root(), chief=run.chief,
                                                      workers=FLAGS.featurize_workers)
                            for path in paths)
    return train_info, dev_info


def build_model(run: distribution.RunContext, checkpoint: checkpoints.Checkpoint, tokenizer: WordPieceTokenizer,
                labels: Sequence[str], steps: Steps, weights: Optional[np.ndarray]) -> Tuple[models.TaskModel, Trainer]:
    """The sequence classifier, its optimizer (--optimizer, linear warm-up and decay) and trainer."""
    with run.strategy.scope():
        task = checkpoints.build_task_model(checkpoint, tokenizer, labels, "sequence", FLAGS.classifier_dropout,
                                       pooling=FLAGS.pooling)
        schedule = optimization.WarmupLinearDecay(FLAGS.learning_rate, steps.warmup, steps.total)
        optimizer = optimization.make_optimizer(FLAGS.optimizer, schedule, FLAGS.weight_decay)
    trainer = Trainer(task.model, optimizer, run.strategy, use_xla=FLAGS.use_xla, loss_scale=run.loss_scale,
                      log_every=FLAGS.log_every, verbose=FLAGS.verbose, class_weights=weights)
    return task, trainer


def run_table(checkpoint: checkpoints.Checkpoint, task: models.TaskModel, run: distribution.RunContext,
              labels_source: str, train_info: feature_cache.CacheInfo, dev_info: feature_cache.CacheInfo,
              steps: Steps, weights: Optional[np.ndarray]) -> Dict[str, object]:
    """What this run trains, on what, how: printed at the start and kept for report.html."""
    data_rows = {
        "labels": f"{', '.join(task.labels)} (from {labels_source})",
        "data": f"train {train_info.num_examples}, dev {dev_info.num_examples} examples; "
                f"max_seq_length {FLAGS.max_seq_length}; replace_span {FLAGS.replace_span}",
    }
    training_rows = {
        "steps": f"{steps.per_epoch} per epoch, {steps.total} in all ({FLAGS.num_train_epochs:g} epochs), "
                 f"warm-up {steps.warmup}",
        "optimizer": f"{FLAGS.optimizer}, peak learning rate {FLAGS.learning_rate:g}, weight decay "
                     f"{FLAGS.weight_decay:g}, clip norm 1.0",
        "head": f"pooling {FLAGS.pooling}; class weights "
                f"{class_weights.describe_class_weights(FLAGS.class_weights, weights, task.labels)}; "
                f"calibrate {FLAGS.calibrate}",
    }
    return fine_tuning.run_table(checkpoint, task, run, FLAGS.train_batch_size, FLAGS.use_xla, data_rows,
                                 training_rows)


def write_run_summary(summary: Dict[str, object], train_info: feature_cache.CacheInfo) -> None:
    """The run table, examples per epoch and truncation counts, for report.html."""
    html_report.write_run_summary(FLAGS.output_dir, "bert-tf consensus classifier",
                                  {**summary, html_report.EXAMPLES_PER_EPOCH: train_info.num_examples,
                                   "cut to max_seq_length (train)": f"{train_info.mentions_truncated} mentions, "
                                   f"{train_info.left_truncated} left and {train_info.right_truncated} right "
                                   "contexts"})


def epoch_dataset(train_info: feature_cache.CacheInfo, steps: Steps, epoch: int, first_step: int):
    """The batches of training epoch `epoch` from step `first_step` on (shuffled by seed and epoch), and how many
    the epoch has (the last may be cut short by --num_train_epochs)."""
    count = min(steps.per_epoch, steps.total - epoch * steps.per_epoch)
    data = feature_cache.cache_dataset(train_info, FLAGS.train_batch_size, shuffle=True, seed=FLAGS.seed * 1000 + epoch)
    return classifier.as_training_batches(data).take(count).skip(first_step), count


class DevValidation:
    """The validation after every epoch: loss, accuracy and macro F1 on dev.tsv; it keeps the last confusion
    matrix (for TensorBoard) and watches for a collapse (`guard`)."""

    def __init__(self, trainer: Trainer, dev_info: feature_cache.CacheInfo, labels: Sequence[str]):
        self.trainer, self.dev_info, self.labels = trainer, dev_info, labels
        self.guard = calibration.CollapseGuard()
        self.confusion_matrix: Optional[list] = None

    def __call__(self) -> Dict[str, float]:
        metrics = classifier.evaluate(self.trainer, self.dev_info, self.labels, FLAGS.eval_batch_size)
        self.confusion_matrix = metrics["confusion_matrix"]
        self.guard.check(metrics)
        return {"loss": metrics["loss"], "accuracy": metrics["accuracy"], "f1": metrics["macro"]["f1"]}


def fit(task: models.TaskModel, trainer: Trainer, train_info: feature_cache.CacheInfo,
        dev_info: feature_cache.CacheInfo, steps: Steps, checkpointer: resume.TrainingCheckpointer,
        chief: bool) -> calibration.CollapseGuard:
    """Train (resuming where the checkpointer left off), validating on dev.tsv after every epoch; what the
    validations saw of a collapse."""
    validation = DevValidation(trainer, dev_info, task.labels)
    tracker = OutputTracker(["preds", LABELS], classifier.training_metrics)
    callbacks = [validation.guard] + ([HistoryWriter(trainer, FLAGS.output_dir, ("loss", "accuracy", "f1"))]
                                      if chief else [])
    callbacks += tensorboard.make_writer(FLAGS.tensorboard, chief, trainer, FLAGS.output_dir, task.labels,
                                         lambda: validation.confusion_matrix)
    checkpointer.attach(task.model, trainer.optimizer)
    started = time.time()
    trainer.fit(functools.partial(epoch_dataset, train_info, steps), epochs=steps.epochs, validate=validation,
                outputs=tracker, callbacks=callbacks, checkpointer=checkpointer,
                save_every_steps=FLAGS.save_checkpoints_steps)
    print(f"training took {time.time() - started:.1f} s")
    return validation.guard


def finish_model(task: models.TaskModel, trainer: Trainer, dev_info: feature_cache.CacheInfo,
                 guard: calibration.CollapseGuard, chief: bool) -> None:
    """Record a collapse, calibrate (--calibrate) and save the model (the chief) to <output_dir>/model."""
    task.meta["collapsed"] = guard.collapsed
    task.meta["global_step"] = trainer.global_step
    if guard.collapsed:
        print(f"WARNING: {guard.summary()}")
    task.meta["temperature"] = 1.0
    if FLAGS.calibrate:
        calibrate(task, trainer, dev_info)
    if FLAGS.apply_temperature:
        calibration.apply_fitted_temperature(task, "the model just trained")
    if chief:
        checkpoints.save_model(task, os.path.join(FLAGS.output_dir, "model"),
                          {"max_seq_length": FLAGS.max_seq_length, "replace_span": FLAGS.replace_span,
                           "flags": cli.flag_values(flags)})


def train(run: distribution.RunContext, labels: Sequence[str], labels_source: str,
          checkpointer: resume.TrainingCheckpointer) -> Tuple[models.TaskModel, Trainer]:
    """Fine-tune on train.tsv, validate on dev.tsv after every epoch, save the final model."""
    checkpoint, tokenizer = fine_tuning.load_checkpoint(FLAGS, "max_seq_length", run.chief)
    if run.chief and checkpoint.hub:
        cli.write_run_config(FLAGS.output_dir, cli.flag_values(flags), {"hub": checkpoint.hub})
    train_info, dev_info = load_features(run, labels, labels_source, tokenizer)
    steps = training_steps(train_info.num_examples)
    weights = class_weights.resolve_class_weights(FLAGS.class_weights, labels, classifier.cache_label_ids(train_info))
    task, trainer = build_model(run, checkpoint, tokenizer, labels, steps, weights)
    summary = run_table(checkpoint, task, run, labels_source, train_info, dev_info, steps, weights)
    cli.print_table("bert-tf consensus classifier", summary)
    if run.chief:
        write_run_summary(summary, train_info)
    guard = fit(task, trainer, train_info, dev_info, steps, checkpointer, run.chief)
    finish_model(task, trainer, dev_info, guard, run.chief)
    return task, trainer


def calibrate(task: models.TaskModel, trainer: Trainer, dev_info: feature_cache.CacheInfo) -> None:
    """Fit a temperature on the dev logits and record it in the model's meta (`fitted_temperature`); applied to
    the probabilities only with --apply_temperature."""
    logits, gold = classifier.predict_logits(trainer, dev_info, FLAGS.eval_batch_size)
    temperature = calibration.fit_temperature(logits, gold)
    report = calibration.calibration_report(logits, gold, temperature)
    task.meta["fitted_temperature"] = temperature
    task.meta["calibration"] = {"fitted_on": dev_info.num_examples, **report}
    print(f"calibration: temperature {temperature:.4f} fitted on dev ({dev_info.num_examples} examples): "
          f"ECE {report['before']['ece']:.4f} -> {report['after']['ece']:.4f}, "
          f"NLL {report['before']['nll']:.4f} -> {report['after']['nll']:.4f}; "
          + ("applied (--apply_temperature)" if FLAGS.apply_temperature
             else "recorded, not applied: the probabilities are the raw softmax (--apply_temperature applies it)"))


def load_trained(run: distribution.RunContext) -> tuple:
    """A trained classifier: a published TF1 one (--bert_config_file/--vocab_file/--init_checkpoint, or --bert_model
    a TF1 checkpoint, with --labels_file or --labels_dir), else a saved one (--output_dir/model or --bert_model)."""
    trio = FLAGS.bert_config_file or FLAGS.vocab_file or FLAGS.init_checkpoint
    candidates = [] if trio else [os.path.join(FLAGS.output_dir, "model")] + ([FLAGS.bert_model] if FLAGS.bert_model else [])
    fine_tuned = checkpoints.saved_model_under(FLAGS.init_checkpoint)
    if fine_tuned:  # the published prediction command: --init_checkpoint names the fine-tuning run's output
        cli.notice("--init_checkpoint is a model fine-tuned by bert-tf: its own config and vocabulary are used "
                   "(--bert_config_file and --vocab_file are not needed)", fine_tuned)
        candidates, trio = [fine_tuned], None
    for path in candidates:
        if os.path.isfile(os.path.join(path, checkpoints.SAVED_MODEL_META)):
            with run.strategy.scope():
                task = checkpoints.load_saved_model(path)
            if task.head != "sequence":
                raise InputError("this saved model is not a sequence classifier", path)
            task.meta.setdefault("model_path", os.path.abspath(path))
            if FLAGS.apply_temperature:
                calibration.apply_fitted_temperature(task, path)
            return task, Trainer(task.model, None, run.strategy, use_xla=FLAGS.use_xla, verbose=FLAGS.verbose)
    if trio or (FLAGS.bert_model and os.path.exists(FLAGS.bert_model)):
        checkpoint, tokenizer = checkpoints.load_pretrained(FLAGS.bert_model, FLAGS.bert_config_file, FLAGS.vocab_file,
                                                           FLAGS.init_checkpoint, FLAGS.do_lower_case)
        if checkpoint.kind == "tf1":
            return load_published(run, checkpoint, tokenizer)
    raise InputError("no trained model: train with --do_train first, or point --bert_model at a saved model "
                     "(or give a published TF1 classifier checkpoint with --labels_dir)", (candidates or [FLAGS.init_checkpoint])[0])


def load_published(run: distribution.RunContext, checkpoint: checkpoints.Checkpoint, tokenizer) -> tuple:
    """A classifier fine-tuned by the published TF1 code, with the (sorted) labels it was trained on."""
    found = given_labels()
    if found is None:
        raise InputError("a published TF1 classifier needs its labels: --labels_dir (or --labels_file)", checkpoint.path)
    labels, source = found
    if list(labels) != sorted(labels):
        cli.notice("the published code sorts its labels; using them sorted: " + ", ".join(sorted(labels)), source)
    with run.strategy.scope():
        task = classifier.load_published_classifier(checkpoint, tokenizer, sorted(labels), source)
    task.meta.update(max_seq_length=FLAGS.max_seq_length, replace_span=FLAGS.replace_span, model_path=checkpoint.path)
    print(f"published TF1 classifier {checkpoint.path}: labels {', '.join(task.labels)} (+{task.meta['extra_logits']} "
          f"unused logit); max_seq_length {FLAGS.max_seq_length}, replace_span {FLAGS.replace_span}")
    return task, Trainer(task.model, None, run.strategy, use_xla=FLAGS.use_xla, verbose=FLAGS.verbose)


def evaluate(task: models.TaskModel, trainer: Trainer, chief: bool) -> None:
    """Evaluate on dev.tsv and write eval_results.txt/.json and confusion_matrix.png."""
    cli.enter_phase("evaluation")
    dev_path = classifier.split_path(FLAGS.data_dir, "dev")
    info = classifier.build_features(dev_path, task.labels, "the model's labels", task.tokenizer,
                                     int(task.meta.get("max_seq_length", FLAGS.max_seq_length)),
                                     task.meta.get("replace_span", FLAGS.replace_span), cache_root(),
                                     chief=chief, workers=FLAGS.featurize_workers)
    temperature = float(task.meta.get("temperature") or 1.0)
    fitted = task.meta.get("fitted_temperature")
    logits, gold = classifier.evaluation_logits(trainer, info, FLAGS.eval_batch_size)
    metrics = classifier.metrics_from_logits(logits, gold, task.labels, temperature, fitted)
    metrics["collapsed"] = bool(task.meta.get("collapsed", False)) or not metrics["beats_majority_baseline"]
    report = format_classification_report(metrics, metrics["loss"], title=f"Evaluation on {dev_path}")
    report += evaluation_notes(metrics)
    if chief:
        write_json_atomic(os.path.join(FLAGS.output_dir, "eval_results.json"), metrics)
        write_text_atomic(os.path.join(FLAGS.output_dir, EVAL_REPORT), report)
        reports.write_published_eval_results(os.path.join(FLAGS.output_dir, "eval_results.txt"),
                                             reports.published_eval_results(metrics, task.meta.get("global_step", 0)))
        reports.plot_confusion_matrix(metrics["confusion_matrix"], task.labels,
                                      os.path.join(FLAGS.output_dir, "confusion_matrix.png"),
                                      title="Confusion matrix (dev)")
        after = metrics["calibration"]["temperature"]
        calibration.plot_reliability(
            softmax(logits * temperature), gold, os.path.join(FLAGS.output_dir, "reliability.png"),
            title=f"Reliability on dev (temperature {after:.3g}{'' if temperature != 1.0 else ', not applied'})",
            calibrated=softmax(logits * temperature, after) if after != 1.0 else None)
    print(report)


def evaluation_notes(metrics: Dict) -> str:
    """Text lines on the majority baseline, collapse and calibration, for eval_report.txt."""
    baseline, fit = metrics["majority_baseline"], metrics["calibration"]
    lines = [f"majority baseline (always {baseline['label']!r}): accuracy {baseline['accuracy']:.4f}, "
             f"macro F1 {baseline['macro_f1']:.4f}",
             f"calibration (temperature {fit['temperature']:.4f}, ECE over {fit['ece_bins']} bins): "
             f"ECE {fit['before']['ece']:.4f} before, {fit['after']['ece']:.4f} after; "
             f"NLL {fit['before']['nll']:.4f} before, {fit['after']['nll']:.4f} after"]
    if metrics["collapsed"]:
        lines.append(f"COLLAPSED: the model does not beat the majority baseline; {calibration.COLLAPSE_ADVICE}")
    return "\n" + "\n".join(lines) + "\n"


def prediction_plan() -> Tuple[list, bool]:
    """This process's shards of the prediction input (all of them unless --num_shard_groups) and whether the
    input is a corpus."""
    spec = FLAGS.predict_file or classifier.split_path(FLAGS.data_dir or "", "test")
    inputs, is_corpus = corpus.list_inputs(spec)
    shards = corpus.plan_shards(inputs, is_corpus, predict_dir(), FLAGS.shard_id, FLAGS.seed_compatible_outputs)
    group = corpus.resolve_group(FLAGS.shard_index, FLAGS.num_shard_groups)
    return corpus.group_shards(shards, group, FLAGS.num_shard_groups), is_corpus


def prediction_info(task: models.TaskModel, shards: list) -> Dict:
    """What prediction_info.json records beside the outputs."""
    return {
        "model": task.meta.get("model_path") or os.path.abspath(os.path.join(FLAGS.output_dir, "model")),
        "labels": task.labels, "extra_logits": int(task.meta.get("extra_logits", 0)),
        "max_seq_length": int(task.meta.get("max_seq_length", FLAGS.max_seq_length)),
        "replace_span": task.meta.get("replace_span", FLAGS.replace_span),
        "temperature": task.meta.get("temperature"), "predict_file": FLAGS.predict_file,
        "shards_in_this_group": len(shards), "shard_index": FLAGS.shard_index, "num_shard_groups": FLAGS.num_shard_groups,
        "bert_tf_version": bert_tf.__version__,
    }


def shard_provenance(task: models.TaskModel) -> Dict:
    """What decides this run's probabilities, as each shard's record stores it (see corpus.provenance)."""
    return corpus.provenance(models.weights_digest(task.model), task.labels, int(task.meta.get("extra_logits", 0)),
                             int(task.meta.get("max_seq_length", FLAGS.max_seq_length)),
                             task.meta.get("replace_span", FLAGS.replace_span), task.pooling,
                             float(task.meta.get("temperature") or 1.0), keras.mixed_precision.global_policy().name)


def predict(task: models.TaskModel, trainer: Trainer, chief: bool, shards: list, is_corpus: bool) -> None:
    """Predict every shard not done yet (all workers together; the chief writes): each shard's outputs appear,
    complete, when it ends."""
    record = shard_provenance(task)
    if not FLAGS.overwrite_output_dir:
        corpus.check_done_shards(shards, record)
    todo = [s for s in shards if FLAGS.overwrite_output_dir or not s.done()]
    out_dir = predict_dir()
    if chief:
        os.makedirs(out_dir, exist_ok=True)
        write_json_atomic(os.path.join(out_dir, "prediction_info.json"), prediction_info(task, shards))
    if is_corpus:
        print(f"predicting {len(todo)} of {len(shards)} shard(s) into {out_dir} ({len(shards) - len(todo)} done before)")
    max_seq_length = int(task.meta.get("max_seq_length", FLAGS.max_seq_length))
    replace_span = task.meta.get("replace_span", FLAGS.replace_span)
    total, started = 0, time.time()
    for k, shard in enumerate(todo, start=1):
        if chief:
            corpus.remove_stale_temporaries(shard)
            corpus.write_record(shard, record, prediction_info(task, shards)["model"])
        shard_started = time.time()
        if is_corpus:
            with classifier.scratch_features(shard.input, task.labels, task.tokenizer, max_seq_length,
                                             replace_span, FLAGS.featurize_workers) as info:
                count = classifier.write_prediction_files(trainer, info, shard.input, task.labels, FLAGS.predict_batch_size,
                                                          shard.outputs, chief, description=f"shard {k}/{len(todo)}")
        else:
            info = classifier.build_features(shard.input, task.labels, "the model's labels", task.tokenizer,
                                             max_seq_length, replace_span, cache_root(), check_labels=False, chief=chief,
                                             workers=FLAGS.featurize_workers)
            count = classifier.write_prediction_files(trainer, info, shard.input, task.labels, FLAGS.predict_batch_size,
                                                      shard.outputs, chief)
        total += info.num_examples
        now = time.time()
        print(f"shard {k}/{len(todo)} {os.path.basename(shard.input)}: {info.num_examples} examples in "
              f"{now - shard_started:.1f} s ({info.num_examples / max(now - shard_started, 1e-9):.0f} examples/s); "
              f"overall {total} examples, {total / max(now - started, 1e-9):.0f} examples/s"
              + (f"; wrote {', '.join(os.path.basename(p) for p in shard.outputs.values())}" if chief and count else ""),
              flush=True)


def training_labels() -> Tuple[list, str]:
    """The labels to train with and where they come from: --labels_dir, --labels_file, else train.tsv's."""
    train_path = classifier.split_path(FLAGS.data_dir, "train")
    return given_labels() or classifier.resolve_labels(None, train_path)


def training_fingerprint() -> Dict:
    """The flags and data files a resumed training run must share with the run it resumes."""
    return resume.run_fingerprint(cli.flag_values(flags), [classifier.split_path(FLAGS.data_dir, split)
                                                           for split in ("train", "dev")])


def run_identity(shards: list, is_corpus: bool) -> Dict:
    """This command's identity for its claim on --output_dir (bert_tf.ownership): its flags and input files."""
    inputs = ([classifier.split_path(FLAGS.data_dir, "dev")] if FLAGS.do_eval else []) + [
        shard.input for shard in shards if not is_corpus]
    return cli.run_identity(flags, inputs)


def check_outputs(shards: list, is_corpus: bool) -> None:
    """Claim --output_dir for evaluation or prediction: refuse to overwrite earlier results unless
    --overwrite_output_dir is given (the same command continuing its own unfinished run is fine, and so is a
    corpus's, whose finished shards are skipped). With --do_train, prepare_training_dir checks and claims."""
    if FLAGS.do_train:
        return
    planned = ([os.path.join(FLAGS.output_dir, n) for n in ("eval_results.json", "eval_results.txt", EVAL_REPORT)]
               if FLAGS.do_eval else [])
    if not is_corpus:
        planned += [p for shard in shards for p in shard.outputs.values()]

    def check() -> None:
        for path in planned:
            if os.path.exists(path) and not FLAGS.overwrite_output_dir:
                raise InputError("exists; use --overwrite_output_dir to replace it", path)

    if distribution.chief_by_environment(FLAGS.distribution):
        cli.claim_output_dir(FLAGS.output_dir, run_identity(shards, is_corpus), FLAGS.overwrite_output_dir, check)


def prepare_training_dir(fingerprint: Dict, identity: Dict) -> resume.TrainingCheckpointer:
    """Check and claim --output_dir for training (empty, --overwrite_output_dir, or a run of the same `fingerprint`
    to resume, or this command's own unfinished run: `identity`); the run's checkpointer."""
    return resume.prepare_training_dir(FLAGS.output_dir, FLAGS.overwrite_output_dir, FLAGS.resume, "output_dir",
                                       fingerprint, distribution.chief_by_environment(FLAGS.distribution),
                                       {**identity, **fingerprint})


def model_for_run(run: distribution.RunContext, labels: Optional[Sequence[str]], labels_source: Optional[str],
                  checkpointer: Optional[resume.TrainingCheckpointer]) -> Tuple[models.TaskModel, Trainer]:
    """Write run_config.json, then train (--do_train) or load the model to evaluate and predict with. On bad input
    the output folder goes again when this run created it."""
    created = not os.path.exists(FLAGS.output_dir)
    try:
        os.makedirs(FLAGS.output_dir, exist_ok=True)
        if run.chief:
            cli.write_run_config(FLAGS.output_dir, cli.flag_values(flags))
        if FLAGS.do_train:
            return train(run, labels, labels_source, checkpointer)
        task, trainer = load_trained(run)
        print(f"using {distribution.describe_devices(run.strategy)}")
        return task, trainer
    except InputError:
        if created:
            cli.remove_tree_quietly(FLAGS.output_dir)
        raise


def finish(task: models.TaskModel, run: distribution.RunContext,
           checkpointer: Optional[resume.TrainingCheckpointer]) -> None:
    """Remove the resume checkpoints of a finished training run, write report.html, say where the outputs are
    and whether the model collapsed."""
    if checkpointer is not None:
        resume.finish_training(checkpointer, FLAGS.keep_checkpoints)
    if run.chief:
        html_report.write_run_report(FLAGS.output_dir)
    print(f"outputs in {FLAGS.output_dir}")
    if task.meta.get("collapsed"):
        print("WARNING: this run's model collapsed: no validation beat the majority baseline; "
              f"{calibration.COLLAPSE_ADVICE}")


@cli.exit_on_error
def main(argv: Sequence[str]) -> None:
    """--do_train, --do_eval and --do_predict, in that order."""
    check_flags()
    cli.note_ignored_flags(FLAGS)
    distribution.apply_horovod_flags(FLAGS, "train_batch_size")
    if FLAGS.use_fp16 and not FLAGS.use_amp:
        cli.notice("--use_fp16 as published: the model stays float32 (the published code's model did); "
                   "--use_amp computes in mixed precision")
    labels, labels_source = training_labels() if FLAGS.do_train else (None, None)
    fingerprint = training_fingerprint() if FLAGS.do_train else None
    shards, is_corpus = prediction_plan() if FLAGS.do_predict else ([], False)
    check_outputs(shards, is_corpus)
    checkpointer = prepare_training_dir(fingerprint, run_identity(shards, is_corpus)) if FLAGS.do_train else None
    run = distribution.setup_run(FLAGS.seed, FLAGS.use_amp, FLAGS.distribution, FLAGS.deterministic,
                                 FLAGS.amp_dtype)
    task, trainer = model_for_run(run, labels, labels_source, checkpointer)
    if FLAGS.do_eval:
        evaluate(task, trainer, run.chief)
    if FLAGS.do_predict:
        predict(task, trainer, run.chief, shards, is_corpus)
    finish(task, run, checkpointer)


if __name__ == "__main__":
    app.run(main)
