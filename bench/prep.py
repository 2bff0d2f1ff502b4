"""Classifier data preparation: generated consensus-format rows, and the worker that featurizes them.

`generate_consensus_tsv` writes N rows made from the real examples: each row takes a random
real example, rotates the words of its contexts (so the text is not a verbatim repeat) and
replaces about `new_word_rate` of them with synthetic words drawn from a Zipf distribution
over an unbounded pool (stem of a real word + a base-36 number), so that, as in PubMed text,
the vocabulary keeps growing with the number of rows, ever more slowly.

The worker (`python -m bench.prep --config JSON --json OUT`) runs the real path of
run_classifier.py, `classifier.build_features` (read and validate the TSV, tokenize,
featurize, write the on-disk cache), and reports examples/s with this process's resident
memory before and its peak (VmHWM) after.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any, Dict, List, Tuple

import numpy as np

from bench.common import CONSENSUS_EXAMPLES, current_rss_mb, load_average, peak_rss_mb, require_files, worker_main

ZIPF_EXPONENT = 1.25
BLOCK = 10_000

Example = Tuple[str, List[str], str, List[str]]  # label, left words, mention, right words


def read_examples(path: str) -> List[Example]:
    """(label, left words, mention, right words) of every line of a consensus TSV."""
    examples = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) == 6:
                examples.append((fields[2], fields[3].split(), fields[4], fields[5].split()))
    return examples


def _stems(examples: List[Example]) -> List[str]:
    """Alphabetic word beginnings of the real text, to build synthetic words from."""
    words = {w for _, left, _, right in examples for w in left + right if w.isalpha() and len(w) >= 5}
    return sorted({w[:6].lower() for w in words})


def _synthetic(ids: np.ndarray, stems: List[str]) -> List[str]:
    """Synthetic words for Zipf ids: a stem and the id's quotient in base 36."""
    out = []
    for i in ids.tolist():
        q, r = divmod(i, len(stems))
        out.append(stems[r] + np.base_repr(q, 36).lower() if q else stems[r])
    return out


def _perturb(words: List[str], shift: int, positions: np.ndarray, replacements: List[str]) -> str:
    """The words rotated by `shift`, with some positions replaced, joined by spaces."""
    if not words:
        return ""
    shift %= len(words)
    rotated = words[shift:] + words[:shift]
    for p, w in zip(positions.tolist(), replacements):
        rotated[p % len(rotated)] = w
    return " ".join(rotated)


def _block_lines(examples: List[Example], stems: List[str], rng: np.random.Generator, start: int, n: int,
                 new_word_rate: float) -> List[str]:
    """n generated TSV lines (row numbers start..start+n-1)."""
    picks = rng.integers(0, len(examples), n)
    shifts = rng.integers(0, 1 << 30, (n, 2))
    per_row = rng.poisson(new_word_rate * 300, n)
    words = _synthetic(rng.zipf(ZIPF_EXPONENT, int(per_row.sum())), stems)
    positions = rng.integers(0, 1 << 30, int(per_row.sum()))
    lines, used = [], 0
    for j in range(n):
        label, left, mention, right = examples[picks[j]]
        k = int(per_row[j])
        half = k // 2
        new_left = _perturb(left, int(shifts[j, 0]), positions[used:used + half], words[used:used + half])
        new_right = _perturb(right, int(shifts[j, 1]), positions[used + half:used + k], words[used + half:used + k])
        used += k
        lines.append(f"{start + j}\tT{j % 97}\t{label}\t{new_left}\t{mention}\t{new_right}\n")
    return lines


