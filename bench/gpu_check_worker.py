"""Worker of bench/gpu_check.py: one check per process (`python -m bench.gpu_check_worker --config JSON --json OUT`).

Modes:
  device    what TensorFlow was built with and sees (GPUs, compute capability, CUDA/cuDNN).
  steps     the BERT token-classification training step for a list of (length, precision, XLA)
            settings, one after another in this process (bench.tf_step.train_step_rate each).
  ner       one NER epoch on BC5CDR with MiniLM, float32 and --use_amp (bench.tf_ner.run).
  mirrored  a few training steps under MirroredStrategy over two logical devices carved from the
            first GPU (the CPU where there is none) and the same steps on one device: the weights must match.
  predict   classifier prediction examples/s (bench.tf_predict.classifier_rate) with --use_amp's precision.
  engine    the ONNX Runtime engine on the GPU (bert_tf.onnx_engine): examples/s of TensorFlow float32, ONNX
            Runtime float32 and float16 (CUDA), interleaved, and float16's largest probability change and
            label agreement against TensorFlow float32; where CUDA is absent (a dry run) float32 on the CPU
            and why float16 could not run.
  sequence  several of the above in this one process, each one's result by name (the dry run's steps).
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from bench.common import CaseSkipped, load_average, worker_main


def device_info(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """TensorFlow's build and the devices it sees."""
    import tensorflow as tf

    build = tf.sysconfig.get_build_info()
    gpus = tf.config.list_physical_devices("GPU")
    details = [tf.config.experimental.get_device_details(g) for g in gpus]
    return {"tensorflow": tf.__version__, "built_with_cuda": tf.test.is_built_with_cuda(),
            "cuda_version": build.get("cuda_version"), "cudnn_version": build.get("cudnn_version"),
            "gpus": [{"name": d.get("device_name", "?"), "compute_capability": list(d.get("compute_capability", ()))}
                     for d in details]}


