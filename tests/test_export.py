"""Tests for bert_tf.checkpoints' exports (python -m bert_tf.export): Hugging Face and SavedModel exports of fine-tuned bert-tf models."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import pytest
from safetensors.numpy import load_file

from bert_tf import checkpoints, models
from bert_tf.checkpoints import export, hf_task
from bert_tf.errors import InputError
from bert_tf.tokenization import WordPieceTokenizer
from reference_bert import ReferenceBert

INPUTS = {
    "token_ids": np.array([[2, 10, 11, 12, 3, 0, 0], [2, 20, 21, 3, 30, 31, 3]], np.int32),
    "padding_mask": np.array([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]], np.int32),
    "segment_ids": np.array([[0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1]], np.int32),
}
LABELS = {"token": ["O", "B-PER", "I-PER", "B-ORG"], "sequence": ["chemical", "disease", "none"]}


def logits_of(task: models.TaskModel) -> np.ndarray:
    """The task model's logits on INPUTS (inference mode)."""
    return np.asarray(task.model(INPUTS, training=False))


@pytest.fixture(scope="module")
def fine_tuned(tiny_checkpoint, tmp_path_factory) -> Dict[str, Tuple[str, np.ndarray]]:
    """For each head: a saved bert-tf model with every weight perturbed (as after training), and its logits."""
    rng = np.random.default_rng(7)
    saved = {}
    for head, labels in LABELS.items():
        task = checkpoints.build_task_model(checkpoints.find_checkpoint(tiny_checkpoint),
                                       WordPieceTokenizer.from_model_dir(tiny_checkpoint), labels, head, 0.1)
        for variable in task.model.variables:
            variable.assign(variable.numpy() + rng.normal(0.0, 0.05, variable.shape).astype("float32"))
        directory = str(tmp_path_factory.mktemp(f"saved_{head}"))
        checkpoints.save_model(task, directory)
        saved[head] = (directory, logits_of(task))
    return saved


@pytest.fixture(scope="module")
def hf_exports(fine_tuned, tmp_path_factory) -> Dict[str, str]:
    """Each fine-tuned model exported with `python -m bert_tf.export --format=hf` (through main)."""
    exported = {}
    for head, (directory, _) in fine_tuned.items():
        out = str(tmp_path_factory.mktemp("exports") / f"hf_{head}")
        assert export.main([f"--model_dir={directory}", "--format=hf", f"--output_dir={out}"]) == 0
        exported[head] = out
    return exported


@pytest.mark.parametrize("head", ["token", "sequence"])
def test_hf_export_files_config_and_layouts(hf_exports, head):
    out = Path(hf_exports[head])
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"]
    config = json.loads((out / "config.json").read_text())
    labels = LABELS[head]
    assert config["architectures"] == [hf_task.HF_ARCHITECTURES[head]] and config["model_type"] == "bert"
    assert (config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]) == (32, 2, 64)
    assert config["hidden_act"] == "gelu" and config["layer_norm_eps"] == 1e-12
    assert config["id2label"] == {str(i): label for i, label in enumerate(labels)}
    assert config["label2id"] == {label: i for i, label in enumerate(labels)} and config["num_labels"] == len(labels)
    tensors = load_file(str(out / "model.safetensors"))
    assert tensors["bert.encoder.layer.1.intermediate.dense.weight"].shape == (64, 32)  # [out, in]
    assert tensors["bert.encoder.layer.0.attention.self.query.weight"].shape == (32, 32)
    assert tensors["classifier.weight"].shape == (len(labels), 32)
    assert ("bert.pooler.dense.weight" in tensors) == (head == "sequence")  # BertForTokenClassification has none
    assert json.loads((out / "tokenizer_config.json").read_text())["do_lower_case"] is True


@pytest.mark.parametrize("head", ["token", "sequence"])
def test_hf_export_predicts_identically_through_our_loader(fine_tuned, hf_exports, head):
    task = hf_task.load_hf_task_model(hf_exports[head])
    assert (task.head, task.labels, task.activation) == (head, LABELS[head], "gelu_exact")
    assert np.abs(logits_of(task) - fine_tuned[head][1]).max() < 1e-5


