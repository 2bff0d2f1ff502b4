"""The classifier as a Python API: a ClassifierConfig built in Python, trained, evaluated and used to predict in this
process, with the same outputs as run_classifier.py."""

from __future__ import annotations

import json

import pandas as pd

from bert_tf.classifier import run
from bert_tf.classifier.config import ClassifierConfig
from test_run_classifier import split_examples


def test_classifier_python_api(tmp_path, shared_data, minilm):
    data = split_examples(shared_data / "consensus_example" / "examples.tsv", tmp_path / "data")
    out = tmp_path / "out"
    cfg = ClassifierConfig(bert_model=str(minilm), data_dir=str(data), output_dir=str(out),
                           labels_file=str(shared_data / "consensus_example" / "labels.txt"), max_seq_length=32,
                           pooling="mention", train_batch_size=16, learning_rate=3e-4, num_train_epochs=2, seed=1,
                           verbose=False, tensorboard=False)

    trained = run.train(cfg)
    assert (out / "model" / "bert_tf_model.json").is_file() and not trained.collapsed
    saved = json.loads((out / "model" / "bert_tf_model.json").read_text())
    assert saved["max_seq_length"] == 32 and saved["flags"]["learning_rate"] == 3e-4 and saved["flags"]["do_train"]

    evaluated = run.evaluate(cfg)  # the saved model, reloaded: its settings come with it
    assert evaluated.model.settings.max_seq_length == 32 and evaluated.model.settings.model_path
    dev = pd.read_csv(data / "dev.tsv", sep="\t", header=None, quoting=3)
    majority = dev[2].value_counts().max() / len(dev)
    metrics = evaluated.eval_metrics
    assert metrics == json.loads((out / "eval_results.json").read_text())
    assert metrics["accuracy"] > majority + 0.15, (metrics["accuracy"], majority)

    predicted = run.predict(cfg)
    probabilities = out / "output_with_probabilities.tsv"
    assert str(probabilities) in predicted.prediction_files
    rows = pd.read_csv(probabilities, sep="\t", quoting=3)
    test = pd.read_csv(data / "test.tsv", sep="\t", header=None, quoting=3)
    assert len(rows) == len(test)
    test_majority = test[2].value_counts().max() / len(test)
    assert list(rows["label"]) == list(test[2])
    accuracy = float((rows["predicted_label"] == rows["label"]).mean())
    assert accuracy > test_majority + 0.1, (accuracy, test_majority)


def test_saved_model_settings_win_and_a_differing_setting_is_said_once(capsys):
    from bert_tf.classifier import model_settings

    saved = {"max_seq_length": 64, "replace_span": "[unused1]", "temperature": 1.0, "fitted_temperature": 1.5,
             "collapsed": False, "global_step": 12}
    settings = model_settings.resolve(saved, 128, None, "/models/clf", lengths_given=False)
    assert (settings.max_seq_length, settings.replace_span, settings.fitted_temperature, settings.global_step) == (
        64, "[unused1]", 1.5, 12)
    assert settings.model_path == "/models/clf" and capsys.readouterr().err == ""
    settings = model_settings.resolve(saved, 256, "[unused1]", "/models/clf", lengths_given=True)
    assert settings.max_seq_length == 64
    assert capsys.readouterr().err.splitlines() == [
        "note: /models/clf: --max_seq_length=256 is not applied: the model was trained with max_seq_length 64, "
        "which its features follow"]
    old = model_settings.resolve({}, 128, "[unused2]", "/models/old", lengths_given=True)  # saved before the keys
    assert (old.max_seq_length, old.replace_span, old.temperature, old.folded_temperature) == (
        128, "[unused2]", None, 1.0)
