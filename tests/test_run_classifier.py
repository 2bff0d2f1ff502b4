"""run_classifier.py end to end on the real consensus examples, reload, and every bad input."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bert_tf.classifier import run as classifier_run
from bert_tf.classifier.config import ClassifierConfig
from bert_tf.errors import InputError
from conftest import check_png, error_lines, run_in_process, run_script

LABELS = ["che", "dis", "ggp", "org", "out"]


def split_examples(source: Path, target: Path) -> Path:
    """train/dev/test.tsv from the 1,000 real examples, split by document (no document in two splits); train keeps
    every other of its 800 rows (enough to learn: dev accuracy 0.82 against a majority class of 0.45)."""
    lines = source.read_bytes().decode("utf-8").splitlines(keepends=True)
    docs = sorted({line.split("\t", 1)[0] for line in lines})
    split_of = {d: ("dev" if i % 10 == 0 else "test" if i % 10 == 1 else "train") for i, d in enumerate(docs)}
    target.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev", "test"):
        chosen = [line for line in lines if split_of[line.split("\t", 1)[0]] == split]
        chosen = chosen[::2] if split == "train" else chosen
        (target / f"{split}.tsv").write_text("".join(chosen), encoding="utf-8", newline="")
    return target


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_data, minilm):
    base = tmp_path_factory.mktemp("clf_e2e")
    data = split_examples(shared_data / "consensus_example" / "examples.tsv", base / "data")
    with open(data / "train.tsv", "a", encoding="utf-8") as train:  # a row read as the published reader did
        train.write("extra\t" + (data / "train.tsv").read_text(encoding="utf-8").splitlines()[0] + "\n")
    out = base / "out"
    process = run_script(["run_classifier.py", f"--bert_model={minilm}", f"--data_dir={data}",
                          f"--output_dir={out}", "--do_train", "--do_eval", "--do_predict",
                          f"--labels_file={shared_data / 'consensus_example' / 'labels.txt'}",
                          "--max_seq_length=32", "--pooling=mention", "--train_batch_size=16",
                          "--learning_rate=3e-4", "--num_train_epochs=2", "--seed=1", "--log_every=5"])
    assert process.returncode == 0, process.stderr[-3000:]
    return data, out, process


def test_training_beats_the_majority_class_and_writes_every_output(trained):
    data, out, process = trained
    assert re.search(r"rows read as published\s+train: rows with more than 6 columns \(the last 4 read\): 1; "
                     r"dev: none\n", process.stdout)
    results = json.loads((out / "eval_results.json").read_text())
    dev = pd.read_csv(data / "dev.tsv", sep="\t", header=None, quoting=3)
    majority = dev[2].value_counts().max() / len(dev)
    assert results["num_examples"] == len(dev)
    assert results["accuracy"] > majority + 0.15, (results["accuracy"], majority)
    assert set(results["per_class"]) == set(LABELS)
    assert {"detection", "typing"} <= set(results["entity_vs_out"])
    for name in ("confusion_matrix.png", "loss.png", "accuracy.png"):
        check_png(out / name)
    text = (out / "eval_report.txt").read_text()
    assert "macro avg" in text and "gold \\ pred" in text
    # eval_results.txt as Google's / NVIDIA's run_classifier.py write it, and their log lines on stderr
    lines = (out / "eval_results.txt").read_text().splitlines()
    pairs = dict(line.split(" = ") for line in lines)
    assert list(pairs) == sorted(pairs) and float(pairs["eval_accuracy"]) == pytest.approx(results["accuracy"])
    assert float(pairs["f1-macro"]) == pytest.approx(results["macro"]["f1"]) and int(pairs["out_support"]) > 0
    assert int(pairs["global_step"]) > 0 and float(pairs["eval_loss"]) == pytest.approx(results["loss"], rel=1e-6)
    logged = [line for line in process.stderr.splitlines() if line.startswith("INFO:tensorflow:  ")]
    assert logged == [f"INFO:tensorflow:  {line}" for line in lines]
    probs = pd.read_csv(out / "test_results.tsv", sep="\t", header=None, names=LABELS)  # Google's layout: no header
    test = (data / "test.tsv").read_text().splitlines()
    assert len(probs) == len(test)
    assert ((probs.sum(axis=1) - 1).abs() < 1e-4).all()
    full = pd.read_csv(out / "output_with_probabilities.tsv", sep="\t", quoting=3, keep_default_na=False,
                       dtype=str)
    assert full.annotation_id.tolist() == [line.split("\t")[1] for line in test]  # input order
    assert (full.predicted_label == probs.idxmax(axis=1)).all()
    assert (out / "test_output_labels.txt").read_text().splitlines() == full.predicted_label.tolist()
    assert "Epoch 2/2" in process.stdout and "validation at epoch" in process.stdout


def test_trained_run_records_a_temperature_and_keeps_raw_probabilities(trained):
    _, out, process = trained
    results = json.loads((out / "eval_results.json").read_text())
    baseline, calibration = results["majority_baseline"], results["calibration"]
    assert baseline["label"] == "out" and results["macro"]["f1"] > baseline["macro_f1"]
    assert results["collapsed"] is False and "collapsed" not in process.stdout.splitlines()[-1]
    meta = json.loads((out / "model" / "bert_tf_model.json").read_text())
    assert meta["pooling"] == "mention" and meta["fitted_temperature"] == calibration["temperature"] > 0
    # Fitted on dev, the temperature cannot make the dev NLL worse; the model's probabilities stay the raw ones.
    assert calibration["after"]["nll"] <= calibration["before"]["nll"] + 1e-9
    assert meta["temperature"] == 1.0 and results["loss"] == pytest.approx(calibration["before"]["nll"])
    assert 0 <= calibration["after"]["ece"] <= 1 and calibration["ece_bins"] == 15
    check_png(out / "reliability.png")
    assert "calibration: temperature" in process.stdout and "recorded, not applied" in process.stdout
    assert "majority baseline" in (out / "eval_report.txt").read_text()


def test_saved_model_predicts_identically_without_training(trained, tmp_path, capsys):
    data, out, _ = trained
    before = (out / "test_results.tsv").read_text()
    copy = tmp_path / "again"
    shutil.copytree(out / "model", copy / "model")
    process = run_in_process(["run_classifier.py", "--do_predict", f"--data_dir={data}", f"--output_dir={copy}"],
                             capsys)
    assert process.returncode == 0, process.stderr[-3000:]
    assert (copy / "test_results.tsv").read_text() == before
    refused = run_in_process(["run_classifier.py", "--do_predict", f"--data_dir={data}", f"--output_dir={copy}"],
                             capsys)
    assert refused.returncode == 2 and "--overwrite_output_dir" in error_lines(refused)[0]
    # --apply_temperature: the calibrated probabilities, softmax(log p / T) of the raw ones
    calibrated = run_in_process(["run_classifier.py", "--do_predict", f"--data_dir={data}", f"--output_dir={copy}",
                                 "--apply_temperature", "--overwrite_output_dir"], capsys)
    assert calibrated.returncode == 0, calibrated.stderr[-3000:]
    temperature = json.loads((copy / "model" / "bert_tf_model.json").read_text())["fitted_temperature"]
    raw = pd.read_csv(out / "test_results.tsv", sep="\t", header=None).to_numpy(np.float64)
    expected = np.exp(np.log(raw) / temperature)
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(pd.read_csv(copy / "test_results.tsv", sep="\t", header=None).to_numpy(), expected, atol=2e-5)
    assert json.loads((copy / "prediction_info.json").read_text())["temperature"] == pytest.approx(temperature)


def test_python_api_trains_then_evaluates_and_predicts_as_the_command_line(trained, tmp_path, shared_data,
                                                                           tiny_checkpoint):
    """A ClassifierConfig built in Python -> bert_tf.classifier.run in this process. train: the model, its saved
    settings and flags (the tiny checkpoint: the command line above is this runner and shows it learns).
    evaluate / predict on a copy of the command line's model: its saved settings come with it, and the metrics and
    the prediction file are the command line's, which beat the majority class."""
    data, cli_out, _ = trained
    labels = str(shared_data / "consensus_example" / "labels.txt")
    out = tmp_path / "trained"
    cfg = ClassifierConfig(bert_model=tiny_checkpoint, data_dir=str(data), output_dir=str(out), labels_file=labels,
                           max_seq_length=16, pooling="mention", train_batch_size=32, learning_rate=3e-4,
                           num_train_epochs=1, seed=1, verbose=False, tensorboard=False, calibrate=False)
    result = classifier_run.train(cfg)
    saved = json.loads((out / "model" / "bert_tf_model.json").read_text())
    assert result.output_dir == str(out) and result.collapsed == saved["collapsed"]
    assert saved["max_seq_length"] == 16 and saved["flags"]["learning_rate"] == 3e-4 and saved["flags"]["do_train"]

    copy = tmp_path / "cli_model"
    shutil.copytree(cli_out / "model", copy / "model")
    cfg = ClassifierConfig(data_dir=str(data), output_dir=str(copy), labels_file=labels, verbose=False,
                           tensorboard=False)
    evaluated = classifier_run.evaluate(cfg)
    assert evaluated.model.settings.max_seq_length == 32 and evaluated.model.settings.model_path
    metrics, cli_metrics = evaluated.eval_metrics, json.loads((cli_out / "eval_results.json").read_text())
    assert metrics == json.loads((copy / "eval_results.json").read_text())
    assert metrics["accuracy"] == cli_metrics["accuracy"] and metrics["loss"] == pytest.approx(cli_metrics["loss"])
    dev = pd.read_csv(data / "dev.tsv", sep="\t", header=None, quoting=3)
    assert metrics["accuracy"] > dev[2].value_counts().max() / len(dev) + 0.15

    predicted = classifier_run.predict(cfg)
    probabilities = copy / "output_with_probabilities.tsv"
    assert str(probabilities) in predicted.prediction_files
    assert probabilities.read_text() == (cli_out / "output_with_probabilities.tsv").read_text()


