"""Models saved by run_ner.py and run_classifier.py are Hugging Face task folders (checked by an independent numpy
forward pass, tests/reference_bert.py), and both scripts predict with a Hugging Face token / sequence
classification folder written by another tool, such as the published PyTorch NER script's save_pretrained."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from bert_tf import checkpoints
from bert_tf.checkpoints import hf_task
from bert_tf.classifier import run as classifier_run
from bert_tf.classifier.config import ClassifierConfig
from bert_tf.ner import run as ner_run
from bert_tf.tokenization import WordPieceTokenizer
from reference_bert import ReferenceBert

TOKEN_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
SEQUENCE_LABELS = ["che", "dis", "out"]
SENTENCES = [["alice", "visited", "paris", "and", "rome"], ["bob", "met", "carol", "in", "oslo", "."],
             ["hello", "dave"]]


def _trained_like(tiny_checkpoint: str, labels, head: str, seed: int):
    """A task model on the tiny checkpoint with every weight perturbed, as after training."""
    task = checkpoints.build_task_model(checkpoints.find_checkpoint(tiny_checkpoint),
                                        WordPieceTokenizer.from_model_dir(tiny_checkpoint), labels, head, 0.1)
    rng = np.random.default_rng(seed)
    for variable in task.model.variables:
        variable.assign(variable.numpy() + rng.normal(0.0, 0.3, variable.shape).astype("float32"))
    return task


@pytest.fixture(scope="module")
def folders(tiny_checkpoint, tmp_path_factory):
    """For each head: the model saved by bert-tf, and the same weights as a plain transformers folder (no
    bert_tf_model.json: what save_pretrained writes), plus the model's own logits on a batch."""
    made = {}
    for head, labels in (("token", TOKEN_LABELS), ("sequence", SEQUENCE_LABELS)):
        task = _trained_like(tiny_checkpoint, labels, head, seed=3)
        ours, foreign = tmp_path_factory.mktemp(f"ours_{head}"), tmp_path_factory.mktemp("foreign") / head
        checkpoints.save_model(task, str(ours))
        hf_task.export_hf(task, str(foreign))
        made[head] = (task, ours, foreign)
    return made


def test_a_saved_model_is_a_transformers_task_folder(folders):
    for head, (task, ours, _) in folders.items():
        config = json.loads((ours / "config.json").read_text())
        labels = TOKEN_LABELS if head == "token" else SEQUENCE_LABELS
        assert config["architectures"] == [hf_task.HF_ARCHITECTURES[head]]
        assert config["id2label"] == {str(i): label for i, label in enumerate(labels)}
        assert config["label2id"] == {label: i for i, label in enumerate(labels)}
        assert {"model.safetensors", "vocab.txt", "tokenizer_config.json", "bert_tf_model.json"} <= set(
            os.listdir(ours))
        assert not (ours / "model.weights.h5").exists()
        token_ids = np.array([[2, 10, 11, 12, 3, 0], [2, 13, 14, 3, 15, 3]], np.int32)
        mask = (token_ids != 0).astype(np.int32)
        segments = np.array([[0] * 6, [0, 0, 0, 0, 1, 1]], np.int32)
        want = np.asarray(task.model({"token_ids": token_ids, "padding_mask": mask, "segment_ids": segments},
                                     training=False))
        reference = ReferenceBert.load(str(ours))
        forward = reference.token_logits if head == "token" else reference.sequence_logits
        got = forward(token_ids, mask, segments)
        keep = mask.astype(bool) if head == "token" else slice(None)
        assert np.abs(got[keep] - want[keep]).max() < 1e-4


def test_ner_predicts_with_a_foreign_transformers_folder_as_with_its_own(folders):
    _, ours, foreign = folders["token"]
    assert not (foreign / "bert_tf_model.json").exists()
    got = ner_run.predict_sentences(str(foreign), SENTENCES)
    assert got == ner_run.predict_sentences(str(ours), SENTENCES)
    assert [len(tags) for tags in got] == [len(s) for s in SENTENCES]
    assert set(t for tags in got for t in tags) <= set(TOKEN_LABELS) and len(set(t for tags in got for t in tags)) > 1


def test_run_ner_do_predict_reads_a_foreign_folder(folders, tmp_path):
    from bert_tf.ner.config import NerConfig

    _, _, foreign = folders["token"]
    words = tmp_path / "words.conll"  # a word a line, a blank line between sentences
    words.write_text("\n\n".join("\n".join(sentence) for sentence in SENTENCES) + "\n")
    result = ner_run.run(NerConfig(save_model_path=str(foreign), do_predict=True, do_train=False,
                                   predict_file=str(words), predict_output=str(tmp_path / "out" / "tags.csv"),
                                   verbose=False))
    assert result.tags == ner_run.predict_sentences(str(foreign), SENTENCES)
    assert not (foreign / "predictions.csv").exists()


def test_classifier_predicts_with_a_foreign_sequence_classification_folder(folders, tmp_path):
    _, ours, foreign = folders["sequence"]
    rows = [f"d{i}\ta{i}\tche\t{left}\t{mention}\t{right}" for i, (left, mention, right) in enumerate(
        [("alice visited", "paris", "and rome"), ("bob met", "carol", "in oslo ."), ("hello", "dave", "x y z")])]
    data = tmp_path / "data"
    data.mkdir()
    (data / "test.tsv").write_text("\n".join(rows) + "\n")
    probabilities = {}
    for name, model in (("ours", ours), ("foreign", foreign)):
        out = tmp_path / name
        classifier_run.predict(ClassifierConfig(bert_model=str(model), data_dir=str(data), output_dir=str(out),
                                                do_predict=True, max_seq_length=16, verbose=False,
                                                tensorboard=False))
        probabilities[name] = pd.read_csv(out / "output_with_probabilities.tsv", sep="\t", quoting=3)
    assert list(probabilities["foreign"].columns) == list(probabilities["ours"].columns)
    for label in SEQUENCE_LABELS:
        assert label in " ".join(probabilities["foreign"].columns)
    pd.testing.assert_frame_equal(probabilities["foreign"], probabilities["ours"])


def test_an_unsorted_labels_file_is_refused_unless_kept(tmp_path):
    from bert_tf.classifier import model_loading
    from bert_tf.errors import InputError

    labels = tmp_path / "labels.txt"
    labels.write_text("out\nche\ndis\n")
    with pytest.raises(InputError) as raised:
        model_loading.given_labels(ClassifierConfig(labels_file=str(labels)))
    assert str(raised.value) == (f"{labels}: labels not in sorted order (out, che, dis): the published code sorts "
                                 "them and the probability columns of test_results.tsv follow that order; sort the "
                                 "file, or give --keep_labels_order to use this order")
    kept = model_loading.given_labels(ClassifierConfig(labels_file=str(labels), keep_labels_order=True))
    assert kept == (["out", "che", "dis"], str(labels))
