"""Runs survive SIGKILL: the same command resumes from the newest complete checkpoint (and says from where; a
restart starts at step 1), and a kill during a checkpoint write resumes from the one before. Bitwise equality
with an uninterrupted run after kills in every phase: test_preemption.py.

A real kill -9 from the test once a checkpoint is on disk (tests/killing.py); the same for run_classifier.py and
run_pretraining.py in test_kill_resume.py; SIGTERM in every phase, and both scripts killed in every phase, are in
test_preemption.py."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pandas as pd
import pytest
from safetensors.numpy import load_file

from conftest import NER_QUICK, ROOT, error_lines, run_script
from killing import (assert_resumed, event_files, kill_after_first_checkpoint, logged_steps, newest_state,
                     run_in_process)
from test_run_ner import write_learnable_set

FAULT_INJECTION = str(ROOT / "tests" / "fault_injection.py")
NER_FLAGS = [NER_QUICK, "--max_len=32", "--epochs=3", "--batch_size=16", "--learning_rate=5e-3", "--patience=0",
             "--num_validate_during_training=2", "--seed=5", "--save_checkpoints_steps=4", "--deterministic",
             "--log_every=3"]


def _weights(model_dir: Path) -> dict:
    return load_file(str(model_dir / "model.safetensors"))


def _with_fault(fault, args):
    """The command line that runs a script with `fault` injected (tests/fault_injection.py), or as it is."""
    return [FAULT_INJECTION, fault, *args] if fault else list(args)


def _ner(tiny_checkpoint, data, out, fault=None, extra=(), in_process=False):
    """run_ner.py with `fault` injected (a process), as a process, or the same command line run in this process."""
    args = ["run_ner.py", f"--bert_model={tiny_checkpoint}", f"--data_path={data}", f"--save_model_path={out}",
            *NER_FLAGS, *extra]
    return run_in_process(args) if in_process else run_script(_with_fault(fault, args))


# Without --deterministic: a real kill -9 from the test once the first checkpoint (step 3, mid-epoch 1) is on disk.
KILL_FLAGS = ["--max_len=32", "--epochs=2", "--batch_size=8", "--learning_rate=5e-3", "--patience=0", "--seed=5",
              "--save_checkpoints_steps=3", "--log_every=1", "--num_validate_during_training=1"]
KILL_STEPS = 2 * 8  # 2 epochs of 64 training sentences in batches of 8


def test_real_sigkill_then_other_settings_are_refused_the_same_command_resumes_a_restart_starts_over(
        tiny_checkpoint, tmp_path):
    """A run killed (SIGKILL from this process) right after its first resume checkpoint: the same folder with
    another learning rate is refused; the same command resumes from that checkpoint (tests/killing.py says what
    proves it); a restart into the finished folder (--overwrite_output_dir --noresume) trains from step 1. The
    refusal and the restart are the command lines parsed as run_ner.py parses them, run by its runner in this
    process with the command line's error handling (tests/killing.py run_in_process); the killed and the resumed
    runs are processes."""
    data = write_learnable_set(tmp_path / "data", sizes=(("train", 64), ("val", 8), ("test", 8)))
    out = tmp_path / "run"
    command = ["run_ner.py", NER_QUICK, f"--bert_model={tiny_checkpoint}", f"--data_path={data}",
               f"--save_model_path={out}", *KILL_FLAGS]
    state = kill_after_first_checkpoint(command, out)
    assert not (out / "test_results.json").exists() and not (out / "model").exists()
    refused = run_in_process([*command, "--learning_rate=1e-3"])
    assert refused.returncode == 2
    message = error_lines(refused)[0]
    assert "learning_rate" in message and "cannot be resumed" in message
    events = event_files(out)
    resumed = run_script([*command, "--keep_checkpoints"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_resumed(resumed.stdout, state, out, events, KILL_STEPS)
    history = pd.read_csv(out / "history.csv")
    assert history[history.split == "train"].step.tolist() == [8, 16]
    checkpoints = sorted(p.name for p in (out / "checkpoints").glob("*.state.json"))
    assert checkpoints == ["ckpt-15.state.json", "ckpt-16.state.json"]  # the last two (with --keep_checkpoints)
    events = event_files(out)
    restarted = run_in_process([*command, "--overwrite_output_dir", "--noresume"])
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert "resuming" not in restarted.stdout and re.search(r"^Epoch 1/2$", restarted.stdout, re.M)
    assert logged_steps(event_files(out) - events) == list(range(1, KILL_STEPS + 1))


def test_kill_while_saving_keeps_the_previous_checkpoint(tiny_checkpoint, tmp_path):
    """SIGKILL while the checkpoint of step 8 is written (its state file, written last, never appears): the
    same command (run in this process) resumes from the one before, the end of epoch 1."""
    data = write_learnable_set(tmp_path / "data", sizes=(("train", 96), ("val", 24), ("test", 24)))
    out = tmp_path / "run"
    killed = _ner(tiny_checkpoint, data, out, fault="kill_during_save=8", extra=["--log_every=1"])
    assert killed.returncode == -signal.SIGKILL
    assert (out / "checkpoints" / "ckpt-8.index").is_file()  # written before the kill, never used
    assert not (out / "checkpoints" / "ckpt-8.state.json").exists()
    state = newest_state(out)
    assert (state["epoch"], state["step_in_epoch"]) == (1, 0) and state["global_step"] < 8  # the end of epoch 1
    events = event_files(out)
    resumed = _ner(tiny_checkpoint, data, out, extra=["--log_every=1"], in_process=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_resumed(resumed.stdout, state, out, events, 3 * int(state["global_step"]))  # 3 epochs
    assert json.loads((out / "test_results.json").read_text())["num_sentences"] == 24


def test_settings_that_do_not_change_training_do_not_block_a_resume(tmp_path):
    """The fingerprint holds the RESULT settings only: output and operational settings may change on a resume."""
    import dataclasses

    from bert_tf import config
    from bert_tf.errors import InputError
    from bert_tf.resume import TrainingCheckpointer

    @dataclasses.dataclass
    class Settings(config.SharedSettings):
        num_workers: int = config.setting(2, config.OPERATIONAL, "threads")
        calibrate: bool = config.setting(True, config.OUTPUT, "after training")

    saved = Settings(learning_rate=5e-5)
    display_only = Settings(learning_rate=5e-5, verbose_tf=True, tensorboard=False, log_every=1, num_workers=8,
                            calibrate=False, use_xla=True)
    state = {"fingerprint": config.fingerprint(saved)}
    TrainingCheckpointer(str(tmp_path), config.fingerprint(display_only)).check_compatible(state)
    with pytest.raises(InputError, match=r"other settings.*learning_rate \(5e-05 then, 0.001 now\)"):
        TrainingCheckpointer(str(tmp_path), config.fingerprint(Settings(learning_rate=1e-3))).check_compatible(state)
