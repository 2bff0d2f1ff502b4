"""Windows over documents: every word a target once, neighbours as context out of the loss, votes, files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bert_tf.ner import evaluation as ner_evaluation, prediction as ner_prediction, rows as ner_rows

from bert_tf.ner import windowing
from bert_tf.ner import data as ner_data
from bert_tf.errors import InputError


@pytest.mark.parametrize("context", [False, True])
def test_windows_cover_every_word_once_within_budget_and_document(context):
    rng = np.random.default_rng(0)
    for _ in range(30):
        examples = int(rng.integers(1, 12))
        example_lengths = rng.integers(1, 15, examples)
        word_lengths = rng.integers(1, 5, int(example_lengths.sum()))
        budget = int(rng.integers(4, 20))
        capped = np.minimum(word_lengths, budget)
        starts = np.concatenate([[0], np.cumsum(example_lengths)])
        doc_ids = [str(x) for x in np.sort(rng.integers(0, 3, examples))]
        ranges = windowing.document_ranges(doc_ids, "document")
        windows = windowing.plan_document_windows(capped, starts, ranges, budget, context)
        targeted = np.zeros(len(capped), int)
        for start, end, first, last in windows:
            assert start <= first <= last <= end
            assert capped[start:end].sum() <= budget or end - start == 1
            doc = [d for d, (a, b) in enumerate(ranges) if starts[a] <= start < starts[b]][0]
            assert end <= starts[ranges[doc][1]]  # never crosses into the next document
            targeted[first:last] += 1
            if not context:  # without context a window stays inside its example
                example = np.searchsorted(starts, start, side="right") - 1
                assert end <= starts[example + 1]
        assert targeted.tolist() == [1] * len(capped)


def test_context_window_holds_neighbours_and_masks_them_out_of_the_loss(tokenizer):
    sentences = [["world"] * 3, ["hello"], ["abc"], ["world"] * 6, ["big"]]  # one document, then another
    labels = [[1, 1, 1], [2], [3], [4] * 6, [5]]
    pieces = ner_rows.encode_documents(sentences, tokenizer)
    rows, cut, _ = ner_rows.training_rows(pieces, labels, 12, tokenizer, ["d1", "d1", "d1", "d1", "d2"], "document")
    assert cut == 0
    windows = rows.windows.tolist()
    # sentence 1 ("hello", word 3): 2 sub-tokens, 8 to fill: 4 for the left (3 words fit), the other 5 right
    assert windows[1] == [0, 7, 3, 4]
    row = rows.row(1)
    assert row.token_ids.tolist() == [2, 6, 6, 6, 4, 5, 7, 8, 9, 6, 6, 3]
    assert row.labels.tolist() == [-1, -1, -1, -1, 2, -1, -1, -1, -1, -1, -1, -1]  # only its own word
    assert row.word_index.tolist() == [-1, 0, 1, 2, 3, -1, 4, -1, -1, 5, 6, -1]
    # the last sentence of d1 has no right context: the room goes left; d2's word is never added
    assert windows[3] == [4, 11, 5, 11] and windows[4] == [11, 12, 11, 12]
    assert all(len(rows.row(i).token_ids) <= 12 for i in range(len(rows)))
    alone, _, _ = ner_rows.training_rows(pieces, labels, 12, tokenizer, ["d1", "d1", "d1", "d1", "d2"], "none")
    assert alone.windows.tolist()[1] == [3, 4, 3, 4]


def test_context_fills_both_sides_about_equally():
    prefix = np.arange(101)  # 100 one-piece words
    start, end = windowing.context_window(prefix, 50, 54, 0, 100, 24)
    assert (start, end) == (40, 64)
    assert windowing.context_window(prefix, 2, 4, 0, 100, 10) == (0, 10)  # left runs out: the rest goes right
    assert windowing.context_window(prefix, 97, 99, 90, 100, 10) == (90, 100)


def _outputs_from_table(rows: ner_rows.Rows, table):
    """Logits making window r predict table[r] for every word (a dict word -> label overrides)."""
    outputs = []
    for r in range(len(rows)):
        arrays = rows.row(r)
        logits = np.zeros((len(arrays.token_ids), 3), np.float32)
        for position, word in enumerate(arrays.word_index):
            if word >= 0:
                logits[position, table[r].get(int(word), table[r].get("*", 0))] = 4.0
        outputs.append({"logits": logits[None], "row_id": np.array([r])})
    return outputs


def _collect(rows: ner_rows.Rows, table, sentences: int) -> ner_prediction.WindowCollector:
    collector = ner_prediction.WindowCollector(rows, sentences, [2] * sentences)
    for out in _outputs_from_table(rows, table):
        collector(out)
    return collector


def test_central_and_majority_votes(tokenizer):
    sentences = [["world"] * 2 for _ in range(9)]
    pieces = ner_rows.encode_documents(sentences, tokenizer)
    rows = ner_rows.window_rows(pieces, 8, tokenizer, doc_ids=["d"] * 9, context="document")  # 6 words a window
    containing = [r for r in range(len(rows)) if rows.windows[r][0] <= 4 < rows.windows[r][1]]
    assert containing == [0, 1, 2, 3]  # word 4 (sentence 2) is seen by 4 windows, most central in its own (2)
    table = [{"*": 0} for _ in range(len(rows))]
    table[2] = {4: 1, "*": 0}
    for r in (0, 1, 3):
        table[r] = {4: 2, "*": 0}
    assert _collect(rows, table, 9).result("central").label_ids[2].tolist() == [1, 0]
    majority = _collect(rows, table, 9).result("majority")
    assert majority.label_ids[2].tolist() == [2, 0]
    assert np.allclose(np.exp(majority.log_probs[2]).sum(axis=1), 1.0)
    for r, label in ((0, 1), (3, 1), (1, 2), (2, 2)):  # a 2-2 tie: label 2 has the most central window
        table[r] = {4: label, "*": 0}
    assert _collect(rows, table, 9).result("majority").label_ids[2].tolist() == [2, 0]


def test_documents_in_csv_and_conll(tmp_path: Path):
    csv_path = tmp_path / "train.csv"
    csv_path.write_text("tokens,tags,doc_id\n\"['a']\",\"['O']\",d1\n\"['b']\",\"['O']\",d1\n"
                        "\"['c']\",\"['B-X']\",d2\n\"['d']\",\"['O']\",\n", encoding="utf-8")
    examples = ner_data.read_ner_csv(str(csv_path))
    assert [e.doc_id for e in examples] == ["d1", "d1", "d2", None]
    assert ner_data.document_groups(examples) == [[0, 1], [2], [3]]
    out = tmp_path / "copy.csv"
    ner_data.write_ner_csv(str(out), examples)
    assert [e.doc_id for e in ner_data.read_ner_csv(str(out))] == ["d1", "d1", "d2", None]
    csv_path.write_text("tokens,tags,doc_id\n\"['a']\",\"['O']\",d1\n\"['b']\",\"['O']\",d2\n"
                        "\"['c']\",\"['O']\",d1\n", encoding="utf-8")
    with pytest.raises(InputError) as error:
        ner_data.read_ner_csv(str(csv_path))
    assert str(error.value).startswith(f"{csv_path}:4:") and "started at line 2" in str(error.value)
    conll = tmp_path / "a.conll"
    conll.write_text("-DOCSTART-\tO\n\na\tO\n\nb\tB-X\n\n-DOCSTART-\tO\n\nc\tO\n", encoding="utf-8")
    assert [e.doc_id for e in ner_data.read_conll(str(conll))] == ["doc1", "doc1", "doc2"]
    conll.write_text("a\tO\n\nb\tB-X\n", encoding="utf-8")
    assert [e.doc_id for e in ner_data.read_conll(str(conll))] == [None, None]


def test_split_keeps_documents_whole():
    examples = [ner_data.NerExample((str(i),), ("O",), i + 1, "", f"d{i // 3}") for i in range(30)]
    train, val, test = ner_data.split_train_val_test(examples, 0.1, 0)
    assert (len(train), len(val), len(test)) == (24, 3, 3)
    for part in (train, val, test):
        for doc in {e.doc_id for e in part}:
            assert [e.tokens for e in part if e.doc_id == doc] == [(str(i),) for i in range(int(doc[1:]) * 3,
                                                                                             int(doc[1:]) * 3 + 3)]


def test_labels_file_order_and_errors(tmp_path: Path):
    path = tmp_path / "labels.txt"
    path.write_text("O\nB-PER\nI-PER\n\nB-DATE\n", encoding="utf-8")
    assert ner_data.read_labels_file(str(path)) == ["O", "B-PER", "I-PER", "B-DATE"]
    for text, line, fragment in (("B-PER\nO\n", 1, "first tag must be 'O'"), ("O\nB-X\nB-X\n", 3, "repeats line 2"),
                                 ("O\nPERSON\n", 2, "invalid tag"), ("\n\n", None, "empty")):
        path.write_text(text, encoding="utf-8")
        with pytest.raises(InputError) as error:
            ner_data.read_labels_file(str(path))
        assert fragment in str(error.value)
        assert str(error.value).startswith(f"{path}:{line}:" if line else f"{path}:")


def test_bc5cdr_and_turku_documents(shared_data):
    bc5 = ner_data.read_conll(str(shared_data / "bc5cdr_chem" / "devel.tsv"))
    turku = ner_data.read_conll(str(shared_data / "turku_ner" / "dev.tsv"))
    assert len(ner_data.document_groups(bc5)) == 500 and bc5[0].doc_id == "6794356"
    assert len(ner_data.document_groups(turku)) == 76 and turku[-1].doc_id == "doc76"


def test_document_context_without_document_ids_says_what_runs():
    assert windowing.resolve_context("document", True) == ("document", "document")
    assert windowing.resolve_context("auto", True, saved="document") == ("document", "document")
    assert windowing.resolve_context("auto", True) == ("none", "none")
    for requested, saved in (("document", "none"), ("auto", "document")):
        context, described = windowing.resolve_context(requested, False, saved)
        assert context == "none" and described.startswith("none (document context asked for, but the data has no")


def test_one_default_vote_and_decoding_for_the_library_and_the_command_line():
    import inspect

    from bert_tf.ner import decoding

    from bert_tf.ner.config import NerConfig

    assert NerConfig().vote == windowing.DEFAULT_VOTE and NerConfig().decoding == decoding.DEFAULT_DECODE
    evaluate = inspect.signature(ner_evaluation.evaluate).parameters
    assert evaluate["vote"].default == windowing.DEFAULT_VOTE == "majority"
    assert evaluate["decode_mode"].default == decoding.DEFAULT_DECODE == "viterbi"
    assert inspect.signature(ner_prediction.predict_words).parameters["vote"].default == windowing.DEFAULT_VOTE
