"""The consensus entity-type classifier: feature caches, evaluation, and prediction files."""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import shutil
import tempfile
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, TextIO, Tuple

import numpy as np
import tensorflow as tf

from bert_tf import checkpoints, lifecycle, models
from bert_tf.batch_format import LABELS
from bert_tf.classifier import calibration, feature_cache, prediction_files
from bert_tf.classifier import data as consensus
from bert_tf.errors import InputError
from bert_tf.io_utils import atomic_path
from bert_tf.metrics import classification_metrics, softmax
from bert_tf.tokenization import WordPieceTokenizer

NEGATIVE_LABEL = "out"


def resolve_labels(labels_file: Optional[str], train_path: Optional[str]) -> Tuple[List[str], str]:
    """The label list (from --labels_file, else the sorted training labels) and where it came from."""
    if labels_file:
        return consensus.read_labels_file(labels_file), labels_file
    if not train_path:
        raise InputError("no label set: give --labels_file (or train.tsv to collect the labels from)")
    labels = consensus.collect_labels(train_path)
    if not labels:
        raise InputError("no examples", train_path)
    return labels, f"labels of {train_path}"


def split_path(data_dir: str, split: str) -> str:
    """The path of train.tsv / dev.tsv / test.tsv in the data directory, which must exist."""
    path = os.path.join(data_dir, f"{split}.tsv")
    if not os.path.isfile(path):
        raise InputError(f"missing {split}.tsv (the data directory must hold train.tsv, dev.tsv, test.tsv)", path)
    return path


def build_features(path: str, labels: Sequence[str], labels_source: str, tokenizer: WordPieceTokenizer,
                   max_seq_length: int, replace_span: Optional[str], cache_root: str,
                   check_labels: bool = True, chief: bool = True,
                   workers: Optional[int] = None) -> feature_cache.CacheInfo:
    """Featurize a consensus TSV once (validating every line; `workers` processes, None: the usable cores)
    and reuse the on-disk cache after that.

    Workers other than the chief of a multi-worker run (`chief=False`) build their own cache in a
    scratch directory removed at exit: they write nothing under the output directory and never
    race the chief for the same cache directory."""

    def records() -> consensus.TsvLineChunks:
        return consensus.TsvLineChunks(path, labels, labels_source, check_labels=check_labels)

    root = cache_root if chief else _worker_cache_root()
    settings = feature_cache.CacheSettings(tokenizer, max_seq_length, replace_span, labels, workers=workers)
    info = feature_cache.get_or_build_cache(records, path, root, settings, log=lambda message: print(message, flush=True))
    if info.num_examples == 0:
        raise InputError("no examples", path)
    if info.mentions_truncated:
        print(f"  {path}: {info.mentions_truncated} mention(s) longer than the half window were truncated")
    return info


@contextlib.contextmanager
def scratch_features(path: str, labels: Sequence[str], tokenizer: WordPieceTokenizer, max_seq_length: int,
                     replace_span: Optional[str], workers: Optional[int] = None) -> Iterator[feature_cache.CacheInfo]:
    """The features of one prediction input in a temporary cache (under $TMPDIR) removed when done: corpus
    prediction reads each shard once, so it keeps no cache."""
    root = tempfile.mkdtemp(prefix="bert_tf_predict_features_")
    try:
        yield build_features(path, labels, "the model's labels", tokenizer, max_seq_length, replace_span, root,
                             check_labels=False, chief=True, workers=workers)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def read_labels_dir(directory: str) -> Tuple[List[str], str]:
    """The labels of DIR/labels.txt sorted, as the published code reads --labels_dir, and that file's path."""
    path = os.path.join(directory, "labels.txt")
    if not os.path.isfile(path):
        raise InputError("--labels_dir has no labels.txt", directory)
    return sorted(consensus.read_labels_file(path)), path


