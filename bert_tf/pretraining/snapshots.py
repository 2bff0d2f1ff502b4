"""Model snapshots along a pretraining run, as NVIDIA's Estimator kept them: every --save_checkpoints_steps optimizer
steps the model is written as OUTPUT/model.ckpt-STEP (a Hugging Face BertForMaskedLM / BertForPreTraining directory,
its step in config.json), and the last --keep_checkpoint_max stay. Each is complete or absent (written atomically),
takes --bert_model, and exports with `python -m bert_tf.checkpoints.export --format=tf1`."""

from __future__ import annotations

import os
import re
import shutil
from typing import List

from bert_tf.checkpoints.tf1 import GLOBAL_STEP_KEY
from bert_tf.pretraining import model as mlm_model

SNAPSHOT_PREFIX = "model.ckpt-"


def snapshot_path(out_dir: str, step: int) -> str:
    """Where the snapshot of `step` is written."""
    return os.path.join(out_dir, f"{SNAPSHOT_PREFIX}{step}")


def snapshot_steps(out_dir: str) -> List[int]:
    """The steps of the snapshots in `out_dir`, in order."""
    if not os.path.isdir(out_dir):
        return []
    pattern = re.compile(re.escape(SNAPSHOT_PREFIX) + r"(\d+)")
    return sorted(int(m.group(1)) for m in map(pattern.fullmatch, os.listdir(out_dir))
                  if m and os.path.isdir(os.path.join(out_dir, m.group(0))))


class SnapshotWriter:
    """A training step hook (Trainer.step_hooks): the model's snapshot every `every` steps, the last `keep` kept."""

    def __init__(self, mlm: mlm_model.MaskedLM, out_dir: str, every: int, keep: int):
        self.mlm, self.out_dir, self.every, self.keep = mlm, out_dir, every, keep

    def __call__(self, global_step: int) -> None:
        if self.every > 0 and self.keep > 0 and global_step % self.every == 0:
            mlm_model.save_hf(self.mlm, snapshot_path(self.out_dir, global_step), {GLOBAL_STEP_KEY: global_step})
            for step in snapshot_steps(self.out_dir)[: -self.keep]:
                shutil.rmtree(snapshot_path(self.out_dir, step), ignore_errors=True)
