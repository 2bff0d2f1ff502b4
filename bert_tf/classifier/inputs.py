"""The classifier's inputs: the data folder's splits, the label set, the features of a consensus TSV (cached, or
scratch for one prediction) and the training batches made from them."""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import shutil
import tempfile
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from bert_tf.batch_format import LABELS
from bert_tf.classifier import feature_cache
from bert_tf.classifier import data as consensus
from bert_tf.errors import InputError
from bert_tf.tokenization import WordPieceTokenizer


def resolve_labels(labels_file: Optional[str], train_path: Optional[str],
                   keep_order: bool = False) -> Tuple[List[str], str]:
    """The label list (from --labels_file, else the sorted training labels) and where it came from. A labels file
    must be in sorted order, the published code's column order, unless `keep_order`."""
    if labels_file:
        labels = consensus.read_labels_file(labels_file)
        if labels != sorted(labels) and not keep_order:
            raise InputError(f"labels not in sorted order ({', '.join(labels)}): the published code sorts them and "
                             "the probability columns of test_results.tsv follow that order; sort the file, or give "
                             "--keep_labels_order to use this order", labels_file)
        return labels, labels_file
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


def read_labels_dir(directory: str) -> Tuple[List[str], str]:
    """The labels of DIR/labels.txt sorted, as the published code reads --labels_dir, and that file's path."""
    path = os.path.join(directory, "labels.txt")
    if not os.path.isfile(path):
        raise InputError("--labels_dir has no labels.txt", directory)
    return sorted(consensus.read_labels_file(path)), path


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
    tolerated = describe_tolerated(info)
    if tolerated:
        print(f"  {path}: read as the published reader read them: {tolerated}")
    return info


def describe_tolerated(info: feature_cache.CacheInfo) -> str:
    """What the published reader's rule tolerated in a featurized file ('' when nothing), e.g. 'empty
    mentions: 2'."""
    return consensus.describe_tolerated({kind: getattr(info, kind) for kind in consensus.TOLERATED})


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
