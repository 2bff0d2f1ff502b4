"""What every fine-tuning script does the same way around its job: load the pretrained checkpoint named by the
shared flags, checked against the script's sequence length, and fill the model, devices, batch and precision
rows of the run table."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Tuple

from absl import flags

from bert_tf import distribution, models, pretrained
from bert_tf.errors import InputError
from bert_tf.tokenization import WordPieceTokenizer


def check_positions(checkpoint: pretrained.Checkpoint, length: int, flag: str) -> None:
    """Bad input when --`flag`=`length` exceeds the checkpoint's position embeddings (fine when unknown)."""
    positions = pretrained.max_positions(checkpoint)
    if positions is not None and length > positions:
        raise InputError(f"--{flag}={length} exceeds the model's {positions} position embeddings", checkpoint.path)


def load_checkpoint(values: flags.FlagValues, length_flag: str) -> Tuple[pretrained.Checkpoint, WordPieceTokenizer]:
    """The checkpoint of the shared flags (--bert_model, or --bert_config_file/--vocab_file/--init_checkpoint) and
    its tokenizer (--do_lower_case), checked against the sequence length in flag `length_flag`."""
    checkpoint, tokenizer = pretrained.load_pretrained(values.bert_model, values.bert_config_file, values.vocab_file,
                                                       values.init_checkpoint, values.do_lower_case)
    check_positions(checkpoint, values[length_flag].value, length_flag)
    return checkpoint, tokenizer


def run_table(checkpoint: pretrained.Checkpoint, task: models.TaskModel, run: distribution.RunContext,
              batch_size: int, use_xla: bool, job_rows: Mapping[str, Any],
              training_rows: Mapping[str, Any]) -> Dict[str, Any]:
    """A fine-tuning run's table: model and tokenizer, the job's rows (labels, data, ...), devices and batch,
    its training rows (steps, ...), then precision and XLA."""
    return {
        "model": f"{checkpoint.path} ({checkpoint.kind}; {models.describe_backbone(task.backbone)}; "
                 f"activation {checkpoint.activation})",
        "tokenizer": f"{task.tokenizer.source} (lower-case: {task.tokenizer.lowercase})",
        **job_rows,
        "devices": distribution.describe_devices(run.strategy),
        "batch": run.describe_batch(batch_size),
        **training_rows,
        "precision": run.precision, "xla": use_xla,
    }
