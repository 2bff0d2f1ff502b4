"""Continued pretraining from Python (bert_tf.pretraining.run with a PretrainingConfig, no command line): the model
learns, the saved model is the next step's --bert_model, evaluation alone reproduces the run's last figures, bad
settings raise InputError with the command line's messages, and the settings' roles match the old hand-kept lists."""

from __future__ import annotations

import dataclasses

import pytest

from test_pretraining import _text_corpus

from bert_tf import config
from bert_tf.errors import InputError
from bert_tf.ownership import OWNER_FILE
from bert_tf.pretraining.config import PretrainingConfig


def _config(checkpoint, text, out, **settings):
    return PretrainingConfig(**{
        "bert_model": str(checkpoint), "input_files": text, "output_dir": str(out), "max_seq_length": 32,
        "max_predictions_per_seq": 5, "train_batch_size": 8, "learning_rate": 3e-3, "optimizer_type": "adamw",
        "num_train_steps": 30, "num_warmup_steps": 2, "eval_fraction": 0.1, "seed": 42, "tensorboard": False,
        "verbose": False, **settings})


def test_continue_pretraining_from_python_learns_and_saves_the_next_bert_model(tiny_checkpoint, tmp_path):
    from bert_tf import checkpoints
    from bert_tf.checkpoints import CheckpointSpec
    from bert_tf.pretraining import run

    text = _text_corpus(tmp_path / "text")
    result = run.train(_config(tiny_checkpoint, text, tmp_path / "out"))
    assert result.output_dir == str(tmp_path / "out") and result.model_dir == str(tmp_path / "out" / "model")
    before, after = result.before, result.after
    # held-out masked-LM loss on the same masks: down by more than half a nat (perplexity to less than 0.6x)
    assert after["loss"] < before["loss"] - 0.5 and after["perplexity"] < 0.6 * before["perplexity"], (before, after)
    assert after["accuracy"] >= before["accuracy"], (before, after)
    assert not (tmp_path / "out" / "checkpoints").exists()
    assert not (tmp_path / "out" / OWNER_FILE).exists()  # the run's claim on the folder finished with it

    checkpoint, tokenizer = checkpoints.load_checkpoint(CheckpointSpec(bert_model=result.model_dir),
                                                        length=32, length_name="max_seq_length")
    assert checkpoint.kind == "hf" and tokenizer.token_to_id("[MASK]") >= 0
    # the saved model on the same held-out documents and masks: the run's last figures
    evaluated = run.evaluate(_config(tmp_path / "out", text, tmp_path / "eval"))
    assert evaluated.evaluated == pytest.approx(after, rel=1e-5)


@pytest.mark.parametrize("settings, message", [
    ({"output_dir": None}, "--output_dir is required"),
    ({"num_train_steps": None}, "--num_train_steps is required for training"),
    ({"eval_batch_size": 0}, "--eval_batch_size=0: must be at least 1"),
    ({"max_seq_length": 4}, "--max_seq_length=4: must be at least 8"),
    ({"masked_lm_prob": 1.5}, "--masked_lm_prob=1.5: must be between 0 and 1"),
    ({"do_train": False, "do_eval": False}, "--nodo_train --nodo_eval: nothing to do"),
    ({"input_files": None}, "--input_files (or --input_files_dir) is required"),
    ({"num_warmup_steps": -1}, "--num_warmup_steps=-1: must not be negative"),
])
def test_bad_settings_raise_the_command_lines_messages(tmp_path, settings, message):
    from bert_tf.pretraining import run

    cfg = _config("unused", str(tmp_path / "in.txt"), tmp_path / "out", **settings)
    with pytest.raises(InputError) as error:
        run.run(cfg)
    assert str(error.value) == message
    assert not (tmp_path / "out").exists()


def test_roles_as_the_old_lists():
    """Fingerprinted (a resume must match): what trains; identity (the output folder's claim) adds what only changes
    the outputs; neither: logging and the overwrite/resume switches."""
    cfg = PretrainingConfig()
    fingerprinted = set(config.values(cfg, [config.RESULT]))
    assert {"input_files", "train_batch_size", "max_seq_length", "masked_lm_prob", "use_fp16", "do_train",
            "next_sentence_prediction", "output_dir", "learning_rate", "learning_rate_schedule",
            "lamb_weight_decay", "eval_every_steps"} <= fingerprinted
    assert not {"do_eval", "eval_batch_size", "verbose", "log_every", "save_checkpoints_steps", "use_xla",
                "distribution", "horovod", "tensorboard", "resume"} & fingerprinted
    identifying = set(config.identity(cfg, "run_pretraining.py")) - {"command"}
    assert {"do_eval", "eval_batch_size", "save_checkpoints_steps", "horovod"} <= identifying
    assert not {"verbose", "verbose_tf", "log_every", "overwrite_output_dir", "resume", "keep_checkpoints"} & identifying
    assert dataclasses.replace(cfg, use_fp16=True).mixed_precision and not cfg.mixed_precision
    assert dataclasses.replace(cfg, num_train_steps=100).warmup_steps == 10
