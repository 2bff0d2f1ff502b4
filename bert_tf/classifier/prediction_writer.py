"""The prediction files of one input, written as the predictions stream in (see prediction_files for their formats)."""

from __future__ import annotations

import contextlib
import os
from typing import Dict, Iterator, Mapping, Optional, Sequence, TextIO

import numpy as np

from bert_tf import lifecycle
from bert_tf.classifier import feature_cache, prediction_files
from bert_tf.classifier import data as consensus
from bert_tf.classifier.inference import predict_probabilities
from bert_tf.io_utils import atomic_path


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
