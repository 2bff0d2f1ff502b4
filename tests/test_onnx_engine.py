"""The ONNX Runtime inference engine (bert_tf.onnx_engine): the export computes the TensorFlow model's
probabilities (float32), int8 agrees with them, and --inference_engine in run_classifier.py and run_ner.py writes
the same files as TensorFlow; a corpus folder is never mixed between engines."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Dict

import numpy as np
import pytest

from conftest import ROOT, expect_error

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from bert_tf import checkpoints, onnx_engine  # noqa: E402
from bert_tf.checkpoints import export  # noqa: E402
from bert_tf.errors import InputError  # noqa: E402
from bert_tf.metrics import softmax  # noqa: E402
from bert_tf.tokenization import WordPieceTokenizer  # noqa: E402

LABELS = {"token": ["O", "B-PER", "I-PER", "B-ORG"], "sequence": ["che", "dis", "ggp", "org", "out"]}
FLOAT32_TOLERANCE = 1e-4  # largest allowed probability difference, ONNX float32 vs TensorFlow
INT8_AGREEMENT = 0.95  # least share of argmax labels int8 keeps
INT8_MAX_CHANGE = 0.05  # largest allowed probability change of int8
DEMO = ROOT / "data" / "demo" / "consensus"


def random_features(rows: int, length: int, vocab: int, seed: int) -> Dict[str, np.ndarray]:
    """Random token ids with ragged right padding and two segments."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(length // 3, length + 1, rows)
    mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int32)
    return {"token_ids": (rng.integers(5, vocab, (rows, length)) * mask).astype(np.int32), "padding_mask": mask,
            "segment_ids": ((np.arange(length)[None, :] >= lengths[:, None] // 2) * mask).astype(np.int32)}


def make_task(checkpoint: str, head: str, pooling: str = "pooler", seed: int = 7):
    """A tiny task model with every weight perturbed (as after fine-tuning)."""
    rng = np.random.default_rng(seed)
    task = checkpoints.build_task_model(checkpoints.find_checkpoint(checkpoint), WordPieceTokenizer.from_model_dir(
        checkpoint), LABELS[head], head, 0.1, pooling=pooling)
    for variable in task.model.variables:
        variable.assign(variable.numpy() + rng.normal(0.0, 0.1, variable.shape).astype("float32"))
    return task


def probabilities(task, predictor, features) -> tuple:
    """(TensorFlow, engine) softmax probabilities over the real positions."""
    tf_probs, engine_probs = softmax(np.asarray(task.model(features, training=False))), softmax(predictor.run(features))
    if task.head == "token":
        keep = features["padding_mask"].astype(bool)
        return tf_probs[keep], engine_probs[keep]
    return tf_probs, engine_probs


@pytest.fixture(scope="module")
def tasks(tiny_checkpoint):
    """The token classifier and the sequence classifiers of every pooling."""
    return {name: make_task(tiny_checkpoint, head, pooling) for name, head, pooling in (
        ("token", "token", "pooler"), ("pooler", "sequence", "pooler"), ("cls", "sequence", "cls"),
        ("mention", "sequence", "mention"))}


@pytest.mark.parametrize("name", ["token", "pooler", "cls", "mention"])
def test_float32_export_computes_the_tensorflow_probabilities(tasks, name, tmp_path):
    task = tasks[name]
    predictor = onnx_engine.predictor_for(task, "float32", str(tmp_path), verbose=False)
    features = random_features(16, 40, task.backbone.vocabulary_size, seed=3)
    expected, got = probabilities(task, predictor, features)
    assert np.max(np.abs(expected - got)) <= FLOAT32_TOLERANCE
    assert len(list(tmp_path.glob("model-*-float32-v*.onnx"))) == 1  # cached by weights and precision
    again = onnx_engine.predictor_for(task, "float32", str(tmp_path), verbose=False)
    np.testing.assert_array_equal(again.run(features), predictor.run(features))


@pytest.mark.parametrize("name", ["token", "pooler"])
def test_int8_is_quantized_and_agrees_with_float32(tasks, name, tmp_path):
    task = tasks[name]
    predictor = onnx_engine.predictor_for(task, "int8", str(tmp_path), verbose=False)
    graph = onnx.load(str(next(tmp_path.glob("model-*-int8-v*.onnx")))).graph
    ops = {node.op_type for node in graph.node}
    assert {"QAttention", "MatMulInteger"} <= ops and "Attention" not in ops, ops  # really integer arithmetic
    features = random_features(64, 40, task.backbone.vocabulary_size, seed=4)
    expected, got = probabilities(task, predictor, features)
    agreement = float(np.mean(expected.argmax(-1) == got.argmax(-1)))
    change = float(np.max(np.abs(expected - got)))
    assert agreement >= INT8_AGREEMENT and change <= INT8_MAX_CHANGE, (agreement, change)
    assert change > 1e-6  # not the float32 arithmetic under another name


def test_settings_that_cannot_run_are_refused(tasks, tmp_path):
    from bert_tf.classifier.config import ClassifierConfig, check

    if "CUDAExecutionProvider" not in __import__("onnxruntime").get_available_providers():
        with pytest.raises(InputError, match="float16 runs on a CUDA GPU"):
            onnx_engine.predictor_for(tasks["pooler"], "float16", str(tmp_path))
    assert not list(tmp_path.iterdir())  # nothing exported
    base = ClassifierConfig(output_dir=str(tmp_path), do_predict=True)
    for changes, message in (({"inference_precision": "int8"}, "--inference_precision=int8 needs --inference_engine"),
                             ({"inference_engine": "onnxruntime", "horovod": True}, "predicts in one process"),
                             ({"inference_engine": "onnxruntime", "use_amp": True}, "drop --use_amp")):
        with pytest.raises(InputError, match=message):
            check(dataclasses.replace(base, **changes))


def test_export_command_writes_onnx(tasks, tmp_path):
    task = tasks["pooler"]
    saved = tmp_path / "saved"
    checkpoints.save_model(task, str(saved))
    out = tmp_path / "onnx"
    assert export.main([f"--model_dir={saved}", "--format=onnx", f"--output_dir={out}"]) == 0
    assert (out / "labels.txt").read_text().split() == LABELS["sequence"]
    import onnxruntime

    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    features = random_features(4, 24, task.backbone.vocabulary_size, seed=5)
    np.testing.assert_allclose(session.run(["logits"], features)[0], task.model(features, training=False), atol=1e-4)
    with pytest.raises(InputError, match="--precision=int8 applies to --format=onnx only"):
        export.export(str(saved), "hf", str(tmp_path / "hf"), precision="int8")


def _write_corpus(folder: Path, shards: int = 2, rows: int = 16) -> Path:
    """A corpus of demo test rows, `rows` a shard."""
    lines = (DEMO / "test.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    folder.mkdir(parents=True)
    for i in range(shards):
        (folder / f"{i:03d}.tsv").write_text("".join(lines[i * rows:(i + 1) * rows]), encoding="utf-8")
    return folder


def test_classifier_corpus_prediction_with_onnxruntime(tasks, tmp_path):
    """Same files, rows and labels as TensorFlow (probabilities within the tolerance); the shard records name the
    engine; a rerun with another engine into the folder is refused, leaving it as it was."""
    from bert_tf.classifier import run
    from bert_tf.classifier.config import ClassifierConfig

    saved = tmp_path / "model"
    checkpoints.save_model(tasks["mention"], str(saved), {"max_seq_length": 32, "replace_span": None})
    corpus = _write_corpus(tmp_path / "contexts")

    def predict(engine: str, name: str, precision: str = "float32"):
        return run.predict(ClassifierConfig(bert_model=str(saved), output_dir=str(tmp_path / f"run_{name}"),
                                            predict_file=str(corpus), predict_output_dir=str(tmp_path / name),
                                            max_seq_length=32, predict_batch_size=8, verbose=False,
                                            inference_engine=engine, inference_precision=precision))

    predict("tensorflow", "tf")
    predict("onnxruntime", "ort")
    tf_files = sorted(p.name for p in (tmp_path / "tf").iterdir())
    assert sorted(p.name for p in (tmp_path / "ort").iterdir()) == tf_files
    for shard in ("000", "001"):
        np.testing.assert_allclose(np.loadtxt(tmp_path / "ort" / f"test_results_{shard}.tsv"),
                                   np.loadtxt(tmp_path / "tf" / f"test_results_{shard}.tsv"), atol=FLOAT32_TOLERANCE)
        tf_rows = (tmp_path / "tf" / f"output_with_probabilities_{shard}.tsv").read_text().splitlines()
        ort_rows = (tmp_path / "ort" / f"output_with_probabilities_{shard}.tsv").read_text().splitlines()
        assert [r.split("\t")[:7] for r in ort_rows] == [r.split("\t")[:7] for r in tf_rows]  # rows, order, labels
        record = json.loads((tmp_path / "ort" / f"shard_info_{shard}.json").read_text())
        assert (record["engine"], record["precision"]) == ("onnxruntime", "float32")
    before = {p.name: p.read_bytes() for p in (tmp_path / "ort").iterdir()}
    for engine, precision, difference in (("tensorflow", "float32", 'engine "onnxruntime" vs "tensorflow"'),
                                          ("onnxruntime", "int8", 'precision "float32" vs "int8"')):
        message = expect_error(lambda: predict(engine, "ort", precision), str(tmp_path / "ort" / (
            "output_with_probabilities_000.tsv")), None, f"shard 000 was predicted by another setting ({difference}")
        assert "\n" not in message
    assert {p.name: p.read_bytes() for p in (tmp_path / "ort").iterdir()} == before


def test_ner_prediction_with_onnxruntime(tasks, tmp_path):
    """run_ner.py --do_predict --inference_engine=onnxruntime tags as TensorFlow does."""
    from bert_tf.ner import run
    from bert_tf.ner.config import NerConfig

    model_dir = tmp_path / "ner"
    checkpoints.save_model(tasks["token"], str(model_dir / "model"), {"max_len": 32})
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("alice met bob in paris .\nthe acme corp visited rome and oslo .\n", encoding="utf-8")
    results = {}
    for engine in ("tensorflow", "onnxruntime"):
        results[engine] = run.predict(NerConfig(save_model_path=str(model_dir), predict_file=str(sentences),
                                                predict_output=str(tmp_path / engine / "predictions.csv"),
                                                verbose=False, inference_engine=engine))
    assert results["onnxruntime"].tags == results["tensorflow"].tags
    assert (tmp_path / "onnxruntime" / "predictions.csv").read_text() == (
        tmp_path / "tensorflow" / "predictions.csv").read_text()