ROW = "1\tT1\tche\tthe drug \tcisplatin\t was given DOCEND\n"


def _data(tmp_path: Path, train_rows: str) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.tsv").write_text(train_rows, encoding="utf-8", newline="")
    (data / "dev.tsv").write_text(ROW, encoding="utf-8")
    (data / "test.tsv").write_text(ROW, encoding="utf-8")
    return data


BAD_ROWS = {  # case -> (train.tsv rows, line of the error, words in it)
    "three_columns": (ROW + "che\tleft\tmention\n", 2, "expected at least 4 tab-separated columns"),
    "unknown_label": (ROW + ROW.replace("\tche\t", "\tdrug\t"), 2, "drug"),
    "five_columns_label_by_negative_index": (ROW + "2\tT1\tche\tleft\tmention\n", 2, "label 'T1'"),
}


def run_bad(cfg: ClassifierConfig) -> str:
    """The one-line error of a run on bad input (the runner, in this process): InputError, as the command line's
    `error: ...` line without its prefix."""
    with pytest.raises(InputError) as caught:
        classifier_run.run(cfg)
    return str(caught.value)


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory, tiny_checkpoint):
    """The runner on every bad input below: name -> (its error, case folder)."""
    root = tmp_path_factory.mktemp("classifier_bad_input")
    labels = root / "labels.txt"
    labels.write_text("che\ndis\nggp\norg\nout\n")
    common = dict(bert_model=str(tiny_checkpoint), do_train=True, max_seq_length=16)
    cases = {}
    for name, (rows, _, _) in BAD_ROWS.items():
        (root / name).mkdir()
        cases[name] = ClassifierConfig(**common, data_dir=str(_data(root / name, rows)),
                                       output_dir=str(root / name / "out"), labels_file=str(labels))
    (root / "no_dev").mkdir()
    (_data(root / "no_dev", ROW) / "dev.tsv").unlink()
    cases["no_dev"] = ClassifierConfig(**common, data_dir=str(root / "no_dev" / "data"),
                                       output_dir=str(root / "no_dev" / "out"))
    (root / "few_labels").mkdir()
    (root / "few_labels" / "labels.txt").write_text("dis\nout\n")
    cases["few_labels"] = ClassifierConfig(**common, data_dir=str(_data(root / "few_labels", ROW)),
                                           output_dir=str(root / "few_labels" / "out"),
                                           labels_file=str(root / "few_labels" / "labels.txt"))
    cases["nothing_to_do"] = ClassifierConfig(output_dir=str(root / "nothing" / "o"))
    return {name: (run_bad(cfg), root / name) for name, cfg in cases.items()}


