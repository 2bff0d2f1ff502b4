"""What every fine-tuning script does the same way around its job: fill the model, devices, batch and precision
rows of the run table (the pretrained checkpoint itself comes from bert_tf.checkpoints.load_checkpoint)."""

from __future__ import annotations

from typing import Any, Dict, Mapping

from bert_tf import distribution, models
from bert_tf.checkpoints import Checkpoint


def run_table(checkpoint: Checkpoint, task: models.TaskModel, run: distribution.RunContext,
              batch_size: int, use_xla: bool, job_rows: Mapping[str, Any],
              training_rows: Mapping[str, Any]) -> Dict[str, Any]:
    """A fine-tuning run's table: model and tokenizer, the job's rows (labels, data, ...), devices and batch,
    its training rows (steps, ...), then precision and XLA."""
    return {
        "model": f"{checkpoint.path} ({checkpoint.kind}; {models.describe_backbone(task.backbone)}; "
                 f"activation {checkpoint.activation})",
        **checkpoint.source_rows(),
        "tokenizer": f"{task.tokenizer.source} (lower-case: {task.tokenizer.lowercase})",
        **job_rows,
        "devices": distribution.describe_devices(run.strategy),
        "batch": run.describe_batch(batch_size),
        **training_rows,
        "precision": run.precision, "xla": use_xla,
    }
