"""Sub-token alignment, truncation, sliding windows, stitching and length-bucketed batches."""

from __future__ import annotations

import numpy as np
import pytest

from bert_tf.ner import (batching as ner_batching, entities as ner_entities, evaluation as ner_evaluation,
                         prediction as ner_prediction, rows as ner_rows, windowing)
from bert_tf.training import IGNORE_LABEL


def test_first_sub_token_carries_the_label(tokenizer):
    pieces = ner_rows.encode_documents([["hello", "world", "abc"]], tokenizer)
    assert pieces == [[[4, 5], [6], [7, 8, 9]]]
    rows, cut, docs_cut = ner_rows.training_rows(pieces, [[1, 0, 2]], max_len=16, tokenizer=tokenizer)
    assert rows.token_ids[0].tolist() == [2, 4, 5, 6, 7, 8, 9, 3]
    assert rows.labels[0].tolist() == [-1, 1, -1, 0, 2, -1, -1, -1]
    assert rows.row(0).word_index.tolist() == [-1, 0, -1, 1, 2, -1, -1, -1]
    assert (cut, docs_cut) == (0, 0)


def test_word_without_pieces_becomes_unk(tokenizer):
    pieces = ner_rows.encode_documents([["hello", "\u200b", "zzz"]], tokenizer)
    assert pieces[0][1] == [tokenizer.unk_id]
    assert pieces[0][2] == [tokenizer.unk_id]


def test_long_training_rows_become_windows_that_label_every_word_once(tokenizer):
    pieces = ner_rows.encode_documents([["hello"] * 5, ["world"] * 2], tokenizer)
    rows, cut, shortened = ner_rows.training_rows(pieces, [[1, 2, 3, 4, 5], [6, 7]], max_len=7, tokenizer=tokenizer)
    # budget 5 sub-tokens: two "hello" (2 pieces each) a window, windows one word apart
    assert rows.windows.tolist() == [[0, 2, 0, 2], [1, 3, 2, 3], [2, 4, 3, 4], [3, 5, 4, 5], [5, 7, 5, 7]]
    assert rows.token_ids[0].tolist() == [2, 4, 5, 4, 5, 3]
    labelled = [label for row in rows.labels for label in row.tolist() if label >= 0]
    assert sorted(labelled) == [1, 2, 3, 4, 5, 6, 7]  # each word's label counted exactly once
    assert rows.labels[3].tolist() == [-1, -1, -1, 5, -1, -1]  # ties go to the earlier window
    assert (cut, shortened) == (0, 0)
    assert max(rows.lengths()) <= 7


@pytest.mark.parametrize("lengths,budget", [([1] * 10, 4), ([2, 1, 3, 1, 1, 2, 2, 1], 4), ([5, 1, 1], 3),
                                            ([1] * 3, 10), ([3, 3, 3, 3], 6)])
def test_windows_cover_every_word_within_budget(lengths, budget):
    windows = windowing.plan_windows(lengths, budget)
    covered = set()
    for start, end in windows:
        assert end > start
        assert sum(min(x, budget) for x in lengths[start:end]) <= budget or end - start == 1
        covered.update(range(start, end))
    assert covered == set(range(len(lengths)))
    assert windows[0][0] == 0 and windows[-1][1] == len(lengths)
    assert all(b[0] > a[0] for a, b in zip(windows, windows[1:]))


def test_windows_overlap_by_about_half():
    windows = windowing.plan_windows([1] * 20, 8)
    assert windows[:3] == [(0, 8), (4, 12), (8, 16)]
    assert windows[-1] == (12, 20)


def _fake_outputs(rows: ner_rows.Rows, num_labels: int):
    """Logits that encode (window row, word) so the test can see which window scored each word."""
    outputs = []
    for r in range(len(rows)):
        length = len(rows.token_ids[r])
        logits = np.zeros((length, num_labels), np.float32)
        logits[:, r % num_labels] = 5.0
        outputs.append({"logits": logits[None], "row_id": np.array([r])})
    return outputs