def step_rates(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """bench.tf_step.train_step_rate for each setting in cfg["runs"] (shape from cfg["shape"])."""
    from bench.tf_step import train_step_rate

    results: List[Dict[str, Any]] = []
    for run in cfg["runs"]:
        setting = dict(cfg["shape"], mode="step", **run)
        try:
            figures = train_step_rate(setting)
        except Exception as err:  # one failing path must not hide the others: it is the finding
            figures = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"}
        results.append({**run, **figures})
    return {"runs": results}


def ner_epoch(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """bench.tf_ner.run: our epoch in float32 and with --use_amp (no reference)."""
    from bench import tf_ner

    return tf_ner.run(cfg)


def _carve_two_devices() -> str:
    """Split the first GPU (else the CPU) into two logical devices; which kind was split."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        tf.config.set_logical_device_configuration(
            gpus[0], [tf.config.LogicalDeviceConfiguration(memory_limit=8192)] * 2)
        return "GPU"
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    return "CPU"


def _train_weights(strategy, cfg: Dict[str, Any], batches: List[Dict[str, np.ndarray]]) -> List[np.ndarray]:
    """Weights after training a freshly seeded small BERT token classifier on the batches."""
    import tensorflow as tf

    from bench.tf_step import build_model
    from bert_tf import optimization
    from bert_tf.distribution import set_seeds
    from bert_tf.training import Trainer

    set_seeds(cfg["seed"])
    with strategy.scope():
        model = build_model(cfg)
        optimizer = optimization.make_optimizer("adamw", optimization.WarmupLinearDecay(1e-3, 0, 100), 0.01)
    trainer = Trainer(model, optimizer, strategy, use_xla=cfg["use_xla"], passthrough_keys=(), verbose=False)
    trainer.fit(lambda epoch, first: (tf.data.Dataset.from_tensor_slices(
        {k: np.stack([b[k] for b in batches]) for k in batches[0]}), len(batches)), epochs=1)
    return [np.array(v) for v in model.trainable_variables]


def mirrored_matches_one_device(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Max weight difference between MirroredStrategy over two logical devices and one device."""
    import tensorflow as tf

    from bench.tf_step import _random_batch
    from bert_tf import distribution

    kind = _carve_two_devices()
    devices = [d.name for d in tf.config.list_logical_devices(kind)][:2]
    batches = [_random_batch(cfg["batch"], cfg["seq_len"], cfg["vocab"], cfg["labels"], cfg["seed"] + i)
               for i in range(cfg["steps"])]
    distribution.configure_precision(False)
    one = _train_weights(tf.distribute.OneDeviceStrategy(devices[0]), cfg, batches)
    two = _train_weights(tf.distribute.MirroredStrategy(devices), cfg, batches)
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(one, two))
    scale = max(float(np.max(np.abs(a))) for a in one)
    return {"devices": devices, "kind": kind, "steps": cfg["steps"], "max_abs_weight_diff": diff,
            "max_abs_weight": scale, "match": diff <= cfg["tolerance"]}


def predict_rate(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Classifier prediction examples/s with MiniLM under --use_amp's precision (and XLA if asked)."""
    from bench.tf_predict import classifier_rate
    from bench.tf_util import amp_unavailable
    from bert_tf import distribution, checkpoints

    precision, _ = distribution.configure_precision(cfg["use_amp"])
    skipped = amp_unavailable(cfg["use_amp"])
    if skipped:
        return skipped
    checkpoint, tokenizer = checkpoints.load_pretrained(cfg["model_dir"])
    return {"precision": precision, "use_xla": cfg["use_xla"], **classifier_rate(cfg, checkpoint, tokenizer)}


def engine_rates(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """ONNX Runtime float32 and float16 against TensorFlow float32 on a MiniLM classifier (random head)."""
    import os

    from bench.inference_engine import feature_batches, interleaved_rates
    from bench.tf_predict import _first_lines
    from bert_tf import checkpoints, onnx_engine
    from bert_tf.errors import InputError
    from bert_tf.metrics import softmax
    from bert_tf.training import Trainer
    import onnxruntime
    import tensorflow as tf

    if hasattr(onnxruntime, "preload_dlls"):  # the CUDA and cuDNN libraries of the nvidia-* wheels TensorFlow uses
        onnxruntime.preload_dlls()
    checkpoint, tokenizer = checkpoints.load_pretrained(cfg["model_dir"])
    task = checkpoints.build_task_model(checkpoint, tokenizer, ["che", "dis", "ggp", "org", "out"], "sequence", 0.1,
                                        pooling="mention")
    path = _first_lines(cfg["consensus"], cfg["examples"], cfg["work_dir"])
    dataset, count = feature_batches(task, path, cfg["max_seq_length"], cfg["batch_size"], cfg["work_dir"])
    runners: Dict[str, Any] = {"tensorflow float32": Trainer(task.model, None, tf.distribute.get_strategy(),
                                                             verbose=False)}
    notes = {"providers": onnxruntime.get_available_providers(), "onnxruntime": onnxruntime.__version__}
    for precision in ("float32", "float16"):
        try:
            runners[f"onnxruntime {precision}"] = onnx_engine.predictor_for(
                task, precision, os.path.join(cfg["work_dir"], "onnx"), verbose=False)
        except InputError as err:  # no CUDA provider: what the report says instead of a figure
            notes[f"onnxruntime {precision}"] = f"skipped: {err}"
        except Exception as err:  # one failing path must not hide the others: it is the finding
            notes[f"onnxruntime {precision}"] = f"skipped: failed: {type(err).__name__}: {str(err)[:300]}"
    result = {**interleaved_rates(runners, dataset, count, cfg["batch_size"], cfg["repeats"]), **notes,
              "max_seq_length": cfg["max_seq_length"]}
    batch = next(iter(dataset.as_numpy_iterator()))
    reference = softmax(np.asarray(task.model({k: batch[k] for k in ("token_ids", "padding_mask", "segment_ids")},
                                              training=False), np.float64))
    for name, runner in runners.items():
        if name.startswith("onnxruntime"):
            probs = softmax(runner.run(batch).astype(np.float64))
            result["engines"][name].update(device=runner.device,
                                           max_probability_change=float(np.max(np.abs(probs - reference))),
                                           label_agreement=float(np.mean(probs.argmax(1) == reference.argmax(1))))
    return result


def sequence(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Several checks in this one process (a dry run: one TensorFlow start-up instead of one per check); each
    check's result by name, or its skip or error, as a process of its own would have handed it back. "mirrored"
    goes first: its logical devices can be carved only before TensorFlow's runtime starts."""
    import time

    import keras

    results: Dict[str, Any] = {}
    for name, job in sorted(cfg["jobs"], key=lambda named: named[1]["mode"] != "mirrored"):
        keras.mixed_precision.set_global_policy("float32")  # as a fresh process starts: no check's policy leaks
        started = time.time()
        try:
            results[name] = run(job)
        except CaseSkipped as err:
            results[name] = {"skipped": str(err)}
        except Exception as err:  # one failing check must not hide the others: it is the finding
            first_line = (str(err).splitlines() or [""])[0]
            results[name] = {"error": f"{type(err).__name__}: {first_line[:300]}"}
        results[name]["process_seconds"] = round(time.time() - started, 1)
    return {"results": results}


MODES = {"device": device_info, "steps": step_rates, "ner": ner_epoch, "mirrored": mirrored_matches_one_device,
         "predict": predict_rate, "engine": engine_rates, "sequence": sequence}


def run(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Dispatch on cfg["mode"]."""
    load_before = load_average()
    result = MODES[cfg["mode"]](cfg)
    result["load_before"] = load_before
    return result


if __name__ == "__main__":
    worker_main(run)
