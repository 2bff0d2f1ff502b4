"""The distilled student (run_classifier.py --do_train --distill_from): its layers, that it learns the teacher, and
that every other command uses it unchanged."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from bert_tf.classifier import run as classifier_run
from bert_tf.classifier.config import ClassifierConfig
from bert_tf.errors import InputError
from conftest import ROOT, TINY_WORDS, expect_error, run_in_process

LABELS = ["che", "dis", "ggp", "org", "out"]
DEMO = ROOT / "data" / "demo" / "consensus"
LENGTH = 32
AGREEMENT = 0.6  # on the held-out contexts: the distilled student reaches it, the student before training does not


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Mean KL(p || q) over rows."""
    return float(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1)))


def write_teacher(folder: Path, contexts: str) -> Path:
    """A saved 4-layer teacher whose labels vary with the mention: a tiny random BERT, mention pooling, its layers'
    matrices scaled up (so that dropping layers changes its outputs) and a random classifier centred on the
    contexts' mean logits (so that every label is predicted)."""
    from checkpoint_factory import make_random_hf_checkpoint

    from bert_tf import checkpoints, distribution
    from bert_tf.checkpoints import CheckpointSpec
    from bert_tf.classifier import inference, inputs
    from bert_tf.training import Trainer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused1]"] + TINY_WORDS + [
        "##" + c for c in "abcdefghijklmnopqrstuvwxyz"] + list("abcdefghijklmnopqrstuvwxyz")
    path = make_random_hf_checkpoint(str(folder / "bert"), vocab, layers=4, seed=3)
    checkpoint, tokenizer = checkpoints.load_checkpoint(CheckpointSpec(bert_model=path))
    task = checkpoints.build_task_model(checkpoint, tokenizer, LABELS, "sequence", 0.1, pooling="mention")
    for i in range(4):
        layer = task.backbone.get_layer(f"transformer_layer_{i}")
        layer.set_weights([w * 8.0 if w.ndim > 1 else w for w in layer.get_weights()])
    classifier = task.model.get_layer("classifier")
    kernel = np.random.default_rng(0).normal(0, 3.0, classifier.kernel.shape).astype("float32")
    classifier.set_weights([kernel, np.zeros(len(LABELS), "float32")])
    info = inputs.build_features(contexts, LABELS, "test", tokenizer, LENGTH, None, str(folder / "cache"),
                                 check_labels=False, workers=1)
    trainer = Trainer(task.model, None, distribution.setup_run(0, False, "auto").strategy, verbose=False)
    logits, _ = inference.predict_logits(trainer, info, 64)
    classifier.set_weights([kernel, (-logits.mean(axis=0)).astype("float32")])
    checkpoints.save_model(task, str(folder / "teacher"), {"max_seq_length": LENGTH, "replace_span": None})
    return folder / "teacher"


def probabilities(model_dir: Path, task=None, path: str = "") -> np.ndarray:
    """A saved (or given) classifier's probabilities over the rows of `path`."""
    from bert_tf import checkpoints, distribution
    from bert_tf.classifier import inference, inputs
    from bert_tf.training import Trainer

    task = task or checkpoints.load_saved_model(str(model_dir))
    with inputs.scratch_features(path, task.labels, task.tokenizer, LENGTH, None, workers=1) as info:
        trainer = Trainer(task.model, None, distribution.setup_run(0, False, "auto").strategy, verbose=False)
        return inference.predict_probabilities(trainer, info, 64)[0]


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    """A teacher, the contexts (demo train rows, their labels unused) and held-out contexts (demo dev rows), the
    student distilled on them (2 of 4 layers, this process), and the held-out probabilities of the teacher, the
    student and the student before training."""
    base = tmp_path_factory.mktemp("distill")
    contexts, held_out = str(DEMO / "train.tsv"), str(DEMO / "dev.tsv")
    teacher = write_teacher(base, contexts)
    cfg = ClassifierConfig(distill_from=str(teacher), student_layers=2, unlabeled_contexts=contexts,
                           output_dir=str(base / "student"), do_train=True, num_train_epochs=2,
                           train_batch_size=32, learning_rate=3e-3, distill_temperature=2.0, verbose=False,
                           tensorboard=False, featurize_workers=1)
    result = classifier_run.run(cfg)
    return {"base": base, "teacher": teacher, "student": base / "student", "held_out": held_out, "result": result,
            "teacher_probs": probabilities(teacher, path=held_out),
            "student_probs": probabilities(base / "student" / "model", path=held_out),
            "initial_probs": probabilities(Path(), initial_student(teacher), held_out)}