def load_published_classifier(checkpoint: checkpoints.Checkpoint, tokenizer: WordPieceTokenizer,
                              labels: Sequence[str], labels_source: str) -> models.TaskModel:
    """A classifier fine-tuned by the published TF1 code (BERT body + pooler, output_weights/output_bias of
    len(labels) or len(labels) + 1 rows), ready to predict: its model gives every row's logit."""
    head = checkpoints.tf1.read_tf1_classifier_head(checkpoints.tf1.resolve_tf1_prefix(checkpoint.path))
    if head is None:
        raise InputError(f"no classifier head ({checkpoints.tf1.TF1_CLASSIFIER_WEIGHTS}, "
                         f"{checkpoints.tf1.TF1_CLASSIFIER_BIAS}): "
                         "a pretrained checkpoint, not a fine-tuned classifier (train with --do_train)", checkpoint.path)
    weights, bias = head
    if weights.shape[0] not in (len(labels), len(labels) + 1):
        raise InputError(f"{len(labels)} labels, but the checkpoint's {checkpoints.tf1.TF1_CLASSIFIER_WEIGHTS} has "
                         f"{weights.shape[0]} rows (expected {len(labels)} or {len(labels) + 1})", labels_source)
    backbone = checkpoints.load_backbone(checkpoint)
    models.check_vocab_matches(backbone, tokenizer)
    if weights.shape[1] != backbone.hidden_dim:
        raise InputError(f"{checkpoints.tf1.TF1_CLASSIFIER_WEIGHTS} has {weights.shape[1]} columns, the model's hidden "
                         f"size is {backbone.hidden_dim}", checkpoint.path)
    model = models.build_sequence_classifier(backbone, int(weights.shape[0]), 0.1, "pooler")
    layer = model.get_layer("classifier")
    layer.kernel.assign(np.transpose(weights))
    layer.bias.assign(bias)
    meta = {"published_tf1": True, "extra_logits": int(weights.shape[0]) - len(labels)}
    return models.TaskModel(model, backbone, tokenizer, list(labels), "sequence", checkpoint.activation, 0.1, meta)


_scratch_roots: List[str] = []


def _worker_cache_root() -> str:
    """This process's scratch feature-cache root (created once, removed when the process exits)."""
    if not _scratch_roots:
        _scratch_roots.append(tempfile.mkdtemp(prefix="bert_tf_worker_features_"))
        atexit.register(shutil.rmtree, _scratch_roots[0], True)
    return _scratch_roots[0]


