"""Tests for bert_tf.metrics: conlleval-style NER figures, classification figures, text reports."""

from __future__ import annotations

import json
import random
import warnings

import numpy as np
import pytest
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix
from sklearn.metrics import precision_recall_fscore_support

from bert_tf.classifier.metrics import classification_metrics, format_classification_report
from bert_tf.ner.metrics import format_ner_report, ner_metrics

# ============================================================================= NER: hand-computed cases


def test_basic_example_one_right_one_wrong_entity():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"]]
    m = ner_metrics(gold, pred)
    # entities: gold {PER 0-1, LOC 3}, pred {PER 0-1, ORG 3}; 1 correct of 2 found, 2 gold
    assert (m["precision"], m["recall"], m["f1"]) == (0.5, 0.5, 0.5)
    assert m["accuracy"] == 0.75  # 3 of 4 tags equal
    assert m["per_class"] == {
        "LOC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "ORG": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
        "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
    }
    assert list(m["per_class"]) == ["LOC", "ORG", "PER"]
    assert m["num_words"] == 4 and m["num_sentences"] == 1
    # without O: positions 0, 1, 3 remain -> same entities; tags equal at 0, 1 -> 2/3
    assert m["without_o"] == {"accuracy": pytest.approx(2 / 3), "precision": 0.5, "recall": 0.5, "f1": 0.5}


def test_inside_tag_after_outside_starts_an_entity():
    m = ner_metrics([["O", "B-PER"]], [["O", "I-PER"]])
    assert (m["precision"], m["recall"], m["f1"]) == (1.0, 1.0, 1.0)
    assert m["accuracy"] == 0.5


