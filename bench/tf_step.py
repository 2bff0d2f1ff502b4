"""Worker: our Trainer's training step at the BERT-base shape, and the machine's GEMM rate (TensorFlow).

Run by run_bench.py as `python -m bench.tf_step --config JSON --json OUT`. The model is a
randomly initialised keras-hub BertBackbone with our token-classification head (exact GELU, as
a Hugging Face "gelu" config), trained by `Trainer.fit` on one fixed random batch repeated:
epoch 0 is the warm-up (tracing, XLA compilation), each later epoch one timed measurement
taken from the loop's own per-epoch seconds. With "use_amp", the precision that `--use_amp` picks
(distribution.configure_precision: mixed_float16 with loss scaling on a GPU, mixed_bfloat16 on a CPU
with native bfloat16; "amp_dtype" picks one as --amp_dtype does); skipped where that is float32.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Dict, List

import numpy as np

from bench.common import load_average, step_figures, worker_main
from bench.tf_util import EpochTimer, amp_unavailable


def gemm_rate(size: int, dtype: str, min_seconds: float = 2.0) -> Dict[str, Any]:
    """FLOP/s of a size x size tf.matmul (best of repeated timed runs after a warm-up)."""
    import tensorflow as tf

    a = tf.random.normal([size, size], dtype=dtype)
    b = tf.random.normal([size, size], dtype=dtype)
    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    per_call = 20 if on_gpu else 1

    @tf.function
    def chained(x, y):
        for _ in range(per_call):
            x = tf.matmul(x, y) * tf.constant(1e-3, dtype)
        return tf.reduce_sum(x)

    chained(a, b).numpy()
    rates: List[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < min_seconds or len(rates) < 3:
        t0 = time.perf_counter()
        chained(a, b).numpy()
        rates.append(2.0 * size ** 3 * per_call / (time.perf_counter() - t0))
    return {"size": size, "dtype": dtype, "flops": max(rates), "median_flops": statistics.median(rates),
            "runs": len(rates)}


def _random_batch(batch: int, seq_len: int, vocab: int, labels: int, seed: int) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(5, vocab, size=(batch, seq_len)).astype(np.int32)
    return {
        "token_ids": token_ids,
        "padding_mask": np.ones_like(token_ids),
        "segment_ids": np.zeros_like(token_ids),
        "labels": rng.integers(0, labels, size=(batch, seq_len)).astype(np.int32),
    }


def _add_masked_lm(batch: Dict[str, np.ndarray], predictions: int, vocab: int, seed: int) -> Dict[str, np.ndarray]:
    """The batch for a masked-LM step: `predictions` masked positions a row (distinct, sorted) and their labels."""
    rng = np.random.default_rng(seed + 1)
    rows, seq_len = batch["token_ids"].shape
    positions = np.sort(np.stack([rng.choice(np.arange(1, seq_len - 1), predictions, replace=False)
                                  for _ in range(rows)]), axis=1).astype(np.int32)
    labels = rng.integers(5, vocab, size=(rows, predictions)).astype(np.int32)
    from bert_tf.pretraining.masking import MASKED_POSITIONS

    return {**{k: v for k, v in batch.items() if k != "labels"}, MASKED_POSITIONS: positions, "labels": labels}


def build_model(cfg: Dict[str, Any]):
    """Random-init BERT token classifier (or, with task "mlm", BERT with its masked-LM head, decoder tied to the
    word embeddings) of the configured shape (policy set beforehand)."""
    import keras_hub

    from bert_tf import models, checkpoints

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=cfg["vocab"], num_layers=cfg["layers"], num_heads=cfg["heads"],
        hidden_dim=cfg["hidden"], intermediate_dim=cfg["intermediate"], dropout=cfg.get("dropout", 0.1),
        max_sequence_length=max(512, cfg["seq_len"]), num_segments=2,
    )
    checkpoints.set_feedforward_activation(backbone, "gelu_exact")
    if cfg.get("task") == "mlm":
        from bert_tf.pretraining.model import build_masked_lm

        return build_masked_lm(backbone, "gelu_exact")[0]
    return models.build_token_classifier(backbone, cfg["labels"], cfg.get("dropout", 0.1))


def train_step_rate(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Sequences/s of Trainer.fit at steady state, plus model FLOP/s."""
    import keras
    import tensorflow as tf

    from bert_tf import distribution, optimization
    from bert_tf.distribution import set_seeds
    from bert_tf.training import Trainer

    set_seeds(cfg["seed"])
    precision, loss_scale = distribution.configure_precision(cfg["use_amp"], cfg.get("amp_dtype", "auto"))
    skipped = amp_unavailable(cfg["use_amp"])
    if skipped:
        return {"skipped": precision}
    strategy = distribution.make_strategy("one_device")
    steps, warmup, repeats = cfg["steps"], cfg["warmup"], cfg["repeats"]
    with strategy.scope():
        model = build_model(cfg)
        schedule = optimization.WarmupLinearDecay(5e-5, 0, 10 * (warmup + steps * repeats))
        optimizer = optimization.make_optimizer("adamw", schedule, 0.01)
    mlm = cfg.get("task") == "mlm"
    if mlm:
        from bert_tf.pretraining.model import MODEL_INPUTS
    feature_keys = {"feature_keys": MODEL_INPUTS} if mlm else {}
    trainer = Trainer(model, optimizer, strategy, use_xla=cfg["use_xla"], loss_scale=loss_scale,
                      passthrough_keys=(), log_every=10 ** 6, verbose=False, **feature_keys)
    batch = _random_batch(cfg["batch"], cfg["seq_len"], cfg["vocab"], cfg["labels"], cfg["seed"])
    if mlm:
        batch = _add_masked_lm(batch, cfg["predictions"], cfg["vocab"], cfg["seed"])

    def make_epoch(epoch: int, first_step: int):
        count = warmup if epoch == 0 else steps
        return tf.data.Dataset.from_tensors(batch).repeat(count), count

    started = time.time()
    timer = EpochTimer()
    trainer.fit(make_epoch, epochs=1 + repeats, callbacks=[timer])
    seconds = timer.seconds
    per_step = [s / steps for s in seconds[1:]]
    return {
        **step_figures(cfg, per_step, seconds[0]),
        "parameters": int(sum(int(np.prod(v.shape)) for v in model.trainable_variables)),
        "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU",
        "policy": keras.mixed_precision.global_policy().name,
        "precision": precision,
        "total_seconds": time.time() - started,
    }


def run(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The worker's job: {"mode": "gemm"} or {"mode": "step", ...shape and timing settings}."""
    load_before = load_average()
    if cfg["mode"] == "gemm":
        result = gemm_rate(cfg["size"], cfg["dtype"])
    else:
        result = train_step_rate(cfg)
    result["load_before"] = load_before
    return result


if __name__ == "__main__":
    worker_main(run)
