"""Runs survive SIGKILL and SIGTERM: resuming gives bitwise the same weights and metrics (CPU, op determinism).

Real SIGKILLs to a subprocess mid-epoch and during a checkpoint write; SIGTERM in every phase, and both scripts
killed in every phase, are in test_preemption.py."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

from conftest import NER_QUICK, ROOT, error_lines, run_script
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


def _ner(tiny_checkpoint, data, out, fault=None, extra=()):
    return run_script(_with_fault(fault, ["run_ner.py", f"--bert_model={tiny_checkpoint}", f"--data_path={data}",
                                          f"--save_model_path={out}", *NER_FLAGS, *extra]))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_checkpoint):
    base = tmp_path_factory.mktemp("resume")
    data = write_learnable_set(base / "data", sizes=(("train", 96), ("val", 24), ("test", 24)))
    out = base / "uninterrupted"
    process = _ner(tiny_checkpoint, data, out)
    assert process.returncode == 0, process.stderr[-3000:]
    return data, out


def _assert_same_run(reference_out: Path, out: Path):
    ref, got = _weights(reference_out / "model"), _weights(out / "model")
    assert ref.keys() == got.keys()
    for name in ref:
        assert np.array_equal(ref[name], got[name]), name
    ref_results = json.loads((reference_out / "test_results.json").read_text())
    assert json.loads((out / "test_results.json").read_text()) == ref_results
    history = [pd.read_csv(d / "history.csv").drop(columns="seconds") for d in (reference_out, out)]
    assert history[0].equals(history[1])


def test_sigkill_mid_epoch_then_resume_is_bitwise_identical(reference, tiny_checkpoint, tmp_path):
    data, ref_out = reference
    out = tmp_path / "run"
    killed = _ner(tiny_checkpoint, data, out, fault="kill_after_step=10")
    assert killed.returncode == -signal.SIGKILL
    assert not (out / "test_results.json").exists()
    resumed = _ner(tiny_checkpoint, data, out, extra=["--keep_checkpoints"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout and "step 8" in resumed.stdout
    _assert_same_run(ref_out, out)
    checkpoints = sorted(p.name for p in (out / "checkpoints").glob("*.state.json"))
    assert len(checkpoints) == 2  # the last two are kept (with --keep_checkpoints)


def test_kill_while_saving_keeps_the_previous_checkpoint(reference, tiny_checkpoint, tmp_path):
    data, ref_out = reference
    out = tmp_path / "run"
    killed = _ner(tiny_checkpoint, data, out, fault="kill_during_save=8")
    assert killed.returncode == -signal.SIGKILL
    assert not (out / "checkpoints" / "ckpt-8.state.json").exists()  # the half-written one is never used
    assert (out / "checkpoints" / "ckpt-7.state.json").is_file()  # the end of epoch 1
    resumed = _ner(tiny_checkpoint, data, out)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "global step 7" in resumed.stdout
    _assert_same_run(ref_out, out)


def test_resume_with_other_settings_is_refused(reference, tiny_checkpoint, tmp_path):
    data, _ = reference
    out = tmp_path / "run"
    assert _ner(tiny_checkpoint, data, out, fault="kill_after_step=5").returncode == -signal.SIGKILL
    refused = _ner(tiny_checkpoint, data, out, extra=["--learning_rate=1e-3"])
    assert refused.returncode == 2
    message = error_lines(refused)[0]
    assert "learning_rate" in message and "cannot be resumed" in message
    restarted = _ner(tiny_checkpoint, data, out, extra=["--learning_rate=1e-3", "--overwrite_output_dir",
                                                        "--noresume"])
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert "resuming" not in restarted.stdout


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
