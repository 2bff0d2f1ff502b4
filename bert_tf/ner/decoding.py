"""Constrained decoding of word-level tag distributions into IOB2-valid tag sequences.

A tag sequence is IOB2-valid when every `I-X` follows `B-X` or `I-X` and no sequence starts
with `I-X`. `viterbi` returns, for each sequence, the valid sequence with the highest sum of
word-level log-probabilities (numpy, vectorized over sequences and tags, one loop over positions).
Entity probabilities: the product of the chosen tags' word-level probabilities over the entity's
words (the probability, under the per-word distributions, that exactly those tags are chosen).
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

DECODE_MODES = ("viterbi", "argmax")
DEFAULT_DECODE = "viterbi"  # better than argmax in every measured setting (bench/CONTEXT_RESULTS.md)
SEQUENCE_CHUNK = 512  # sequences decoded together (sorted by length, so padding stays small)


def iob_constraints(labels: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    """(allowed[from, to] transitions, allowed first tags) of IOB2 over `labels`."""
    allowed = np.ones((len(labels), len(labels)), bool)
    start = np.ones(len(labels), bool)
    for j, tag in enumerate(labels):
        if tag.startswith("I-"):
            entity_type = tag[2:]
            start[j] = False
            allowed[:, j] = [label in (f"B-{entity_type}", f"I-{entity_type}") for label in labels]
    return allowed, start


def _decode_chunk(log_probs: Sequence[np.ndarray], transitions: np.ndarray, start: np.ndarray) -> List[np.ndarray]:
    """Viterbi paths of sequences padded to one length (padding carries the last state unchanged)."""
    lengths = np.array([len(x) for x in log_probs])
    batch, steps, tags = len(log_probs), int(lengths.max()), transitions.shape[0]
    emissions = np.zeros((batch, steps, tags))
    for b, x in enumerate(log_probs):
        emissions[b, :len(x)] = x
    score = emissions[:, 0] + start[None]
    back = np.zeros((batch, steps, tags), np.int32)
    identity = np.arange(tags, dtype=np.int32)
    for t in range(1, steps):
        candidates = score[:, :, None] + transitions[None]  # [batch, from, to]
        previous = candidates.argmax(axis=1).astype(np.int32)
        new_score = np.take_along_axis(candidates, previous[:, None, :], axis=1)[:, 0] + emissions[:, t]
        active = (t < lengths)[:, None]
        score = np.where(active, new_score, score)
        back[:, t] = np.where(active, previous, identity[None])
    path = np.zeros((batch, steps), np.int32)
    path[:, -1] = score.argmax(axis=1)
    rows = np.arange(batch)
    for t in range(steps - 1, 0, -1):
        path[:, t - 1] = back[rows, t, path[:, t]]
    return [path[b, :n].astype(np.int64) for b, n in enumerate(lengths)]


def viterbi(log_probs: Sequence[np.ndarray], labels: Sequence[str]) -> List[np.ndarray]:
    """The highest-scoring IOB2-valid label ids of each [words, labels] log-probability array."""
    allowed, start = iob_constraints(labels)
    transitions = np.where(allowed, 0.0, -np.inf)
    start_scores = np.where(start, 0.0, -np.inf)
    out: List[np.ndarray] = [np.zeros(0, np.int64)] * len(log_probs)
    order = [i for i in np.argsort([len(x) for x in log_probs], kind="stable") if len(log_probs[i])]
    for first in range(0, len(order), SEQUENCE_CHUNK):
        chunk = order[first:first + SEQUENCE_CHUNK]
        for i, path in zip(chunk, _decode_chunk([log_probs[i] for i in chunk], transitions, start_scores)):
            out[i] = path
    return out


def invalid_transitions(label_ids: Sequence[np.ndarray], labels: Sequence[str]) -> int:
    """How many tags in the sequences break IOB2 (I-X at the start or not after B-X / I-X)."""
    allowed, start = iob_constraints(labels)
    count = 0
    for ids in label_ids:
        ids = np.asarray(ids, np.int64)
        if len(ids):
            count += int(not start[ids[0]]) + int(np.sum(~allowed[ids[:-1], ids[1:]]))
    return count


def chosen_log_probs(log_probs: np.ndarray, label_ids: np.ndarray) -> np.ndarray:
    """The log-probability of the chosen label of each word."""
    if not len(label_ids):
        return np.zeros(0)
    return log_probs[np.arange(len(label_ids)), np.asarray(label_ids, np.int64)]


def entity_probability(word_log_probs: np.ndarray, start: int, end: int) -> float:
    """Probability of an entity over words [start, end): the product of its words' chosen-tag probabilities."""
    return float(np.exp(np.sum(word_log_probs[start:end])))
