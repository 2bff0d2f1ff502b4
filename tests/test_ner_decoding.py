"""Constrained (IOB2) Viterbi decoding, argmax repairs and entity probabilities."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bert_tf.ner import decoding

from bert_tf.ner import entities as ner_entities, evaluation as ner_evaluation, prediction as ner_prediction

LABELS = ["O", "B-A", "I-A", "B-B", "I-B"]


def _valid(sequence, labels) -> bool:
    previous = "O"
    for tag in (labels[i] for i in sequence):
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


def _brute_force(log_probs: np.ndarray, labels) -> tuple:
    best, best_score = None, -np.inf
    for sequence in itertools.product(range(len(labels)), repeat=len(log_probs)):
        if _valid(sequence, labels):
            score = sum(log_probs[t, k] for t, k in enumerate(sequence))
            if score > best_score:
                best, best_score = sequence, score
    return best, best_score


def test_constraints_of_iob2():
    allowed, start = decoding.iob_constraints(LABELS)
    assert start.tolist() == [True, True, False, True, False]
    assert allowed[:, 2].tolist() == [False, True, True, False, False]  # I-A only after B-A or I-A
    assert allowed[:, 4].tolist() == [False, False, False, True, True]
    assert allowed[:, [0, 1, 3]].all()


def test_viterbi_matches_brute_force_on_random_cases():
    rng = np.random.default_rng(0)
    cases = []
    for _ in range(40):
        n = int(rng.integers(1, 6))
        logits = rng.normal(0, 2, (n, len(LABELS)))
        cases.append(logits - np.log(np.exp(logits).sum(axis=1, keepdims=True)))
    decoded = decoding.viterbi(cases, LABELS)  # decoded together: different lengths in one padded chunk
    for log_probs, path in zip(cases, decoded):
        best, best_score = _brute_force(log_probs, LABELS)
        assert _valid(path, LABELS)
        score = log_probs[np.arange(len(path)), path].sum()
        assert score == pytest.approx(best_score)
        assert tuple(path.tolist()) == best


def test_invalid_argmax_is_repaired():
    probs = np.array([[0.1, 0.2, 0.6, 0.05, 0.05],  # argmax I-A at the start: invalid
                      [0.1, 0.1, 0.7, 0.05, 0.05],
                      [0.5, 0.0, 0.0, 0.1, 0.4],
                      [0.1, 0.05, 0.05, 0.15, 0.65]])  # O I-B: invalid
    log_probs = np.log(np.maximum(probs, 1e-9))
    argmax = log_probs.argmax(axis=1)
    assert decoding.invalid_transitions([argmax], LABELS) == 2
    path = decoding.viterbi([log_probs], LABELS)[0]
    assert decoding.invalid_transitions([path], LABELS) == 0
    assert [LABELS[i] for i in path] == ["B-A", "I-A", "O", "B-B"]
    repairs = ner_evaluation.argmax_repairs([argmax], [path], LABELS)
    assert repairs["invalid_argmax_tags"] == 2 and repairs["words_changed"] == 2
    # conlleval reads the argmax as A over words 0-1 and B over word 3, the same chunks as the repaired path
    assert repairs["argmax_entities"] == 2 and repairs["entities_only_in_argmax"] == 0


def test_decode_keeps_distributions_and_reports_chosen_probability():
    log_probs = np.log(np.array([[0.3, 0.3, 0.4, 0.0, 0.0], [0.2, 0.1, 0.7, 0.0, 0.0]]) + 1e-12)
    predictions = ner_prediction.WordPredictions([log_probs.argmax(1)], [np.exp(log_probs.max(1))], [log_probs])
    decoded = ner_prediction.decode(predictions, LABELS, "viterbi")
    assert decoded.label_ids[0].tolist() == [1, 2]  # B-A I-A (0.3*0.7) beats O O (0.3*0.2) and B-A O
    assert np.allclose(decoded.confidence[0], [0.3, 0.7])
    assert ner_prediction.decode(predictions, LABELS, "argmax").label_ids[0].tolist() == [2, 2]


def test_entity_probability_by_hand():
    words = ["Sauli", "Niinistö", "vieraili", "Oulussa"]
    tags = ["B-A", "I-A", "O", "B-B"]
    chosen = np.log([0.9, 0.8, 0.99, 0.6])
    entities = ner_entities.entities_of(words, tags, np.exp(chosen), chosen)
    assert entities[0]["probability"] == pytest.approx(0.72)  # 0.9 * 0.8
    assert entities[0]["confidence"] == pytest.approx(0.85)
    assert entities[1]["probability"] == pytest.approx(0.6)
    assert [e["text"] for e in entities] == ["Sauli Niinistö", "Oulussa"]


def test_empty_and_long_sequences():
    rng = np.random.default_rng(1)
    long = np.log(rng.dirichlet(np.ones(len(LABELS)), size=3000))
    paths = decoding.viterbi([np.zeros((0, len(LABELS))), long], LABELS)
    assert len(paths[0]) == 0 and len(paths[1]) == 3000
    assert decoding.invalid_transitions(paths, LABELS) == 0
