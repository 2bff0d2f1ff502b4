"""How long deleting a distributed dataset iterator takes after each prediction pass, per strategy.

    python -m bench.iterator_teardown                      # mirrored over 2 logical CPUs, our trainer
    python -m bench.iterator_teardown --tf_default         # the same with TF's autotuned device pipelines
    python -m bench.iterator_teardown --devices gpu        # mirrored over this machine's GPUs

In TF 2.21 deleting an iterator whose pipeline autotunes can wait until tf.data's autotuning thread
next wakes up (its sleep period doubles from 10 ms up to a minute), so some passes end with a stall
of up to a minute; `Trainer.distribute` turns autotuning off (distribution.untune_device_pipelines).
Each pass runs MiniLM over the same batches, then deletes the iterator;
the script prints the loop and teardown seconds of every pass. Not part of `make bench` (it
needs no reference and says nothing about throughput); bench/NOTES.md records what it showed.
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import List


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", choices=("cpu", "gpu"), default="cpu",
                   help="cpu: split the CPU into --replicas logical devices; gpu: every visible GPU")
    p.add_argument("--replicas", type=int, default=2, help="logical CPU devices (with --devices cpu)")
    p.add_argument("--passes", type=int, default=10)
    p.add_argument("--batches", type=int, default=64, help="batches of 16 x 16 tokens per pass")
    p.add_argument("--tf_default", action="store_true",
                   help="let TF's per-device pipelines autotune (as TF builds them), to see the stall")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    import numpy as np
    import tensorflow as tf

    if args.devices == "cpu":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.replicas)
    from bert_tf import checkpoints, distribution
    from bert_tf.training import Trainer

    from bench.common import minilm_dir

    if args.tf_default:
        import bert_tf.training as training

        training.untune_device_pipelines = lambda: False  # what Trainer.distribute calls
    strategy = distribution.make_strategy("mirrored")
    checkpoint, tokenizer = checkpoints.load_pretrained(minilm_dir())
    with strategy.scope():
        task = checkpoints.build_task_model(checkpoint, tokenizer, ["O", "B", "I"], "token", 0.1)
    trainer = Trainer(task.model, None, strategy, verbose=False)
    rng = np.random.default_rng(0)
    rows = args.batches * 16
    token_ids = rng.integers(5, tokenizer.vocab_size, (rows, 16)).astype(np.int32)
    features = {"token_ids": token_ids, "padding_mask": np.ones_like(token_ids),
                "segment_ids": np.zeros_like(token_ids), "row_id": np.arange(rows, dtype=np.int32)}
    print(f"{strategy.num_replicas_in_sync} replicas ({describe(strategy)}), "
          f"device pipelines {'autotuned (TF default)' if args.tf_default else 'untuned (ours)'}")
    teardowns: List[float] = []
    for i in range(args.passes):
        distributed = trainer.distribute(tf.data.Dataset.from_tensor_slices(features).batch(16).prefetch(2))
        step = trainer._step_function("predict", distributed.element_spec)
        started = time.perf_counter()
        iterator = iter(distributed)
        for _ in range(args.batches):
            step(next(iterator))["logits"].numpy()
        loop = time.perf_counter() - started
        del iterator, distributed
        gc.collect()
        teardowns.append(time.perf_counter() - started - loop)
        print(f"pass {i}: loop {loop:.2f} s, iterator teardown {teardowns[-1]:.2f} s", flush=True)
    print(f"teardown: median {np.median(teardowns):.2f} s, max {max(teardowns):.2f} s, "
          f"{sum(t > 1.0 for t in teardowns)} of {len(teardowns)} passes over 1 s")


def describe(strategy) -> str:
    """The strategy's device names, e.g. "CPU:0, CPU:1"."""
    return ", ".join(sorted({d.split("/")[-1] for d in strategy.extended.worker_devices}))


if __name__ == "__main__":
    main()
