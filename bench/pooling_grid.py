"""Classifier pooling x learning rate x seed on the real consensus examples (issue 18), with calibration.

    python bench/pooling_grid.py --out_dir=/tmp/pooling_grid [--epochs=2] [--seeds=1,2,3] \
        [--poolings=pooler,cls,mention] [--learning_rates=2e-5,5e-5,1e-4]

The 1,000 examples of ../shared/data/consensus_example are split by document as the tests split them
(train/dev/test ~ 800/100/100); each run trains all-MiniLM-L6-v2 with run_classifier.py at max_seq_length
128 with --replace_span=[unused1], fits the temperature on dev, and predicts test. Test accuracy, macro F1
and ECE / NLL before and after calibration come from the written test probabilities and the temperature
in the saved model. Runs go seed-major (every setting once before any twice), each result is appended to
<out_dir>/runs.jsonl at once, and a rerun skips finished runs, so a cut-off grid still reports. Writes
bench/POOLING.md (a table of means and spreads) from whatever runs.jsonl holds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bert_tf.classifier import calibration  # noqa: E402
from bert_tf.classifier.metrics import classification_metrics  # noqa: E402
from bert_tf.metrics import softmax  # noqa: E402
from bert_tf.checkpoints import SAVED_MODEL_META  # noqa: E402
from bench.common import CONSENSUS_EXAMPLES, CONSENSUS_LABELS, minilm_dir  # noqa: E402
from test_run_classifier import split_examples  # noqa: E402

LABELS = ["che", "dis", "ggp", "org", "out"]


def run_one(data: Path, out: Path, cache: Path, pooling: str, lr: float, seed: int, epochs: float) -> Dict:
    """Train, calibrate and predict once; the run's test figures."""
    args = [sys.executable, str(ROOT / "run_classifier.py"), f"--bert_model={minilm_dir()}", f"--data_dir={data}",
            f"--output_dir={out}", f"--cache_dir={cache}", "--do_train", "--do_eval", "--do_predict",
            f"--labels_file={CONSENSUS_LABELS}", "--max_seq_length=128",
            "--replace_span=[unused1]", f"--pooling={pooling}", f"--learning_rate={lr}", f"--seed={seed}",
            f"--num_train_epochs={epochs}", "--train_batch_size=32", "--verbose=false", "--overwrite_output_dir",
            "--noresume"]
    started = time.time()
    process = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    if process.returncode != 0:
        raise RuntimeError(f"run failed ({process.returncode}): {process.stderr[-2000:]}")
    dev = json.loads((out / "eval_results.json").read_text())
    meta = json.loads((out / "model" / SAVED_MODEL_META).read_text())
    return {"pooling": pooling, "learning_rate": lr, "seed": seed, "epochs": epochs,
            "seconds": round(time.time() - started, 1), **test_figures(data / "test.tsv", out, meta),
            "dev_accuracy": dev["accuracy"], "dev_macro_f1": dev["macro"]["f1"], "collapsed": dev["collapsed"]}


def test_figures(test_path: Path, out: Path, meta: Dict) -> Dict:
    """Accuracy, macro F1, ECE and NLL (raw and calibrated) on test from test_results.tsv and the temperature."""
    temperature = float(meta.get("temperature", 1.0))
    lines = (out / "test_results.tsv").read_text().splitlines()[1:]
    calibrated = np.array([[float(x) for x in line.split("\t")] for line in lines])
    gold = np.array([LABELS.index(line.split("\t")[2]) for line in test_path.read_text().splitlines()])
    log_p = np.log(np.maximum(calibrated, 1e-300))
    raw = softmax(log_p * temperature)  # softmax(T * log softmax(z / T)) = softmax(z)
    pred = calibrated.argmax(axis=1)
    metrics = classification_metrics(gold, pred, LABELS, "out")
    return {"temperature": temperature, "test_accuracy": metrics["accuracy"], "test_macro_f1": metrics["macro"]["f1"],
            "test_ece_before": calibration.expected_calibration_error(raw, gold),
            "test_ece_after": calibration.expected_calibration_error(calibrated, gold),
            "test_nll_before": calibration.nll(np.log(np.maximum(raw, 1e-300)), gold),
            "test_nll_after": calibration.nll(log_p, gold),
            "predicted_classes": int(np.unique(pred).size)}