def test_load_hf_task_weights_checks_the_label_count(hf_exports, tiny_checkpoint):
    checkpoint = checkpoints.find_checkpoint(hf_exports["token"])
    task = checkpoints.build_task_model(checkpoint, WordPieceTokenizer.from_model_dir(hf_exports["token"]),
                                   ["O", "B-X"], "token", 0.1)
    with pytest.raises(InputError, match=r"classifier.weight has shape \[4, 32\], expected \[2, 32\]"):
        hf_task.load_hf_task_weights(task, hf_exports["token"])


@pytest.mark.parametrize("head", ["token", "sequence"])
def test_hf_export_matches_an_independent_numpy_forward_pass(fine_tuned, hf_exports, head):
    """The exported files, read by tests/reference_bert.py (no bert_tf code), give the model's logits."""
    reference = ReferenceBert.load(hf_exports[head])
    forward = {"token": reference.token_logits, "sequence": reference.sequence_logits}[head]
    logits = forward(INPUTS["token_ids"], INPUTS["padding_mask"], INPUTS["segment_ids"])
    assert reference.labels == LABELS[head]
    mask = INPUTS["padding_mask"].astype(bool) if head == "token" else np.ones(len(logits), bool)
    assert np.abs(logits[mask] - fine_tuned[head][1][mask]).max() < 1e-4


@pytest.mark.parametrize("head", ["token", "sequence"])
def test_hf_export_matches_transformers(fine_tuned, hf_exports, head):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    cls = {"token": transformers.BertForTokenClassification,
           "sequence": transformers.BertForSequenceClassification}[head]
    model = cls.from_pretrained(hf_exports[head])
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=torch.from_numpy(INPUTS["token_ids"]).long(),
                       attention_mask=torch.from_numpy(INPUTS["padding_mask"]).long(),
                       token_type_ids=torch.from_numpy(INPUTS["segment_ids"]).long()).logits.numpy()
    assert np.abs(logits - fine_tuned[head][1]).max() < 1e-5


def test_tanh_models_export_gelu_new(fine_tuned):
    task = checkpoints.load_saved_model(fine_tuned["token"][0])
    assert hf_task.hf_config(dataclasses.replace(task, activation="gelu_tanh"))["hidden_act"] == "gelu_new"
    assert checkpoints.huggingface.HF_ACTIVATIONS["gelu_new"] == "gelu_tanh"  # and it is read back as the tanh form


@pytest.mark.parametrize("head", ["token", "sequence"])
def test_savedmodel_reloads_with_the_same_logits(fine_tuned, tmp_path, head):
    import tensorflow as tf

    directory, expected = fine_tuned[head]
    out = tmp_path / "serving"
    assert export.main([f"--model_dir={directory}", "--format=savedmodel", f"--output_dir={out}"]) == 0
    assert (out / checkpoints.checkpoint.LABELS_FILE).read_text().split("\n")[:-1] == LABELS[head]
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    assert sorted(serve.structured_input_signature[1]) == ["padding_mask", "segment_ids", "token_ids"]
    result = serve(**{name: tf.constant(value) for name, value in INPUTS.items()})
    assert np.abs(result["logits"].numpy() - expected).max() < 1e-5
    np.testing.assert_allclose(result["probabilities"].numpy().sum(-1), 1.0, rtol=1e-5)


