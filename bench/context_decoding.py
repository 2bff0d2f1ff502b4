"""Cross-sentence context and constrained decoding on real data, through run_ner.py itself.

    python bench/context_decoding.py [--train_sentences 1500] [--epochs 1] [--max_len 128]

For BC5CDR-chem (devel as the test set) and the Turku NER corpus (dev as the test set), with
all-MiniLM-L6-v2: the first N training sentences train, the next 500 validate, and one run per
--context (none, document) gives the test F1 of every vote (central, majority) and decoding
(argmax, viterbi), all from the same trained model (run_ner.py's test comparison). Wall time
is run_ner.py's own "training took" (training + validation) and the whole process.

The memory case builds the training windows of a document-per-row CSV layout (documents of 500
and of 2,000 words, the same total number of words) and pads every batch, and reports each
process's peak RSS and the number of words cut.

Writes bench/context_results.json and bench/CONTEXT_RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from typing import Any, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import DATA_DIR, ROOT, minilm_dir  # noqa: E402

SETS = {
    "bc5cdr_chem": ("bc5cdr_chem/train.tsv", "bc5cdr_chem/devel.tsv", "Chemical"),
    "turku_ner": ("turku_ner/train.tsv", "turku_ner/dev.tsv", "ENT"),
}


def pick_documents(examples: List, sentences: int, rng) -> Tuple[List, List]:
    """Whole documents picked at random until `sentences` sentences, then until 500 more (train, val)."""
    from bert_tf.ner import data as ner_data

    groups = ner_data.document_groups(examples)
    picked: List[List[int]] = [[], []]
    for g in rng.permutation(len(groups)):
        part = 0 if len(picked[0]) < sentences else 1
        if part == 1 and len(picked[1]) >= 500:
            break
        picked[part].extend(groups[int(g)])
    return tuple([examples[i] for i in sorted(part)] for part in picked)


def prepare(name: str, work: str, train_sentences: int, sample: str, seed: int) -> str:
    """train/val/test CSVs (with doc ids) of one data set; the folder."""
    from bert_tf.ner import data as ner_data

    train_file, test_file, bare = SETS[name]
    train = ner_data.read_conll(os.path.join(DATA_DIR, train_file), bare_tag_type=bare)
    test = ner_data.read_conll(os.path.join(DATA_DIR, test_file), bare_tag_type=bare)
    folder = os.path.join(work, name)
    os.makedirs(folder, exist_ok=True)
    if sample == "documents":
        import numpy as np

        chosen, held = pick_documents(train, train_sentences, np.random.default_rng(seed))
        parts = {"train": chosen, "val": held, "test": test}
    else:
        parts = {"train": train[:train_sentences], "val": train[train_sentences:train_sentences + 500], "test": test}
    for split, examples in parts.items():
        ner_data.write_ner_csv(os.path.join(folder, f"{split}.csv"), examples)
    return folder


def train_once(data: str, out: str, context: str, args: argparse.Namespace) -> Dict[str, Any]:
    """One run_ner.py training; its test comparison and times."""
    command = [sys.executable, "run_ner.py", "--flagfile=flags/ner_quick.flags", f"--bert_model={minilm_dir()}", f"--data_path={data}",
               f"--save_model_path={out}", "--overwrite_output_dir", "--noresume", f"--context={context}",
               f"--epochs={args.epochs}", f"--max_len={args.max_len}", "--batch_size=16",
               f"--learning_rate={args.learning_rate}", f"--seed={args.seed}", "--noverbose"]
    started = time.time()
    process = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.time() - started
    if process.returncode:
        raise RuntimeError(process.stderr[-3000:])
    results = json.loads(open(os.path.join(out, "test_results.json")).read())
    training = re.search(r"training took ([\d.]+) s", process.stdout)
    windows = re.search(r"windows\s+(\d+) training windows .*?(\d+) training words cut", process.stdout)
    return {"settings": {k: getattr(args, k) for k in ("train_sentences", "sample", "epochs", "max_len",
                                                         "learning_rate", "seed")},
            "comparison": results["comparison"], "decoding": results["decoding"], "process_seconds": seconds,
            "training_seconds": float(training.group(1)) if training else None,
            "training_windows": int(windows.group(1)) if windows else None,
            "words_cut": int(windows.group(2)) if windows else None}


MEMORY_WORKER = r"""
import json, resource, sys
import numpy as np
from bert_tf import checkpoints
from bert_tf.ner import batching as ner_batching, rows as ner_rows
doc_words, total, max_len = (int(x) for x in sys.argv[1:4])
_, tokenizer = checkpoints.load_pretrained(sys.argv[4])
rng = np.random.default_rng(0)
vocab = ["word", "Niinistö", "vieraili", "Oulussa", "2020", "kemikaali", "ja", "."]
docs = [[vocab[i] for i in rng.integers(0, len(vocab), doc_words)] for _ in range(total // doc_words)]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
pieces = ner_rows.encode_documents(docs, tokenizer)
rows, cut, _ = ner_rows.training_rows(pieces, [[0] * len(d) for d in docs], max_len, tokenizer)
buckets = ner_batching.bucket_lengths(max_len, True)
for batch in ner_batching.make_batches(rows.lengths(), 16, buckets, False):
    ner_batching.pad_batch(rows, batch, buckets, tokenizer.pad_id)
print(json.dumps({"doc_words": doc_words, "documents": len(docs), "windows": len(rows), "words_cut": cut,
                  "rss_before_mib": before, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def memory_case(max_len: int) -> List[Dict[str, Any]]:
    """Peak RSS of building and batching the windows of 500- and 2,000-word documents (same total words)."""
    out = []
    for doc_words in (500, 2000):
        process = subprocess.run([sys.executable, "-c", MEMORY_WORKER, str(doc_words), "400000", str(max_len),
                                  minilm_dir()], cwd=ROOT, capture_output=True, text=True, check=True)
        out.append(json.loads(process.stdout.strip().splitlines()[-1]))
    return out


def report(results: Dict[str, Any]) -> str:
    """The markdown table of the results."""
    lines = ["# Cross-sentence context and Viterbi decoding (bench/context_decoding.py)", "",
             "all-MiniLM-L6-v2; the first N training sentences train, the next 500 validate; batch 16, "
             "test: BC5CDR-chem devel, Turku NER dev (whole). F1: conlleval (seqeval default mode), per word. "
             "Every F1 of one row comes from the same trained model (run_ner.py's test comparison). Times: "
             "run_ner.py's 'training took' (training and validation) and the whole process; on a 2-core machine "
             "shared with other jobs (load average 6 to 12), so only ratios within a row pair mean much.", "",
             "| data | N, epochs, max_len, lr | --context | central+argmax | central+viterbi | majority+argmax | "
             "majority+viterbi | argmax invalid tags | training s | process s | training windows |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, runs in results["sets"].items():
        for context, run in runs.items():
            c, a = run["comparison"], run.get("settings", results.get("args", {}))
            setting = (f"{a.get('train_sentences')} ({a.get('sample', 'first')}), {a.get('epochs')}, "
                       f"{a.get('max_len')}, {a.get('learning_rate')}")
            lines.append(f"| {name} | {setting} | {context} | " + " | ".join(f"{c[k]['f1']:.4f}" for k in (
                "central+argmax", "central+viterbi", "majority+argmax", "majority+viterbi"))
                + f" | {run['decoding']['invalid_argmax_tags']} | {run['training_seconds']:.0f} | "
                f"{run['process_seconds']:.0f} | {run['training_windows']} |")
    lines += ["", "Document-per-row memory (400,000 words, max_len 128; windows built and every batch padded, "
              "peak RSS of the whole process, TensorFlow imported):", "",
              "| words a document | documents | windows | words cut | peak RSS MiB |", "|---|---|---|---|---|"]
    for m in results.get("memory", []):
        lines.append(f"| {m['doc_words']} | {m['documents']} | {m['windows']} | {m['words_cut']} | "
                     f"{m['peak_rss_mib']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run every data set and context, then the memory case; write the JSON and the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train_sentences", type=int, default=1500)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max_len", type=int, default=128)
    p.add_argument("--learning_rate", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--sets", default=",".join(SETS))
    p.add_argument("--work_dir", default="/tmp/bert_tf_context_bench")
    p.add_argument("--sample", choices=("first", "documents"), default="first",
                   help="first: the first N training sentences train and the next 500 validate; documents: whole "
                        "documents drawn at random (seeded) up to N sentences, then up to 500 to validate")
    p.add_argument("--tag", default="", help="appended to the data set's name in the results (a second setting)")
    p.add_argument("--no_memory", action="store_true", help="skip the memory case")
    args = p.parse_args()
    path = os.path.join(ROOT, "bench", "context_results.json")
    results: Dict[str, Any] = json.load(open(path)) if os.path.exists(path) else {"sets": {}}
    for name in args.sets.split(","):
        data = prepare(name, args.work_dir, args.train_sentences, args.sample, args.seed)
        runs = results["sets"].setdefault(name + args.tag, {})
        for context in ("none", "document"):
            print(f"{name} --context={context}", flush=True)
            runs[context] = train_once(data, os.path.join(args.work_dir, f"{name}_{context}"), context, args)
            print(json.dumps(runs[context]), flush=True)
            save(results, path)
    if not args.no_memory:
        results["memory"] = memory_case(args.max_len)
    save(results, path)
    print(report(results))


def save(results: Dict[str, Any], path: str) -> None:
    """Write the JSON and the markdown table."""
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(ROOT, "bench", "CONTEXT_RESULTS.md"), "w") as f:
        f.write(report(results))


if __name__ == "__main__":
    main()