def as_training_batches(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Turn (features, labels) batches into the trainer's dict batches."""
    return dataset.map(lambda feats, labels: {**feats, LABELS: labels}, num_parallel_calls=tf.data.AUTOTUNE)


def steps_for(num_examples: int, batch_size: int) -> int:
    """Batches in one pass over the data (the last one may be partial)."""
    return int(math.ceil(num_examples / batch_size))


def cache_label_ids(info: feature_cache.CacheInfo) -> np.ndarray:
    """The label id of every example of a feature cache (-1: none), read from the records' label slots."""
    dtype = np.dtype(info.dtype).newbyteorder("<")
    parts = [np.fromfile(path, dtype).reshape(-1, info.max_seq_length + 1)[:, -1] for path in info.shard_paths]
    return np.concatenate(parts).astype(np.int64) - 1 if parts else np.zeros(0, np.int64)


def training_metrics(parts: Dict[str, List[np.ndarray]]) -> Dict[str, float]:
    """Accuracy of the predictions made during an epoch's training steps."""
    preds, gold = np.concatenate(parts["preds"]), np.concatenate(parts[LABELS])
    keep = gold >= 0
    return {"accuracy": float(np.mean(preds[keep] == gold[keep])) if keep.any() else 0.0}


class InputOrder:
    """Hands on rows of predictions in input order, exactly once each, whatever order they arrive in.

    Each row carries its input position ("index"). Distributed prediction gathers the replicas'
    rows (in input order with tf.distribute's splitting of batches, but that is not promised);
    rows that arrive early wait here, rows seen before are dropped, and `finish` fails if any
    position never arrived.
    """

    def __init__(self, total: int, emit: Callable[[Dict[str, np.ndarray]], None]):
        self.total, self.emit = total, emit
        self.next = 0  # the first position not emitted yet
        self.duplicates = 0
        self._waiting: Dict[int, Dict[str, np.ndarray]] = {}

    def add(self, index: np.ndarray, rows: Dict[str, np.ndarray]) -> None:
        """Take a batch of rows whose input positions are `index`."""
        index = np.asarray(index, np.int64)
        if not self._waiting and np.array_equal(index, np.arange(self.next, self.next + len(index))):
            self.next += len(index)  # the usual case: the next rows, in order
            if len(index):
                self.emit(rows)
            return
        for r, i in enumerate(index.tolist()):
            if i < self.next or i in self._waiting or i >= self.total:
                self.duplicates += int(0 <= i < self.total)
                continue
            self._waiting[i] = {k: v[r] for k, v in rows.items()}
        self._emit_ready()

    def _emit_ready(self) -> None:
        ready = []
        while self.next in self._waiting:
            ready.append(self._waiting.pop(self.next))
            self.next += 1
        if ready:
            self.emit({k: np.stack([row[k] for row in ready]) for k in ready[0]})

    def finish(self) -> None:
        """Fail unless every position 0..total-1 was emitted."""
        if self.next != self.total:
            raise RuntimeError(f"prediction returned {self.next + len(self._waiting)} of {self.total} examples "
                               f"(position {self.next} is missing)")


def _predict_rows(trainer, info: feature_cache.CacheInfo, batch_size: int,
                  convert: Callable[[np.ndarray], np.ndarray],
                  on_rows: Optional[Callable[[np.ndarray, np.ndarray], None]], keep: bool,
                  description: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """convert(logits) and gold label ids of every example in input order, handed to `on_rows` and kept if `keep`."""
    dataset = as_training_batches(feature_cache.cache_dataset(info, batch_size, shuffle=False, seed=0, with_index=True))
    rows_out: List[np.ndarray] = []
    gold: List[np.ndarray] = []

    def emit(rows: Dict[str, np.ndarray]) -> None:
        if on_rows is not None:
            on_rows(rows["probs"], rows["labels"])
        if keep:
            rows_out.append(rows["probs"])
            gold.append(rows["labels"])

    order = InputOrder(info.num_examples, emit)

    def on_batch(out: Dict[str, np.ndarray]) -> None:
        order.add(out["index"], {"probs": convert(out["logits"]), "labels": out[LABELS]})

    trainer.predict(dataset, steps_for(info.num_examples, batch_size), on_batch, description=description)
    order.finish()
    if not keep:
        return np.zeros((0, len(info.labels))), np.zeros(0, np.int32)
    return np.concatenate(rows_out), np.concatenate(gold).astype(np.int32)


def predict_probabilities(trainer, info: feature_cache.CacheInfo, batch_size: int,
                          on_rows: Optional[Callable[[np.ndarray, np.ndarray], None]] = None,
                          keep: bool = True, description: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities (over every logit of the model) and gold label ids (-1: none) of every example,
    in input order.

    A calibrated model's classifier weights already include its temperature (models.fold_temperature), so
    these are the calibrated probabilities."""
    return _predict_rows(trainer, info, batch_size, softmax, on_rows, keep, description)


def predict_logits(trainer, info: feature_cache.CacheInfo, batch_size: int) -> Tuple[np.ndarray, np.ndarray]:
    """The model's logits (float64) and gold label ids (-1: none) of every example, in input order."""
    return _predict_rows(trainer, info, batch_size, lambda logits: logits.astype(np.float64), None, True)


def metrics_from_logits(logits: np.ndarray, gold: np.ndarray, labels: Sequence[str], temperature: float = 1.0,
                        fitted: Optional[float] = None) -> Dict:
    """Loss, classification metrics, the majority baseline, whether the model collapsed, and calibration (ECE and
    NLL before and after temperature scaling) of a model's logits on labelled data.

    `temperature`: the one already folded into the model (1.0 for none); `logits * temperature` are the
    uncalibrated logits. `fitted`: a temperature fitted but not folded in, for the calibration report."""
    if np.any(gold < 0):
        raise ValueError("evaluation data has examples without a known label")
    pred = logits[:, :len(labels)].argmax(axis=1)  # a published TF1 head has one logit more than labels
    metrics = classification_metrics(gold, pred, labels, NEGATIVE_LABEL if NEGATIVE_LABEL in labels else None)
    baseline = calibration.majority_baseline(gold, labels)
    problem = calibration.collapse_problem(pred, metrics["macro"]["f1"], baseline, labels)
    return {"loss": calibration.nll(logits, gold), **metrics, "majority_baseline": baseline,
            "beats_majority_baseline": problem is None, "collapse_problem": problem,
            "calibration": calibration.calibration_report(logits * temperature, gold,
                                                          temperature if temperature != 1.0 else fitted or 1.0)}


def evaluation_logits(trainer, info: feature_cache.CacheInfo, batch_size: int) -> Tuple[np.ndarray, np.ndarray]:
    """predict_logits for evaluation data: InputError if an example has no known label."""
    logits, gold = predict_logits(trainer, info, batch_size)
    if np.any(gold < 0):
        raise InputError("evaluation data has examples without a known label", info.cache_dir)
    return logits, gold


def evaluate(trainer, info: feature_cache.CacheInfo, labels: Sequence[str], batch_size: int,
             temperature: float = 1.0) -> Dict:
    """Loss and classification metrics (per class, averages, entity vs out, confusion matrix), the majority
    baseline and calibration (see metrics_from_logits)."""
    logits, gold = evaluation_logits(trainer, info, batch_size)
    return metrics_from_logits(logits, gold, labels, temperature)


class PredictionWriter:
    """Streams one input's predictions into its output files (by role, see prediction_files.output_names).

    `probs` rows may hold more columns than labels (a published TF1 classifier's extra logit): our file and
    the published dict file get the first len(labels), test_results.tsv gets them all (as the published code)."""

    def __init__(self, files: Dict[str, TextIO], labels: Sequence[str], examples: Iterator[consensus.ConsensusExample]):
        self.files, self.labels, self.examples = files, list(labels), examples
        self.written = 0
        files[prediction_files.PROBABILITIES_OUTPUT].write(prediction_files.header_line(labels))

    def add(self, probs: np.ndarray, _gold: Optional[np.ndarray] = None) -> None:
        """Write the rows of a batch of probabilities (input order)."""
        n = len(self.labels)
        for p in probs:
            e = next(self.examples)
            shown = p[:n]
            predicted = self.labels[int(np.argmax(shown))]
            fields = [e.doc_id, e.annotation_id, e.label, e.left, e.mention, e.right]
            self.files[prediction_files.PROBABILITIES_OUTPUT].write(prediction_files.format_row(fields, predicted, shown))
            self.files[prediction_files.RESULTS_OUTPUT].write(prediction_files.format_results_row(p))
            if prediction_files.LABELS_OUTPUT in self.files:
                self.files[prediction_files.LABELS_OUTPUT].write(predicted + "\n")
            if prediction_files.PUBLISHED_OUTPUT in self.files:
                self.files[prediction_files.PUBLISHED_OUTPUT].write(
                    prediction_files.format_published_row(fields, predicted, self.labels, shown))
            self.written += 1


def write_prediction_files(trainer, info: feature_cache.CacheInfo, input_path: str, labels: Sequence[str],
                           batch_size: int, outputs: Mapping[str, str], chief: bool = True,
                           description: Optional[str] = None) -> int:
    """Predict an input and write its output files (`outputs`: role -> path, see prediction_files.output_names),
    streaming, each renamed into place only when complete; returns the number of examples written.

    Every worker of a multi-worker run must call this (prediction runs collective ops); only the
    chief writes, the others predict and return 0."""
    if not chief:
        predict_probabilities(trainer, info, batch_size, keep=False, description=description)
        return 0
    examples = consensus.iter_consensus_tsv(input_path, check_labels=False)
    with contextlib.ExitStack() as stack:
        files = {}
        for role, path in outputs.items():
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            tmp = stack.enter_context(atomic_path(path))
            files[role] = stack.enter_context(open(tmp, "w", encoding="utf-8", newline="\n"))
        writer = PredictionWriter(files, labels, examples)
        lifecycle.enter_phase("prediction")  # the outputs' temporaries open, nothing in place
        predict_probabilities(trainer, info, batch_size, writer.add, keep=False, description=description)
        if next(examples, None) is not None or writer.written != info.num_examples:
            raise RuntimeError(f"{input_path}: {writer.written} predictions for {info.num_examples} examples")
    lifecycle.enter_phase("prediction written")  # between two shards of a corpus
    return writer.written