def test_begin_followed_by_inside_of_other_type_splits_entities():
    # pred chunks: PER 0, LOC 1 ; gold chunk: PER 0-1 -> nothing correct
    m = ner_metrics([["B-PER", "I-PER"]], [["B-PER", "I-LOC"]])
    assert (m["precision"], m["recall"], m["f1"]) == (0.0, 0.0, 0.0)
    assert m["per_class"]["LOC"]["support"] == 0
    assert m["per_class"]["PER"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_type_change_between_inside_tags_starts_new_entity():
    # I-PER I-LOC is read as PER 0, LOC 1 -- the same chunks as B-PER B-LOC
    m = ner_metrics([["B-PER", "B-LOC"]], [["I-PER", "I-LOC"]])
    assert (m["precision"], m["recall"], m["f1"]) == (1.0, 1.0, 1.0)
    assert m["accuracy"] == 0.0


def test_entities_do_not_cross_sentence_boundaries():
    gold = [["O", "B-PER"], ["I-PER", "O"]]  # two PER entities, one per sentence
    pred = [["O", "B-PER"], ["O", "O"]]
    m = ner_metrics(gold, pred)
    assert m["precision"] == 1.0 and m["recall"] == 0.5
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["per_class"]["PER"]["support"] == 2


def test_without_o_merges_entity_split_by_gold_outside_word():
    gold = [["B-PER", "O", "I-PER", "O"], ["O", "O"]]
    pred = [["B-PER", "B-PER", "I-PER", "O"], ["B-LOC", "O"]]
    m = ner_metrics(gold, pred)
    # full: gold {PER 0, PER 2} (I after O opens a new one), pred {PER 0, PER 1-2, LOC (s2) 0}
    #   correct 1 (PER 0): P = 1/3, R = 1/2, F1 = 2*(1/3)*(1/2)/(5/6) = 0.4
    #   tags equal at s1: 0, 2, 3 and s2: 1 -> 4 of 6
    assert m["precision"] == pytest.approx(1 / 3)
    assert m["recall"] == 0.5
    assert m["f1"] == pytest.approx(0.4)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # without O: s1 keeps positions 0, 2 -> gold [B-PER, I-PER] is ONE entity, pred the same;
    # s2 becomes empty and is dropped
    assert m["without_o"] == {"accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert m["per_class"]["PER"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert m["per_class"]["LOC"]["support"] == 0
    assert m["num_words"] == 6 and m["num_sentences"] == 2


def test_without_o_counts_wrong_tags_on_entity_words():
    gold = [["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]]
    pred = [["B-PER", "O", "O", "B-LOC", "I-LOC"]]
    m = ner_metrics(gold, pred)
    # kept positions 0, 1, 3, 4: gold [B-PER I-PER B-LOC I-LOC], pred [B-PER O B-LOC I-LOC]
    # accuracy 3/4; entities gold {PER 0-1, LOC 2-3}, pred {PER 0, LOC 2-3}: 1 correct of 2 and 2
    assert m["without_o"] == {"accuracy": 0.75, "precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert m["accuracy"] == 0.8


def test_all_gold_outside_gives_zero_without_o():
    m = ner_metrics([["O", "O", "O"]], [["O", "B-PER", "O"]])
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert (m["precision"], m["recall"], m["f1"]) == (0.0, 0.0, 0.0)  # 0 of 1 found, 0 gold
    assert m["without_o"] == {"accuracy": 0.0, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert m["per_class"] == {"PER": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}}


def test_no_entities_anywhere_is_zero_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = ner_metrics([["O", "O"]], [["O", "O"]])
    assert m["accuracy"] == 1.0
    assert (m["precision"], m["recall"], m["f1"]) == (0.0, 0.0, 0.0)
    assert m["per_class"] == {}


def test_empty_input():
    m = ner_metrics([], [])
    assert m["accuracy"] == 0.0 and m["f1"] == 0.0
    assert m["num_words"] == 0 and m["num_sentences"] == 0


def test_untyped_begin_inside_tags_are_scored():
    # BC5CDR-style tags without a type: seqeval names the type "_"
    m = ner_metrics([["B", "I", "O", "B"]], [["B", "I", "O", "O"]])
    assert (m["precision"], m["recall"]) == (1.0, 0.5)
    assert list(m["per_class"]) == ["_"]
    assert m["per_class"]["_"]["support"] == 2


def test_accepts_tuples_and_returns_plain_json_types():
    m = ner_metrics((("B-PER", "O"),), (("B-PER", "O"),))
    assert m["f1"] == 1.0
    json.dumps(m)
    assert type(m["accuracy"]) is float and type(m["num_words"]) is int
    assert type(m["per_class"]["PER"]["support"]) is int


def test_different_sentence_count_raises():
    with pytest.raises(ValueError, match="sentences"):
        ner_metrics([["O"], ["O"]], [["O"]])


def test_different_sentence_length_names_sentence():
    with pytest.raises(ValueError, match="sentence 1"):
        ner_metrics([["O"], ["O", "B-PER"]], [["O"], ["O"]])


# ============================================================================= NER: cross-checks

TAGS = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


def _random_corpus(seed: int, count: int = 200) -> tuple[list[list[str]], list[list[str]]]:
    rng = random.Random(seed)
    gold, pred = [], []
    for _ in range(count):
        length = rng.randint(1, 15)
        gold_tags = [rng.choice(TAGS) for _ in range(length)]
        pred_tags = [tag if rng.random() < 0.6 else rng.choice(TAGS) for tag in gold_tags]
        gold.append(gold_tags)
        pred.append(pred_tags)
    return gold, pred


def _chunks(sentences: list[list[str]]) -> set[tuple[int, int, int, str]]:
    """conlleval chunks (sentence, first, last, type) for IOB tags, written independently of seqeval."""
    found = set()
    for number, tags in enumerate(sentences):
        open_chunk = None  # (first, type)
        for position, tag in enumerate(tags + ["O"]):
            prefix, _, kind = tag.partition("-")
            continues = prefix == "I" and open_chunk is not None and open_chunk[1] == kind
            if open_chunk is not None and not continues:
                found.add((number, open_chunk[0], position - 1, open_chunk[1]))
                open_chunk = None
            if prefix in ("B", "I") and not continues:
                open_chunk = (position, kind)
    return found


def _reference_figures(gold, pred) -> dict:
    gold_chunks, pred_chunks = _chunks(gold), _chunks(pred)
    correct = len(gold_chunks & pred_chunks)
    precision = correct / len(pred_chunks) if pred_chunks else 0.0
    recall = correct / len(gold_chunks) if gold_chunks else 0.0
    f1 = 2.0 * precision * recall / (precision + recall) if precision + recall else 0.0
    words = sum(len(s) for s in gold)
    same = sum(g == p for gs, ps in zip(gold, pred) for g, p in zip(gs, ps))
    per_type = {}
    for kind in sorted({c[3] for c in gold_chunks | pred_chunks}):
        g = {c for c in gold_chunks if c[3] == kind}
        p = {c for c in pred_chunks if c[3] == kind}
        per_type[kind] = (len(g & p), len(p), len(g))
    return {"accuracy": same / words if words else 0.0, "precision": precision, "recall": recall,
            "f1": f1, "per_type": per_type}


def _remove_gold_outside(gold, pred):
    pairs = [[(g, p) for g, p in zip(gs, ps) if g != "O"] for gs, ps in zip(gold, pred)]
    pairs = [sentence for sentence in pairs if sentence]
    return [[g for g, _ in s] for s in pairs], [[p for _, p in s] for s in pairs]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_independent_conlleval_counts(seed):
    gold, pred = _random_corpus(seed)
    m = ner_metrics(gold, pred)
    reference = _reference_figures(gold, pred)
    for key in ("accuracy", "precision", "recall", "f1"):
        assert m[key] == reference[key], key
    for kind, (correct, found, in_gold) in reference["per_type"].items():
        assert m["per_class"][kind]["support"] == in_gold
        assert m["per_class"][kind]["precision"] == (correct / found if found else 0.0)
        assert m["per_class"][kind]["recall"] == (correct / in_gold if in_gold else 0.0)
    assert set(m["per_class"]) == set(reference["per_type"])
    without = _reference_figures(*_remove_gold_outside(gold, pred))
    for key in ("accuracy", "precision", "recall", "f1"):
        assert m["without_o"][key] == without[key], key


@pytest.mark.parametrize("seed", [3, 4])
def test_matches_seqeval_default_mode(seed):
    gold, pred = _random_corpus(seed)
    m = ner_metrics(gold, pred)
    assert m["precision"] == precision_score(gold, pred)
    assert m["recall"] == recall_score(gold, pred)
    assert m["f1"] == f1_score(gold, pred)
    report = classification_report(gold, pred, output_dict=True)
    for kind, figures in m["per_class"].items():
        assert figures["precision"] == pytest.approx(report[kind]["precision"], abs=1e-15)
        assert figures["recall"] == pytest.approx(report[kind]["recall"], abs=1e-15)
        assert figures["f1"] == pytest.approx(report[kind]["f1-score"], abs=1e-15)
        assert figures["support"] == report[kind]["support"]


# ============================================================================= classification

LABELS = ["che", "dis", "ggp", "out"]
# Confusion matrix written by hand (rows gold, columns predicted):
#          che dis ggp out | support
#   che     3   1   0   1  |   5
#   dis     0   2   0   0  |   2
#   ggp     1   0   0   1  |   2
#   out     0   1   0   2  |   3
#   col     4   4   0   4  |  12
HAND_MATRIX = [[3, 1, 0, 1], [0, 2, 0, 0], [1, 0, 0, 1], [0, 1, 0, 2]]


def _hand_examples() -> tuple[list[int], list[int]]:
    pairs = [(0, 0), (1, 1), (0, 1), (3, 3), (0, 0), (2, 0), (0, 3), (3, 1),
             (1, 1), (0, 0), (2, 3), (3, 3)]
    return [g for g, _ in pairs], [p for _, p in pairs]


def test_hand_computed_classification_figures():
    y_true, y_pred = _hand_examples()
    m = classification_metrics(y_true, y_pred, LABELS)
    assert m["confusion_matrix"] == HAND_MATRIX
    assert m["labels"] == LABELS and m["num_examples"] == 12
    assert m["accuracy"] == pytest.approx(7 / 12)  # diagonal 3 + 2 + 0 + 2
    # che: P 3/4, R 3/5, F1 2*.75*.6/1.35 = 2/3
    # dis: P 2/4, R 2/2, F1 2*.5*1/1.5 = 2/3
    # ggp: P 0/0 -> 0, R 0/2 = 0, F1 0
    # out: P 2/4, R 2/3, F1 2*(1/2)*(2/3)/(7/6) = 4/7
    expected = {
        "che": (3 / 4, 3 / 5, 2 / 3, 5),
        "dis": (1 / 2, 1.0, 2 / 3, 2),
        "ggp": (0.0, 0.0, 0.0, 2),
        "out": (1 / 2, 2 / 3, 4 / 7, 3),
    }
    for label, (precision, recall, f1, support) in expected.items():
        figures = m["per_class"][label]
        assert figures["precision"] == pytest.approx(precision), label
        assert figures["recall"] == pytest.approx(recall), label
        assert figures["f1"] == pytest.approx(f1), label
        assert figures["support"] == support, label
    # micro == accuracy for single-label
    assert m["micro"] == {"precision": pytest.approx(7 / 12), "recall": pytest.approx(7 / 12),
                          "f1": pytest.approx(7 / 12), "support": 12}
    # macro P (.75+.5+0+.5)/4 = 7/16; R (.6+1+0+2/3)/4 = 17/30; F1 (2/3+2/3+0+4/7)/4 = 10/21
    assert m["macro"] == {"precision": pytest.approx(7 / 16), "recall": pytest.approx(17 / 30),
                          "f1": pytest.approx(10 / 21), "support": 12}
    # weighted P (5*.75+2*.5+2*0+3*.5)/12 = 25/48; R 7/12; F1 (5*2/3+2*2/3+0+3*4/7)/12 = 67/126
    assert m["weighted"] == {"precision": pytest.approx(25 / 48), "recall": pytest.approx(7 / 12),
                             "f1": pytest.approx(67 / 126), "support": 12}


def test_hand_computed_entity_vs_out():
    y_true, y_pred = _hand_examples()
    figures = classification_metrics(y_true, y_pred, LABELS)["entity_vs_out"]
    # gold entity rows che+dis+ggp = 9; predicted entity columns = 4+4+0 = 8
    # detection TP = entity block sum (3+1+0)+(0+2+0)+(1+0+0) = 7 -> P 7/8, R 7/9, F1 14/17
    assert figures["detection"] == {"precision": pytest.approx(7 / 8), "recall": pytest.approx(7 / 9),
                                    "f1": pytest.approx(14 / 17), "support": 9}
    # typing: correct typed = 3+2+0 = 5 -> P 5/8, R 5/9, F1 10/17
    assert figures["typing"] == {"precision": pytest.approx(5 / 8), "recall": pytest.approx(5 / 9),
                                 "f1": pytest.approx(10 / 17), "support": 9}
    assert figures["type_accuracy_on_detected"] == pytest.approx(5 / 7)
    assert figures["out_precision"] == 0.5
    assert figures["out_recall"] == pytest.approx(2 / 3)
    assert figures["out_f1"] == pytest.approx(4 / 7)


def test_entity_vs_out_only_when_negative_label_known():
    y_true, y_pred = _hand_examples()
    assert "entity_vs_out" not in classification_metrics(y_true, y_pred, LABELS, negative_label=None)
    assert "entity_vs_out" not in classification_metrics(y_true, y_pred, LABELS, negative_label="none")
    figures = classification_metrics(y_true, y_pred, LABELS, negative_label="che")["entity_vs_out"]
    assert figures["out_precision"] == 0.75  # che column: 3 of 4


def test_classification_accepts_numpy_and_returns_plain_types():
    y_true, y_pred = _hand_examples()
    m = classification_metrics(np.array(y_true, dtype=np.int32), np.array(y_pred), LABELS)
    json.dumps(m)
    assert type(m["accuracy"]) is float
    assert type(m["confusion_matrix"][0][0]) is int
    assert type(m["per_class"]["che"]["support"]) is int


def test_classification_empty_input_is_all_zero():
    m = classification_metrics([], [], LABELS)
    assert m["accuracy"] == 0.0 and m["num_examples"] == 0
    assert m["confusion_matrix"] == [[0] * 4 for _ in range(4)]
    assert m["macro"]["f1"] == 0.0 and m["weighted"]["precision"] == 0.0
    assert m["entity_vs_out"]["type_accuracy_on_detected"] == 0.0


@pytest.mark.parametrize(
    "y_true, y_pred, message",
    [([0, 1], [0], "examples"), ([0, 4], [0, 1], "outside"), ([0, -1], [0, 1], "outside"),
     ([0.5, 1.0], [0, 1], "integer")],
)
def test_classification_rejects_bad_input(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(y_true, y_pred, LABELS)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels = ["a", "b", "c", "d", "e"]
    y_true = rng.integers(0, 4, size=3000)  # "e" never gold
    y_pred = np.where(rng.random(3000) < 0.7, y_true, rng.integers(0, 5, size=3000))
    y_pred[y_pred == 2] = 1  # "c" never predicted
    m = classification_metrics(y_true, y_pred, labels, negative_label="a")
    ids = list(range(5))
    assert m["confusion_matrix"] == sklearn_confusion_matrix(y_true, y_pred, labels=ids).tolist()
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=ids, average=None, zero_division=0)
    for index, label in enumerate(labels):
        assert m["per_class"][label]["precision"] == pytest.approx(precision[index], abs=1e-12)
        assert m["per_class"][label]["recall"] == pytest.approx(recall[index], abs=1e-12)
        assert m["per_class"][label]["f1"] == pytest.approx(f1[index], abs=1e-12)
        assert m["per_class"][label]["support"] == support[index]
    for average in ("micro", "macro", "weighted"):
        expected = precision_recall_fscore_support(y_true, y_pred, labels=ids, average=average, zero_division=0)
        for key, value in zip(("precision", "recall", "f1"), expected[:3]):
            assert m[average][key] == pytest.approx(value, abs=1e-12), (average, key)
    assert m["accuracy"] == pytest.approx(float(np.mean(y_true == y_pred)), abs=1e-15)


# ============================================================================= text reports


def _line_fields(report: str, first: str, occurrence: int = 0) -> list[str]:
    matches = [line.split() for line in report.splitlines() if line.split()[:1] == [first]]
    return matches[occurrence]


def test_format_ner_report():
    m = ner_metrics([["B-PER", "O", "I-PER", "O"]], [["B-PER", "B-PER", "I-PER", "O"]])
    report = format_ner_report(m, loss=0.123456, title="dev set")
    assert report.splitlines()[0] == "dev set"
    assert _line_fields(report, "loss") == ["loss", "0.1235"]
    assert _line_fields(report, "accuracy") == ["accuracy", "0.7500", "1.0000"]
    assert _line_fields(report, "precision") == ["precision", "0.5000", "1.0000"]
    assert _line_fields(report, "f1") == ["f1", "0.5000", "1.0000"]
    assert _line_fields(report, "PER") == ["PER", "0.5000", "0.5000", "0.5000", "2"]


def test_format_ner_report_without_loss():
    report = format_ner_report(ner_metrics([["O"]], [["O"]]))
    assert _line_fields(report, "loss") == ["loss", "n/a"]


def test_format_classification_report():
    y_true, y_pred = _hand_examples()
    report = format_classification_report(classification_metrics(y_true, y_pred, LABELS), loss=0.5, title="test")
    assert _line_fields(report, "loss") == ["loss", "0.5000"]
    assert _line_fields(report, "accuracy") == ["accuracy", "0.5833"]
    assert _line_fields(report, "che")[:5] == ["che", "0.7500", "0.6000", "0.6667", "5"]
    assert _line_fields(report, "macro") == ["macro", "avg", "0.4375", "0.5667", "0.4762", "12"]
    assert _line_fields(report, "detection") == ["detection", "0.8750", "0.7778", "0.8235", "9"]
    assert "type accuracy on detected: 0.7143" in report
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("gold \\ pred"))
    table = lines[start:start + 5]
    assert table[0].split()[-4:] == LABELS
    assert [row.split()[1:] for row in table[1:]] == [[str(c) for c in row] for row in HAND_MATRIX]
    assert len({len(row) for row in table}) == 1  # aligned