def summarize(rows: List[Dict]) -> str:
    """A markdown table: mean ± standard deviation over seeds per (epochs, learning rate, pooling)."""
    keys = ["test_accuracy", "test_macro_f1", "test_ece_before", "test_ece_after", "temperature"]
    out = ["| pooling | lr | epochs | seeds | " + " | ".join(k.replace("test_", "test ") for k in keys)
           + " | collapsed runs |", "|---" * (len(keys) + 5) + "|"]
    groups: Dict[tuple, List[Dict]] = {}
    for row in rows:
        groups.setdefault((row["epochs"], row["learning_rate"], row["pooling"]), []).append(row)
    for (epochs, lr, pooling), group in sorted(groups.items()):
        cells = []
        for key in keys:
            values = np.array([r[key] for r in group], np.float64)
            cells.append(f"{values.mean():.3f} ± {values.std(ddof=1):.3f}" if len(values) > 1 else f"{values[0]:.3f}")
        collapsed = sum(bool(r["collapsed"]) for r in group)
        out.append(f"| {pooling} | {lr:g} | {epochs:g} | {len(group)} | " + " | ".join(cells) + f" | {collapsed} |")
    return "\n".join(out) + "\n"


def main() -> None:
    """Run the grid (skipping finished runs) and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--poolings", default="pooler,cls,mention")
    parser.add_argument("--learning_rates", default="2e-5,5e-5,1e-4")
    parser.add_argument("--report", default=str(ROOT / "bench" / "POOLING.md"))
    parser.add_argument("--report_only", action="store_true", help="rewrite the report from runs.jsonl, run nothing")
    args = parser.parse_args()
    base = Path(args.out_dir)
    data = base / "data"
    if not args.report_only:
        split_examples(Path(CONSENSUS_EXAMPLES), data)
    log_path = base / "runs.jsonl"
    done = [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []
    if args.report_only:
        write_report(args.report, done, args, data)
        return
    finished = {(r["pooling"], r["learning_rate"], r["seed"], r["epochs"]) for r in done}
    for seed in map(int, args.seeds.split(",")):
        for lr in map(float, args.learning_rates.split(",")):
            for pooling in args.poolings.split(","):
                if (pooling, lr, seed, args.epochs) in finished:
                    continue
                row = run_one(data, base / "run", base / "cache", pooling, lr, seed, args.epochs)
                print(json.dumps(row), flush=True)
                with open(log_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
                done.append(row)
                write_report(args.report, done, args, data)


def write_report(path: str, rows: List[Dict], args: argparse.Namespace, data: Path) -> None:
    """bench/POOLING.md from the finished runs."""
    epochs = sorted({r["epochs"] for r in rows})
    text = ("# Classifier pooling grid (issue 18)\n\nGenerated by `python bench/pooling_grid.py` (see its "
            "docstring for the options): all-MiniLM-L6-v2, consensus examples split by document (train/dev/test "
            f"{_sizes(data)}), max_seq_length 128, --replace_span=[unused1], batch 32, {', '.join(f'{e:g}' for e in epochs)} "
            f"epoch(s); temperature fitted on dev; figures on test, mean ± sample standard deviation over seeds (one "
            "figure where a setting ran once). "
            f"{len(rows)} runs, {sum(r['seconds'] for r in rows) / 60:.0f} min in all.\n\n" + summarize(rows))
    Path(path).write_text(text, encoding="utf-8")


def _sizes(data: Path) -> str:
    """Example counts of the three splits."""
    return "/".join(str(len((data / f"{s}.tsv").read_text().splitlines())) for s in ("train", "dev", "test"))


if __name__ == "__main__":
    main()
