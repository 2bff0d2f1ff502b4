"""run_classifier.py and run_pretraining.py (masked LM, and masked LM + next-sentence prediction) killed by a real
kill -9 once their first resume checkpoint is on disk, without --deterministic: the same command resumes from
that checkpoint, at its step and data position, and finishes (tests/killing.py says what proves it). run_ner.py's
is in test_resume.py."""

from __future__ import annotations

import json

from conftest import ROOT, run_script
from killing import assert_resumed, event_files, kill_after_first_checkpoint
from test_pretraining import _nsp_records, _text_corpus, hf_with_head  # noqa: F401 (a fixture)

DEMO = ROOT / "data" / "demo" / "consensus"


def _kill_then_resume(command, out, total_steps):
    """Kill `command` after its first checkpoint, run it again; the resumed run's completed process."""
    state = kill_after_first_checkpoint(command, out)
    events = event_files(out)
    resumed = run_script(command)
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


def test_masked_lm_pretraining_resumes_after_a_real_sigkill(tiny_checkpoint, tmp_path):
    text = _text_corpus(tmp_path / "text")
    out = tmp_path / "out"
    command = ["run_pretraining.py", f"--bert_model={tiny_checkpoint}", f"--input_files={text}",
               f"--output_dir={out}", "--max_seq_length=32", "--max_predictions_per_seq=5", "--train_batch_size=8",
               "--learning_rate=3e-3", "--num_train_steps=12", "--num_warmup_steps=2", "--seed=42",
               "--eval_fraction=0.1", "--save_checkpoints_steps=3", "--log_every=1"]
    _kill_then_resume(command, out, 1 + 12)  # a new head: one step of head warm-up (--head_warmup_steps) first
    results = json.loads((out / "eval_results.json").read_text())
    assert results["before"]["perplexity"] > results["after"]["perplexity"] > 0  # kept through the resume


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
