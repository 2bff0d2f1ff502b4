"""Worker: prediction throughput with all-MiniLM-L6-v2 (NER words/s, classifier examples/s).

NER: ner_prediction.predict_words over BC5CDR devel (overlapping windows of max_len, length buckets),
after a warm-up pass over a few documents so that tracing is not timed. Classifier:
inference.predict_probabilities over a feature cache of the real consensus examples, after
a warm-up over its first batches. The heads are untrained: only the speed matters here.
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict

from bench.common import BC5CDR_TAG_TYPE, CONSENSUS_EXAMPLES, CONSENSUS_LABELS, load_average, require_files, worker_main


def _trainer(task, use_xla: bool):
    from bert_tf import distribution
    from bert_tf.training import Trainer

    return Trainer(task.model, None, distribution.make_strategy("auto"), use_xla=use_xla, verbose=False)


def ner_rate(cfg: Dict[str, Any], checkpoint, tokenizer) -> Dict[str, Any]:
    """Words/s of ner_prediction.predict_words on BC5CDR devel (eval-set preparation timed apart)."""
    from bert_tf import checkpoints
    from bert_tf.ner import batching as ner_batching, prediction as ner_prediction
    from bert_tf.ner import data as ner_data

    require_files(cfg["devel_path"])
    docs = [e.tokens for e in ner_data.read_conll(cfg["devel_path"], bare_tag_type=BC5CDR_TAG_TYPE)]
    if cfg["sentences"] is not None:
        docs = docs[: cfg["sentences"]]
    task = checkpoints.build_task_model(checkpoint, tokenizer, ["O", "B-Chemical", "I-Chemical"], "token", 0.1)
    trainer = _trainer(task, cfg["use_xla"])
    buckets = ner_batching.bucket_lengths(cfg["max_len"], True)
    warm = ner_prediction.make_eval_set(docs[:200], None, {}, tokenizer, cfg["max_len"])
    ner_prediction.predict_words(trainer, warm, cfg["batch_size"], buckets, tokenizer.pad_id)
    started = time.perf_counter()
    eval_set = ner_prediction.make_eval_set(docs, None, {}, tokenizer, cfg["max_len"])
    prepare = time.perf_counter() - started
    started = time.perf_counter()
    ner_prediction.predict_words(trainer, eval_set, cfg["batch_size"], buckets, tokenizer.pad_id)
    seconds = time.perf_counter() - started
    words = sum(len(d) for d in docs)
    return {"documents": len(docs), "words": words, "windows": len(eval_set.rows), "seconds": seconds,
            "prepare_seconds": prepare, "words_per_s": words / seconds,
            "words_per_s_with_prepare": words / (seconds + prepare)}


def _first_lines(path: str, count, work_dir: str) -> str:
    """`path` itself, or a copy of its first `count` lines in work_dir."""
    if count is None:
        return path
    out = os.path.join(work_dir, f"examples_first_{count}.tsv")
    with open(path, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i >= count:
                break
            dst.write(line)
    return out


def classifier_rate(cfg: Dict[str, Any], checkpoint, tokenizer) -> Dict[str, Any]:
    """Examples/s of inference.predict_probabilities over a cache of the real consensus examples."""
    from bert_tf import checkpoints
    from bert_tf.classifier import inference, inputs
    from bert_tf.classifier import feature_cache
    from bert_tf.classifier import data as consensus

    require_files(CONSENSUS_EXAMPLES, CONSENSUS_LABELS)
    labels = consensus.read_labels_file(CONSENSUS_LABELS)
    cache_root = os.path.join(cfg["work_dir"], "predict_cache")
    info = inputs.build_features(_first_lines(CONSENSUS_EXAMPLES, cfg["examples"], cfg["work_dir"]), labels,
                                     CONSENSUS_LABELS, tokenizer,
                                     cfg["max_seq_length"], None, cache_root)
    task = checkpoints.build_task_model(checkpoint, tokenizer, labels, "sequence", 0.1)
    trainer = _trainer(task, cfg["use_xla"])
    warm = inputs.as_training_batches(feature_cache.cache_dataset(info, cfg["batch_size"], False, 0))
    trainer.predict(warm, 2)
    started = time.perf_counter()
    probs, _ = inference.predict_probabilities(trainer, info, cfg["batch_size"])
    seconds = time.perf_counter() - started
    return {"examples": int(len(probs)), "max_seq_length": cfg["max_seq_length"], "seconds": seconds,
            "examples_per_s": len(probs) / seconds}


def run(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Both prediction rates, with one MiniLM checkpoint and tokenizer."""
    from bert_tf import checkpoints

    load_before = load_average()
    checkpoint, tokenizer = checkpoints.load_pretrained(cfg["model_dir"])
    return {"ner": ner_rate(cfg, checkpoint, tokenizer), "classifier": classifier_rate(cfg, checkpoint, tokenizer),
            "load_before": load_before}


if __name__ == "__main__":
    worker_main(run)
