"""Corpus prediction benchmark: one run_classifier.py process over N shards vs one process per shard (model
load included), and the peak resident memory of one process as the shard grows.

    python bench/corpus_predict.py [--shards 4] [--rows 250] [--rss_rows 20000,80000] [--out FILE.json]

Shards are rows resampled (with replacement, seeded) from ../shared/data/consensus_example/examples.tsv.
Throughput uses a saved bert-tf classifier on all-MiniLM-L6-v2 (random head: speed does not depend on it) at
max_seq_length 64; the memory runs use a 2-layer, 64-wide BERT with MiniLM's vocabulary, so that large shards
finish on a few CPU cores (memory that grew with the shard would grow the same way with any model). Peak RSS
is the largest single process's (ru_maxrss of the children), so the forked featurizers count one by one.
Prints and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from typing import Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.common import CONSENSUS_LABELS, DATA_DIR, minilm_dir  # noqa: E402

EXAMPLES = os.path.join(DATA_DIR, "consensus_example", "examples.tsv")
MEASURE = ("import resource, subprocess, sys, time; t = time.time(); rc = subprocess.run(sys.argv[1:], "
           "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode; print(rc, time.time() - t, "
           "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def save_model(directory: str, tiny: bool) -> str:
    """A saved bert-tf sequence classifier on MiniLM (or a tiny random BERT with MiniLM's vocabulary)."""
    from bert_tf import models, checkpoints

    checkpoint, tokenizer = checkpoints.load_pretrained(minilm_dir())
    labels = open(CONSENSUS_LABELS, encoding="utf-8").read().split()
    if tiny:
        config = dict(checkpoint.config, num_hidden_layers=2, hidden_size=64, num_attention_heads=2,
                      intermediate_size=128)
        backbone = checkpoints.checkpoint.backbone_from_config(config, 0.1)
        model = models.build_sequence_classifier(backbone, len(labels), 0.1)
        task = models.TaskModel(model, backbone, tokenizer, labels, "sequence", checkpoint.activation, 0.1, {})
    else:
        task = checkpoints.build_task_model(checkpoint, tokenizer, labels, "sequence", 0.1)
    checkpoints.save_model(task, directory, {"max_seq_length": 64, "replace_span": None})
    return directory


def write_shard(path: str, rows: int, seed: int) -> str:
    """`rows` examples resampled from the real consensus examples."""
    lines = open(EXAMPLES, encoding="utf-8").read().splitlines(keepends=True)
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(rng.choice(lines) for _ in range(rows))
    return path


def measure(args: List[str]) -> Dict[str, float]:
    """Wall seconds and peak RSS (MiB) of one run_classifier.py command."""
    out = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, os.path.join(ROOT, "run_classifier.py"),
                          *args], capture_output=True, text=True, cwd=ROOT, check=True)
    rc, seconds, rss_kib = out.stdout.split()
    if rc != "0":
        raise RuntimeError(f"run_classifier.py {' '.join(args)} failed ({rc})")
    return {"seconds": round(float(seconds), 1), "peak_rss_mib": round(int(rss_kib) / 1024)}


def predict_args(model: str, predict_file: str, out: str) -> List[str]:
    return ["--do_predict", f"--bert_model={model}", f"--predict_file={predict_file}", f"--output_dir={out}",
            "--predict_batch_size=64", "--verbose=false", "--overwrite_output_dir"]


def throughput(work: str, shards: int, rows: int) -> Dict[str, float]:
    """One process over `shards` shards vs one process per shard."""
    model = save_model(os.path.join(work, "minilm_model"), tiny=False)
    folder = os.path.join(work, "shards")
    os.makedirs(folder, exist_ok=True)
    paths = [write_shard(os.path.join(folder, f"contexts-{i:03d}.tsv"), rows, i) for i in range(shards)]
    one = measure(predict_args(model, folder, os.path.join(work, "one_process")))
    each = [measure(predict_args(model, p, os.path.join(work, f"per_shard_{i}"))) for i, p in enumerate(paths)]
    total = shards * rows
    per_shard_seconds = sum(m["seconds"] for m in each)
    return {"shards": shards, "rows_per_shard": rows, "one_process_seconds": one["seconds"],
            "one_process_examples_per_s": round(total / one["seconds"], 1),
            "process_per_shard_seconds": round(per_shard_seconds, 1),
            "process_per_shard_examples_per_s": round(total / per_shard_seconds, 1),
            "speedup": round(per_shard_seconds / one["seconds"], 2)}


def memory(work: str, sizes: List[int]) -> List[Dict[str, float]]:
    """Peak RSS of one process predicting one shard of each size (tiny model)."""
    model = save_model(os.path.join(work, "tiny_model"), tiny=True)
    results = []
    for rows in sizes:
        path = write_shard(os.path.join(work, f"big-{rows}.tsv"), rows, rows)
        folder = os.path.join(work, f"big_{rows}")
        os.makedirs(folder, exist_ok=True)
        os.replace(path, os.path.join(folder, f"contexts-{rows}.tsv"))
        m = measure(predict_args(model, folder, os.path.join(work, f"rss_{rows}")))
        results.append({"rows": rows, **m, "examples_per_s": round(rows / m["seconds"], 1)})
    return results


def main() -> int:
    """Run both measurements; print and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--rows", type=int, default=250)
    parser.add_argument("--rss_rows", default="20000,80000")
    parser.add_argument("--work_dir", default="/tmp/bert_tf_bench_corpus")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "corpus_predict.json"))
    args = parser.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    results = {"throughput": throughput(args.work_dir, args.shards, args.rows),
               "memory": memory(args.work_dir, [int(n) for n in args.rss_rows.split(",")]),
               "cpu_count": os.cpu_count(), "load_average": os.getloadavg()[0]}
    text = json.dumps(results, indent=2)
    print(text)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
