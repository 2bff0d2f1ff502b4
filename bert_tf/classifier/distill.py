"""A distilled student of a fine-tuned classifier: fewer encoder layers, initialised from the teacher's, trained on
the teacher's probabilities over unlabeled contexts (and train.tsv's labels where given). The command line is
run_classifier.py --do_train --distill_from=TEACHER (docs/distillation.md):

    python run_classifier.py --do_train --distill_from=teacher/model --student_layers=2 \\
        --unlabeled_contexts='shards/*.tsv' [--data_dir=data --do_eval] --output_dir=student

The student is saved as any fine-tuned classifier (<output_dir>/model), so every other command uses it unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import keras_hub
import numpy as np

from bert_tf import checkpoints, cli, distribution, html_report, models, resume
from bert_tf.batch_format import LABELS
from bert_tf.classifier import feature_cache, fitting, inference, inputs, model_loading, model_settings
from bert_tf.classifier.config import ClassifierConfig
from bert_tf.classifier.model_settings import Classifier
from bert_tf.errors import InputError
from bert_tf.io_utils import expand_input, load_json
from bert_tf.metrics import softmax
from bert_tf.training import Loss, OutputTracker, Trainer

TEACHER_PROBS = "teacher_probs"  # batch key: the teacher's probabilities at --distill_temperature
TEACHER_LABELS = "teacher_labels"  # batch key: the teacher's predicted label ids
TITLE = "bert-tf distilled classifier"


def teacher_dir(cfg: ClassifierConfig) -> str:
    """The folder of the teacher (--distill_from: a saved model, or a run's output folder holding model/)."""
    return checkpoints.resolve_model_dir(cfg.distill_from)


def teacher_labels(cfg: ClassifierConfig) -> Tuple[List[str], str]:
    """The teacher's labels (the student's, in the same order); InputError when --labels_file or --labels_dir
    disagree with them."""
    directory = teacher_dir(cfg)
    meta_path = os.path.join(directory, checkpoints.SAVED_MODEL_META)
    labels = list(load_json(meta_path).get("labels") or [])
    if not labels:
        raise InputError("the teacher has no labels", meta_path)
    given = model_loading.given_labels(cfg)
    if given is not None and list(given[0]) != labels:
        raise InputError(f"the labels {', '.join(given[0])} differ from the teacher's: {', '.join(labels)}",
                         given[1])
    return labels, f"the teacher {directory}"


def context_files(cfg: ClassifierConfig) -> List[str]:
    """The files --unlabeled_contexts names (none when not given)."""
    return expand_input(cfg.unlabeled_contexts, "*.tsv")[0] if cfg.unlabeled_contexts else []


def input_files(cfg: ClassifierConfig) -> List[str]:
    """Every file the student is made from: the teacher's model files, the contexts, train.tsv and dev.tsv."""
    directory = teacher_dir(cfg)
    teacher = [os.path.join(directory, name) for name in (checkpoints.SAVED_MODEL_META, "model.weights.h5")]
    labelled = [inputs.split_path(cfg.data_dir, split) for split in ("train", "dev")] if cfg.data_dir else []
    return teacher + context_files(cfg) + labelled


def layer_map(cfg: ClassifierConfig, teacher_layers: int) -> List[int]:
    """The teacher layer (0-based) that initialises each student layer: --teacher_layers, else --student_layers
    (default half the teacher's) evenly spaced, ending at the top layer."""
    count = cfg.student_layers or max(1, teacher_layers // 2)
    if count > teacher_layers:
        raise InputError(f"--student_layers={count}: the teacher has only {teacher_layers} layers", cfg.distill_from)
    if not cfg.teacher_layers:
        return [int(round((i + 1) * teacher_layers / count)) - 1 for i in range(count)]
    try:
        chosen = [int(part) for part in cfg.teacher_layers.split(",")]
    except ValueError:
        raise InputError(f"--teacher_layers={cfg.teacher_layers}: expected comma-separated layer numbers") from None
    if cfg.student_layers and len(chosen) != cfg.student_layers:
        raise InputError(f"--teacher_layers={cfg.teacher_layers}: names {len(chosen)} layers, "
                         f"--student_layers={cfg.student_layers}")
    if any(b <= a for a, b in zip(chosen, chosen[1:])) or not all(0 <= i < teacher_layers for i in chosen):
        raise InputError(f"--teacher_layers={cfg.teacher_layers}: must ascend within 0..{teacher_layers - 1}")
    return chosen


def build_student(teacher: models.TaskModel, layers: Sequence[int], dropout: float) -> models.TaskModel:
    """A classifier like the teacher with len(layers) encoder layers: student layer i is a copy of teacher layer
    layers[i]; embeddings, pooler and classifier are copies of the teacher's."""
    config = {k: v for k, v in teacher.backbone.get_config().items() if k not in ("name", "trainable", "dtype")}
    backbone = keras_hub.models.BertBackbone(**{**config, "num_layers": len(layers)})
    checkpoints.set_feedforward_activation(backbone, teacher.activation)
    model = models.build_head("sequence", backbone, len(teacher.labels), dropout, teacher.pooling)
    for layer in teacher.backbone.layers:
        if layer.weights and not layer.name.startswith("transformer_layer_"):
            backbone.get_layer(layer.name).set_weights(layer.get_weights())
    for i, source in enumerate(layers):
        backbone.get_layer(f"transformer_layer_{i}").set_weights(
            teacher.backbone.get_layer(f"transformer_layer_{source}").get_weights())
    model.get_layer("classifier").set_weights(teacher.model.get_layer("classifier").get_weights())
    meta = {"distilled_from": {"teacher": teacher.meta.get("model_path"), "teacher_layers": list(layers),
                               "teacher_num_layers": teacher.backbone.num_layers}}
    return models.TaskModel(model, backbone, teacher.tokenizer, list(teacher.labels), "sequence",
                            teacher.activation, dropout, meta, teacher.pooling)


@dataclasses.dataclass
class DistillData:
    """Every example the student trains on, in memory: token ids, gold label ids (-1: none, e.g. a context),
    the teacher's probabilities at the distillation temperature and its predicted label ids."""

    token_ids: np.ndarray
    labels: np.ndarray
    teacher_probs: np.ndarray
    pad_id: int
    contexts: int
    labelled: int

    @property
    def num_examples(self) -> int:
        """How many examples there are."""
        return len(self.labels)


def teacher_targets(trainer: Trainer, info: feature_cache.CacheInfo, batch_size: int,
                    temperature: float) -> np.ndarray:
    """The teacher's probabilities (float32) of every example at `temperature`, in input order."""
    logits, _ = inference.predict_logits(trainer, info, batch_size, description="teacher")
    return softmax(logits / temperature).astype(np.float32)


def distill_data(cfg: ClassifierConfig, teacher: Classifier, labels_source: str,
                 chief: bool) -> Tuple[DistillData, Optional[feature_cache.CacheInfo]]:
    """The contexts (no gold labels) and train.tsv (its labels) with the teacher's soft targets; and dev.tsv's
    features (None without --data_dir)."""
    settings = teacher.settings
    sources = [(path, False) for path in context_files(cfg)]
    if cfg.data_dir:
        sources.append((inputs.split_path(cfg.data_dir, "train"), True))
    parts, counts = [], {False: 0, True: 0}
    for path, labelled in sources:
        info = inputs.build_features(path, teacher.labels, labels_source, teacher.task.tokenizer,
                                     settings.max_seq_length, settings.replace_span, fitting.cache_root(cfg),
                                     check_labels=labelled, chief=chief, workers=cfg.featurize_workers)
        token_ids, gold = feature_cache.cache_arrays(info)
        probs = teacher_targets(teacher.trainer, info, cfg.predict_batch_size, cfg.distill_temperature)
        parts.append((token_ids, gold if labelled else np.full(len(gold), -1, np.int32), probs))
        counts[labelled] += len(gold)
    dev_info = None
    if cfg.data_dir:
        dev_info = inputs.build_features(inputs.split_path(cfg.data_dir, "dev"), teacher.labels, labels_source,
                                         teacher.task.tokenizer, settings.max_seq_length, settings.replace_span,
                                         fitting.cache_root(cfg), chief=chief, workers=cfg.featurize_workers)
    data = DistillData(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                       np.concatenate([p[2] for p in parts]), teacher.task.tokenizer.pad_id, counts[False],
                       counts[True])
    return data, dev_info


def epoch_dataset(cfg: ClassifierConfig, data: DistillData, steps: fitting.Steps, epoch: int, first_step: int):
    """The batches of training epoch `epoch` from step `first_step` on (shuffled by seed and epoch), and how many
    the epoch has."""
    import tensorflow as tf

    count = min(steps.per_epoch, steps.total - epoch * steps.per_epoch)
    teacher_ids = np.argmax(data.teacher_probs, axis=-1).astype(np.int32)
    dataset = tf.data.Dataset.from_tensor_slices((data.token_ids, data.labels, data.teacher_probs, teacher_ids))
    dataset = dataset.shuffle(data.num_examples, seed=cfg.seed * 1000 + epoch).batch(cfg.train_batch_size)

    def as_batch(token_ids, labels, probs, teacher):
        features = feature_cache.token_features(tf.cast(token_ids, tf.int32), data.pad_id)
        return {**features, LABELS: labels, TEACHER_PROBS: probs, TEACHER_LABELS: teacher}

    return dataset.map(as_batch, num_parallel_calls=tf.data.AUTOTUNE).take(count).skip(first_step), count


def loss_terms(cfg: ClassifierConfig, data: DistillData) -> Tuple[Loss, ...]:
    """The soft loss against the teacher over every example and, with labelled examples and a hard-label weight,
    the cross-entropy against their labels."""
    hard_weight = cfg.hard_label_weight if data.labelled else 0.0
    soft = Loss("soft_loss", None, TEACHER_LABELS, "preds", targets=TEACHER_PROBS,
                temperature=cfg.distill_temperature, weight=1.0 - hard_weight)
    if hard_weight == 0.0:
        return (soft,)
    return soft, Loss("hard_loss", None, LABELS, "hard_preds", weight=hard_weight)


def agreement_metrics(parts: Dict[str, List[np.ndarray]]) -> Dict[str, float]:
    """The epoch's training agreement: how often the student's label is the teacher's."""
    preds, teacher = np.concatenate(parts["preds"]), np.concatenate(parts[TEACHER_LABELS])
    return {"agreement": float(np.mean(preds == teacher))}


def run_table(cfg: ClassifierConfig, teacher: Classifier, student: models.TaskModel, layers: Sequence[int],
              data: DistillData, steps: fitting.Steps) -> Dict[str, Any]:
    """What this run distils from what, on what: printed at the start and kept for report.html."""
    hard = cfg.hard_label_weight if data.labelled else 0.0
    return {
        "teacher": f"{teacher.settings.model_path} ({models.describe_backbone(teacher.task.backbone)})",
        "student": f"{models.describe_backbone(student.backbone)}; layers from the teacher's {layers}",
        "labels": ", ".join(student.labels),
        "data": f"{data.contexts} contexts, {data.labelled} labelled examples; max_seq_length "
                f"{teacher.settings.max_seq_length}; replace_span {teacher.settings.replace_span}",
        "loss": f"{1.0 - hard:g} x T^2 KL(teacher || student) at T = {cfg.distill_temperature:g}"
                + (f" + {hard:g} x cross-entropy on the labelled examples" if hard else ""),
        "steps": f"{steps.per_epoch} per epoch, {steps.total} in all ({cfg.num_train_epochs:g} epochs), "
                 f"warm-up {steps.warmup}; batch {cfg.train_batch_size}",
        "optimizer": f"{cfg.optimizer}, peak learning rate {cfg.learning_rate:g}, weight decay "
                     f"{cfg.weight_decay:g}, clip norm 1.0",
    }


def load_teacher(cfg: ClassifierConfig, run: distribution.RunContext) -> Classifier:
    """The teacher, a saved bert-tf sequence classifier, with its saved settings (which the student keeps)."""
    return model_loading.load_saved(dataclasses.replace(cfg, apply_temperature=False), run, teacher_dir(cfg))


def train_student(cfg: ClassifierConfig, run: distribution.RunContext, labels_source: str,
                  checkpointer: resume.TrainingCheckpointer) -> Classifier:
    """Distil the teacher (--distill_from) into a student of --student_layers layers, save it as <output_dir>/model
    and return it."""
    teacher = load_teacher(cfg, run)
    layers = layer_map(cfg, teacher.task.backbone.num_layers)
    data, dev_info = distill_data(cfg, teacher, labels_source, run.chief)
    with run.strategy.scope():
        student = build_student(teacher.task, layers, cfg.classifier_dropout)
    steps = fitting.training_steps(cfg, data.num_examples)
    trainer = fitting.make_trainer(cfg, run, student, steps, losses=loss_terms(cfg, data),
                                   passthrough_keys=(LABELS, TEACHER_LABELS))
    summary = run_table(cfg, teacher, student, layers, data, steps)
    cli.print_table(TITLE, summary)
    if run.chief:
        html_report.write_run_summary(cfg.output_dir, TITLE,
                                      {**summary, html_report.EXAMPLES_PER_EPOCH: data.num_examples})
    tracker = OutputTracker(["preds", TEACHER_LABELS], agreement_metrics)
    guard = fitting.fit_epochs(cfg, student, trainer, functools.partial(epoch_dataset, cfg, data, steps), dev_info,
                               steps, checkpointer, run.chief, tracker, ("loss", "agreement", "accuracy", "f1"))
    settings = model_settings.ModelSettings(teacher.settings.max_seq_length, teacher.settings.replace_span,
                                            pooling=student.pooling)
    model = Classifier(student, trainer, settings)
    fitting.finish_model(dataclasses.replace(cfg, max_seq_length=settings.max_seq_length,
                                             replace_span=settings.replace_span,
                                             calibrate=cfg.calibrate and dev_info is not None),
                         model, dev_info, guard, chief=run.chief)
    return model