def initial_student(teacher: Path):
    """The student before training: 2 layers built from the teacher's."""
    from bert_tf import checkpoints
    from bert_tf.classifier import distill

    return distill.build_student(checkpoints.load_saved_model(str(teacher)), [1, 3], 0.1)


def test_student_has_the_asked_layers_and_starts_from_the_chosen_teacher_layers(distilled):
    from bert_tf import checkpoints
    from bert_tf.classifier import distill

    teacher = checkpoints.load_saved_model(str(distilled["teacher"]))
    cfg = ClassifierConfig(student_layers=2)
    assert distill.layer_map(cfg, 4) == [1, 3]
    assert distill.layer_map(ClassifierConfig(), 6) == [1, 3, 5]
    assert distill.layer_map(ClassifierConfig(student_layers=2), 6) == [2, 5]
    assert distill.layer_map(ClassifierConfig(student_layers=3, teacher_layers="0,2,5"), 6) == [0, 2, 5]
    student = distill.build_student(teacher, [0, 2], 0.1)
    assert student.backbone.num_layers == 2
    for i, source in enumerate([0, 2]):
        mine = student.backbone.get_layer(f"transformer_layer_{i}").get_weights()
        theirs = teacher.backbone.get_layer(f"transformer_layer_{source}").get_weights()
        assert len(mine) == len(theirs) and all(np.array_equal(a, b) for a, b in zip(mine, theirs))
    for name in ("token_embedding", "position_embedding", "embeddings_layer_norm", "pooled_dense"):
        assert all(np.array_equal(a, b) for a, b in zip(student.backbone.get_layer(name).get_weights(),
                                                         teacher.backbone.get_layer(name).get_weights()))
    assert all(np.array_equal(a, b) for a, b in zip(student.model.get_layer("classifier").get_weights(),
                                                     teacher.model.get_layer("classifier").get_weights()))
    saved = json.loads((distilled["student"] / "model" / "bert_tf_model.json").read_text())
    assert saved["backbone"]["num_layers"] == 2 and saved["distilled_from"]["teacher_layers"] == [1, 3]
    assert saved["pooling"] == "mention" and saved["max_seq_length"] == LENGTH


def test_distillation_reduces_the_kl_to_the_teacher_on_held_out_contexts(distilled):
    teacher = distilled["teacher_probs"]
    before = distilled["initial_probs"]
    kl_before = kl_divergence(teacher, before)
    kl_after = kl_divergence(teacher, distilled["student_probs"])
    assert kl_after < 0.5 * kl_before, (kl_before, kl_after)


def test_the_student_agrees_with_the_teacher_where_the_untrained_student_does_not(distilled):
    teacher = distilled["teacher_probs"].argmax(axis=1)
    before = distilled["initial_probs"].argmax(axis=1)
    after = distilled["student_probs"].argmax(axis=1)
    majority = np.bincount(teacher).max() / len(teacher)
    assert majority < AGREEMENT  # always one label would not pass
    assert np.mean(before == teacher) < AGREEMENT <= np.mean(after == teacher), (
        np.mean(before == teacher), np.mean(after == teacher))


def test_the_saved_student_predicts_evaluates_and_exports_as_any_classifier(distilled, tmp_path, capsys):
    from bert_tf.checkpoints import export

    out = tmp_path / "predict"
    process = run_in_process(["run_classifier.py", "--do_predict", "--do_eval", f"--data_dir={DEMO}",
                              f"--bert_model={distilled['student'] / 'model'}", f"--output_dir={out}",
                              f"--predict_file={distilled['held_out']}", "--verbose=false"], capsys)
    assert process.returncode == 0, process.stderr[-3000:]
    lines = (out / "test_results.tsv").read_text().splitlines()
    written = np.array([[float(x) for x in line.split("\t")] for line in lines])
    np.testing.assert_allclose(written, distilled["student_probs"], atol=1e-5)
    assert json.loads((out / "eval_results.json").read_text())["num_examples"] == 200
    assert export.main(["--model_dir", str(distilled["student"]), "--format=hf",
                        f"--output_dir={tmp_path / 'hf'}"]) == 0
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["num_hidden_layers"] == 2


