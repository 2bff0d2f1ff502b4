"""Helpers shared by the TensorFlow workers (imported only inside their processes)."""

from __future__ import annotations

import time
from typing import List

import keras


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of every epoch that Trainer.fit runs (from its callback hooks)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: List[float] = []
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.seconds.append(time.perf_counter() - self._started)
