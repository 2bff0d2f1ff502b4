"""--class_weights: balanced weights, the weights file, and the weighted-mean loss in the Trainer."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import checkpoints, class_weights
from bert_tf.errors import InputError
from bert_tf.tokenization import WordPieceTokenizer
from bert_tf.training import Trainer, count_labelled, masked_sparse_ce_sum

LABELS = ["che", "dis", "out"]


def test_balanced_weights_by_hand() -> None:
    # n = 4 labelled (the -1 is ignored), k = 2 labels seen: che 4 / (2 * 3), dis 4 / (2 * 1); out unseen: 1.
    weights = class_weights.balanced_weights(np.array([0, 0, 0, 1, -1]), 3)
    np.testing.assert_allclose(weights, [4 / 6, 2.0, 1.0])
    np.testing.assert_allclose(class_weights.balanced_weights(np.array([0, 1, 2, 0, 1, 2]), 3), [1.0, 1.0, 1.0])
    assert class_weights.resolve_class_weights("none", LABELS, np.array([0])) is None
    assert class_weights.describe_class_weights("balanced", weights, LABELS) == "balanced: che 0.667, dis 2, out 1"


def test_weights_file_and_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "weights.tsv"
    path.write_text("dis\t2.5\n\nout\t0.5\n")
    np.testing.assert_allclose(class_weights.resolve_class_weights(str(path), LABELS, np.zeros(0)), [1.0, 2.5, 0.5])
    cases = {"dis 2\n": "expected label<TAB>weight", "xyz\t1\n": "unknown label 'xyz'", "dis\tmuch\n": "not a number",
             "dis\t-1\n": "positive finite", "dis\tnan\n": "positive finite", "dis\t1\ndis\t2\n": "given again"}
    for text, message in cases.items():
        path.write_text(text)
        with pytest.raises(InputError, match=message) as caught:
            class_weights.read_weights_file(str(path), LABELS)
        assert caught.value.path == str(path) and caught.value.line == len(text.splitlines())
    with pytest.raises(InputError, match="no such class weights file"):
        class_weights.resolve_class_weights(str(tmp_path / "missing"), LABELS, np.zeros(0))


def test_weighted_loss_is_the_weighted_mean() -> None:
    logits = tf.constant([[math.log(3.0), 0.0], [0.0, 0.0], [5.0, 1.0]])
    labels = tf.constant([0, 1, -1])
    ce = np.array([-math.log(0.75), math.log(2.0)])
    plain = float(masked_sparse_ce_sum(labels, logits) / count_labelled(labels))
    assert plain == pytest.approx(ce.mean(), rel=1e-6)
    same = tf.constant([3.0, 3.0])  # equal weights: the unweighted mean
    assert float(masked_sparse_ce_sum(labels, logits, same) / count_labelled(labels, same)) == pytest.approx(plain)
    weights = tf.constant([1.0, 4.0])
    weighted = float(masked_sparse_ce_sum(labels, logits, weights) / count_labelled(labels, weights))
    assert weighted == pytest.approx((ce[0] + 4 * ce[1]) / 5, rel=1e-6)
    assert float(count_labelled(labels, weights)) == 5.0


def test_trainer_applies_class_weights_in_the_loss(tiny_checkpoint) -> None:
    checkpoint = checkpoints.find_checkpoint(tiny_checkpoint)
    tokenizer = WordPieceTokenizer.from_model_dir(tiny_checkpoint)
    rng = np.random.default_rng(0)
    batch = {"token_ids": rng.integers(5, 20, (6, 8)).astype(np.int32), "padding_mask": np.ones((6, 8), np.int32),
             "segment_ids": np.zeros((6, 8), np.int32), "labels": np.array([0, 0, 0, 0, 1, 2], np.int32)}
    task = checkpoints.build_task_model(checkpoint, tokenizer, LABELS, "sequence", 0.0, encoder_dropout=0.0)
    task.model.get_layer("classifier").bias.assign([2.0, 0.0, -2.0])  # the labels' losses differ a lot
    logits = np.asarray(task.model({k: v for k, v in batch.items() if k != "labels"}, training=False), np.float64)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    ce = -log_p[np.arange(6), batch["labels"]]
    weights = np.array([0.5, 3.0, 1.5])
    per_example = weights[batch["labels"]]
    dataset = tf.data.Dataset.from_tensors(batch)
    losses = {}
    for name, w in (("plain", None), ("weighted", weights)):
        trainer = Trainer(task.model, tf.keras.optimizers.SGD(0.0), tf.distribute.get_strategy(), class_weights=w,
                          verbose=False)
        step = trainer._step_function("train", dataset.element_spec)
        losses[name] = float(step(next(iter(dataset)))["loss"])
    assert losses["plain"] == pytest.approx(ce.mean(), rel=1e-4)
    assert losses["weighted"] == pytest.approx((ce * per_example).sum() / per_example.sum(), rel=1e-4)
    assert losses["weighted"] > losses["plain"] + 0.3  # the rare, badly predicted labels weigh more


def test_run_ner_trains_with_balanced_weights(tmp_path: Path, tiny_checkpoint: str, capsys) -> None:
    """run_ner.py's runner in this process (bert_tf.ner.run.run: what the script calls with its flags)."""
    from conftest import quick_ner_config
    from test_run_ner import write_learnable_set

    from bert_tf.ner import run

    data = write_learnable_set(tmp_path / "data", sizes=(("train", 40), ("val", 8), ("test", 8)))
    run.run(quick_ner_config(bert_model=tiny_checkpoint, data_path=str(data), save_model_path=str(tmp_path / "out"),
                             epochs=1, max_len=32, batch_size=8, class_weights="balanced", verbose=False))
    assert (tmp_path / "out" / "test_results.json").is_file()  # trained, tested and reported
    table_row = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("class weights"))
    weights = dict(re.findall(r"([BIO][-\w]*) ([0-9.e+-]+)", table_row.split("balanced: ", 1)[1]))
    assert float(weights["O"]) < 1 < max(float(w) for w in weights.values())  # O is the common tag
