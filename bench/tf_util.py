"""Helpers shared by the TensorFlow workers (imported only inside their processes)."""

from __future__ import annotations

import time
from typing import Dict, List, Optional, Tuple

import keras


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of every epoch that Trainer.fit runs, and the time at every log point.

    Trainer.fit calls on_train_batch_end after reading back the losses of each group of
    `log_every` steps, so consecutive marks time whole groups of finished steps.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seconds: List[float] = []
        self.marks: List[List[Tuple[int, float]]] = []

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.marks.append([(-1, time.perf_counter())])

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.marks[-1].append((int(batch), time.perf_counter()))

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.seconds.append(time.perf_counter() - self.marks[-1][0][1])

    def step_seconds_by_group(self) -> List[float]:
        """Seconds per step of every group of steps between log points, over all epochs."""
        out = []
        for marks in self.marks:
            for (s0, t0), (s1, t1) in zip(marks, marks[1:]):
                if s1 > s0:
                    out.append((t1 - t0) / (s1 - s0))
        return out


def amp_unavailable(use_amp: bool) -> Optional[Dict[str, str]]:
    """{"skipped": why} when a run asked for --use_amp but the policy that configure_precision set
    (before this call) is plain float32 on this machine; else None."""
    if use_amp and keras.mixed_precision.global_policy().name == "float32":
        return {"skipped": "--use_amp gives float32 on this machine (no GPU, no native bfloat16)"}
    return None
