"""run_classifier.py and run_pretraining.py (masked LM, and masked LM + next-sentence prediction) killed by a real
kill -9 once their first resume checkpoint is on disk, without --deterministic: the same command resumes from
that checkpoint, at its step and data position, and finishes (tests/killing.py says what proves it; the killed run
is a process, the resumed one the same command line run in this process). run_ner.py's is in test_resume.py."""

from __future__ import annotations

import json
import os
import re

import pytest

from conftest import ROOT, check_png
from killing import assert_resumed, event_files, kill_after_first_checkpoint, killed_log, run_in_process
from test_pretraining import _command, _nsp_records, _text_corpus, hf_with_head, unigram_perplexity  # noqa: F401

DEMO = ROOT / "data" / "demo" / "consensus"


def _kill_then_resume(command, out, total_steps):
    """Kill `command` after its first checkpoint, run it again (in this process: tests/killing.py
    run_in_process); the resumed run's exit status and output."""
    state = kill_after_first_checkpoint(command, out)
    events = event_files(out)
    resumed = run_in_process(command)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_resumed(resumed.stdout, state, out, events, total_steps)
    assert not (out / "checkpoints").exists()  # a finished run removes its resume checkpoints
    return resumed


def test_classifier_resumes_after_a_real_sigkill(tiny_checkpoint, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for split, count in (("train", 48), ("dev", 8)):
        rows = (DEMO / f"{split}.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
        (data / f"{split}.tsv").write_text("".join(rows[:count]), encoding="utf-8", newline="")
    out = tmp_path / "out"
    command = ["run_classifier.py", f"--bert_model={tiny_checkpoint}", f"--data_dir={data}", f"--output_dir={out}",
               f"--labels_file={DEMO / 'labels.txt'}", "--do_train", "--max_seq_length=16",
               "--train_batch_size=8", "--num_train_epochs=2", "--learning_rate=1e-3", "--seed=2",
               "--save_checkpoints_steps=4", "--log_every=1"]
    _kill_then_resume(command, out, 2 * 6)  # 48 rows in batches of 8, 2 epochs
    assert json.loads((out / "model" / "bert_tf_model.json").read_text())["labels"] == [
        "che", "dis", "ggp", "org", "out"]


@pytest.fixture(scope="module")
def masked_lm_run(tiny_checkpoint, tmp_path_factory):
    """run_pretraining.py on a text corpus (64 steps after a 6-step head warm-up), killed once its first resume
    checkpoint is on disk and resumed by the same command: (text files, output folder, command, the resumed run,
    the killed run's output). Both tests below read this one run."""
    base = tmp_path_factory.mktemp("masked_lm")
    text = _text_corpus(base / "text")
    out = base / "out"
    replaced = {"--deterministic": None, "--log_every=8": "--log_every=1", "--notensorboard": "--tensorboard"}
    command = [replaced.get(a, a) for a in _command(tiny_checkpoint, text, out) if replaced.get(a, a)]
    assert len(command) == len(_command(tiny_checkpoint, text, out)) - 1
    resumed = _kill_then_resume(command, out, 6 + 64)  # a new head: 10% of the steps of head warm-up first
    return text, out, command, resumed, killed_log(out).read_text(encoding="utf-8")


def test_masked_lm_pretraining_resumes_after_a_real_sigkill(masked_lm_run):
    _, out, _, _, _ = masked_lm_run  # resumed as _kill_then_resume asserts
    results = json.loads((out / "eval_results.json").read_text())
    assert results["before"]["perplexity"] > results["after"]["perplexity"] > 0  # kept through the resume


def test_end_to_end_beats_word_frequencies_and_fine_tunes(masked_lm_run, tmp_path):
    """The held-out masked-LM perplexity after training (resumed after a real kill) is far below what the
    corpus's word frequencies alone score (about 17 here; the random head's, before training: about 80), so the
    model learned from context."""
    from bert_tf import checkpoints

    text, out, command, resumed, killed_output = masked_lm_run
    results = json.loads((out / "eval_results.json").read_text())
    unigram = unigram_perplexity(text)
    assert results["after"]["perplexity"] < 0.6 * unigram < results["before"]["perplexity"], (results, unigram)
    for stdout in (killed_output, resumed.stdout):  # the run table, in the first run and the resumed one
        assert re.search(r"masked-LM head +random", stdout)
        assert "next-sentence prediction  off (text carries no next-sentence labels)" in stdout
    assert "masked_lm_loss" not in (out / "history.csv").read_text()
    assert re.search(r"train \[#+\] \d+/\d+ steps .* loss \d+\.\d{4}  accuracy \d\.\d{4}  [\d,]+ tokens/s",
                     resumed.stdout)
    check_png(out / "perplexity.png")
    assert 'alt="perplexity"' in (out / "report.html").read_text(encoding="utf-8")
    # --nodo_train: the saved model on the same held-out documents and masks gives the run's last figures
    replaced = {f"--output_dir={out}": f"--output_dir={tmp_path / 'eval'}", command[1]: f"--bert_model={out}"}
    assert command[1].startswith("--bert_model=")
    evaluated = run_in_process([replaced.get(a, a) for a in command] + ["--nodo_train"])
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert set(os.listdir(tmp_path / "eval")) == {"eval_results.json", "eval_results.txt"}
    alone = json.loads((tmp_path / "eval" / "eval_results.json").read_text())["eval"]
    assert alone == pytest.approx(results["after"], rel=1e-5)

    checkpoint, tokenizer = checkpoints.load_pretrained(str(out))  # what run_ner.py --bert_model does
    task = checkpoints.build_task_model(checkpoint, tokenizer, ["O", "B-X"], "token", 0.1)
    assert checkpoint.kind == "hf" and task.backbone.num_layers == 2


def test_next_sentence_pretraining_resumes_after_a_real_sigkill(hf_with_head, tmp_path):  # noqa: F811
    records = _nsp_records(tmp_path / "records")
    out = tmp_path / "out"
    command = ["run_pretraining.py", f"--bert_model={hf_with_head[0]}", f"--input_files={records['train']}",
               f"--eval_files_dir={records['eval']}", f"--output_dir={out}", "--max_seq_length=16",
               "--max_predictions_per_seq=4", "--eval_batch_size=4", "--seed=42", "--train_batch_size=8",
               "--num_train_steps=9", "--num_warmup_steps=1", "--learning_rate=1e-3", "--save_checkpoints_steps=2",
               "--log_every=1"]
    resumed = _kill_then_resume(command, out, 9)  # 24 records in batches of 8: 3 steps an epoch
    assert "next-sentence prediction  on (labels in the TFRecords" in resumed.stdout
    assert {"next_sentence_loss", "next_sentence_accuracy"} <= set(json.loads((out / "eval_results.json").read_text())["after"])