def test_bad_context_line_names_file_and_line_and_writes_nothing(distilled, tmp_path):
    contexts = tmp_path / "contexts.tsv"
    rows = (DEMO / "dev.tsv").read_text().splitlines(keepends=True)[:3]
    contexts.write_text(rows[0] + "\t".join(rows[1].split("\t")[:3]) + "\n" + rows[2])  # 3 fields: too few
    cfg = ClassifierConfig(distill_from=str(distilled["teacher"]), unlabeled_contexts=str(contexts),
                           output_dir=str(tmp_path / "out"), do_train=True, verbose=False)
    expect_error(lambda: classifier_run.run(cfg), str(contexts), 2, "found 3")
    assert not (tmp_path / "out").exists()


def test_distillation_settings_are_checked(tmp_path):
    from bert_tf.classifier import distill

    cfg = ClassifierConfig(distill_from=str(tmp_path), do_train=True, output_dir=str(tmp_path / "out"))
    with pytest.raises(InputError, match="needs something to distil on: --unlabeled_contexts and/or --data_dir"):
        classifier_run.run(cfg)
    with pytest.raises(InputError, match="--student_layers=5: the teacher has only 4 layers"):
        distill.layer_map(ClassifierConfig(distill_from="t", student_layers=5), 4)
    with pytest.raises(InputError, match="--unlabeled_contexts applies to distillation only"):
        classifier_run.run(dataclasses.replace(cfg, distill_from=None, unlabeled_contexts="x"))
    assert not (tmp_path / "out").exists()


def test_soft_loss_is_the_temperature_scaled_kl_over_labelled_rows():
    import tensorflow as tf

    from bert_tf.training import masked_soft_kl_sum

    logits = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0], [2.0, 2.0, 2.0]])
    targets = np.array([[0.7, 0.3, 0.0], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]])
    labels = np.array([0, 1, -1])  # the last row is not labelled
    temperature = 2.0
    expected = 0.0
    for row in range(2):
        q = np.exp(logits[row] / temperature) / np.sum(np.exp(logits[row] / temperature))
        expected += temperature ** 2 * sum(p * np.log(p / r) for p, r in zip(targets[row], q) if p > 0)
    got = masked_soft_kl_sum(tf.constant(labels), tf.constant(logits, tf.float32), tf.constant(targets, tf.float32),
                             temperature)
    assert abs(float(got) - expected) < 1e-5, (float(got), expected)


@pytest.mark.parametrize("accumulation_steps", [1, 2])
def test_soft_and_hard_terms_weigh_the_gradient_as_their_weights_say(accumulation_steps):
    """One SGD step of soft (weight 0.25) + hard (weight 0.75) terms on a linear model equals the step on the
    hand-computed gradient of the weighted means; gradient accumulation changes nothing."""
    import keras
    import tensorflow as tf

    from bert_tf.training import Loss, Trainer

    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3)).astype("float32")
    targets = rng.dirichlet(np.ones(2), size=4).astype("float32")
    labels = np.array([1, -1, 0, -1], np.int32)  # two labelled rows
    inputs = keras.Input(shape=(3,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(2, use_bias=False, name="dense")(inputs))
    w0 = np.array(model.get_weights()[0])
    losses = (Loss("soft", None, "teacher", "preds", targets="probs", temperature=2.0, weight=0.25),
              Loss("hard", None, "labels", "hard_preds", weight=0.75))
    trainer = Trainer(model, keras.optimizers.SGD(learning_rate=0.1), tf.distribute.get_strategy(), clip_norm=1e9,
                      verbose=False, feature_keys=("x",), passthrough_keys=(), losses=losses,
                      accumulation_steps=accumulation_steps)
    batch = {"x": x, "probs": targets, "teacher": np.zeros(4, np.int32), "labels": labels}
    trainer.fit(lambda epoch, first: (tf.data.Dataset.from_tensors(batch), 1), epochs=1)
    z = x @ w0
    q = np.exp(z / 2.0) / np.exp(z / 2.0).sum(axis=1, keepdims=True)
    soft_grad = x.T @ ((q - targets) * 2.0) / 4  # d/dz of T^2 KL(p || softmax(z / T)) = T (q - p)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    onehot = np.eye(2)[np.maximum(labels, 0)] * (labels >= 0)[:, None]
    hard_grad = x.T @ ((p - onehot) * (labels >= 0)[:, None]) / 2
    expected = w0 - 0.1 * (0.25 * soft_grad + 0.75 * hard_grad)
    np.testing.assert_allclose(model.get_weights()[0], expected, atol=1e-5)