@pytest.mark.parametrize("name", sorted(BAD_ROWS))
def test_bad_training_rows_name_file_and_line(bad_runs, name):
    error, folder = bad_runs[name]
    _, line, words = BAD_ROWS[name]
    assert f"{folder / 'data' / 'train.tsv'}:{line}:" in error and words in error, error
    assert not (folder / "out").exists()


def test_missing_file_and_disagreeing_label_file(bad_runs):
    error, folder = bad_runs["no_dev"]
    assert "dev.tsv" in error
    error, folder = bad_runs["few_labels"]
    assert "'che'" in error and str(folder / "labels.txt") in error
    assert not (folder / "out").exists()


def test_bad_input_on_the_command_line_is_one_error_line(tmp_path):
    """The command line's form of bad input: exit status 2, one `error:` line, no traceback, nothing written."""
    process = run_script(["run_classifier.py", "--do_eval", f"--output_dir={tmp_path / 'out'}"])
    assert process.returncode == 2, process.stderr[-2000:]
    assert error_lines(process) == ["error: --data_dir is required for --do_train and --do_eval"]
    assert "Traceback" not in process.stderr
    assert not (tmp_path / "out").exists()


def test_crlf_and_long_mentions_train(tmp_path, tiny_checkpoint, capsys):
    long_mention = " ".join(["cisplatin"] * 40)
    rows = (ROW + ROW.replace("\tche\t", "\tout\t").replace("cisplatin", long_mention)).replace("\n", "\r\n") * 4
    data = _data(tmp_path, rows)
    out = tmp_path / "out"
    process = run_in_process(["run_classifier.py", f"--bert_model={tiny_checkpoint}", f"--data_dir={data}",
                              f"--output_dir={out}", "--do_train", "--do_eval", "--max_seq_length=16",
                              "--num_train_epochs=1", "--train_batch_size=4"], capsys)
    assert process.returncode == 0, process.stderr[-3000:]
    assert "mention(s) longer than the half window were truncated" in process.stdout
    assert json.loads((out / "eval_results.json").read_text())["labels"] == ["che", "out"]


def test_nothing_to_do_is_an_error(bad_runs):
    error, _ = bad_runs["nothing_to_do"]
    assert "nothing to do" in error
