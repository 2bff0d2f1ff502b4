"""Worker: one NER training epoch on BC5CDR (MiniLM), ours vs the PyTorch reference, plus the input
pipeline alone.

Both sides get the same rows (our WordPiece tokenization, truncated to max_len) and the same
hyperparameters (AdamW, weight decay 0.01 off for biases and LayerNorm, eps 1e-6, linear
warm-up over 20% of the epoch then linear decay, clip norm 1.0, dropout 0.1). Ours batches
by length buckets as run_ner.py does; the reference shuffles, batches and pads each batch to
its longest row. Both are scored on BC5CDR devel by our window stitching and our metrics
(conlleval / seqeval default mode): the reference's logits come back for the same windows.
With "with_amp", ours trains a second time from the pretrained weights with `--use_amp`'s precision
(mixed_bfloat16 on a CPU with native bfloat16; skipped where that is float32).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from bench.common import BC5CDR_TAG_TYPE, load_average, log, require_files, run_json, worker_main


def read_data(cfg: Dict[str, Any]):
    """(train examples, devel examples) with the configured subsampling (random, seeded)."""
    from bert_tf.ner import data as ner_data

    require_files(cfg["train_path"], cfg["devel_path"])
    train = ner_data.read_conll(cfg["train_path"], bare_tag_type=BC5CDR_TAG_TYPE)
    devel = ner_data.read_conll(cfg["devel_path"], bare_tag_type=BC5CDR_TAG_TYPE)
    return _subsample(train, cfg["sentences"], cfg["seed"]), _subsample(devel, cfg["eval_sentences"], cfg["seed"])


def _subsample(examples: List, count, seed: int) -> List:
    """`count` examples picked at random (kept in file order); all when count is None or larger."""
    if count is None or count >= len(examples):
        return examples
    picked = np.sort(np.random.default_rng(seed).choice(len(examples), count, replace=False))
    return [examples[i] for i in picked]


def padded_fraction(lengths: np.ndarray, batches: Sequence[np.ndarray], buckets: Sequence[int]) -> float:
    """Fraction of the positions fed to the model that are padding, for bucketed batches."""
    from bert_tf.ner import batching as ner_batching

    positions = sum(ner_batching.padded_length(int(lengths[b].max()), buckets) * len(b) for b in batches)
    return 1.0 - float(lengths.sum()) / positions


def pipeline_rate(rows, batches, buckets, pad_id: int, workers: int) -> Dict[str, float]:
    """Batches/s of the NER tf.data pipeline alone (padding, conversion, prefetch; no model)."""
    from bert_tf.ner import batching as ner_batching

    dataset = ner_batching.batches_dataset(rows, batches, buckets, pad_id, workers)
    started = time.perf_counter()
    count = sum(1 for _ in dataset)
    seconds = time.perf_counter() - started
    return {"batches": count, "seconds": seconds, "batches_per_s": count / seconds}


def alternative_padding(lengths: np.ndarray, batch_size: int, seed: int) -> Dict[str, float]:
    """Padded fractions of other batching schemes on the same rows (no training; for the report)."""
    from bert_tf.ner import batching as ner_batching

    rng = np.random.default_rng(seed)
    powers_of_two = [16, 32, 64, 128]
    batches = ner_batching.make_batches(lengths, batch_size, powers_of_two, True, rng)
    order = rng.permutation(len(lengths))
    dynamic = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    dyn_positions = sum(int(lengths[b].max()) * len(b) for b in dynamic)
    return {
        "buckets_16_32_64_128": padded_fraction(lengths, batches, powers_of_two),
        "shuffled_dynamic_padding": 1.0 - float(lengths.sum()) / dyn_positions,
        "pad_to_max_len": 1.0 - float(lengths.sum()) / (len(lengths) * int(max(lengths.max(), 1))),
    }


def build_trainer(cfg: Dict[str, Any], run, checkpoint, tokenizer, labels: List[str], steps_per_epoch: int):
    """Our task model, optimizer and Trainer, as run_ner.py builds them, for a distribution.setup_run context."""
    from bert_tf import checkpoints, optimization
    from bert_tf.training import Trainer

    with run.strategy.scope():
        task = checkpoints.build_task_model(checkpoint, tokenizer, labels, "token", 0.1)
        schedule = optimization.WarmupLinearDecay(
            cfg["learning_rate"], int(0.2 * steps_per_epoch), cfg["epochs"] * steps_per_epoch)
        optimizer = optimization.make_optimizer("adamw", schedule, cfg["weight_decay"])
    trainer = Trainer(task.model, optimizer, run.strategy, use_xla=cfg["use_xla"], loss_scale=run.loss_scale,
                      passthrough_keys=("row_id",), log_every=10, verbose=False)
    return task, trainer


def train_ours(cfg: Dict[str, Any], trainer, rows, buckets, pad_id: int) -> Dict[str, Any]:
    """One (or cfg["epochs"]) training epoch(s) with length buckets; wall time and padding."""
    from bert_tf.ner import batching as ner_batching

    from bench.tf_util import EpochTimer

    fractions: List[float] = []

    def make_epoch_dataset(epoch: int, first_step: int):
        rng = np.random.default_rng([cfg["seed"], epoch])
        batches = ner_batching.make_batches(rows.lengths(), cfg["batch_size"], buckets, True, rng)
        fractions.append(padded_fraction(rows.lengths(), batches, buckets))
        return ner_batching.batches_dataset(rows, batches, buckets, pad_id, cfg["num_workers"]), len(batches)

    timer = EpochTimer()
    trainer.fit(make_epoch_dataset, epochs=cfg["epochs"], callbacks=[timer])
    return {"epoch_seconds": timer.seconds, "padded_fraction": float(np.mean(fractions)),
            "group_step_seconds": timer.step_seconds_by_group()}


def _flat(arrays: Sequence[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """(concatenation, offsets) of ragged int rows."""
    offsets = np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(np.int64)
    return np.concatenate(arrays).astype(np.int64), offsets


def run_reference(cfg: Dict[str, Any], rows, eval_set, num_labels: int, pad_id: int) -> Dict[str, Any]:
    """The PyTorch reference epoch in a subprocess; its result plus its evaluation logits per window."""
    work = cfg["work_dir"]
    os.makedirs(work, exist_ok=True)
    arrays = {}
    for name, values in (("train_tokens", rows.token_ids), ("train_labels", rows.labels),
                         ("eval_tokens", eval_set.rows.token_ids)):
        arrays[name], arrays[name + "_offsets"] = _flat(values)
    rows_npz, logits_npy = os.path.join(work, "ner_rows.npz"), os.path.join(work, "ner_ref_logits.npy")
    np.savez(rows_npz, **arrays)
    ref_cfg = {
        "mode": "ner", "rows_npz": rows_npz, "logits_npy": logits_npy, "model_dir": cfg["model_dir"],
        "num_labels": num_labels, "pad_id": pad_id, "batch_size": cfg["batch_size"], "epochs": cfg["epochs"],
        "learning_rate": cfg["learning_rate"], "weight_decay": cfg["weight_decay"], "seed": cfg["seed"],
        "eval_batch_size": cfg["eval_batch_size"],
    }
    result = run_json("bench.torch_reference", ["--config", json.dumps(ref_cfg)], os.path.join(work, "ner_ref.json"))
    if "error" in result or "skipped" in result:
        return result
    flat = np.load(logits_npy)
    bounds = np.cumsum([0] + [len(t) for t in eval_set.rows.token_ids])
    result["window_logits"] = [flat[bounds[i]:bounds[i + 1]] for i in range(len(bounds) - 1)]
    return result


def score_logits(eval_set, window_logits: List[np.ndarray], labels: List[str]) -> Dict[str, float]:
    """Our stitching and metrics applied to per-window logits computed elsewhere."""
    from bert_tf.ner import prediction as ner_prediction
    from bert_tf.ner.metrics import ner_metrics

    collector = ner_prediction.WindowCollector(eval_set.rows, eval_set.num_docs, [len(w) for w in eval_set.words])
    for row, logits in enumerate(window_logits):
        collector({"logits": [logits], "row_id": [row]})
    predictions = collector.result()
    gold = [[labels[i] for i in doc] for doc in eval_set.gold_ids]
    pred = [[labels[i] for i in doc] for doc in predictions.label_ids]
    metrics = ner_metrics(gold, pred)
    return {k: metrics[k] for k in ("precision", "recall", "f1", "accuracy")}


def train_and_score(cfg: Dict[str, Any], checkpoint, tokenizer, labels: List[str], rows, eval_set,
                    buckets: List[int], steps_per_epoch: int, use_amp: bool) -> Dict[str, Any]:
    """Our epoch(s) from the pretrained weights, then devel metrics; with use_amp, --use_amp's precision."""
    from bert_tf import distribution
    from bert_tf.ner import evaluation as ner_evaluation

    from bench.tf_util import amp_unavailable

    if use_amp and "amp_use_xla" in cfg:  # e.g. the GPU check: float32 without XLA, --use_amp with it
        cfg = dict(cfg, use_xla=cfg["amp_use_xla"])
    run = distribution.setup_run(cfg["seed"], use_amp, "auto")
    skipped = amp_unavailable(use_amp)
    if skipped:
        return skipped
    task, trainer = build_trainer(cfg, run, checkpoint, tokenizer, labels, steps_per_epoch)
    log(f"NER: training ours (xla={cfg['use_xla']}, precision {run.precision})")
    result = train_ours(cfg, trainer, rows, buckets, tokenizer.pad_id)
    started = time.perf_counter()
    metrics, _ = ner_evaluation.evaluate(trainer, eval_set, labels, cfg["eval_batch_size"], buckets, tokenizer.pad_id,
                              cfg["num_workers"])
    result["eval_seconds"] = time.perf_counter() - started
    result["metrics"] = {k: metrics[k] for k in ("precision", "recall", "f1", "accuracy")}
    result["precision"] = run.precision
    log(f"NER ours ({run.precision}): {result['epoch_seconds']} s/epoch, F1 {metrics['f1']:.4f}")
    return result