def generate_consensus_tsv(path: str, rows: int, seed: int, source: str = CONSENSUS_EXAMPLES,
                           new_word_rate: float = 0.04) -> Dict[str, Any]:
    """Write `rows` generated consensus rows to `path` (reused when it already exists); facts about them."""
    require_files(source)
    if os.path.isfile(path):
        return {"path": path, "rows": rows, "bytes": os.path.getsize(path), "reused": True}
    examples = read_examples(source)
    stems = _stems(examples)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as f:
        for start in range(0, rows, BLOCK):
            f.writelines(_block_lines(examples, stems, rng, start, min(BLOCK, rows - start), new_word_rate))
    os.replace(tmp, path)
    return {"path": path, "rows": rows, "bytes": os.path.getsize(path), "reused": False,
            "generate_seconds": time.perf_counter() - started}


def cf_workers(cfg: Dict[str, Any]) -> int:
    """How many featurizing processes a cache build uses here (cfg["workers"], else the default)."""
    from bert_tf.classifier import feature_cache

    return cfg.get("workers") or feature_cache.default_workers()


def count_distinct_words(path: str, max_rows: int) -> int:
    """Distinct whitespace words in the contexts and mentions of the first max_rows rows."""
    seen = set()
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= max_rows:
                break
            fields = line.split("\t")
            for text in fields[3:6]:
                seen.update(text.split())
    return len(seen)


def verify_parallel(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Check that a cache built by several processes equals the one built by one (small chunks)."""
    from bert_tf.classifier import feature_cache
    from bert_tf.classifier import data as consensus
    from bert_tf.tokenization import WordPieceTokenizer

    labels = consensus.read_labels_file(cfg["labels_file"])
    arrays = []
    for workers in (1, 2):
        tokenizer = WordPieceTokenizer.from_model_dir(cfg["model_dir"])
        records = ((e.label, e.left, e.mention, e.right) for e in consensus.iter_consensus_tsv(cfg["tsv"], labels))
        directory = os.path.join(cfg["cache_root"], f"verify-{workers}")
        settings = feature_cache.CacheSettings(tokenizer, cfg["max_seq_length"], None, labels, chunk_size=128,
                                               workers=workers)
        info = feature_cache.build_feature_cache(records, directory, settings)
        arrays.append(feature_cache.cache_arrays(info))
        shutil.rmtree(directory, ignore_errors=True)
    same = all(np.array_equal(a, b) for a, b in zip(*arrays))
    return {"identical": bool(same), "examples": int(len(arrays[0][1]))}


def run(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Featurize cfg["tsv"] into a fresh cache with classifier.build_features; speed and memory."""
    if cfg.get("mode") == "verify":
        return verify_parallel(cfg)
    import resource

    from bert_tf.classifier import inputs as classifier
    from bert_tf.classifier import data as consensus
    from bert_tf.tokenization import WordPieceTokenizer

    load_before = load_average()
    labels = consensus.read_labels_file(cfg["labels_file"])
    tokenizer = WordPieceTokenizer.from_model_dir(cfg["model_dir"])
    cache_root = cfg["cache_root"]
    shutil.rmtree(cache_root, ignore_errors=True)
    rss_before = current_rss_mb()
    started = time.perf_counter()
    info = classifier.build_features(cfg["tsv"], labels, cfg["labels_file"], tokenizer, cfg["max_seq_length"],
                                     cfg.get("replace_span"), cache_root, workers=cfg.get("workers"))
    seconds = time.perf_counter() - started
    peak = peak_rss_mb()
    children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    cache_bytes = sum(os.path.getsize(p) for p in info.shard_paths)
    if not cfg.get("keep_cache"):
        shutil.rmtree(cache_root, ignore_errors=True)
    return {
        "examples": info.num_examples, "seconds": seconds, "examples_per_s": info.num_examples / seconds,
        "rss_before_mb": rss_before, "peak_rss_mb": peak, "growth_mb": peak - rss_before,
        "workers_peak_rss_mb": children_peak, "workers": cf_workers(cfg),
        "cache_mb": cache_bytes / 2 ** 20, "shards": len(info.shard_files), "load_before": load_before,
    }


if __name__ == "__main__":
    worker_main(run)
