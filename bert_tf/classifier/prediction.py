"""--do_predict: the shards of the prediction input this process takes, what each shard's record says produced
its outputs, and the prediction of every shard not done yet."""

from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Tuple

import keras

import bert_tf
from bert_tf import models
from bert_tf.classifier import corpus, inputs, prediction_writer
from bert_tf.classifier.config import ClassifierConfig
from bert_tf.classifier.model_settings import Classifier
from bert_tf.io_utils import write_json_atomic


def predict_dir(cfg: ClassifierConfig) -> str:
    """Where --do_predict writes."""
    return cfg.predict_output_dir or cfg.output_dir


def prediction_plan(cfg: ClassifierConfig) -> Tuple[List[corpus.Shard], bool]:
    """This process's shards of the prediction input (all of them unless --num_shard_groups) and whether the
    input is a corpus."""
    spec = cfg.predict_file or inputs.split_path(cfg.data_dir or "", "test")
    paths, is_corpus = corpus.list_inputs(spec)
    shards = corpus.plan_shards(paths, is_corpus, predict_dir(cfg), cfg.shard_id, cfg.seed_compatible_outputs)
    group = corpus.resolve_group(cfg.shard_index, cfg.num_shard_groups)
    return corpus.group_shards(shards, group, cfg.num_shard_groups), is_corpus


def prediction_info(cfg: ClassifierConfig, model: Classifier, shards: List[corpus.Shard]) -> Dict:
    """What prediction_info.json records beside the outputs."""
    settings = model.settings
    return {
        "model": settings.model_path or os.path.abspath(os.path.join(cfg.output_dir, "model")),
        "labels": model.labels, "extra_logits": settings.extra_logits,
        "max_seq_length": settings.max_seq_length, "replace_span": settings.replace_span,
        "temperature": settings.temperature, "predict_file": cfg.predict_file,
        "inference_engine": cfg.inference_engine, "inference_precision": cfg.inference_precision,
        "shards_in_this_group": len(shards), "shard_index": cfg.shard_index, "num_shard_groups": cfg.num_shard_groups,
        "bert_tf_version": bert_tf.__version__,
    }


def shard_provenance(model: Classifier, cfg: ClassifierConfig) -> Dict:
    """What decides this run's probabilities, as each shard's record stores it (see corpus.provenance): with
    TensorFlow its Keras precision policy, with ONNX Runtime --inference_precision."""
    settings = model.settings
    onnx = cfg.inference_engine == "onnxruntime"
    precision = cfg.inference_precision if onnx else keras.mixed_precision.global_policy().name
    return corpus.provenance(models.weights_digest(model.task.model), model.labels, settings.extra_logits,
                             settings.max_seq_length, settings.replace_span, model.task.pooling,
                             settings.folded_temperature, precision, cfg.inference_engine)


def make_predictor(cfg: ClassifierConfig, model: Classifier, digest: str) -> Any:
    """What computes the predictions: the model's Trainer, or an ONNX Runtime predictor of the model (exported
    into <output_dir>/onnx, or read from there when an export of the same weights and precision is there)."""
    if cfg.inference_engine == "tensorflow":
        return model.trainer
    from bert_tf import onnx_engine

    return onnx_engine.predictor_for(model.task, cfg.inference_precision, os.path.join(cfg.output_dir, "onnx"),
                                     verbose=cfg.verbose, digest=digest)


def predict_shards(cfg: ClassifierConfig, model: Classifier, chief: bool, shards: List[corpus.Shard],
                   is_corpus: bool, cache_root: str) -> List[str]:
    """Predict every shard not done yet (all workers together; the chief writes): each shard's outputs appear,
    complete, when it ends. The output files of this process's shards."""
    record = shard_provenance(model, cfg)
    if not cfg.overwrite_output_dir:
        corpus.check_done_shards(shards, record)
    todo = [s for s in shards if cfg.overwrite_output_dir or not s.done()]
    predictor = make_predictor(cfg, model, record["model_digest"]) if todo else None
    out_dir = predict_dir(cfg)
    if chief:
        os.makedirs(out_dir, exist_ok=True)
        write_json_atomic(os.path.join(out_dir, "prediction_info.json"), prediction_info(cfg, model, shards))
    if is_corpus:
        print(f"predicting {len(todo)} of {len(shards)} shard(s) into {out_dir} ({len(shards) - len(todo)} done before)")
    total, started = 0, time.time()
    for k, shard in enumerate(todo, start=1):
        if chief:
            corpus.remove_stale_temporaries(shard)
            corpus.write_record(shard, record, prediction_info(cfg, model, shards)["model"])
        shard_started = time.time()
        count, examples = predict_shard(cfg, model, predictor, chief, shard, is_corpus, cache_root,
                                        f"shard {k}/{len(todo)}")
        total += examples
        now = time.time()
        print(f"shard {k}/{len(todo)} {os.path.basename(shard.input)}: {examples} examples in "
              f"{now - shard_started:.1f} s ({examples / max(now - shard_started, 1e-9):.0f} examples/s); "
              f"overall {total} examples, {total / max(now - started, 1e-9):.0f} examples/s"
              + (f"; wrote {', '.join(os.path.basename(p) for p in shard.outputs.values())}" if chief and count else ""),
              flush=True)
    return [path for shard in shards for path in shard.outputs.values()]


def predict_shard(cfg: ClassifierConfig, model: Classifier, predictor: Any, chief: bool, shard: corpus.Shard,
                  is_corpus: bool, cache_root: str, description: str) -> Tuple[int, int]:
    """Predict one input into its output files with `predictor` (make_predictor): (rows written, examples
    predicted). A corpus shard's features are scratch (read once); a single input's go to the feature cache."""
    settings, task = model.settings, model.task
    if is_corpus:
        with inputs.scratch_features(shard.input, task.labels, task.tokenizer, settings.max_seq_length,
                                     settings.replace_span, cfg.featurize_workers) as info:
            count = prediction_writer.write_prediction_files(predictor, info, shard.input, task.labels,
                                                             cfg.predict_batch_size, shard.outputs, chief,
                                                             description=description)
        return count, info.num_examples
    info = inputs.build_features(shard.input, task.labels, "the model's labels", task.tokenizer,
                                 settings.max_seq_length, settings.replace_span, cache_root, check_labels=False,
                                 chief=chief, workers=cfg.featurize_workers)
    count = prediction_writer.write_prediction_files(predictor, info, shard.input, task.labels,
                                                     cfg.predict_batch_size, shard.outputs, chief)
    return count, info.num_examples
