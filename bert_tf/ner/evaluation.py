"""NER evaluation: loss and word-level metrics of a labelled set, what decoding changed, and its report lines."""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
from seqeval.metrics.sequence_labeling import get_entities

from bert_tf.batch_format import IGNORE_LABEL
from bert_tf.ner.metrics import ner_metrics
from bert_tf.ner import decoding, windowing
from bert_tf.ner.batching import ROW_ID
from bert_tf.ner.prediction import EvalSet, WordPredictions, collect_windows, decode
from bert_tf.ner.rows import Rows

def word_level_loss(predictions: WordPredictions, gold_ids: Sequence[Sequence[int]]) -> float:
    """Mean negative log-likelihood of the gold label over all words."""
    total, count = 0.0, 0
    for lp, gold in zip(predictions.log_probs, gold_ids):
        if len(gold):
            total -= float(lp[np.arange(len(gold)), np.asarray(gold)].sum())
            count += len(gold)
    return total / max(count, 1)


def training_metrics(parts: Dict[str, List[np.ndarray]], rows: Rows, labels: Sequence[str]) -> Dict[str, float]:
    """Word-level accuracy and F1 of the predictions made during an epoch's training steps (target words)."""
    gold, pred = [], []
    for preds, row_ids in zip(parts["preds"], parts[ROW_ID]):
        for p, row in zip(preds, row_ids):
            if row < 0:
                continue
            row_labels = rows.row(int(row)).labels
            positions = np.flatnonzero(row_labels != IGNORE_LABEL)
            gold.append([labels[i] for i in row_labels[positions]])
            pred.append([labels[i] for i in p[positions]])
    result = ner_metrics(gold, pred)
    return {"accuracy": result["accuracy"], "f1": result["f1"]}


def _tags(ids: Sequence[np.ndarray], labels: Sequence[str]) -> List[List[str]]:
    """Label names of label-id sequences."""
    return [[labels[i] for i in doc] for doc in ids]


def argmax_repairs(argmax_ids: Sequence[np.ndarray], decoded_ids: Sequence[np.ndarray],
                   labels: Sequence[str]) -> Dict[str, int]:
    """What constrained decoding changed: invalid argmax tags, words changed, entities only in either output."""
    before = {(i, *e) for i, tags in enumerate(_tags(argmax_ids, labels)) for e in get_entities(tags)}
    after = {(i, *e) for i, tags in enumerate(_tags(decoded_ids, labels)) for e in get_entities(tags)}
    return {
        "invalid_argmax_tags": decoding.invalid_transitions(argmax_ids, labels),
        "words_changed": int(sum(np.sum(np.asarray(a) != np.asarray(b)) for a, b in zip(argmax_ids, decoded_ids))),
        "argmax_entities": len(before), "decoded_entities": len(after),
        "entities_only_in_argmax": len(before - after), "entities_only_in_decoded": len(after - before),
    }


def score(predictions: WordPredictions, eval_set: EvalSet, labels: Sequence[str],
          mode: str) -> Tuple[Dict, WordPredictions]:
    """Loss and word-level metrics of predictions decoded by `mode`, with what decoding changed."""
    decoded = decode(predictions, labels, mode)
    metrics = ner_metrics(_tags(eval_set.gold_ids, labels), _tags(decoded.label_ids, labels))
    metrics = {"loss": word_level_loss(predictions, eval_set.gold_ids), **metrics}
    metrics["decoding"] = {"decode": mode, **argmax_repairs(predictions.label_ids, decoded.label_ids, labels)}
    return metrics, decoded


def evaluate(trainer, eval_set: EvalSet, labels: Sequence[str], batch_size: int, buckets: Sequence[int],
             pad_id: int, num_workers: int = 2, vote: str = windowing.DEFAULT_VOTE,
             decode_mode: str = decoding.DEFAULT_DECODE,
             compare: bool = False) -> Tuple[Dict, WordPredictions]:
    """Loss and word-level metrics (with and without O, per class) of a labelled set.

    With `compare`, metrics["comparison"] also holds the F1 of every vote and decoding.
    """
    collector = collect_windows(trainer, eval_set, batch_size, buckets, pad_id, num_workers)
    metrics, decoded = score(collector.result(vote), eval_set, labels, decode_mode)
    metrics["decoding"]["vote"] = vote
    if compare:
        metrics["comparison"] = {}
        for other_vote in windowing.VOTES:
            predictions = collector.result(other_vote)
            for mode in decoding.DECODE_MODES:
                figures, _ = score(predictions, eval_set, labels, mode)
                metrics["comparison"][f"{other_vote}+{mode}"] = {k: figures[k] for k in ("f1", "precision", "recall")}
    return metrics, decoded


def format_decoding_report(metrics: Dict) -> str:
    """Lines saying how words were decided and decoded, what Viterbi repaired, and the F1 of the alternatives."""
    info = metrics.get("decoding", {})
    lines = ["", f"decoding: {info.get('decode')}; each word decided by the {info.get('vote')} window"]
    lines.append(f"argmax: {info.get('invalid_argmax_tags', 0)} tags break IOB2 (I-X not after B-X/I-X); "
                 f"{info.get('argmax_entities', 0)} entities")
    if info.get("decode") == "viterbi":
        lines.append(f"viterbi: {info.get('words_changed', 0)} words changed; {info.get('decoded_entities', 0)} "
                     f"entities, {info.get('entities_only_in_argmax', 0)} of the argmax's broken or dropped, "
                     f"{info.get('entities_only_in_decoded', 0)} new")
    comparison = metrics.get("comparison", {})
    if comparison:
        lines.append("F1 by vote+decoding: " + ", ".join(f"{k} {v['f1']:.4f}" for k, v in comparison.items()))
    return "\n".join(lines) + "\n"