def test_stitching_uses_the_most_central_window(tokenizer):
    docs = [["a"] * 20, ["world"] * 3]
    pieces = ner_rows.encode_documents(docs, tokenizer)
    rows = ner_rows.window_rows(pieces, max_len=10, tokenizer=tokenizer)  # budget 8: windows (0,8) (4,12) (8,16) (12,20)
    assert rows.windows[:, :2].tolist() == [[0, 8], [4, 12], [8, 16], [12, 20], [20, 23]]
    collector = ner_prediction.WindowCollector(rows, 2, [20, 3])
    for out in _fake_outputs(rows, num_labels=5):
        collector(out)
    result = collector.result()
    chosen = result.label_ids[0].tolist()
    # word 0-5 from window 0 (centrality of word 5 is min(5, 2)=2 vs window 1's min(1, 6)=1) ...
    expected = []
    windows = [(0, 8), (4, 12), (8, 16), (12, 20)]
    for w in range(20):
        scores = [(min(w - s, e - 1 - w), -i) for i, (s, e) in enumerate(windows) if s <= w < e]
        expected.append(-max(scores)[1])
    assert chosen == expected
    assert result.label_ids[1].tolist() == [4, 4, 4]  # single window, row 4
    assert [len(x) for x in result.label_ids] == [20, 3]
    assert np.allclose(np.exp(result.log_probs[0]).sum(axis=1), 1.0)


def test_every_word_is_predicted_even_when_a_word_exceeds_the_window(tokenizer):
    docs = [["abc"] * 4 + ["hello"] * 3]
    pieces = ner_rows.encode_documents(docs, tokenizer)
    rows = ner_rows.window_rows(pieces, max_len=4, tokenizer=tokenizer)  # budget 2: "abc" (3 pieces) is cut to 2
    collector = ner_prediction.WindowCollector(rows, 1, [7])
    for out in _fake_outputs(rows, 3):
        collector(out)
    assert len(collector.result().label_ids[0]) == 7
    assert all(len(ids) <= 4 for ids in rows.token_ids)


def test_word_level_loss_is_mean_nll():
    lp = np.log(np.array([[0.5, 0.5], [0.25, 0.75]]))
    preds = ner_prediction.WordPredictions([lp.argmax(1)], [np.exp(lp.max(1))], [lp])
    assert ner_evaluation.word_level_loss(preds, [[0, 1]]) == pytest.approx(-(np.log(0.5) + np.log(0.75)) / 2)


def test_bucketed_batches_hold_every_row_once():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 130, size=257)
    buckets = ner_batching.bucket_lengths(128, True)
    assert buckets == [16, 24, 32, 40, 48, 64, 80, 96, 128]
    assert ner_batching.bucket_lengths(100, True, ["64", "32", "256"]) == [32, 64, 100]
    batches = ner_batching.make_batches(lengths, 16, buckets, shuffle=True, rng=np.random.default_rng(1))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(257))
    for batch in batches:
        padded = {ner_batching.padded_length(int(lengths[i]), buckets) for i in batch}
        assert len(padded) == 1  # one bucket per batch
    again = ner_batching.make_batches(lengths, 16, buckets, shuffle=True, rng=np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    other = ner_batching.make_batches(lengths, 16, buckets, shuffle=True, rng=np.random.default_rng(2))
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other))
    assert ner_batching.bucket_lengths(100, False) == [100]


def test_padded_batch_masks_and_labels(tokenizer):
    pieces = ner_rows.encode_documents([["hello", "world"], ["a"]], tokenizer)
    rows, _, _ = ner_rows.training_rows(pieces, [[1, 0], [2]], 16, tokenizer)
    batch = ner_batching.pad_batch(rows, np.array([0, 1]), [16], tokenizer.pad_id)
    assert batch["token_ids"].shape == (2, 16)
    assert batch["padding_mask"][0].tolist() == [1] * 5 + [0] * 11
    assert batch["labels"][1].tolist() == [-1, 2, -1] + [IGNORE_LABEL] * 13
    assert batch["row_id"].tolist() == [0, 1]


def test_entities_with_confidence():
    entities = ner_entities.entities_of(["Sauli", "Niinistö", "vieraili", "Oulussa"], ["B-PER", "I-PER", "O", "B-GPE"],
                               [0.9, 0.7, 0.99, 0.6])
    assert entities == [
        {"type": "PER", "start_word": 0, "end_word": 2, "text": "Sauli Niinistö", "confidence": 0.8},
        {"type": "GPE", "start_word": 3, "end_word": 4, "text": "Oulussa", "confidence": 0.6},
    ]
