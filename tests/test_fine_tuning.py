"""The fine-tuning scripts' shared steps: the checkpoint (bert_tf.checkpoints.load_checkpoint) checked against the sequence length flag, and the rows
of the run table both scripts print (model, tokenizer, devices, batch, precision, XLA around the job's rows)."""

from __future__ import annotations

import dataclasses

import pytest

from bert_tf import checkpoints, distribution, fine_tuning
from bert_tf.errors import InputError


@pytest.mark.parametrize("flag", ["max_len", "max_seq_length"])
def test_a_length_beyond_the_position_embeddings_is_bad_input(tiny_checkpoint: str, flag: str) -> None:
    spec = checkpoints.CheckpointSpec(bert_model=tiny_checkpoint)
    checkpoint, tokenizer = checkpoints.load_checkpoint(spec, length=128, length_name=flag)
    assert checkpoint.path == tiny_checkpoint and tokenizer.vocab_size > 0
    with pytest.raises(InputError) as raised:
        checkpoints.load_checkpoint(spec, length=129, length_name=flag)
    assert str(raised.value) == f"{tiny_checkpoint}: --{flag}=129 exceeds the model's 128 position embeddings"


def test_a_checkpoint_without_a_position_count_takes_any_length(tiny_checkpoint: str) -> None:
    checkpoint = checkpoints.find_checkpoint(tiny_checkpoint)
    unknown = dataclasses.replace(checkpoint, config={k: v for k, v in checkpoint.config.items()
                                                      if k != "max_position_embeddings"})
    checkpoints.check_positions(unknown, 100_000, "max_len")
    with pytest.raises(InputError):
        checkpoints.check_positions(checkpoint, 100_000, "max_len")


def test_the_run_table_puts_the_job_rows_between_the_shared_ones(tiny_checkpoint: str) -> None:
    checkpoint, tokenizer = checkpoints.load_checkpoint(checkpoints.CheckpointSpec(bert_model=tiny_checkpoint),
                                                        length=64, length_name="max_len")
    run = distribution.setup_run(1, False, "one_device")
    with run.strategy.scope():
        task = checkpoints.build_task_model(checkpoint, tokenizer, ["O", "B-X"], "token", 0.1)
    table = fine_tuning.run_table(checkpoint, task, run, 6, True, {"labels": "2: O, B-X"}, {"steps": "3 per epoch"})
    assert list(table) == ["model", "tokenizer", "labels", "devices", "batch", "steps", "precision", "xla"]
    assert table["model"] == (f"{tiny_checkpoint} (hf; 2 layers, hidden 32, 2 heads, vocabulary "
                              f"{task.backbone.vocabulary_size}, max positions 128; activation {checkpoint.activation})")
    assert table["tokenizer"] == f"{tokenizer.source} (lower-case: {tokenizer.lowercase})"
    assert table["devices"].startswith("OneDeviceStrategy with 1 replica(s)")
    assert table["batch"] == "global 6 = 1 replica(s) x 6"
    assert (table["precision"], table["xla"]) == (run.precision, True)
