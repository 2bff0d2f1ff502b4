"""Peak memory of run_pretraining.py's raw-text input pipeline against the size of the corpus.

    python bench/pretraining_memory.py [--lines 100000,1000000] [--batches 0] [--work_dir /tmp/bert_tf_pt_memory]

For each size, a generated corpus of that many lines (documents of 5 to 40 sentences of 6 to 20 words drawn from
a few hundred Finnish and English words, a blank line between documents, seeded) is written once; then a child
process with the all-MiniLM-L6-v2 vocabulary builds the input as run_pretraining.py does (the first pass over the
files, the 5 % held-out split by document hash) and iterates the training stream of epoch 0, masked batches of 16
blocks of 128 tokens, for --batches batches (0: the whole epoch), then the held-out evaluation stream. It reports
its peak RSS (ru_maxrss), its RSS after the tokenizer was loaded, and the times. Prints one JSON line per size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any, Dict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import ROOT, minilm_dir  # noqa: E402

WORDS = ("talo kissa koira järvi metsä kaupunki Helsinki Turku Oulu presidentti hallitus eduskunta yritys Nokia "
         "vuonna kesällä talvella ja tai mutta että kun joka oli on ovat olivat sanoi kertoi päätti osti myi "
         "the of and to in is was for on that with as by at from protein gene cell cells patients treatment "
         "acid receptor expression kinase mutation disease cancer tumor clinical trial dose mice human").split()
CHILD = r"""
import json, resource, sys, time
started = time.time()
from bert_tf import checkpoints
from bert_tf.pretraining import masking, stream
path, model, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
_, tokenizer = checkpoints.load_pretrained(model)
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
baseline = rss()
table = masking.continuation_table(tokenizer)
config = masking.MaskingConfig(0.15, 20, True, tokenizer.token_to_id("[MASK]"), tokenizer.vocab_size,
                               (tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id))
t0 = time.time()
corpus = stream.TextCorpus([path], tokenizer, 128, table, 0.05, 42)
train = stream.MaskedLMStream(corpus, False, config, 42, 16, tokenizer.pad_id)
held = stream.MaskedLMStream(corpus, True, config, 42, 16, tokenizer.pad_id)
t1 = time.time()
share = train.real_token_share(0)
end = batches or train.steps_per_epoch
seen = sum(1 for _ in train.epoch_dataset(0, 0, end))
t2 = time.time()
dataset, eval_batches = held.eval_dataset(16)
evaluated = sum(1 for _ in dataset)
print(json.dumps({"documents": corpus.scan.documents, "train_blocks": train.num_blocks,
                  "held_out_blocks": held.num_blocks, "real_token_share": share, "batches": seen,
                  "eval_batches": evaluated, "rss_after_tokenizer_mib": baseline,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "first_pass_s": t1 - t0, "epoch_s": t2 - t1, "eval_s": time.time() - t2,
                  "process_s": time.time() - started}))
"""


def write_corpus(path: str, lines: int, seed: int = 0) -> None:
    """`lines` lines of generated text: documents of 5-40 sentences, a blank line between documents."""
    import numpy as np

    rng = np.random.default_rng(seed)
    words = np.asarray(WORDS)
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < lines:
            sentences = min(int(rng.integers(5, 41)), lines - written)
            for _ in range(sentences):
                f.write(" ".join(words[rng.integers(0, len(words), int(rng.integers(6, 21)))]) + " .\n")
            f.write("\n")
            written += sentences


def measure(lines: int, batches: int, work_dir: str) -> Dict[str, Any]:
    """The child's report for a corpus of `lines` lines."""
    path = os.path.join(work_dir, f"corpus_{lines}.txt")
    if not os.path.exists(path):
        write_corpus(path, lines)
    process = subprocess.run([sys.executable, "-c", CHILD, path, minilm_dir(), str(batches)], cwd=ROOT,
                             capture_output=True, text=True)
    if process.returncode:
        raise RuntimeError(process.stderr[-3000:])
    return {"lines": lines, "bytes": os.path.getsize(path), **json.loads(process.stdout.strip().splitlines()[-1])}


def main() -> None:
    """Measure every size; print one JSON line each."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lines", default="100000,1000000")
    p.add_argument("--batches", type=int, default=0, help="training batches to iterate (0: the whole epoch)")
    p.add_argument("--work_dir", default="/tmp/bert_tf_pt_memory")
    args = p.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    for lines in (int(n) for n in args.lines.split(",")):
        print(json.dumps(measure(lines, args.batches, args.work_dir)), flush=True)


if __name__ == "__main__":
    main()