def run(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Prepare the rows, time the input pipeline, train ours, evaluate, then the reference."""
    from bert_tf import checkpoints
    from bert_tf.ner import batching as ner_batching, prediction as ner_prediction, rows as ner_rows
    from bert_tf.ner import data as ner_data

    load_before = load_average()
    train, devel = read_data(cfg)
    checkpoint, tokenizer = checkpoints.load_pretrained(cfg["model_dir"])
    labels = ner_data.label_list_from_examples(train)
    label_to_id = {label: i for i, label in enumerate(labels)}
    started = time.perf_counter()
    pieces = ner_rows.encode_documents([e.tokens for e in train], tokenizer)
    rows, words_cut, _ = ner_rows.training_rows(pieces, [[label_to_id[t] for t in e.tags] for e in train],
                                           cfg["max_len"], tokenizer)
    eval_set = ner_prediction.make_eval_set([e.tokens for e in devel], [e.tags for e in devel], label_to_id, tokenizer,
                                 cfg["max_len"])
    featurize_seconds = time.perf_counter() - started
    buckets = ner_batching.bucket_lengths(cfg["max_len"], True)
    batches = ner_batching.make_batches(rows.lengths(), cfg["batch_size"], buckets, True, np.random.default_rng(cfg["seed"]))
    result: Dict[str, Any] = {
        "sentences": len(train), "eval_sentences": len(devel), "words_cut": words_cut, "labels": labels,
        "learning_rate": cfg["learning_rate"], "batch_size": cfg["batch_size"], "max_len": cfg["max_len"],
        "mean_row_length": float(rows.lengths().mean()), "featurize_seconds": featurize_seconds,
        "buckets": buckets, "steps_per_epoch": len(batches),
        "pipeline": pipeline_rate(rows, batches, buckets, tokenizer.pad_id, cfg["num_workers"]),
        "other_padding": alternative_padding(rows.lengths(), cfg["batch_size"], cfg["seed"]),
        "load_before": load_before,
    }
    log(f"NER: {len(train)} sentences, {len(batches)} steps/epoch")
    for name, use_amp in (("ours", False), ("ours_amp", True)):
        if use_amp and not cfg.get("with_amp"):
            continue
        result[name] = train_and_score(cfg, checkpoint, tokenizer, labels, rows, eval_set, buckets, len(batches),
                                       use_amp)
    if cfg["reference"]:
        log("NER: training the PyTorch reference")
        reference = run_reference(cfg, rows, eval_set, len(labels), tokenizer.pad_id)
        logits = reference.pop("window_logits", None)
        if logits is not None:
            reference["metrics"] = score_logits(eval_set, logits, labels)
            log(f"NER reference: {reference['epoch_seconds']} s/epoch, F1 {reference['metrics']['f1']:.4f}")
        result["reference"] = reference
    return result


if __name__ == "__main__":
    worker_main(run)