def test_export_refuses_a_non_empty_output_dir_and_bad_input(fine_tuned, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    args = [f"--model_dir={fine_tuned['token'][0]}", "--format=hf", f"--output_dir={out}"]
    assert export.main(args) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "keep.txt").exists()
    assert export.main(args + ["--overwrite"]) == 0
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").exists()
    assert export.main([f"--model_dir={tmp_path / 'none'}", "--format=hf", f"--output_dir={tmp_path / 'o'}"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def published_tf1_names(layers: int, hidden: int, intermediate: int, vocab: int, positions: int, rows: int) -> dict:
    """Name -> shape of every variable of a classifier fine-tuned by the published run_ner_consensus.py (Google's
    modeling.py names; optimizer slots left out), written out by hand."""
    names = {"bert/embeddings/word_embeddings": [vocab, hidden], "bert/embeddings/token_type_embeddings": [2, hidden],
             "bert/embeddings/position_embeddings": [positions, hidden], "bert/embeddings/LayerNorm/beta": [hidden],
             "bert/embeddings/LayerNorm/gamma": [hidden], "bert/pooler/dense/kernel": [hidden, hidden],
             "bert/pooler/dense/bias": [hidden], "output_weights": [rows, hidden], "output_bias": [rows],
             "global_step": []}
    for i in range(layers):
        p = f"bert/encoder/layer_{i}/"
        for dense, shape in [("attention/self/query", [hidden, hidden]), ("attention/self/key", [hidden, hidden]),
                             ("attention/self/value", [hidden, hidden]), ("attention/output/dense", [hidden, hidden]),
                             ("intermediate/dense", [hidden, intermediate]), ("output/dense", [intermediate, hidden])]:
            names[p + dense + "/kernel"], names[p + dense + "/bias"] = shape, shape[1:]
        for norm in ("attention/output/LayerNorm", "output/LayerNorm"):
            names[p + norm + "/beta"], names[p + norm + "/gamma"] = [hidden], [hidden]
    return names


def test_tf1_export_has_the_published_names_and_reads_back_to_the_same_logits(tmp_path):
    import tensorflow as tf

    from checkpoint_factory import make_random_hf_checkpoint
    from conftest import TINY_WORDS

    from bert_tf.classifier import published_model as classifier

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + TINY_WORDS + [f"w{i}" for i in range(20)]
    hf = make_random_hf_checkpoint(str(tmp_path / "hf"), vocab, hidden_act="gelu_new", seed=4)
    labels = ["out", "che", "dis"]  # not sorted: the published code sorts them, so the rows are reordered
    task = checkpoints.build_task_model(checkpoints.find_checkpoint(hf), WordPieceTokenizer.from_model_dir(hf), labels,
                                   "sequence", 0.1)
    rng = np.random.default_rng(5)
    for variable in task.model.variables:
        variable.assign(variable.numpy() + rng.normal(0.0, 0.05, variable.shape).astype("float32"))
    task.meta["global_step"] = 321
    checkpoints.save_model(task, str(tmp_path / "saved"))
    expected = logits_of(task)
    out = tmp_path / "tf1"
    assert export.main([f"--model_dir={tmp_path / 'saved'}", "--format=tf1", f"--output_dir={out}"]) == 0
    assert sorted(os.listdir(out)) == ["bert_config.json", "checkpoint", "labels.txt", "model.ckpt-321.data-00000-of-00001",
                                       "model.ckpt-321.index", "vocab.txt"]
    shapes = tf.train.load_checkpoint(str(out / "model.ckpt-321")).get_variable_to_shape_map()
    assert shapes == published_tf1_names(2, 32, 64, len(vocab), 128, len(labels) + 1)
    assert (out / "labels.txt").read_text().splitlines() == ["che", "dis", "out"]
    assert json.loads((out / "bert_config.json").read_text())["hidden_act"] == "gelu"
    checkpoint = checkpoints.tf1.checkpoint_from_trio(str(out / "bert_config.json"), str(out / "vocab.txt"), str(out))
    tokenizer = checkpoints.tf1.trio_tokenizer(str(out / "vocab.txt"), True)
    published = classifier.load_published_classifier(checkpoint, tokenizer, ["che", "dis", "out"], str(out))
    read_back = logits_of(published)
    assert published.meta["extra_logits"] == 1 and read_back.shape == (2, 4)
    np.testing.assert_allclose(read_back[:, :3], expected[:, [1, 2, 0]], rtol=1e-5, atol=1e-5)
    probabilities = np.exp(read_back - read_back.max(axis=1, keepdims=True))
    assert np.all(probabilities[:, 3] / probabilities.sum(axis=1) < 1e-30)  # the unused row changes nothing


def test_tf1_export_refuses_a_head_the_published_code_does_not_have(fine_tuned, tmp_path, capsys):
    directory, _ = fine_tuned["token"]
    assert export.main([f"--model_dir={directory}", "--format=tf1", f"--output_dir={tmp_path / 'x'}"]) == 2
    assert "--format=tf1 needs a sequence classifier that reads the pooler" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_python_m_bert_tf_export_is_the_same_command_line(tmp_path: Path) -> None:
    """`python -m bert_tf.export` (what the docs show) runs bert_tf.checkpoints.export's main: bad input is one
    error line and exit status 2."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "bert_tf.export", f"--model_dir={tmp_path / 'none'}", "--format=hf",
                           f"--output_dir={tmp_path / 'o'}"], cwd=root, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 2, done.stderr[-2000:]
    assert "no saved model here" in done.stderr
