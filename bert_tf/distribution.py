"""tf.distribute strategies, precision policy and device reporting, shared by both scripts."""

from __future__ import annotations

import json
import os
from typing import Tuple

import keras
import tensorflow as tf

from bert_tf.errors import InputError

DISTRIBUTIONS = ("auto", "one_device", "mirrored", "multi_worker")


def _in_slurm_multitask_job() -> bool:
    return "SLURM_JOB_ID" in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy for `--distribution` (auto: mirrored with >1 GPU, else one device)."""
    if name not in DISTRIBUTIONS:
        raise InputError(f"--distribution={name}: expected one of {', '.join(DISTRIBUTIONS)}")
    if name == "multi_worker":
        if _in_slurm_multitask_job():
            resolver = tf.distribute.cluster_resolver.SlurmClusterResolver()
        elif os.environ.get("TF_CONFIG"):
            resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        else:
            raise InputError("--distribution=multi_worker needs a SLURM allocation with several tasks or TF_CONFIG")
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    device = gpus[0].name if gpus else "/cpu:0"
    return tf.distribute.OneDeviceStrategy(device)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes outputs (always true outside multi-worker training)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0 and not _has_chief(resolver))


def _has_chief(resolver) -> bool:
    try:
        return "chief" in resolver.cluster_spec().as_dict()
    except (ValueError, json.JSONDecodeError):
        return False


def configure_precision(use_amp: bool) -> Tuple[str, bool]:
    """Set the Keras dtype policy; returns (policy name, whether the loss must be scaled)."""
    if not use_amp:
        keras.mixed_precision.set_global_policy("float32")
        return "float32", False
    if tf.config.list_physical_devices("GPU"):
        keras.mixed_precision.set_global_policy("mixed_float16")
        return "mixed_float16", True
    keras.mixed_precision.set_global_policy("float32")
    return "float32 (--use_amp needs a GPU; none is visible)", False


def describe_devices(strategy: tf.distribute.Strategy) -> str:
    """A one-line summary of where training runs."""
    gpus = tf.config.list_physical_devices("GPU")
    kind = f"{len(gpus)} GPU(s)" if gpus else "CPU only"
    return f"{type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s); {kind} visible"


class RunContext:
    """Where and how a run trains: strategy, precision policy, loss scaling, chief or not."""

    def __init__(self, strategy: tf.distribute.Strategy, precision: str, loss_scale: bool):
        self.strategy, self.precision, self.loss_scale = strategy, precision, loss_scale
        self.chief = is_chief(strategy)
        self.replicas = strategy.num_replicas_in_sync

    def describe_batch(self, global_batch: int) -> str:
        """How the global batch is split across replicas."""
        return f"global {global_batch} = {self.replicas} replica(s) x {global_batch / self.replicas:g}"


def setup_run(seed: int, use_amp: bool, distribution: str) -> RunContext:
    """Seed everything, set the precision policy and create the strategy."""
    from bert_tf.runtime import set_seeds

    set_seeds(seed)
    precision, loss_scale = configure_precision(use_amp)
    return RunContext(make_strategy(distribution), precision, loss_scale)
